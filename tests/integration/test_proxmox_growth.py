"""Snapshot size and growth on Proxmox VE (issue 12 point 2) against fakepve with the project's realism layer.

The Proxmox VE API has no size for a snapshot's disk data. What it gives (see realism.py "space" and
ProxmoxBackend.snapshot_sizes for the pve-storage / qemu-server sources): on file storages (dir, NFS, CIFS)
each image's allocation as the content list's ``used``, which grows with the copy-on-write data a qcow2's
internal snapshot keeps; on LVM-thin, ZFS and RBD no ``used`` per volume, only the storage's free space moves;
and for a snapshot with RAM its state volume ``vm-<vmid>-state-<snap>`` with its size. The guest's writes after
the snapshot are the realism layer's ``write`` control call (fakepve has no guest that could write).

Everything is read back through proxmoxer, not through the collection.
"""

from __future__ import annotations

import json

import pytest

from conftest import (  # pylint: disable=import-error
    Workspace,
    _ensure_collection_link,
    _pve_api,
    api_snapshots,
    new_run_id,
    proxmox_backend,
)

_ensure_collection_link()  # the checkout as the collection, before the in-process module runner is imported
from test_module_contract import run_module  # noqa: E402  pylint: disable=import-error,wrong-import-position

MIB = 1024 ** 2
QCOW = "local:104/vm-104-disk-0.qcow2"  # qcow01: a stopped VM with a qcow2 disk on the directory storage 'local'


def _content(api, node, sid, vmid):
    return {v["volid"]: v for v in api.nodes(node).storage(sid).content.get(vmid=vmid)}


def _info(backend, vm):
    return run_module("proxmox_snapshot_info", dict(backend.module_args, vm=vm))["vms"][0]


def test_info_reports_the_disks_use_and_the_memory_state_as_the_api_gives_them(pve):
    backend = proxmox_backend(pve)
    api = _pve_api(backend.conn)
    # qcow2 on a directory storage: the disk's use is the image file's allocation, and it grows after a snapshot.
    assert run_module("proxmox_snapshot", dict(backend.module_args, vm="qcow01", name="pcs-size"))["changed"]
    before = _info(backend, "qcow01")
    snap = before["snapshots"][0]
    assert snap["size_bytes"] is None
    assert snap["size_note"] == ("the Proxmox VE API reports no size for a snapshot's disk data; on storage local "
                                 "(dir) it is inside the disks' used_bytes (the image files' allocation)")
    assert before["disks"][0]["used_bytes"] == _content(api, "pve2", "local", 104)[QCOW]["used"]
    pve.call(pve.pve.guest_write, 104, 64 * MIB)
    after = _info(backend, "qcow01")
    assert after["disks"][0]["used_bytes"] - before["disks"][0]["used_bytes"] == 64 * MIB
    assert after["disks"][0]["used_bytes"] == _content(api, "pve2", "local", 104)[QCOW]["used"]
    assert before["storage"][0]["free_bytes"] - after["storage"][0]["free_bytes"] == 64 * MIB
    # A RAM snapshot on LVM-thin: the state volume's size is known, the disk data's is not, and no use per volume.
    assert run_module("proxmox_snapshot", dict(backend.module_args, vm="web01", name="pcs-ram", memory=True))["changed"]
    web = _info(backend, "web01")
    volid = api.nodes("pve1").qemu(100).snapshot("pcs-ram").config.get()["vmstate"]
    state = _content(api, "pve1", "local-lvm", 100)[volid]
    assert volid == "local-lvm:vm-100-state-pcs-ram" and "used" not in state
    assert web["snapshots"][0]["size_bytes"] is None
    assert web["snapshots"][0]["size_note"] == (
        "the Proxmox VE API reports no size for a snapshot's disk data; storage local-lvm (lvmthin) gives no "
        "per-volume use that counts it, only its free space shows it; its memory state is the volume "
        "local-lvm:vm-100-state-pcs-ram of 4.5 GiB (%d bytes allocated; its use is not reported on storage "
        "local-lvm (lvmthin))" % state["size"])
    assert web["disks"][0]["used_bytes"] is None
    assert web["disks"][0]["note"] == ("storage local-lvm (lvmthin) gives no per-volume use that counts snapshot "
                                       "data; only its free space shows that data")


# --- the maintenance run: growth between snapshot and decision, from the disks' allocation -------------------


def _growth_run(tmp_path, pve, limit_vars, vm="qcow01", vmid=104):
    backend = proxmox_backend(pve, vms=(vm,))
    ws = Workspace(tmp_path, "proxmox", backend.conn, {"h1": vm}, group_vars=backend.inventory_vars)
    # The user's change: the guest writes 64 MiB over its data. fakepve has no guest, so the realism layer's
    # control call (a test hook) stands in for the writes.
    ws.change.write_text(
        "- name: My change | the guest rewrites 64 MiB of its data\n"
        "  ansible.builtin.uri:\n"
        "    url: https://%s:%s/_prechange/fault\n"
        "    method: POST\n"
        "    body_format: json\n"
        "    body: {op: write, vmid: %d, bytes: %d}\n"
        "    headers: {Authorization: 'PVEAPIToken=%s=%s'}\n"
        "    ca_path: %s\n"
        "  changed_when: true\n"
        "  delegate_to: localhost\n"
        % (pve.host, pve.port, vmid, 64 * MIB, pve.token_full_id, pve.token_secret, pve.cafile))
    run_id = new_run_id("growth")
    result = ws.run("prechange.snapshots.maintenance", dict(limit_vars, prechange_run_id=run_id))
    report = json.loads(next(ws.report_dir.glob("maintenance-%s*.json" % run_id)).read_text())
    markdown = next(ws.report_dir.glob("maintenance-%s*.md" % run_id)).read_text()
    return ws, result, report["hosts"][0], markdown


def _growth_row(markdown, storage="local"):
    return next(line for line in markdown.splitlines() if line.startswith("| h1 | %s |" % storage))


def test_growth_over_the_limit_stops_the_change(tmp_path, pve):
    api = _pve_api({"host": pve.host, "port": pve.port, "user": pve.user, "password": pve.password,
                    "cafile": pve.cafile})
    used_before = _content(api, "pve2", "local", 104)[QCOW]["used"]
    ws, result, host, markdown = _growth_run(tmp_path, pve, {
        "revert_or_prune_growth_limit_gb": 0.03, "revert_or_prune_growth_action": "stop"})
    grown = host["capacity"]["growth"]
    assert grown["growth_bytes"] == 64 * MIB and grown["measured"] == "allocation", result.stdout[-3000:]
    assert grown["over"] is True and grown["action"] == "stop", host
    assert host["action"] == "reverted", host
    assert "the change is treated as failed and reverted (growth limit, action stop)" in host["reason"]
    assert _growth_row(markdown).endswith("| +0.06 GiB (allocation) | over: reverted |"), markdown
    # Read back: rolled back to this run's snapshot (the data written since is gone), which is kept as reverted.
    snaps = api_snapshots("proxmox", ws.conn, "qcow01")
    assert len(snaps) == 1, result.stdout[-3000:]
    assert api.nodes("pve2").qemu(104).config.get()["parent"] == next(iter(snaps))
    assert _content(api, "pve2", "local", 104)[QCOW]["used"] == used_before


@pytest.mark.parametrize("limit", [{"revert_or_prune_growth_limit_percent": 0.00001}])
def test_growth_over_the_limit_alerts(tmp_path, pve, limit):
    api = _pve_api({"host": pve.host, "port": pve.port, "user": pve.user, "password": pve.password,
                    "cafile": pve.cafile})
    used_before = _content(api, "pve2", "local", 104)[QCOW]["used"]
    ws, result, host, markdown = _growth_run(tmp_path, pve, dict(limit, revert_or_prune_growth_action="alert"))
    grown = host["capacity"]["growth"]
    assert grown["growth_bytes"] == 64 * MIB and grown["over"] is True and grown["action"] == "alert", host
    assert host["action"] == "deleted", host
    assert any("(growth limit, action alert)" in w for w in host["warnings"]), host["warnings"]
    assert _growth_row(markdown).endswith("| +0.06 GiB (allocation) | over: alert |"), markdown
    # Read back: the change stays, the snapshot is deleted and what it held is freed (the new data remains).
    assert api_snapshots("proxmox", ws.conn, "qcow01") == {}, result.stdout[-3000:]
    assert _content(api, "pve2", "local", 104)[QCOW]["used"] == used_before


def test_growth_on_lvm_thin_is_not_measured_and_says_so(tmp_path, pve):
    """LVM-thin gives no per-volume use: only the pool's free space moves, and the report says what it cannot."""
    ws, result, host, markdown = _growth_run(tmp_path, pve, {
        "revert_or_prune_growth_limit_gb": 0.03, "revert_or_prune_growth_action": "stop"}, vm="web01", vmid=100)
    grown = host["capacity"]["growth"]
    assert grown["growth_bytes"] is None and grown["over"] is None, result.stdout[-3000:]
    assert grown["message"] == "the snapshot's growth could not be measured; the growth limit was not checked"
    assert grown["free_before_bytes"] - grown["free_after_bytes"] == 64 * MIB
    assert host["action"] == "deleted", host
    assert _growth_row(markdown, "local-lvm").endswith(
        "| not measured | the snapshot's growth could not be measured; the growth limit was not checked |"), markdown
    assert api_snapshots("proxmox", ws.conn, "web01") == {}, result.stdout[-3000:]


def test_a_state_volume_that_cannot_be_read_is_a_note_not_a_failure(pve):
    backend = proxmox_backend(pve)
    pve.pve.fail("GET", "/nodes/pve2/qemu/108/snapshot/pre-upgrade/config", status=500, message="disk on fire")
    snaps = {s["name"]: s for s in _info(backend, "app01")["snapshots"]}
    assert snaps["pre-upgrade"]["size_bytes"] is None
    assert snaps["pre-upgrade"]["size_note"].endswith(
        "; its memory state could not be read: disk on fire (HTTP 500)"), snaps
    assert snaps["base"]["size_note"] == (
        "the Proxmox VE API reports no size for a snapshot's disk data; storage local-lvm (lvmthin) gives no "
        "per-volume use that counts it, only its free space shows it")
