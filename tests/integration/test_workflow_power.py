# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Power state after a revert (issue 10, item 6), in-run (maintenance) and with the revert playbook.

A VM that was running when its snapshot was taken must be running after the workflow reverts to it,
also when the snapshot is disk-only (``snapshot_memory: false``), and then the output must warn that
its memory was not kept. The user's change "breaks" the VM by powering it off through the API, so a
VM found running afterwards proves the revert really brought it back (nothing else starts it); every
power state is read from the hypervisor's own API.

libvirt 9.0 (the real libvirtd) cannot take a disk-only *internal* snapshot of a running VM (QEMU
refuses) and cannot revert to an *external* one (libvirt 9.9 can), so on libvirt the revert tests use
the default memory snapshot, and a disk-only request on a running VM must be refused up front with the
module's reason, before the change runs.

    python -m pytest tests/integration/test_workflow_power.py
"""

from __future__ import annotations

import re

import pytest

from conftest import (  # pylint: disable=import-error
    Findings,
    Workspace,
    api_set_power,
    in_output,
    misleading_claims,
    module_error,
    new_run_id,
    vsphere_remove_snapshots,
    workflow_backend,
)

VMWARE_VMS = ["DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1"]
MEMORY_NOT_KEPT = re.compile(r"\[WARNING\]:[^\n]*memory", re.I)


def restore_vmware(backend, ws, before_snaps):
    """The simulator lives for the whole session: leave its VMs running and without our snapshots."""
    if backend.provider != "vmware":
        return
    snaps, power = ws.snapshots(), ws.power()
    for host, vm in ws.hosts.items():
        left = set(snaps[host]) - set(before_snaps[host])
        if left:
            vsphere_remove_snapshots(backend.conn, vm, left)
        if power[host] != "running":
            api_set_power("vmware", backend.conn, vm, "running")


def memory_vars(provider):
    # Disk-only where the platform can revert it; libvirt 9.0 can revert only memory snapshots of a running VM.
    return {} if provider == "libvirt" else {"snapshot_memory": False}


@pytest.mark.parametrize("provider", ["libvirt", "vmware", "proxmox"])
def test_maintenance_revert_brings_a_running_vm_back_running(provider, request, tmp_path):
    backend = workflow_backend(provider, request, VMWARE_VMS)
    run_id = new_run_id("power")
    snapshot_name = "prechange-" + run_id
    ws = Workspace(tmp_path, provider, backend.conn, backend.hosts(), check_passes=False, change_probe=True,
                   change_stops_vm=True, group_vars=backend.inventory_vars)
    before_snaps, before_power = ws.snapshots(), ws.power()
    assert set(before_power.values()) == {"running"}, before_power
    try:
        extra = dict(memory_vars(provider), prechange_run_id=run_id)
        result = ws.run("prechange.snapshots.maintenance", extra)
        kind = "memory" if provider == "libvirt" else "disk-only"
        findings = Findings("maintenance revert on %s (%s)" % (provider, kind))
        findings.expect(ws.changed_hosts() == sorted(ws.hosts), "the change ran on %s only" % ws.changed_hosts())
        for host in ws.hosts:
            during = ws.during(host)
            findings.expect(during is not None and snapshot_name in during["snapshots"],
                            "%s: no snapshot %s on the API during the change" % (host, snapshot_name))
        findings.expect(result.returncode != 0, "a reverted run exited 0 (reverted hosts fail by default)")
        power = ws.power()
        findings.expect(power == {h: "running" for h in ws.hosts},
                        "after the revert the VMs are %s (API), not running as when the snapshot was taken" % power)
        if provider != "libvirt":
            findings.expect(MEMORY_NOT_KEPT.search(result.stdout) is not None,
                            "no warning in the output that the disk-only snapshot kept no memory")
        findings.done(result.stdout)
    finally:
        restore_vmware(backend, ws, before_snaps)


@pytest.mark.parametrize("provider", ["libvirt", "vmware", "proxmox"])
def test_revert_playbook_brings_a_running_vm_back_running(provider, request, tmp_path):
    backend = workflow_backend(provider, request, VMWARE_VMS)
    run_id = new_run_id("power")
    snapshot_name = "prechange-" + run_id
    ws = Workspace(tmp_path, provider, backend.conn, backend.hosts(), group_vars=backend.inventory_vars)
    before_snaps, before_power = ws.snapshots(), ws.power()
    assert set(before_power.values()) == {"running"}, before_power
    try:
        made = ws.run("prechange.snapshots.snapshot", dict(memory_vars(provider), prechange_run_id=run_id))
        assert made.returncode == 0, "the snapshot playbook failed:\n" + made.stdout[-6000:]
        taken = ws.snapshots()
        assert all(snapshot_name in taken[h] for h in ws.hosts), taken
        for vm in ws.hosts.values():  # the manual change went wrong: the VM is down
            api_set_power(provider, backend.conn, vm, "stopped")

        result = ws.run("prechange.snapshots.revert", {"revert_or_prune_run_id": run_id})
        kind = "memory" if provider == "libvirt" else "disk-only"
        findings = Findings("revert playbook on %s (%s)" % (provider, kind))
        findings.expect(result.returncode == 0, "the revert playbook exited %s" % result.returncode)
        power = ws.power()
        findings.expect(power == {h: "running" for h in ws.hosts},
                        "after the revert the VMs are %s (API), not running as when the snapshot was taken" % power)
        if provider != "libvirt":
            findings.expect(MEMORY_NOT_KEPT.search(result.stdout) is not None,
                            "no warning in the output that the disk-only snapshot kept no memory")
        findings.done(result.stdout)
    finally:
        restore_vmware(backend, ws, before_snaps)


def test_libvirt_disk_only_snapshot_of_a_running_vm_is_refused_before_the_change(request, tmp_path):
    """QEMU cannot take a disk-only internal snapshot of a running VM: the run must say so with the
    module's reason and stop before the change, leaving the VM running and without a snapshot."""
    backend = workflow_backend("libvirt", request, VMWARE_VMS)
    run_id = new_run_id("power")
    args = dict(backend.module_args, vm=backend.vms[0], name="prechange-" + run_id, memory=False, state="present")
    module_msg, reason = module_error("libvirt_snapshot", args, tmp_path)
    assert "disk-only internal snapshot of a running VM" in reason, module_msg

    ws = Workspace(tmp_path, "libvirt", backend.conn, backend.hosts(), group_vars=backend.inventory_vars)
    before_snaps, before_power = ws.snapshots(), ws.power()
    result = ws.run("prechange.snapshots.maintenance", {"prechange_run_id": run_id, "snapshot_memory": False})
    findings = Findings("maintenance with a disk-only snapshot of a running libvirt VM")
    findings.expect(result.returncode != 0, "ansible-playbook exited 0")
    findings.expect(in_output(reason, result.stdout), "the module's reason is not in the output: %r" % reason)
    findings.expect(not misleading_claims(result.stdout), "made-up claims: %s" % misleading_claims(result.stdout))
    findings.expect(ws.changed_hosts() == [], "the user's change ran on %s" % ws.changed_hosts())
    findings.expect(ws.snapshots() == before_snaps, "snapshots changed: %s -> %s" % (before_snaps, ws.snapshots()))
    findings.expect(ws.power() == before_power, "power changed: %s -> %s" % (before_power, ws.power()))
    findings.done(result.stdout)
