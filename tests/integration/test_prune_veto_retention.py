# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A veto before pruning, restore points kept by policy, and the audit log (issue 12, points 5 and 6).

On the three backends (real libvirtd, vcsim, fakepve), through the playbooks as a user runs them: the
maintenance playbook's in-run delete and the prune playbook, each with a veto command and with veto
tasks. Snapshots from the past (a week of restore points) are made through the engine with a marker whose
created time lies in the past, as the modules never backdate one. What is left is read back from the
hypervisor's own API (pyvmomi, proxmoxer, libvirt-python).

    python -m pytest tests/integration/test_prune_veto_retention.py
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from datetime import timedelta

import pytest

from conftest import (  # pylint: disable=import-error
    Findings,
    Workspace,
    _pve_api,
    _pve_guest,
    new_run_id,
    workflow_backend,
)

# The collection, as the tests' conftest links it (build/collections -> this checkout).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "build", "collections"))
# pylint: disable=wrong-import-position
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import make_marker, utcnow  # noqa: E402
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import SnapshotParams, ensure  # noqa: E402

VMWARE_VMS = ["DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1"]
MARKER = re.compile(r"\[prechange\.snapshots v1 [^\]]*\]")
PROVIDERS = ["libvirt", "vmware", "proxmox"]


def engine(backend):
    """The collection's own provider backend for a test backend (to make snapshots from the past)."""
    # pylint: disable=import-outside-toplevel
    params = dict(backend.module_args, state="present", timeout=120, lock_timeout=30)
    if backend.provider == "vmware":
        from ansible_collections.prechange.snapshots.plugins.module_utils._vmware import VmwareBackend
        return VmwareBackend(params)
    if backend.provider == "proxmox":
        from ansible_collections.prechange.snapshots.plugins.module_utils._proxmox import ProxmoxBackend
        return ProxmoxBackend(dict(params, validate_certs=True, force=False))
    from ansible_collections.prechange.snapshots.plugins.module_utils._libvirt import LibvirtBackend
    return LibvirtBackend(params)


def make_past(backend, vm, snapshots):
    """``snapshots``: [(name, created, expires)] made on ``vm`` with a finished run's marker (phase verified)."""
    with engine(backend) as api:
        record = api.find_vm(vm)
        for name, created, expires in snapshots:
            marker = make_marker(run="past-%s" % name, creator="tests@ci", created=created, expires=expires,
                                 ticket="CHG-RET", phase="verified")
            ensure(api, record, SnapshotParams(state="present", name=name, description="restore point",
                                               marker=marker, timeout=120), False)


def make_foreign(backend, vm, name):
    with engine(backend) as api:
        ensure(api, api.find_vm(vm), SnapshotParams(state="present", name=name, description="the admin's own",
                                                    timeout=120), False)


def remove(backend, vm, prefix):
    with engine(backend) as api:
        record = api.find_vm(vm)
        for snap in sorted(api.list_snapshots(record), key=lambda s: -s.depth):
            if snap.name.startswith(prefix):
                api.delete(record, snap, False, 120)


def platform_name(backend, vm):
    """The VM's name as the platform reports it (a Proxmox host is named by vmid in the inventory)."""
    if backend.provider == "proxmox":
        return _pve_guest(_pve_api(backend.conn), vm).config.get()["name"]
    return vm


def veto_script(tmp_path, vm_name):
    """The user's veto command: keeps everything of one VM (a legal hold), logs every question it is asked."""
    path = tmp_path / "legal-hold.sh"
    path.write_text("#!/bin/sh\n"
                    "cat >> %s/asked.jsonl; echo >> %s/asked.jsonl\n"
                    "if [ \"$PRECHANGE_VM\" = \"%s\" ]; then echo \"legal hold on $PRECHANGE_VM ($PRECHANGE_TICKET)\"; "
                    "exit 4; fi\nexit 0\n" % (tmp_path, tmp_path, vm_name))
    path.chmod(0o755)
    return str(path)


def veto_tasks(tmp_path, host, match="*"):
    """The user's veto tasks: on ``host``, keep the candidates whose name matches ``match``."""
    path = tmp_path / "veto.yml"
    path.write_text(
        "- name: My veto | keep what the backup has not copied yet\n"
        "  ansible.builtin.set_fact:\n"
        "    revert_or_prune_vetoed: >-\n"
        "      {{ revert_or_prune_veto_candidates | selectattr('snapshot', 'match', '%s')\n"
        "         | map('combine', {'reason': 'backup pending'}) | list if inventory_hostname == '%s' else [] }}\n"
        % (match.replace("*", ".*"), host))
    return str(path)


def audit(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("how", ["command", "tasks"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_veto_keeps_the_in_run_snapshot_until_its_expiry(provider, how, request, tmp_path):
    backend = workflow_backend(provider, request, VMWARE_VMS)
    ws = Workspace(tmp_path, provider, backend.conn, backend.hosts(), group_vars=backend.inventory_vars)
    run_id = new_run_id("veto")
    name = "prechange-" + run_id
    held_vm = ws.hosts["h1"]
    if how == "command":
        extra = {"revert_or_prune_veto_command": veto_script(tmp_path, platform_name(backend, held_vm))}
        reason = "vetoed by revert_or_prune_veto_command (exit 4): legal hold on %s (CHG-9)" % platform_name(
            backend, held_vm)
    else:
        extra = {"revert_or_prune_veto_tasks_file": veto_tasks(tmp_path, "h1")}
        reason = "vetoed by revert_or_prune_veto_tasks_file: backup pending"
    extra.update(prechange_run_id=run_id, prechange_ticket="CHG-9", snapshot_expires="3d")
    try:
        proc = ws.run("prechange.snapshots.maintenance", extra)
        findings = Findings("maintenance with a veto by %s (%s)" % (how, provider))
        findings.expect(proc.returncode == 0, "the run failed (rc %s)" % proc.returncode)
        findings.expect("Snapshot '%s' of VM '%s' was not deleted: %s; it is kept until its expiry"
                        % (name, platform_name(backend, held_vm), reason) in proc.stdout,
                        "the veto's warning is not shown")
        snaps = ws.snapshots()
        findings.expect(name in snaps["h1"], "h1's vetoed snapshot is gone: %s" % snaps["h1"])
        findings.expect(name not in snaps["h2"], "h2's snapshot was not deleted: %s" % snaps["h2"])
        if name in snaps["h1"]:
            line = MARKER.findall(snaps["h1"][name]["description"])[-1]
            findings.expect("phase=verified" in line and "expires=" in line, "the kept marker: %s" % line)
        entries = [e for e in audit(ws.report_dir / "prechange-audit.jsonl") if e["run_id"] == run_id]
        got = sorted((e["vm"], e["action"], e["outcome"]) for e in entries)
        want = sorted([(platform_name(backend, vm), "create", "ok") for vm in ws.hosts.values()] +
                      [(platform_name(backend, held_vm), "delete", "vetoed"),
                       (platform_name(backend, ws.hosts["h2"]), "delete", "ok")])
        findings.expect(got == want, "audit log: %s, expected %s" % (got, want))
        findings.expect(all(e["ticket"] == "CHG-9" and e["snapshot"] == name and e["who"].get("user")
                            for e in entries), "audit entries lack ticket/snapshot/who: %s" % entries)
        report = json.loads((ws.report_dir / ("maintenance-%s.json" % run_id)).read_text())
        findings.expect(len(report["audit"]["entries"]) == 4, "the run report's audit: %s" % report.get("audit"))
        findings.done(proc.stdout)
    finally:
        remove(backend, held_vm, name)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_prune_honours_retention_and_both_vetoes_and_check_mode_predicts_it(provider, request, tmp_path):
    backend = workflow_backend(provider, request, VMWARE_VMS)
    ws = Workspace(tmp_path, provider, backend.conn, backend.hosts(), group_vars=backend.inventory_vars)
    tag = "ret%s" % uuid.uuid4().hex[:6]
    now = utcnow()
    day = timedelta(days=1)
    # A week of restore points per VM: three expired ones of the past days, one of today not yet expired.
    points = [("%s-d3" % tag, now - 3 * day, now - 2 * day), ("%s-d2" % tag, now - 2 * day, now - day),
              ("%s-d1" % tag, now - day, now - timedelta(hours=1)), ("%s-d0" % tag, now - timedelta(hours=1), now + day)]
    vm1, vm2 = ws.hosts["h1"], ws.hosts["h2"]
    log = tmp_path / "audit" / "prune.jsonl"
    extra = {"revert_or_prune_keep_daily": 2,  # today's and yesterday's: d0 (not expired anyway) and d1
             "revert_or_prune_veto_command": veto_script(tmp_path, platform_name(backend, vm1)),
             "revert_or_prune_veto_tasks_file": veto_tasks(tmp_path, "h2", "%s-d3" % tag),
             "prechange_audit_log": str(log)}
    try:
        for vm in (vm1, vm2):
            make_past(backend, vm, points)
        make_foreign(backend, vm1, "%s-foreign" % tag)
        before = ws.snapshots()

        check = ws.run("prechange.snapshots.prune", extra, check=True)
        findings = Findings("prune --check with retention and vetoes (%s)" % provider)
        findings.expect(check.returncode == 0, "the check run failed")
        findings.expect(ws.snapshots() == before, "check mode changed the VMs")
        findings.expect(not log.exists(), "check mode wrote the audit log")
        findings.expect("was not pruned: vetoed by revert_or_prune_veto_command (exit 4): legal hold on %s"
                        % platform_name(backend, vm1) in check.stdout, "check mode does not show the command's veto")
        findings.expect("was not pruned: vetoed by revert_or_prune_veto_tasks_file: backup pending" in check.stdout,
                        "check mode does not show the tasks' veto")
        # The console's summary line per VM (without -v): what would go, what the policy keeps, what was vetoed.
        # (d0 has not expired: no candidate, so not listed as kept by the policy.)
        findings.expect(re.search(r"VM %s: would delete 1: %s-d2 \(CHG-RET\); kept by the retention policy 1: "
                                  r"%s-d1 \(daily [-0-9]+\); vetoed 1: %s-d3 \(vetoed by revert_or_prune_veto_tasks_file"
                                  % (re.escape(platform_name(backend, vm2)), tag, tag, tag), check.stdout),
                        "check mode's summary does not say what would be deleted, kept and vetoed")
        findings.done(check.stdout)

        real = ws.run("prechange.snapshots.prune", extra)
        findings = Findings("prune with retention and vetoes (%s)" % provider)
        findings.expect(real.returncode == 0, "the prune failed")
        ours = {h: sorted(n for n in s if n.startswith(tag)) for h, s in ws.snapshots().items()}
        # h1: the legal hold vetoes d2 and d3; d1 and d0 are kept by the daily rule; the foreign one is never ours.
        findings.expect(ours["h1"] == sorted("%s-%s" % (tag, s) for s in ("d0", "d1", "d2", "d3", "foreign")),
                        "h1 has %s" % ours["h1"])
        # h2: the tasks veto d3, d2 is deleted, d1 and d0 kept by the policy.
        findings.expect(ours["h2"] == sorted("%s-%s" % (tag, s) for s in ("d0", "d1", "d3")), "h2 has %s" % ours["h2"])
        entries = audit(log)
        got = sorted((e["vm"], e["snapshot"], e["action"], e["outcome"]) for e in entries)
        want = sorted([(platform_name(backend, vm1), "%s-d2" % tag, "delete", "vetoed"),
                       (platform_name(backend, vm1), "%s-d3" % tag, "delete", "vetoed"),
                       (platform_name(backend, vm2), "%s-d2" % tag, "delete", "ok"),
                       (platform_name(backend, vm2), "%s-d3" % tag, "delete", "vetoed")])
        findings.expect(got == want, "audit log: %s, expected %s" % (got, want))
        findings.expect(all(e["ticket"] == "CHG-RET" and e["provider"] == provider for e in entries),
                        "audit entries: %s" % entries)
        # Everything check mode said it would do, the real run did: one deletion, three vetoes.
        findings.expect(check.stdout.count("was not pruned:") == real.stdout.count("was not pruned:") == 3,
                        "check mode and the real run disagree on the vetoes")
        findings.done(real.stdout)
    finally:
        for vm in (vm1, vm2):
            remove(backend, vm, tag)
