# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The window's deadline and change sets (issue 12, points 3 and 4), as a user runs them.

One inventory spans the three backends (vcsim, fakepve, the real libvirtd): a set 'shop' with its web VM
on vSphere, its app VM on Proxmox and its database VM on libvirt. The runs are ansible-playbook processes
of the maintenance playbook; what is on the VMs is read back through pyvmomi, proxmoxer and libvirt-python.

The deadline tests use small windows and a change that sleeps. Which batch is deferred follows from the
decision's own rule (a batch starts only when the time left covers the longest batch so far plus a revert):
the change sleeps longer than half the window, so whatever the machine's speed, the second batch cannot fit.

    python -m pytest tests/integration/test_window_sets.py
"""

from __future__ import annotations

import json
import sys

from conftest import (  # pylint: disable=import-error
    api_snapshots,
    libvirt_backend,
    proxmox_backend,
    run_playbook,
    vmware_backend,
)

SET_FAILS_ON = "app01"


class MixedWindow(object):
    """A user's window over several providers: {host: (backend, vm)}, own change, own checks."""

    def __init__(self, tmp_path, hosts, host_vars=None, change=None, check_fails_on=SET_FAILS_ON):
        self.dir, self.hosts = tmp_path, dict(hosts)
        self.reports = tmp_path / "reports"
        (tmp_path / "change.yml").write_text(change or (
            "- name: My change | deploy v2\n"
            "  ansible.builtin.copy: {dest: '%s/v2-{{ inventory_hostname }}', content: v2}\n" % tmp_path))
        (tmp_path / "check.yml").write_text(
            "- name: My check | v2 answers\n"
            "  ansible.builtin.set_fact:\n"
            "    verify_user_failures: \"{{ verify_user_failures + ['v2 does not answer on ' ~ inventory_hostname]"
            " if inventory_hostname == '%s' else verify_user_failures }}\"\n" % check_fails_on)
        variables = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "guard_change_tasks": str(tmp_path / "change.yml"), "guard_check_tasks": str(tmp_path / "check.yml"),
                     "verify_no_failed_units": False}
        for backend, _vm in self.hosts.values():
            variables.update(backend.inventory_vars)
        inventory = {"all": {"vars": variables, "hosts": {
            host: dict({"prechange_provider": backend.provider, "prechange_vm": vm}, **(host_vars or {}).get(host, {}))
            for host, (backend, vm) in self.hosts.items()}}}
        self.inventory = tmp_path / "inventory.yml"
        self.inventory.write_text(json.dumps(inventory, indent=2))

    def run(self, extra=None, playbook="prechange.snapshots.maintenance"):
        result = run_playbook(playbook, extra, inventory=str(self.inventory),
                              env={"PRECHANGE_REPORT_DIR": str(self.reports),
                                   "ANSIBLE_STDOUT_CALLBACK": "prechange.snapshots.window"})
        found = sorted(self.reports.glob("maintenance-*.json")) if playbook.endswith("maintenance") else []
        return result, (json.loads(found[-1].read_text()) if found else None)

    def snapshots(self, run_id):
        """{host: [this run's snapshot names]}, read from each hypervisor's API."""
        found = {}
        for host, (backend, vm) in self.hosts.items():
            try:
                found[host] = sorted(n for n in api_snapshots(backend.provider, backend.conn, vm) if run_id in n)
            except Exception:  # pylint: disable=broad-except
                found[host] = "no such VM"  # the test's own missing VM
        return found

    def changed(self, host):
        return (self.dir / ("v2-" + host)).exists()

    def cleanup(self, run_id):
        run_playbook("prechange.snapshots.revert", {"prechange_run_id": run_id, "revert_action": "delete"},
                     inventory=str(self.inventory), env={"PRECHANGE_REPORT_DIR": str(self.reports)})


def outcomes(report):
    return {r["host"]: r["outcome"] for r in report["hosts"]}


def three_providers(libvirtd, errs_guest, vcsim, pve):
    return (vmware_backend(vcsim, ["DC0_H0_VM0", "DC0_H0_VM1"]), proxmox_backend(pve, vms=(100, 101)),
            libvirt_backend(libvirtd, [errs_guest("blank")]))


def test_a_set_is_reverted_across_providers_and_a_batch_is_deferred_by_the_deadline(
        tmp_path, libvirtd, errs_guest, vcsim, pve):
    vmware, proxmox, libvirt = three_providers(libvirtd, errs_guest, vcsim, pve)
    hosts = {"web01": (vmware, "DC0_H0_VM0"), "app01": (proxmox, 100), "db01": (libvirt, libvirt.vms[0]),
             "solo": (vmware, "DC0_H0_VM1"), "later01": (proxmox, 101)}
    change = ("- name: My change | a slow upgrade (longer than half the window)\n"
              "  ansible.builtin.command: sleep 31\n"
              "  changed_when: true\n"
              "- name: My change | deploy v2\n"
              "  ansible.builtin.copy: {dest: '%s/v2-{{ inventory_hostname }}', content: v2}\n" % tmp_path)
    window = MixedWindow(tmp_path, hosts, change=change, host_vars={h: {"prechange_change_set": "shop"}
                                                                    for h in ("web01", "app01", "db01")})
    # A 1-minute window; a batch is first expected to take 6 s and a revert 30 s. Batch 1 (the set and solo)
    # starts; its change sleeps 31 s, so when its verdict comes less than a revert's 30 s is left (solo's
    # deletion is deferred) and batch 2 (later01) cannot fit the longest batch so far: it is deferred.
    # The set's reverts fail 3 of batch 1's 4 hosts: max_fail_percentage 100 lets the run go on to batch 2.
    result, report = window.run({"maintenance_serial": [4, 1], "maintenance_max_fail_percentage": 100,
                                 "maintenance_window_minutes": 1,
                                 "maintenance_window_batch_minutes": 0.1, "maintenance_window_revert_minutes": 0.5})
    run_id = report["run_id"]
    try:
        assert result.returncode == 2, result.stdout[-5000:]
        assert outcomes(report) == {"web01": "reverted", "app01": "reverted", "db01": "reverted", "solo": "ok",
                                    "later01": "deferred"}, report
        records = {r["host"]: r for r in report["hosts"]}
        for host in ("web01", "db01"):
            assert records[host]["reason"] == "set shop: app01's check failed", records[host]
        assert records["app01"]["reason"] == "the checks failed"
        assert report["sets"] == [{"set": "shop", "members": ["web01", "app01", "db01"], "outcome": "reverted",
                                   "why": "set shop: app01's check failed",
                                   "providers": ["libvirt", "proxmox", "vmware"]}]
        # Deferred: not failed, never started, the exact command to run it later.
        assert records["later01"]["reason"].startswith("deferred by the window's deadline: ")
        assert records["later01"]["snapshot"] is None and not window.changed("later01")
        steps = {s["what"]: s for s in report["next"]}
        later = steps["Deferred by the window's deadline (nothing was changed on them): run them in a later window"]
        assert later["command"] == "ansible-playbook prechange.snapshots.maintenance -i %s --limit later01" % (
            window.inventory)
        # solo passed near the end: its snapshot is kept with its expiry, and the report says to prune it later.
        assert records["solo"]["action"] == "kept" and records["solo"]["window"]["delete_deferred"]
        prune = steps["Deleting these snapshots was deferred to keep the window: delete them after the window"]
        assert prune["hosts"] == ["solo"] and "prechange.snapshots.prune" in prune["command"]
        assert report["window"]["end"] and report["status"] == "reverted"
        md = (tmp_path / "reports" / ("maintenance-%s.md" % run_id)).read_text()
        assert "## Change sets" in md and "## Window" in md and "later01" in md
        # Read back from the hypervisors: the set's members keep this run's snapshot (they were reverted to
        # it), solo keeps its snapshot (deletion deferred), later01 was never touched.
        on_platform = window.snapshots(run_id)
        snap = "prechange-" + run_id
        assert on_platform == {"web01": [snap], "app01": [snap], "db01": [snap], "solo": [snap], "later01": []}
        # The console shows the window's lines and the deferred host.
        assert "window: deferred: later01" in result.stdout, result.stdout[-4000:]
        assert "set shop (web01, app01, db01): reverted" in result.stdout
    finally:
        window.cleanup(run_id)


def test_a_set_whose_snapshot_fails_part_way_is_cleaned_up_and_nothing_changes(
        tmp_path, libvirtd, errs_guest, vcsim, pve):
    vmware, proxmox, libvirt = three_providers(libvirtd, errs_guest, vcsim, pve)
    # db01's VM does not exist on libvirtd: web01 (vSphere) and app01 (Proxmox) get their snapshots first.
    hosts = {"web01": (vmware, "DC0_H0_VM0"), "app01": (proxmox, 100), "db01": (libvirt, "pcstest-errs-no-such-vm"),
             "solo": (proxmox, 101)}
    window = MixedWindow(tmp_path, hosts, check_fails_on="nobody",
                         host_vars={h: {"prechange_change_set": "shop"} for h in ("web01", "app01", "db01")})
    result, report = window.run()
    run_id = report["run_id"]
    try:
        assert result.returncode == 2, result.stdout[-5000:]
        assert outcomes(report) == {"web01": "refused", "app01": "refused", "db01": "refused", "solo": "ok"}, report
        records = {r["host"]: r for r in report["hosts"]}
        for host, (backend, vm) in (("web01", hosts["web01"]), ("app01", hosts["app01"])):
            assert records[host]["error"].startswith(
                "snapshot: Failed to create snapshot 'prechange-%s' of VM '%s' on %s: set shop is all or nothing and "
                "db01's snapshot failed (" % (run_id, vm, backend.provider)), records[host]["error"]
            assert records[host]["error"].endswith(
                "Fix db01, then run the set again; this VM's snapshot of this run was deleted again, nothing was "
                "changed."), records[host]["error"]
        assert report["sets"][0]["outcome"] == "refused" and "db01's snapshot failed" in report["sets"][0]["why"]
        # Read back: no member keeps a snapshot of this run, no member was changed; solo went through.
        assert window.snapshots(run_id) == {"web01": [], "app01": [], "db01": "no such VM", "solo": []}
        assert not any(window.changed(h) for h in ("web01", "app01", "db01")) and window.changed("solo")
        assert report["summary"]["left_on_platform"] == 0
    finally:
        window.cleanup(run_id)


def test_a_serial_set_in_the_inventory_is_refused_before_anything_is_made(tmp_path, vcsim):
    """maintenance_serial (and max_fail_percentage) in the inventory come too late for the play's keywords:
    Ansible would run one batch of every host at 25%. The run is refused before any snapshot (read back
    through pyvmomi), with the extra variable to pass instead; passed with -e, the same inventory runs."""
    backend = vmware_backend(vcsim, ["DC0_H0_VM0", "DC0_H0_VM1"])
    window = MixedWindow(tmp_path, {"web01": (backend, "DC0_H0_VM0"), "web02": (backend, "DC0_H0_VM1")},
                         host_vars={h: {"maintenance_serial": 1, "maintenance_max_fail_percentage": 0}
                                    for h in ("web01", "web02")}, check_fails_on="nobody")
    run_id = "keywords-%s" % tmp_path.name[-6:]
    result, report = window.run({"prechange_run_id": run_id})
    assert result.returncode != 0, result.stdout[-3000:]
    assert outcomes(report) == {"web01": "refused", "web02": "refused"}, result.stdout[-3000:]
    host = report["hosts"][0]
    assert ("maintenance_serial is 1 for every host, but the play runs with serial 100%; "
            "maintenance_max_fail_percentage is 0 for every host, but the play runs with max_fail_percentage 25: "
            in host["error"]), host["error"]
    assert """-e '{"maintenance_serial": 1, "maintenance_max_fail_percentage": 0}'""" in host["error"], host["error"]
    assert window.snapshots(run_id) == {"web01": [], "web02": []}
    passed, report = window.run({"prechange_run_id": run_id + "b", "maintenance_serial": 1,
                                 "maintenance_max_fail_percentage": 0})
    assert passed.returncode == 0 and outcomes(report) == {"web01": "ok", "web02": "ok"}, passed.stdout[-3000:]
    assert "2 hosts in 2 batches" in passed.stdout, passed.stdout[-3000:]
