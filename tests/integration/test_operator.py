# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The window as an operator lives it (issue 15): a dry run that predicts the real one, a report to act
on, outcomes a wrapper can tell apart, and an interrupted run that leaves a report of what it made.

Each test writes a user's own inventory, change and checks, runs the collection's playbooks as
ansible-playbook processes and reads the VMs back from the hypervisor's API (libvirt-python, pyvmomi,
proxmoxer), never through the collection.

    python -m pytest tests/integration/test_operator.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import (  # pylint: disable=import-error
    ansible_env,
    api_snapshots,
    libvirt_backend,
    proxmox_backend,
    run_playbook,
    vmware_backend,
)

CHECK_FAILS_ON = "h3"


class Window(object):
    """A user's maintenance window: inventory, change tasks, checks, and where the reports go."""

    def __init__(self, tmp_path, backend, hosts, host_vars=None, change=None, check=None):
        self.dir, self.backend, self.hosts = tmp_path, backend, dict(hosts)
        self.reports = tmp_path / "reports"
        (tmp_path / "change.yml").write_text(change or (
            "- name: My change | deploy v2\n"
            "  ansible.builtin.copy: {dest: '%s/v2-{{ inventory_hostname }}', content: v2}\n" % tmp_path))
        (tmp_path / "check.yml").write_text(check or (
            "- name: My check | v2 answers\n"
            "  ansible.builtin.set_fact:\n"
            "    verify_user_failures: \"{{ verify_user_failures + ['v2 does not answer on ' ~ inventory_hostname]"
            " if inventory_hostname == '%s' else verify_user_failures }}\"\n" % CHECK_FAILS_ON))
        variables = dict(backend.inventory_vars, ansible_connection="local", ansible_python_interpreter=sys.executable,
                         prechange_provider=backend.provider, guard_change_tasks=str(tmp_path / "change.yml"),
                         guard_check_tasks=str(tmp_path / "check.yml"), verify_no_failed_units=False)
        inventory = {"all": {"vars": variables, "hosts": {
            host: dict({"prechange_vm": vm}, **(host_vars or {}).get(host, {})) for host, vm in self.hosts.items()}}}
        self.inventory = tmp_path / "inventory.yml"
        self.inventory.write_text(json.dumps(inventory, indent=2))

    def run(self, playbook="prechange.snapshots.maintenance", extra=None, check=False):
        result = run_playbook(playbook, extra, inventory=str(self.inventory), check=check,
                              env={"PRECHANGE_REPORT_DIR": str(self.reports)})
        return result, self.report(playbook.rsplit(".", 1)[-1], check)

    def report(self, kind="maintenance", check=False):
        """The newest report of that kind, or None."""
        found = sorted((p for p in self.reports.glob("%s-*.json" % kind) if p.name.endswith("-check.json") == check),
                       key=os.path.getmtime) if self.reports.exists() else []
        return json.loads(found[-1].read_text()) if found else None

    def snapshots(self):
        """{host: sorted snapshot names}, read from the hypervisor."""
        return {h: sorted(api_snapshots(self.backend.provider, self.backend.conn, vm)) for h, vm in self.hosts.items()}


def outcomes(report):
    return {r["host"]: r["outcome"] for r in report["hosts"]}


def delete_run(window, run_id):
    window.run("prechange.snapshots.revert", {"prechange_run_id": run_id, "revert_action": "delete"})


def test_a_dry_run_predicts_the_real_run_on_libvirt(tmp_path, libvirtd, errs_guest):
    backend = libvirt_backend(libvirtd, [errs_guest("blank"), errs_guest("blank"), errs_guest("blank")])
    hosts = {"h%d" % (i + 1): vm for i, vm in enumerate(backend.vms)}
    hosts["ghost"] = "pcstest-errs-no-such-vm"
    window = Window(tmp_path, backend, hosts)
    before = {h: sorted(api_snapshots("libvirt", backend.conn, vm)) for h, vm in hosts.items() if h != "ghost"}

    # A host a precheck refuses is refused by the dry run too, and only that makes it fail.
    dry, report = window.run(check=True)
    assert dry.returncode == 2, dry.stdout[-3000:]
    assert outcomes(report) == {"h1": "check", "h2": "check", "h3": "check", "ghost": "refused"}, report
    assert report["status"] == "refused" and report["check_mode"] is True
    for record in report["hosts"]:
        if record["host"] != "ghost":
            # Never a verdict about a change that did not happen: the checks did not run.
            assert record["verify"]["passed"] is None and record["verify"]["failures"] == [], record
            assert record["action"] == "depends" and record["if_passed"] == "delete", record
            assert record["snapshot"]["predicted"] is True
    assert not (tmp_path / "v2-h1").exists()  # the change ran in check mode only
    # Without the refused host, the dry run exits 0: `--check && ansible-playbook` is possible.
    (tmp_path / "ok").mkdir()
    window_ok = Window(tmp_path / "ok", backend, {h: vm for h, vm in hosts.items() if h != "ghost"})
    dry_ok, report_ok = window_ok.run(check=True)
    assert dry_ok.returncode == 0, dry_ok.stdout[-3000:]
    assert report_ok["status"] == "check" and set(outcomes(report_ok).values()) == {"check"}
    assert "PRECHANGE_STATUS=check " in dry_ok.stdout
    # Nothing changed on the platform.
    assert {h: sorted(api_snapshots("libvirt", backend.conn, vm)) for h, vm in hosts.items() if h != "ghost"} == before

    # The real run does what was predicted: each predicted host is pruned or reverted as its checks
    # decide, the refused host is refused again.
    real, real_report = window.run()
    try:
        assert real.returncode == 2, real.stdout[-3000:]
        assert outcomes(real_report) == {"h1": "ok", "h2": "ok", "h3": "reverted", "ghost": "refused"}, real_report
        predicted = {r["host"]: r for r in report["hosts"]}
        for record in real_report["hosts"]:
            if predicted[record["host"]]["action"] == "depends":
                assert record["action"] == ("deleted" if record["verify"]["passed"] else "reverted"), record
        after = {h: sorted(api_snapshots("libvirt", backend.conn, vm)) for h, vm in hosts.items() if h != "ghost"}
        assert after["h1"] == before["h1"] and after["h2"] == before["h2"]
        assert after["h3"] == sorted(before["h3"] + ["prechange-" + real_report["run_id"]])
    finally:
        delete_run(window, real_report["run_id"])


def test_the_report_names_what_failed_and_what_is_left(tmp_path, pve):
    backend = proxmox_backend(pve, vms=(100, 101, 108))
    change = ("- name: My change | deploy v2\n"
              "  ansible.builtin.shell: >-\n"
              "    {{ 'echo dpkg: error processing package app >&2; exit 3' if inventory_hostname == 'h2' else 'true' }}\n")
    window = Window(tmp_path, backend, {"h1": 100, "h2": 101, "h3": 108}, change=change, host_vars={
        # h1: a named port check fails, and the restored host fails its own check too.
        "h1": {"verify_ports": [{"port": 1, "timeout": 1}],
               "revert_or_prune_reverify_checks": {"ports": [{"port": 2, "timeout": 1}]}},
        # h3: the user's check fails; it is kept on success elsewhere but reverted here.
    })
    result, report = window.run()
    try:
        assert result.returncode == 2
        records = {r["host"]: r for r in report["hosts"]}
        assert outcomes(report) == {"h1": "reverted", "h2": "reverted", "h3": "reverted"}
        # A failed check names its target; the restored host's failed check is named too.
        assert records["h1"]["verify"]["failures"] == ["port 1 on 127.0.0.1 is not open (waited 1s)"]
        assert records["h1"]["reverify_passed"] is False
        assert records["h1"]["reverify_failures"] == ["port 2 on 127.0.0.1 is not open (waited 1s)"]
        # A failed change: its task, rc and stderr, and that it may have changed the host.
        change_error = records["h2"]["change"]["error"]
        assert change_error["task"] == "My change | deploy v2" and str(change_error["rc"]) == "3", change_error
        assert "dpkg: error processing package app" in change_error["stderr"]
        assert records["h2"]["change"]["changed"] is True and records["h2"]["reason"] == "the change failed"
        assert records["h3"]["verify"]["failures"] == ["v2 does not answer on h3"]
        # What is left on the platform adds up, with the snapshot's expiry and creator.
        assert report["summary"]["left_on_platform"] == 3
        assert sum(report["summary"][o] for o in ("ok", "reverted", "refused", "error", "check", "waiting",
                                                  "stopped", "not_reached")) == report["summary"]["hosts"] == 3
        on_platform = window.snapshots()
        for item in report["left_on_platform"]:
            assert item["snapshot"] in on_platform[item["host"]] and item["phase"] == "reverted"
            assert item["expires"]
        assert records["h1"]["creator"] and records["h1"]["expires"]
        markdown = (window.reports / ("maintenance-%s.md" % report["run_id"])).read_text()
        assert "task 'My change \\| deploy v2': non-zero return code (rc=3): dpkg: error processing package app" \
            in markdown
        assert "the restored host FAILED its checks: port 2 on 127.0.0.1 is not open (waited 1s)" in markdown
        assert "ansible-playbook prechange.snapshots.revert -i %s -e prechange_run_id=%s -e revert_action=delete " \
               "--limit h1,h2,h3" % (window.inventory, report["run_id"]) in markdown
        svg = (window.reports / ("maintenance-%s.svg" % report["run_id"])).read_text()
        assert svg.count("<title>h1 ") >= 3  # snapshot, change, verify, revert_or_prune bars
        # The console: a status line a wrapper can parse, and the failed re-check fails the host.
        assert "PRECHANGE_STATUS=reverted run=%s" % report["run_id"] in result.stdout
        assert "the restored host failed its checks: port 2 on 127.0.0.1" in result.stdout
    finally:
        delete_run(window, report["run_id"])


def test_hosts_not_reached_are_reported_as_stopped(tmp_path, vcsim):
    backend = vmware_backend(vcsim, ["DC0_H0_VM0", "DC0_H0_VM1", "DC0_C0_RP0_VM0"])
    window = Window(tmp_path, backend, {"h1": "DC0_H0_VM0", "h3": "DC0_H0_VM1", "h4": "DC0_C0_RP0_VM0"})
    # Batches of one: h1 passes, h3 fails its check and max_fail_percentage 0 stops the run before h4.
    result, report = window.run(extra={"maintenance_serial": 1, "maintenance_max_fail_percentage": 0})
    try:
        assert result.returncode == 2
        assert outcomes(report) == {"h1": "ok", "h3": "reverted", "h4": "stopped"}, report
        assert report["status"] == "stopped" and report["summary"]["hosts"] == 3
        resume = [s for s in report["next"] if "h4" in s["hosts"]]
        assert resume and resume[0]["command"].endswith("-e prechange_run_id=%s --limit h4" % report["run_id"])
        # h4's VM was never touched; h1's snapshot was made once and pruned (a later batch never acts on an
        # earlier batch's hosts again).
        on_platform = window.snapshots()
        assert not [n for n in on_platform["h4"] if n.startswith("prechange-")]
        assert not [n for n in on_platform["h1"] if n == "prechange-" + report["run_id"]]
        assert "PRECHANGE_STATUS=stopped" in result.stdout
    finally:
        delete_run(window, report["run_id"])


def test_serial_batches_act_on_their_own_hosts_only(tmp_path, vcsim):
    backend = vmware_backend(vcsim, ["DC0_H0_VM0", "DC0_H0_VM1"])
    window = Window(tmp_path, backend, {"h1": "DC0_H0_VM0", "h2": "DC0_H0_VM1"})
    result, report = window.run(extra={"maintenance_serial": 1})
    assert result.returncode == 0, result.stdout[-4000:]
    assert outcomes(report) == {"h1": "ok", "h2": "ok"} and report["status"] == "ok"
    assert all(r["error"] == "" for r in report["hosts"])
    on_platform = window.snapshots()
    assert not [n for names in on_platform.values() for n in names if n == "prechange-" + report["run_id"]]


def test_an_interrupted_run_leaves_a_report_and_the_way_to_resume(tmp_path, pve):
    backend = proxmox_backend(pve, vms=(100, 101))
    change = ("- name: My change | a long upgrade\n"
              "  ansible.builtin.command: sleep 60\n"
              "  changed_when: true\n")
    window = Window(tmp_path, backend, {"h1": 100, "h2": 101}, change=change)
    (tmp_path / "quick.yml").write_text("- name: My change | quick this time\n  ansible.builtin.command: 'true'\n"
                                        "  changed_when: true\n")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "prechange.snapshots.maintenance",
           "-i", str(window.inventory)]
    proc = subprocess.Popen(cmd, env=ansible_env({"PRECHANGE_REPORT_DIR": str(window.reports)}),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and window.report() is None:
            time.sleep(0.5)
        time.sleep(3)  # inside the change now
        os.killpg(proc.pid, signal.SIGINT)
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    report = window.report()
    assert report is not None, output[-3000:]
    run_id = report["run_id"]
    try:
        assert proc.returncode != 0
        # The resume command was printed at the start; the report names what the run made.
        assert "resume it with -e prechange_run_id=%s -e snapshot_takeover=true" % run_id in output
        assert report["status"] == "running" and "interrupted" in report["note"]
        assert outcomes(report) == {"h1": "error", "h2": "error"}
        assert {i["host"]: i["phase"] for i in report["left_on_platform"]} == {"h1": "pending", "h2": "pending"}
        on_platform = window.snapshots()
        assert all("prechange-" + run_id in names for names in on_platform.values())
        assert any(s["command"].endswith("-e prechange_run_id=%s --limit h1,h2" % run_id)
                   and "prechange.snapshots.revert" in s["command"] for s in report["next"])
        resume = [s["command"] for s in report["next"] if "prechange.snapshots.maintenance" in s["command"]]
        assert resume == ["ansible-playbook prechange.snapshots.maintenance -i %s -e prechange_run_id=%s "
                          "-e snapshot_takeover=true --limit h1,h2" % (window.inventory, run_id)]
        # The printed resume command works at once (the interrupted run's lease is still live): it adopts
        # the snapshots, settles them and the report keeps every host.
        resumed = run_playbook("prechange.snapshots.maintenance", {"prechange_run_id": run_id,
                                                                   "snapshot_takeover": True,
                                                                   "guard_change_tasks": str(tmp_path / "quick.yml")},
                               inventory=str(window.inventory), env={"PRECHANGE_REPORT_DIR": str(window.reports)})
        final = window.report()
        assert resumed.returncode == 0, resumed.stdout[-3000:]
        assert outcomes(final) == {"h1": "ok", "h2": "ok"} and final["status"] == "ok", final
        assert all(r["snapshot"]["action"] == "adopted" for r in final["hosts"]), final["hosts"]
        assert not [n for names in window.snapshots().values() for n in names if n == "prechange-" + run_id]
    finally:
        delete_run(window, run_id)


def test_a_run_killed_while_its_snapshots_are_made_leaves_them_recorded_and_never_made_twice(tmp_path, vcsim):
    """SIGTERM while the snapshot tasks run (vcsim holds each CreateSnapshot task for 4 s): the report written
    before the calls names each host's snapshot that may now be on the VM; vSphere finishes the tasks; a fresh
    run refuses the VMs instead of making a second pre-change snapshot; the printed resume command adopts them."""
    # conftest puts tests/backends/vcsim on sys.path.
    from vcsim import set_task_hook  # pylint: disable=import-outside-toplevel,import-error
    from conftest import _vsphere, _vsphere_vm  # pylint: disable=import-error,import-outside-toplevel

    vms = ["DC0_H0_VM0", "DC0_C0_RP0_VM0"]
    backend = vmware_backend(vcsim, vms)
    window = Window(tmp_path, backend, {"h1": vms[0], "h2": vms[1]})
    si = _vsphere(backend.conn)
    handles = [_vsphere_vm(si, vm) for vm in vms]
    for handle in handles:
        set_task_hook(si, handle, "CreateSnapshot", delay_ms=4000)
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "prechange.snapshots.maintenance",
           "-i", str(window.inventory)]
    proc = subprocess.Popen(cmd, env=ansible_env({"PRECHANGE_REPORT_DIR": str(window.reports)}),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                            start_new_session=True)
    run_id = None
    try:
        deadline = time.time() + 120
        while time.time() < deadline and window.report() is None:
            time.sleep(0.2)
        time.sleep(1)  # the create tasks are running on vSphere now
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=120)[0]
        for handle in handles:
            set_task_hook(si, handle, "CreateSnapshot", delay_ms=0)
        report = window.report()
        assert report is not None, output[-3000:]
        run_id = report["run_id"]
        name = "prechange-" + run_id
        assert report["status"] == "running" and outcomes(report) == {"h1": "error", "h2": "error"}, report
        assert {i["host"]: (i["snapshot"], i["phase"], i.get("uncertain")) for i in report["left_on_platform"]} == {
            "h1": (name, "pending", True), "h2": (name, "pending", True)}
        time.sleep(5)  # vSphere finishes what it accepted
        assert all(names.count(name) == 1 for names in window.snapshots().values()), window.snapshots()
        # A fresh run (a new run id) sees the pending snapshots on the VMs and refuses; it makes none of its own.
        fresh, fresh_report = window.run()
        assert fresh.returncode != 0
        assert outcomes(fresh_report) == {"h1": "refused", "h2": "refused"}, fresh_report["hosts"]
        assert all("is held by maintenance run %s" % run_id in r["error"] for r in fresh_report["hosts"])
        ours = {h: [n for n in names if n.startswith("prechange-")] for h, names in window.snapshots().items()}
        assert ours == {"h1": [name], "h2": [name]}
        # The resume command of the report adopts them: each VM ends with no snapshot of the run.
        resume = next(s["command"] for s in report["next"] if "prechange.snapshots.maintenance" in s["command"])
        assert "-e prechange_run_id=%s -e snapshot_takeover=true" % run_id in resume
        resumed, final = window.run(extra={"prechange_run_id": run_id, "snapshot_takeover": True})
        assert all(r["snapshot"]["action"] == "adopted" for r in final["hosts"]), final["hosts"]
        assert outcomes(final) == {"h1": "ok", "h2": "ok"}, resumed.stdout[-3000:]
        assert not [n for names in window.snapshots().values() for n in names if n == name]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for handle in handles:
            set_task_hook(si, handle, "CreateSnapshot", delay_ms=0)
        if run_id:
            delete_run(window, run_id)
