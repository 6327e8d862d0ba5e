# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulator does what the collection's pyvmomi code relies on.

Each test names the 0.24.2 defect it guards (see patches/). Run:
``python -m pytest tests/backends/vcsim -q``. Needs pyvmomi; builds vcsim.
"""

from __future__ import annotations

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
