"""The capacity decision (issue 12 point 1) and the growth measurement (point 2), without a platform."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ansible_collections.prechange.snapshots.plugins.module_utils import _capacity as cap
from ansible_collections.prechange.snapshots.plugins.module_utils import _workflow as wf
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import InvalidRequest, PrecheckFailed
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import SnapshotParams, ensure

from test_snapshot import MUTATORS, FakeBackend  # pylint: disable=import-error

GIB = cap.GIB


def _capacity(free_gb=50, total_gb=100, disks=(("vda", "pool-a", 40),), memory_gb=4):
    return cap.Capacity(disks=[cap.DiskUsage(disk=d, storage=s, free_bytes=int(free_gb * GIB),
                                             total_bytes=int(total_gb * GIB), provisioned_bytes=int(size * GIB),
                                             used_bytes=int(size * GIB / 2))
                               for d, s, size in disks],
                        memory_bytes=int(memory_gb * GIB), memory_storage="pool-a")


class SpaceBackend(FakeBackend):
    def __init__(self, capacity, **kw):
        super().__init__(**kw)
        self._capacity = capacity

    def capacity(self, vm):
        self.calls.append("capacity")
        return self._capacity


def test_growth_factor_counts_disks_and_memory_per_storage():
    found = cap.assess(_capacity(free_gb=5, disks=(("vda", "a", 20), ("vdb", "a", 20), ("vdc", "b", 10))),
                       cap.CapacityPolicy(growth=0.1), memory=True)
    rows = {r["storage"]: r for r in found.rows}
    # a: 10% of 40 GiB + 4 GiB memory (memory_storage 'pool-a' is not among the storages: the first one).
    assert rows["a"]["needed_bytes"] == int(4 * GIB) + int(4 * GIB)
    assert rows["b"]["needed_bytes"] == int(1 * GIB)
    assert rows["a"]["enough"] is False and rows["b"]["enough"] is True
    assert found.violations == ["storage 'a' has 5.0 GiB free of 100.0 GiB; the snapshot may need 8.0 GiB there "
                                "(10% of the 40.0 GiB of disks vda, vdb plus 4.0 GiB of memory state)"]


def test_reserve_replaces_the_factor_and_min_free_is_kept():
    policy = cap.CapacityPolicy(reserve_gb=2, min_free_gb=4)
    assert cap.assess(_capacity(free_gb=6), policy).violations == []
    text = cap.assess(_capacity(free_gb=5.9), policy).violations[0]
    assert "may need 2.0 GiB there (the fixed reserve capacity_reserve_gb) and 4.0 GiB must stay free" in text


def test_unknown_free_space_is_a_note_never_a_refusal():
    capacity = cap.Capacity(disks=[cap.DiskUsage("vda", "/srv/images", note="the connection is remote")])
    assert cap.check(capacity, cap.CapacityPolicy(reserve_gb=10 ** 6)) == [
        "the free space of storage '/srv/images' (disk vda) is not known: the connection is remote; the capacity "
        "check skipped it"]
    assert cap.check(cap.Capacity(note="vmware does not report"), cap.CapacityPolicy()) == [
        "the capacity check was skipped: vmware does not report"]


def test_policy_is_validated():
    with pytest.raises(InvalidRequest):
        cap.CapacityPolicy(action="maybe").validate()
    with pytest.raises(InvalidRequest):
        cap.CapacityPolicy(growth=-1).validate()


@pytest.mark.parametrize("check_mode", [True, False])
def test_engine_refuses_before_any_change_in_both_modes(check_mode):
    backend = SpaceBackend(_capacity(free_gb=1))
    params = SnapshotParams(name="before", memory=False, capacity=cap.CapacityPolicy())
    with pytest.raises(PrecheckFailed) as caught:
        ensure(backend, backend.find_vm("web01"), params, check_mode)
    assert caught.value.message == (
        "Failed to create snapshot 'before' of VM 'web01' on fake: not enough free space for the snapshot: storage "
        "'pool-a' has 1.0 GiB free of 100.0 GiB; the snapshot may need 4.0 GiB there (10% of the 40.0 GiB of disk "
        "vda). Free space on that storage (delete old snapshots or files), move the disks, or lower "
        "capacity_growth, or set capacity_policy to warn to create it anyway; nothing was changed.")
    assert caught.value.details["capacity"][0]["free_bytes"] == GIB
    assert not [c for c in backend.calls if c in MUTATORS]


def test_engine_warns_and_creates_with_policy_warn():
    backend = SpaceBackend(_capacity(free_gb=1))
    outcome = ensure(backend, backend.find_vm("web01"), SnapshotParams(
        name="before", memory=False, capacity=cap.CapacityPolicy(action="warn")), False)
    assert outcome.action == "created"
    assert backend.warnings == [
        "Snapshot 'before' of VM 'web01' on fake: not enough free space for the snapshot, creating it anyway "
        "(capacity_policy=warn): storage 'pool-a' has 1.0 GiB free of 100.0 GiB; the snapshot may need 4.0 GiB "
        "there (10% of the 40.0 GiB of disk vda)"]


def test_ignore_and_no_policy_do_not_measure():
    for policy in (None, cap.CapacityPolicy(action="ignore")):
        backend = SpaceBackend(_capacity(free_gb=0))
        ensure(backend, backend.find_vm("web01"), SnapshotParams(name="s", capacity=policy), False)
        assert "capacity" not in backend.calls


def test_workflow_folds_min_free_gb_into_the_capacity_decision():
    request = wf.begin_request({"name": "prechange-r1", "lease_seconds": 3600, "policy": {"min_free_gb": 60},
                                "capacity": {"action": "fail", "growth": 0.1}}, "r1", "h-me")
    assert request.capacity == cap.CapacityPolicy(action="fail", growth=0.1, reserve_gb=0, min_free_gb=60)
    backend = SpaceBackend(_capacity(free_gb=50))
    with pytest.raises(PrecheckFailed) as caught:
        wf.begin(backend, backend.find_vm("web01"), request, check_mode=True)
    assert "60.0 GiB must stay free (capacity_min_free_gb)" in caught.value.message
    assert request.lease == timedelta(seconds=3600)


def test_growth_against_bytes_and_percent_of_free():
    before = {"snapshot_bytes": None, "allocated_bytes": 1 * GIB,
              "storages": [{"storage": "a", "free_bytes": 10 * GIB, "total_bytes": 100 * GIB}]}
    after = {"snapshot_bytes": None, "allocated_bytes": 4 * GIB,
             "storages": [{"storage": "a", "free_bytes": 7 * GIB, "total_bytes": 100 * GIB}]}
    ok = cap.growth(before, after, cap.GrowthLimit(max_bytes=5 * GIB, action="stop"))
    assert ok["growth_bytes"] == 3 * GIB and ok["over"] is False and ok["action"] is None
    over = cap.growth(before, after, cap.GrowthLimit(max_percent=20, action="stop"))
    assert over["over"] is True and over["action"] == "stop"
    assert over["message"] == ("the snapshot grew by 3.0 GiB during the change (allocation 1.0 GiB -> 4.0 GiB), "
                               "over the limit of 20% of the 10.0 GiB free at snapshot time")
    assert over["free_before_bytes"] == 10 * GIB and over["free_after_bytes"] == 7 * GIB
    unknown = cap.growth({"allocated_bytes": None}, after, cap.GrowthLimit(max_bytes=1))
    assert unknown["over"] is None and "could not be measured" in unknown["message"]
    snap = cap.growth(dict(before, snapshot_bytes=GIB), dict(after, snapshot_bytes=2 * GIB), None)
    assert snap["measured"] == "snapshot" and snap["growth_bytes"] == GIB


# --- provider measurements that the simulators cannot show ---------------------------------------------


def test_vmware_snapshot_size_is_its_files_and_the_delta_after_it():
    """The chain walk on a recorded vSphere shape (vcsim writes the same shape since patch 0008, see
    tests/integration/test_capacity_on_backends.py): a disk base.vmdk, snapshot s1 (state file 10, memory 11)
    then the running delta 1.vmdk (files 3, 4)."""
    from types import SimpleNamespace as NS  # pylint: disable=import-outside-toplevel
    from ansible_collections.prechange.snapshots.plugins.module_utils import _vmware  # noqa: E501 pylint: disable=import-outside-toplevel
    shape = ((1, 500), (2, 10 ** 9), (3, 500), (4, 64 * 2 ** 20), (10, 4096), (11, 2 ** 30))
    files = [NS(key=k, size=size) for k, size in shape]
    base, delta = NS(fileKey=[1, 2]), NS(fileKey=[3, 4])
    layout = {"layoutEx.file": files, "layoutEx.disk": [NS(key=2000, chain=[base, delta])],
              "layoutEx.snapshot": [NS(key=NS(_moId="snapshot-1"), dataKey=10, memoryKey=11,
                                       disk=[NS(key=2000, chain=[base])])]}
    backend = _vmware.VmwareBackend.__new__(_vmware.VmwareBackend)
    backend._layout = lambda vm: layout  # pylint: disable=protected-access
    sizes = backend.snapshot_sizes(None, [NS(id="snapshot-1"), NS(id="snapshot-9")])
    assert sizes["snapshot-1"][0] == 4096 + 2 ** 30 + 500 + 64 * 2 ** 20
    assert sizes["snapshot-9"] == (None, "the VM's file layout (layoutEx) lists no files for this snapshot")


def test_vmware_measure_reads_the_layout_once_and_a_failed_refresh_is_only_a_note():
    """The maintenance run's measurement: RefreshStorageInfo, one layout read for the disks and the snapshot's
    size, RefreshDatastore per datastore. A refresh vSphere refuses leaves its last numbers, with a note."""
    from types import SimpleNamespace as NS  # pylint: disable=import-outside-toplevel
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    from ansible_collections.prechange.snapshots.plugins.module_utils import _vmware  # noqa: E501 pylint: disable=import-outside-toplevel
    calls = []

    def refused():
        calls.append("RefreshStorageInfo")
        raise vim.fault.NoPermission(msg="Permission to perform this operation was denied.")

    store = NS(_moId="datastore-1", RefreshDatastore=lambda: calls.append("RefreshDatastore"))
    disk = vim.vm.device.VirtualDisk(key=2000, capacityInBytes=GIB)
    disk.backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName="[ds1] vm/vm.vmdk")
    layout = {"config.hardware.device": [disk], "layoutEx.file": [NS(key=1, size=10, type="diskExtent")],
              "layoutEx.disk": [NS(key=2000, chain=[NS(fileKey=[1])])], "layoutEx.snapshot": []}
    backend = _vmware.VmwareBackend.__new__(_vmware.VmwareBackend)
    backend._layout = lambda vm: calls.append("layout") or layout  # pylint: disable=protected-access
    summary = {"summary.name": "ds1", "summary.freeSpace": 5, "summary.capacity": 9}
    backend._properties = lambda objs, kind, paths: [(store, summary)]  # pylint: disable=protected-access
    backend._sdk = lambda func, vm=None, snapshot=None: func()  # pylint: disable=protected-access
    # getattr: the datastore object is a stand-in, not a vim.Datastore.
    disk.backing.__dict__["datastore"] = store
    vm = NS(name="web01", handle=NS(RefreshStorageInfo=refused))
    capacity, sizes, note = backend.measure_storage(vm, [NS(id="snapshot-1")], refresh=True)
    assert calls == ["RefreshStorageInfo", "layout", "RefreshDatastore"]
    assert note.startswith("the VM's storage could not be refreshed (") and "vSphere's last" in note
    assert capacity.disks[0].free_bytes == 5 and capacity.disks[0].used_bytes == 10
    assert sizes == {"snapshot-1": (None, "the VM's file layout (layoutEx) lists no files for this snapshot")}
    calls.clear()
    assert backend.measure_storage(vm, [], refresh=False)[1:] == ({}, None) and calls == ["layout"]


def test_proxmox_disk_sizes():
    from ansible_collections.prechange.snapshots.plugins.module_utils._proxmox import parse_size  # noqa: E501 pylint: disable=import-outside-toplevel
    assert parse_size("32G") == 32 * GIB and parse_size("512M") == 512 * 2 ** 20 and parse_size("1T") == 1024 * GIB
    assert parse_size(None) is None and parse_size("4096") == 4096
