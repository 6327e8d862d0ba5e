# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance playbook's optional per-host steps cost a host nothing when no host of the batch needs them.

Every task Ansible sends to a host is a worker round on that host, even when its ``when`` skips it. The
playbook's optional steps (the rehearsal, the user's veto tasks, the checks after a revert, failing the hosts
that must fail) are made ``run_once`` by the playbook when no host of the batch needs them (``workflow`` step
``batch``, module_utils/_rounds.py), and stay per host when any host does. Waiting for the host and the checks
stay per host: they register results, which a templated ``run_once`` would copy to every host.

Counted with a small callback of this test (results per task and host, as the strategy reports them), and the
outcome read back from the hypervisor (proxmoxer, pyVmomi):

* all off: each optional step reports one result for the whole batch; the run still snapshots, changes and
  deletes the snapshot of every host;
* on for some hosts only, never the first one: each of those steps runs on every host, and each host gets
  what its own variables ask (h2's veto keeps its snapshot, h3's failing check reverts it).

    python -m pytest tests/integration/test_maintenance_rounds.py
"""

from __future__ import annotations

import json
import re

import pytest

from conftest import (  # pylint: disable=import-error
    Findings,
    Workspace,
    _pve_api,
    _pve_guest,
    api_snapshots,
    new_run_id,
    proxmox_backend,
    vmware_backend,
    vsphere_remove_snapshots,
)

COUNTER = '''
import json, os
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "rounds_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def _add(self, result, **_kwargs):
        task = getattr(result, "task", None) or result._task
        host = getattr(result, "host", None) or result._host
        self.seen.append([task.get_name(), task._uuid, host.get_name()])

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = v2_runner_on_unreachable = _add

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["ROUNDS_COUNT_FILE"], "w") as handle:
            json.dump(self.seen, handle)
'''

# The optional steps, by a part of their task name.
OPTIONAL = {
    "rehearse": "Maintenance | Rehearse the change",
    "veto": "Ask the user's veto tasks",
    "after revert": "Maintenance | After a revert",
    "fail": "Maintenance | Fail the hosts",
}
# Per-host steps, for every host whatever the options (their `when` reads each host's own variables).
PER_HOST = ("Verify | Wait for the host to answer", "Verify | Run the checks on the host", "Verify | Set the verdict")
VMWARE_VMS = ["DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1", "DC0_H0_VM0"]


def backend_of(provider, request):
    if provider == "proxmox":
        return proxmox_backend(request.getfixturevalue("pve"), vms=(100, 101, 102))
    return vmware_backend(request.getfixturevalue("vcsim"), VMWARE_VMS)


def counted_run(ws, tmp_path, extra):
    plugins = tmp_path / "callbacks"
    plugins.mkdir(exist_ok=True)
    (plugins / "rounds_count.py").write_text(COUNTER)
    counts = tmp_path / "counts.json"
    proc = ws.run("prechange.snapshots.maintenance", extra, env={
        "ANSIBLE_CALLBACK_PLUGINS": str(plugins), "ANSIBLE_CALLBACKS_ENABLED": "rounds_count",
        "ROUNDS_COUNT_FILE": str(counts)})
    seen = json.loads(counts.read_text()) if counts.exists() else []
    return proc, seen


def results_of(seen, part):
    """The hosts that reported a result of the first task whose name contains ``part`` (one entry per result).

    The first: the checks after a revert run the verify role's tasks again, as other tasks of the same name.
    """
    uuids = [uuid for name, uuid, _host in seen if part in name]
    return sorted(host for _name, uuid, host in seen if uuids and uuid == uuids[0])


def drop(backend, ws, host, name):
    vm = ws.hosts[host]
    if name not in api_snapshots(backend.provider, backend.conn, vm):
        return
    if backend.provider == "proxmox":
        _pve_guest(_pve_api(backend.conn), vm).snapshot(name).delete()
    else:
        vsphere_remove_snapshots(backend.conn, vm, [name])


@pytest.mark.parametrize("provider", ["proxmox", "vmware"])
def test_optional_steps_no_host_needs_run_once_per_batch(provider, request, tmp_path):
    backend = backend_of(provider, request)
    ws = Workspace(tmp_path, provider, backend.conn, backend.hosts(3),
                   group_vars=dict(backend.inventory_vars, verify_tasks_file=None, verify_reachable=False))
    run_id = new_run_id("rounds")
    name = "prechange-" + run_id
    proc, seen = counted_run(ws, tmp_path, {"prechange_run_id": run_id})
    findings = Findings("maintenance with every optional step off (%s)" % provider)
    findings.expect(proc.returncode == 0, "the run failed (rc %s)" % proc.returncode)
    findings.expect(ws.changed_hosts() == ["h1", "h2", "h3"], "changed hosts: %s" % ws.changed_hosts())
    for step, part in OPTIONAL.items():
        got = results_of(seen, part)
        findings.expect(len(got) == 1, "%s: %d results (%s), expected one for the batch" % (step, len(got), got))
    for part in PER_HOST:
        findings.expect(results_of(seen, part) == ["h1", "h2", "h3"], "%s: %s" % (part, results_of(seen, part)))
    snaps = ws.snapshots()
    findings.expect(all(name not in snaps[h] for h in ws.hosts), "the run's snapshot is left: %s" % snaps)
    report = json.loads((ws.report_dir / ("maintenance-%s.json" % run_id)).read_text())
    findings.expect(sorted((r["host"], r["outcome"], r["action"]) for r in report["hosts"])
                    == [(h, "ok", "deleted") for h in ("h1", "h2", "h3")],
                    "report: %s" % [(r["host"], r["outcome"], r["action"]) for r in report["hosts"]])
    findings.done(proc.stdout)


@pytest.mark.parametrize("provider", ["proxmox", "vmware"])
def test_optional_steps_some_hosts_need_run_on_every_host(provider, request, tmp_path):
    """h1 (the first host, which a run_once would run on) needs none; h2 has veto tasks; h3 waits and checks."""
    backend = backend_of(provider, request)
    veto = tmp_path / "veto.yml"
    veto.write_text("- name: My veto | keep it, the backup has not copied it yet\n"
                    "  ansible.builtin.set_fact:\n"
                    "    revert_or_prune_vetoed: \"{{ revert_or_prune_veto_candidates"
                    " | map('combine', {'reason': 'backup pending'}) | list }}\"\n")
    ws = Workspace(tmp_path, provider, backend.conn, backend.hosts(3), check_passes=False,
                   group_vars=dict(backend.inventory_vars, verify_tasks_file=None, verify_reachable=False))
    ws.host_vars = {"h2": {"revert_or_prune_veto_tasks_file": str(veto)},
                    "h3": {"verify_tasks_file": str(ws.check), "verify_reachable": True}}
    ws.write_inventory(dict(backend.inventory_vars, verify_tasks_file=None, verify_reachable=False))
    run_id = new_run_id("rounds")
    name = "prechange-" + run_id
    try:
        proc, seen = counted_run(ws, tmp_path, {"prechange_run_id": run_id, "snapshot_expires": "1d",
                                                "maintenance_max_fail_percentage": 100})
        findings = Findings("maintenance with optional steps on for h2 and h3 only (%s)" % provider)
        # h3 is reverted, which fails it (maintenance_fail_reverted).
        findings.expect(proc.returncode == 2, "rc %s, expected 2 (h3 reverted)" % proc.returncode)
        for step in ("veto", "after revert", "fail"):
            got = results_of(seen, OPTIONAL[step])
            findings.expect(got == ["h1", "h2", "h3"], "%s: results on %s, expected every host" % (step, got))
        # Only h3 fails (a gate's templated run_once must never fail every host of the batch).
        for host, failed in (("h1", 0), ("h2", 0), ("h3", 1)):
            findings.expect(re.search(r"^%s\s+:.* failed=%d " % (host, failed), proc.stdout, re.M),
                            "%s: not failed=%d in the recap" % (host, failed))
        findings.expect(len(results_of(seen, OPTIONAL["rehearse"])) == 1, "rehearse: not once for the batch")
        findings.expect(results_of(seen, "My veto") == ["h2"], "veto tasks ran on %s" % results_of(seen, "My veto"))
        findings.expect(results_of(seen, "My check") == ["h3"], "checks ran on %s" % results_of(seen, "My check"))
        report = json.loads((ws.report_dir / ("maintenance-%s.json" % run_id)).read_text())
        outcomes = {r["host"]: (r["outcome"], r["action"]) for r in report["hosts"]}
        findings.expect(outcomes.get("h1") == ("ok", "deleted"), "h1: %s" % (outcomes.get("h1"),))
        findings.expect(outcomes.get("h2") == ("ok", "kept"), "h2: %s" % (outcomes.get("h2"),))
        findings.expect((outcomes.get("h3") or ("",))[0] == "reverted", "h3: %s" % (outcomes.get("h3"),))
        snaps = ws.snapshots()
        findings.expect(name not in snaps["h1"], "h1's snapshot was not deleted: %s" % snaps["h1"])
        findings.expect(name in snaps["h2"], "h2's vetoed snapshot is gone: %s" % snaps["h2"])
        findings.done(proc.stdout)
    finally:
        drop(backend, ws, "h2", name)
        drop(backend, ws, "h3", name)
