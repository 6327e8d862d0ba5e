# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulator does what the collection's pyvmomi code relies on.

Each test names the 0.24.2 defect it guards (see patches/). Run:
``python -m pytest tests/backends/vcsim -q``. Needs pyvmomi; builds vcsim.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vcsim import set_task_hook, vcsim  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import

pyVmomi = pytest.importorskip("pyVmomi")
from pyVim.connect import Disconnect, SmartConnect  # noqa: E402  pylint: disable=wrong-import-position
from pyVim.task import WaitForTask  # noqa: E402  pylint: disable=wrong-import-position
from pyVmomi import vim, vmodl  # noqa: E402  pylint: disable=wrong-import-position

VM_PATH = "DC0/vm/DC0_H0_VM%d"


@pytest.fixture(scope="module")
def si(vcsim):  # pylint: disable=redefined-outer-name
    conn = SmartConnect(
        host=vcsim["hostname"],
        port=vcsim["port"],
        user=vcsim["username"],
        pwd=vcsim["password"],
        disableSslCertValidation=True,
    )
    yield conn
    Disconnect(conn)


def vm_at(si, n):  # pylint: disable=redefined-outer-name
    vm = si.content.searchIndex.FindByInventoryPath(VM_PATH % n)
    assert vm is not None
    return vm


def wait(si, task):  # pylint: disable=redefined-outer-name
    WaitForTask(task, si=si)
    return task.info.result


def walk(tree):
    for node in tree or []:
        yield node
        yield from walk(node.childSnapshotList)


def names(vm):
    return sorted(n.name for n in walk(vm.snapshot.rootSnapshotList)) if vm.snapshot else []


def cleanup(si, vm):  # pylint: disable=redefined-outer-name
    wait(si, vm.RemoveAllSnapshots_Task())
    if vm.runtime.powerState != "poweredOn":
        wait(si, vm.PowerOnVM_Task())


def test_lookups(si, vcsim):  # pylint: disable=redefined-outer-name
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        vms = list(view.view)
    finally:
        view.Destroy()
    assert len(vms) >= 2
    vm = vm_at(si, 0)
    assert si.content.searchIndex.FindByUuid(None, vm.config.uuid, True, False) == vm
    assert si.content.searchIndex.FindByUuid(None, vm.config.instanceUuid, True, True) == vm
    assert si.content.searchIndex.FindByInventoryPath("DC0/vm/no-such-vm") is None


def test_unset_snapshot_property_is_none(si):  # pylint: disable=redefined-outer-name
    # 0.24.2: Fetch of an unset property panicked the server.
    vm = vm_at(si, 1)
    cleanup(si, vm)
    assert vm.snapshot is None
    assert vm.rootSnapshot == []


def test_create_state_quiesce_tree(si):  # pylint: disable=redefined-outer-name
    vm = vm_at(si, 0)
    cleanup(si, vm)
    s1 = wait(si, vm.CreateSnapshot_Task("s1", "with memory", True, True))
    s2 = wait(si, vm.CreateSnapshot_Task("s2", "disk only, quiesced", False, True))
    nodes = {n.name: n for n in walk(vm.snapshot.rootSnapshotList)}
    # 0.24.2 copied the VM's power state and the request's quiesce flag.
    assert nodes["s1"].state == "poweredOn"
    assert nodes["s2"].state == "poweredOff"
    assert nodes["s2"].quiesced is True
    assert [c.snapshot for c in nodes["s1"].childSnapshotList] == [s2]
    assert vm.snapshot.currentSnapshot == s2
    assert vm.rootSnapshot == [s1]
    # A powered-off VM cannot be quiesced, nor have memory in its snapshot.
    wait(si, vm.PowerOffVM_Task())
    wait(si, vm.CreateSnapshot_Task("s3", "", True, True))
    s3node = [n for n in walk(vm.snapshot.rootSnapshotList) if n.name == "s3"][0]
    assert (s3node.state, s3node.quiesced) == ("poweredOff", False)
    cleanup(si, vm)


def test_revert_rename_and_task_entity(si):  # pylint: disable=redefined-outer-name
    vm = vm_at(si, 0)
    cleanup(si, vm)
    s1 = wait(si, vm.CreateSnapshot_Task("s1", "", True, False))
    s2 = wait(si, vm.CreateSnapshot_Task("s2", "", False, False))
    task = s1.RevertToSnapshot_Task()
    WaitForTask(task, si=si)
    # 0.24.2: TaskInfo.entity was the snapshot, pyvmomi raised TypeError here.
    assert task.info.entity == vm
    assert task.info.entityName == vm.name
    assert vm.snapshot.currentSnapshot == s1
    assert vm.runtime.powerState == "poweredOn"
    wait(si, s2.RevertToSnapshot_Task())
    assert vm.runtime.powerState == "poweredOff"  # disk-only snapshot
    wait(si, s1.RevertToSnapshot_Task(suppressPowerOn=True))
    assert vm.runtime.powerState == "poweredOff"
    wait(si, vm.RevertToCurrentSnapshot_Task())
    assert vm.runtime.powerState == "poweredOn"
    # 0.24.2: RenameSnapshot did not exist.
    s1.RenameSnapshot(name="s1-renamed", description="new text")
    node = [n for n in walk(vm.snapshot.rootSnapshotList) if n.snapshot == s1][0]
    assert (node.name, node.description) == ("s1-renamed", "new text")
    s1.RenameSnapshot(description="only the description")
    node = [n for n in walk(vm.snapshot.rootSnapshotList) if n.snapshot == s1][0]
    assert (node.name, node.description) == ("s1-renamed", "only the description")
    cleanup(si, vm)


def test_remove_with_and_without_children(si):  # pylint: disable=redefined-outer-name
    vm = vm_at(si, 0)
    cleanup(si, vm)
    a = wait(si, vm.CreateSnapshot_Task("a", "", False, False))
    b = wait(si, vm.CreateSnapshot_Task("b", "", False, False))
    wait(si, vm.CreateSnapshot_Task("c", "", False, False))
    wait(si, a.RevertToSnapshot_Task())
    wait(si, vm.CreateSnapshot_Task("sibling", "", False, False))
    assert names(vm) == ["a", "b", "c", "sibling"]
    # Without children: b goes, c moves up under a.
    wait(si, b.RemoveSnapshot_Task(removeChildren=False))
    assert names(vm) == ["a", "c", "sibling"]
    root = vm.snapshot.rootSnapshotList[0]
    assert sorted(n.name for n in root.childSnapshotList) == ["c", "sibling"]
    c = [n.snapshot for n in root.childSnapshotList if n.name == "c"][0]
    # With children: everything under a goes, and is unregistered.
    wait(si, a.RemoveSnapshot_Task(removeChildren=True))
    assert vm.snapshot is None
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        c.RevertToSnapshot_Task()  # 0.24.2: c stayed registered; reverting corrupted the VM
    cleanup(si, vm)


def test_remove_all_and_current_moves_to_parent(si):  # pylint: disable=redefined-outer-name
    vm = vm_at(si, 0)
    cleanup(si, vm)
    a = wait(si, vm.CreateSnapshot_Task("a", "", False, False))
    b = wait(si, vm.CreateSnapshot_Task("b", "", False, False))
    wait(si, b.RemoveSnapshot_Task(removeChildren=False))
    assert vm.snapshot.currentSnapshot == a
    wait(si, vm.CreateSnapshot_Task("b2", "", False, False))
    wait(si, vm.RemoveAllSnapshots_Task())
    assert vm.snapshot is None


def test_destroyed_vm_snapshot_calls_fail_cleanly(si):  # pylint: disable=redefined-outer-name
    src = vm_at(si, 0)
    folder = src.parent
    clone = wait(si, src.CloneVM_Task(folder=folder, name="doomed", spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec())))
    snap = wait(si, clone.CreateSnapshot_Task("s", "", False, False))
    if clone.runtime.powerState == "poweredOn":
        wait(si, clone.PowerOffVM_Task())
    wait(si, clone.Destroy_Task())
    # 0.24.2: the server panicked here.
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        snap.RevertToSnapshot_Task()
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        snap.RemoveSnapshot_Task(removeChildren=False)
    assert si.content.about.apiType == "VirtualCenter"  # server still alive


def test_refresh_datastore_and_custom_fields(si):  # pylint: disable=redefined-outer-name
    vm = vm_at(si, 0)
    vm.datastore[0].RefreshDatastore()  # 0.24.2: empty HTTP body
    cfm = si.content.customFieldsManager
    if not [f for f in cfm.field if f.name == "prechange-test"]:
        cfm.AddCustomFieldDef(name="prechange-test")
    field = [f for f in cfm.field if f.name == "prechange-test"][0]
    assert field.type  # 0.24.2: empty type broke deserialisation
    cfm.SetField(entity=vm, key=field.key, value="x")
    assert [v.value for v in vm.customValue if v.key == field.key] == ["x"]


def test_task_fault_hook(si):  # pylint: disable=redefined-outer-name
    vm = vm_at(si, 1)
    cleanup(si, vm)
    set_task_hook(si, vm, "CreateSnapshot", fault="An error occurred while saving the snapshot: disk full.")
    try:
        task = vm.CreateSnapshot_Task("s", "", False, False)
        with pytest.raises(vmodl.fault.SystemError) as err:
            WaitForTask(task, si=si)
        assert "disk full" in err.value.msg
        assert task.info.state == "error"
        assert vm.snapshot is None  # a failed task did no work
    finally:
        set_task_hook(si, vm, "CreateSnapshot", fault="")
    wait(si, vm.CreateSnapshot_Task("s", "", False, False))
    cleanup(si, vm)


def test_task_delay_hook(si):  # pylint: disable=redefined-outer-name
    vm = vm_at(si, 1)
    cleanup(si, vm)
    set_task_hook(si, vm, "CreateSnapshot", delay_ms=700)
    try:
        task = vm.CreateSnapshot_Task("slow", "", False, False)
        assert task.info.state == "running"  # returned before the work was done
        assert vm.snapshot is None
        deadline = time.monotonic() + 30
        while task.info.state == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert task.info.state == "success"
        assert names(vm) == ["slow"]
    finally:
        set_task_hook(si, vm, "CreateSnapshot", delay_ms=0)
    task = vm.CreateSnapshot_Task("fast", "", False, False)
    assert task.info.state == "success"
    cleanup(si, vm)


def test_guest_tools_hook(si):  # pylint: disable=redefined-outer-name
    vm = vm_at(si, 1)
    cleanup(si, vm)
    spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key="vcsim.guest.toolsRunning", value="false")])
    wait(si, vm.ReconfigVM_Task(spec=spec))
    wait(si, vm.CreateSnapshot_Task("q", "", False, True))
    assert vm.snapshot.rootSnapshotList[0].quiesced is False
    spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key="vcsim.guest.toolsRunning", value="")])
    wait(si, vm.ReconfigVM_Task(spec=spec))
    cleanup(si, vm)


def test_find_all_by_uuid(si):  # pylint: disable=redefined-outer-name
    vm = vm_at(si, 0)
    index = si.content.searchIndex
    assert index.FindAllByUuid(uuid=vm.config.uuid, vmSearch=True, instanceUuid=False) == [vm]
    assert index.FindAllByUuid(uuid=vm.config.instanceUuid, vmSearch=True, instanceUuid=True) == [vm]
    assert index.FindAllByUuid(uuid="00000000-0000-0000-0000-000000000000", vmSearch=True) == []


def test_consolidation_hook(si):  # pylint: disable=redefined-outer-name
    vm = vm_at(si, 1)
    cleanup(si, vm)
    flag = vim.option.OptionValue(key="vcsim.consolidationNeeded", value="true")
    wait(si, vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[flag])))
    try:
        snap = wait(si, vm.CreateSnapshot_Task("c", "", False, False))
        wait(si, snap.RemoveSnapshot_Task(removeChildren=False))
        assert vm.runtime.consolidationNeeded is True
        wait(si, vm.ConsolidateVMDisks_Task())
        assert vm.runtime.consolidationNeeded is False
    finally:
        flag.value = ""
        wait(si, vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[flag])))


# --- snapshot files, disk chains, layoutEx and free space (patch 0008, prechange_disks.go) -----------------

MIB = 1024 ** 2


def disk_chain(vm):
    """The first disk's backing chain as file names, base first."""
    disk = next(d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))
    names, backing = [], disk.backing
    while backing is not None:
        names.insert(0, backing.fileName)
        backing = backing.parent
    return names


def layout(vm):
    """layoutEx as plain data: {key: (name, type, size)}, the first disk's chain and the snapshots' entries."""
    lx = vm.layoutEx
    files = {f.key: (f.name, f.type, f.size) for f in lx.file}
    chain = [list(unit.fileKey) for unit in lx.disk[0].chain]
    snaps = {s.key._moId: (s.dataKey, s.memoryKey, [list(u.fileKey) for u in s.disk[0].chain]) for s in lx.snapshot}
    return files, chain, snaps


def on_host(vm, ds_path):
    """A "[datastore] dir/file" path as the file on this machine (the datastore's info.url is a directory)."""
    store, rel = ds_path[1:].split("] ", 1)
    ds = next(d for d in vm.datastore if d.name == store)
    return Path(ds.info.url) / rel


def running_extent(vm):
    """The extent of the disk's running delta: the test hook for "the guest wrote after the snapshot"."""
    files, chain = layout(vm)[:2]
    return on_host(vm, next(files[k][0] for k in chain[-1] if files[k][1] == "diskExtent"))


def test_snapshot_writes_delta_state_and_memory_files(si):  # pylint: disable=redefined-outer-name
    """0.24.2: one empty .vmsn, the disk stays on its base file, layoutEx.disk has no delta."""
    vm = vm_at(si, 0)
    cleanup(si, vm)
    base = disk_chain(vm)
    assert len(base) == 1
    snap = wait(si, vm.CreateSnapshot_Task("files", "", True, False))
    try:
        chain = disk_chain(vm)
        assert chain[:1] == base and len(chain) == 2 and chain[1].endswith("-000001.vmdk"), chain
        files, disk, snaps = layout(vm)
        assert [files[k][0] for k in disk[0]] == [base[0], base[0].replace(".vmdk", "-flat.vmdk")]
        assert [(files[k][0], files[k][1]) for k in disk[1]] == [
            (chain[1], "diskDescriptor"), (chain[1].replace(".vmdk", "-delta.vmdk"), "diskExtent")]
        data_key, memory_key, snap_chain = snaps[snap._moId]
        assert snap_chain == disk[:1]  # the disk the snapshot froze
        name, kind, size = files[data_key]
        assert kind == "snapshotData" and name.endswith("-Snapshot1.vmsn") and 0 < size == on_host(vm, name).stat().st_size
        name, kind, size = files[memory_key]
        assert kind == "snapshotMemory" and size == vm.config.hardware.memoryMB * MIB == on_host(vm, name).stat().st_size
        for key, (name, _kind, size) in files.items():
            if name.endswith(".vmdk") and key not in disk[0]:
                assert on_host(vm, name).stat().st_size == size
        # Without memory: no .vmem, memoryKey -1.
        second = wait(si, vm.CreateSnapshot_Task("files2", "", False, False))
        assert layout(vm)[2][second._moId][1] == -1
        assert len(disk_chain(vm)) == 3
    finally:
        cleanup(si, vm)


def test_guest_writes_show_after_refresh_storage_info_and_free_space_follows(si):  # pylint: disable=redefined-outer-name
    """The hook: bytes written into the running delta appear in layoutEx after RefreshStorageInfo; the
    datastore's free space is the filesystem's after RefreshDatastore and after a snapshot task (0.24.2: the
    model's value, moved only by disk creation)."""
    vm = vm_at(si, 0)
    cleanup(si, vm)
    snap = wait(si, vm.CreateSnapshot_Task("grow", "", False, False))
    written = 128 * MIB
    margin = 64 * MIB  # other processes write to the same filesystem meanwhile
    try:
        extent = running_extent(vm)
        before = next(size for name, _t, size in layout(vm)[0].values() if on_host(vm, name) == extent)
        with open(extent, "ab") as handle:
            handle.write(b"\x5a" * written)
        vm.RefreshStorageInfo()
        after = next(size for name, _t, size in layout(vm)[0].values() if on_host(vm, name) == extent)
        assert after - before == written
        ds = vm.datastore[0]
        ds.RefreshDatastore()
        stat = os.statvfs(ds.info.url)
        full = ds.summary.freeSpace
        assert abs(full - stat.f_bfree * stat.f_bsize) < margin
        # The revert discards the delta: the task itself moves the free space back up.
        wait(si, snap.RevertToSnapshot_Task())
        assert not extent.exists()
        stat = os.statvfs(ds.info.url)
        assert abs(ds.summary.freeSpace - stat.f_bfree * stat.f_bsize) < margin
        assert ds.summary.freeSpace - full > written - margin
    finally:
        cleanup(si, vm)


def test_revert_discards_the_running_delta_and_remove_merges(si):  # pylint: disable=redefined-outer-name
    vm = vm_at(si, 1)
    cleanup(si, vm)
    base = disk_chain(vm)
    first = wait(si, vm.CreateSnapshot_Task("r1", "", False, False))
    d1 = disk_chain(vm)[-1]
    with open(running_extent(vm), "ab") as handle:
        handle.write(b"\x01" * MIB)
    second = wait(si, vm.CreateSnapshot_Task("r2", "", False, False))
    d2 = disk_chain(vm)[-1]
    try:
        wait(si, first.RevertToSnapshot_Task())
        chain = disk_chain(vm)
        assert chain[0] == base[0] and len(chain) == 2 and chain[1] not in (d1, d2), chain
        assert not on_host(vm, d2).exists()  # the discarded running delta
        files, _chain, snaps = layout(vm)
        assert files[snaps[second._moId][2][-1][0]][0] == d1 and on_host(vm, d1).exists()  # r2 froze d1
        # r2 (now on another branch) goes with its delta d1; r1's running delta is kept.
        wait(si, second.RemoveSnapshot_Task(removeChildren=False))
        assert not on_host(vm, d1).exists() and len(disk_chain(vm)) == 2
        # Removing the last snapshot merges the running delta into the base disk and deletes it.
        with open(running_extent(vm), "ab") as handle:
            handle.write(b"\x02" * (2 * MIB))
        delta = disk_chain(vm)[-1]
        wait(si, first.RemoveSnapshot_Task(removeChildren=False))
        assert disk_chain(vm) == base and not on_host(vm, delta).exists()
        files, chain, snaps = layout(vm)
        assert snaps == {} and len(chain) == 1
        assert on_host(vm, base[0].replace(".vmdk", "-flat.vmdk")).stat().st_size >= 2 * MIB
        assert not [n for n, _t, _s in files.values() if n.endswith((".vmsn", ".vmem"))]
    finally:
        cleanup(si, vm)


def test_remove_all_consolidates_into_the_base(si):  # pylint: disable=redefined-outer-name
    vm = vm_at(si, 1)
    cleanup(si, vm)
    base = disk_chain(vm)
    for name in ("a1", "a2", "a3"):
        wait(si, vm.CreateSnapshot_Task(name, "", True, False))
    deltas = disk_chain(vm)[1:]
    home = on_host(vm, base[0]).parent
    assert len(deltas) == 3 and len(list(home.glob("*-Snapshot*.vms*"))) + len(list(home.glob("*.vmem"))) >= 6
    wait(si, vm.RemoveAllSnapshots_Task())
    assert disk_chain(vm) == base
    assert not [d for d in deltas if on_host(vm, d).exists()]
    assert not list(home.glob("*-Snapshot*"))
    assert layout(vm)[2] == {} and len(layout(vm)[1]) == 1
