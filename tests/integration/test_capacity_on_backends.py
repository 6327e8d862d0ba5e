"""Capacity prechecks and snapshot sizes (issue 12, points 1 and 2) against the real backends.

Each provider's info module reports the storage behind the VM's disks with its free space, checked against
the hypervisor's own API (libvirt: statvfs of the disk's directory, vSphere: the datastore summary through
pyvmomi, Proxmox: /nodes/{node}/storage/{storage}/status through proxmoxer). A create that the storage
cannot hold (a growth factor no storage has room for) is refused in check mode and for real with the
numbers, and nothing is made (read back from the API); with capacity_policy=warn it is made with a warning.

Growth is measured on the real libvirtd with real qcow2 allocation: data written with qemu-io into the
shut-off guest's disk after the snapshot moves the disk's allocation (internal snapshot) and the overlay's
size (external snapshot). Run the libvirt cases under ``flock /tmp/prechange-libvirt.lock``.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import (  # pylint: disable=import-error
    _pve_api,
    _vsphere,
    _vsphere_vm,
    api_snapshots,
    libvirt_backend,
    proxmox_backend,
    vmware_backend,
    vsphere_remove_snapshots,
)
from test_module_contract import run_module  # pylint: disable=import-error

MIB = 1024 ** 2
HUGE = 100000.0  # a growth factor (and with x100 a reserve in GiB) no storage of these machines can hold


def _refusal_and_warning(backend, vm):
    provider = backend.provider
    before = api_snapshots(provider, backend.conn, vm)
    args = dict(backend.module_args, vm=vm, name="pcs-cap", capacity_reserve_gb=HUGE * 100)
    for check in (True, False):
        result = run_module(provider + "_snapshot", args, check_mode=check)
        assert result.get("failed"), result
        msg = result["msg"]
        assert msg.startswith("Failed to create snapshot 'pcs-cap' of VM '%s' on %s: not enough free space for "
                              "the snapshot: storage '" % (vm, provider)), msg
        assert "GiB free of" in msg and "the snapshot may need" in msg and "nothing was changed" in msg, msg
        assert result["error"] == "PrecheckFailed"
        assert result["capacity"][0]["needed_bytes"] > result["capacity"][0]["free_bytes"]
        assert api_snapshots(provider, backend.conn, vm) == before
    warned = run_module(provider + "_snapshot", dict(args, capacity_policy="warn"), check_mode=True)
    assert warned["changed"] and not warned.get("failed"), warned
    assert any("creating it anyway (capacity_policy=warn)" in w for w in warned.get("warnings") or ()), warned
    kept = run_module(provider + "_snapshot", dict(args, capacity_min_free_gb=10 ** 7, capacity_reserve_gb=0),
                      check_mode=True)
    assert kept.get("failed") and "must stay free (capacity_min_free_gb)" in kept["msg"], kept
    return msg


def _info_storage(backend, vm):
    info = run_module(backend.provider + "_snapshot_info", dict(backend.module_args, vm=vm))
    entry = info["vms"][0]
    assert entry["storage"], entry
    return entry


def test_libvirt_capacity(libvirtd, libvirt_guest):
    guest = libvirt_guest("blank", start=False)
    backend = libvirt_backend(libvirtd, [guest.name])
    entry = _info_storage(backend, guest.name)
    row = entry["storage"][0]
    stat = os.statvfs(os.path.dirname(guest.disk))
    assert row["storage"] == os.path.dirname(guest.disk)
    assert row["total_bytes"] == stat.f_blocks * stat.f_frsize
    assert abs(row["free_bytes"] - stat.f_bavail * stat.f_frsize) < 256 * MIB
    assert entry["disks"][0]["provisioned_bytes"] == 1024 ** 3
    _refusal_and_warning(backend, guest.name)


def _qemu_write(path, offset_mib, mib):
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a %dM %dM" % (offset_mib, mib), path],
                   check=True, capture_output=True)


def test_libvirt_growth_is_real_qcow2_allocation(libvirtd, libvirt_guest):
    guest = libvirt_guest("blank", start=False)
    backend = libvirt_backend(libvirtd, [guest.name])
    args = dict(backend.module_args, vm=guest.name)
    assert run_module("libvirt_snapshot", dict(args, name="pcs-int"))["changed"]
    before = _info_storage(backend, guest.name)
    snap = before["snapshots"][0]
    assert snap["size_bytes"] is None and "internal qcow2 snapshot" in snap["size_note"]
    _qemu_write(guest.disk, 0, 64)
    after = _info_storage(backend, guest.name)
    grown = after["disks"][0]["used_bytes"] - before["disks"][0]["used_bytes"]
    assert grown >= 64 * MIB, (before["disks"], after["disks"])
    assert grown == os.stat(guest.disk).st_blocks * 512 - before["disks"][0]["used_bytes"]


def test_libvirt_external_snapshot_size_is_the_overlay(libvirtd, libvirt_guest):
    guest = libvirt_guest("blank", start=False)
    backend = libvirt_backend(libvirtd, [guest.name])
    args = dict(backend.module_args, vm=guest.name, location="external")
    assert run_module("libvirt_snapshot", dict(args, name="pcs-ext"))["changed"]
    first = _info_storage(backend, guest.name)["snapshots"][0]
    overlay = first["size_note"].split("overlay file(s) ")[1].split(":")[0]
    assert first["size_bytes"] == os.stat(overlay).st_blocks * 512
    _qemu_write(overlay, 100, 32)
    second = _info_storage(backend, guest.name)["snapshots"][0]
    assert second["size_bytes"] - first["size_bytes"] >= 32 * MIB
    assert second["size_bytes"] == os.stat(overlay).st_blocks * 512


def test_vmware_capacity(vcsim):
    vm = "DC0_H0_VM0"
    backend = vmware_backend(vcsim, [vm])
    try:
        entry = _info_storage(backend, vm)
        from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
        si = _vsphere(backend.conn)
        try:
            machine = _vsphere_vm(si, vm)
            summary = machine.config.hardware.device
            stores = {ds.summary.name: ds.summary for ds in machine.datastore}
        finally:
            Disconnect(si)
        assert summary
        row = entry["storage"][0]
        assert row["storage"] in stores
        assert row["total_bytes"] == stores[row["storage"]].capacity
        assert row["free_bytes"] == stores[row["storage"]].freeSpace
        _refusal_and_warning(backend, vm)
    finally:
        vsphere_remove_snapshots(backend.conn, vm, {"pcs-cap"})


def test_proxmox_capacity(pve):
    backend = proxmox_backend(pve)
    entry = _info_storage(backend, "web01")
    api = _pve_api(backend.conn)
    row = entry["storage"][0]
    node = next(r["node"] for r in api.cluster.resources.get(type="vm") if r.get("name") == "web01")
    status = api.nodes(node).storage(row["storage"]).status.get()
    assert row["free_bytes"] == int(status["avail"]) and row["total_bytes"] == int(status["total"])
    assert entry["snapshots"] == [] or all(s["size_bytes"] is None for s in entry["snapshots"])
    _refusal_and_warning(backend, "web01")


@pytest.mark.parametrize("policy", ["ignore"])
def test_libvirt_capacity_ignore_measures_nothing(libvirtd, libvirt_guest, policy):
    guest = libvirt_guest("blank", start=False)
    backend = libvirt_backend(libvirtd, [guest.name])
    args = dict(backend.module_args, vm=guest.name, name="pcs-ign", capacity_growth=HUGE, capacity_policy=policy)
    result = run_module("libvirt_snapshot", args, check_mode=True)
    assert result["changed"] and not result.get("failed"), result


# --- the maintenance run: growth between snapshot and decision, on real qcow2 allocation -------------------


def _growth_run(tmp_path, libvirtd, libvirt_guest, limit_vars):
    from conftest import Workspace, new_run_id  # pylint: disable=import-error,import-outside-toplevel
    guest = libvirt_guest("blank", start=False)
    backend = libvirt_backend(libvirtd, [guest.name])
    ws = Workspace(tmp_path, "libvirt", backend.conn, {"h1": guest.name}, group_vars=backend.inventory_vars)
    # The user's change writes 64 MiB into the (shut-off) guest's disk: real qcow2 allocation moves.
    ws.change.write_text(
        "- name: My change | write 64 MiB into the disk\n"
        "  ansible.builtin.command: qemu-io -f qcow2 -c 'write -P 0x5a 0 64M' %s\n"
        "  delegate_to: localhost\n" % guest.disk)
    run_id = new_run_id("growth")
    result = ws.run("prechange.snapshots.maintenance", dict(limit_vars, prechange_run_id=run_id))
    report = json.loads(next(ws.report_dir.glob("maintenance-%s*.json" % run_id)).read_text())
    markdown = next(ws.report_dir.glob("maintenance-%s*.md" % run_id)).read_text()
    return ws, result, report["hosts"][0], markdown


def test_growth_over_the_limit_stops_the_change(tmp_path, libvirtd, libvirt_guest):
    ws, result, host, markdown = _growth_run(tmp_path, libvirtd, libvirt_guest, {
        "revert_or_prune_growth_limit_gb": 0.03, "revert_or_prune_growth_action": "stop"})
    grown = host["capacity"]["growth"]
    assert grown["growth_bytes"] >= 64 * MIB and grown["over"] is True and grown["action"] == "stop", host
    assert host["action"] == "reverted", host
    assert "the change is treated as failed and reverted (growth limit, action stop)" in host["reason"]
    assert "over: reverted" in markdown and "## Storage and growth" in markdown
    # Read back: the snapshot was reverted to, so the VM still has it, kept as reverted.
    assert len(api_snapshots("libvirt", ws.conn, ws.hosts["h1"])) == 1, result.stdout[-3000:]


def test_growth_over_the_limit_alerts(tmp_path, libvirtd, libvirt_guest):
    ws, result, host, markdown = _growth_run(tmp_path, libvirtd, libvirt_guest, {
        "revert_or_prune_growth_limit_percent": 0.00001, "revert_or_prune_growth_action": "alert"})
    grown = host["capacity"]["growth"]
    assert grown["over"] is True and grown["action"] == "alert", host
    assert host["action"] == "deleted", host
    assert any("(growth limit, action alert)" in w for w in host["warnings"]), host["warnings"]
    assert "(growth limit, action alert)" in result.stdout
    assert "over: alert" in markdown
    assert api_snapshots("libvirt", ws.conn, ws.hosts["h1"]) == {}, result.stdout[-3000:]


@pytest.mark.parametrize("provider", ["libvirt", "vmware", "proxmox"])
def test_snapshot_playbook_refuses_what_the_storage_cannot_hold(provider, request, tmp_path):
    """The snapshot step (the snapshot role, as the maintenance playbook runs it) makes the same decision, with
    snapshot_min_free_gb folded in; check mode predicts it and nothing is made, read back from the API."""
    from conftest import Workspace, new_run_id, workflow_backend  # pylint: disable=import-error,import-outside-toplevel
    backend = workflow_backend(provider, request, ["DC0_H0_VM0", "DC0_H0_VM1"])
    ws = Workspace(tmp_path, provider, backend.conn, backend.hosts(), group_vars=backend.inventory_vars)
    before = ws.snapshots()
    for check in (True, False):
        result = ws.run("prechange.snapshots.snapshot", {"prechange_run_id": new_run_id("cap"),
                                                         "snapshot_min_free_gb": 10 ** 7}, check=check)
        assert result.returncode != 0, result.stdout[-3000:]
        assert "not enough free space for the snapshot: storage '" in result.stdout, result.stdout[-3000:]
        assert "must stay free (capacity_min_free_gb)" in result.stdout
        assert ws.snapshots() == before
    warned = ws.run("prechange.snapshots.snapshot", {"prechange_run_id": new_run_id("cap"),
                                                     "snapshot_capacity_reserve_gb": 10 ** 7,
                                                     "snapshot_capacity_policy": "warn"}, check=True)
    assert warned.returncode == 0, warned.stdout[-3000:]
    assert "creating it anyway (capacity_policy=warn)" in warned.stdout, warned.stdout[-3000:]


def test_a_large_delta_is_kept_for_after_the_window(tmp_path, libvirtd, libvirt_guest):
    """With a window, the verdict's call measures the delta (64 MiB of real qcow2 allocation) and keeps a
    passed host's snapshot at least maintenance_window_large_delta_gb large for the prune playbook."""
    ws, result, host, markdown = _growth_run(tmp_path, libvirtd, libvirt_guest, {
        "maintenance_window_minutes": 600, "maintenance_window_large_delta_gb": 0.03})
    assert result.returncode == 0, result.stdout[-3000:]
    assert host["outcome"] == "ok" and host["action"] == "kept", host
    assert host["reason"].startswith("deleting the snapshot was deferred: its delta is 0.1 GiB (at least 0.03 GiB, "
                                     "maintenance_window_large_delta_gb)"), host["reason"]
    assert host["window"] == {"delete_deferred": host["reason"]}, host
    assert "Deletion deferred to the prune playbook" in markdown and "prechange.snapshots.prune" in markdown
    # Read back: the snapshot is still on the VM.
    assert len(api_snapshots("libvirt", ws.conn, ws.hosts["h1"])) == 1, result.stdout[-3000:]
