# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VMware provider logic, without a vCenter.

The pure helpers (reference classification, inventory paths, snapshot-tree parsing, fault texts) are
tested on literal values shaped like pyvmomi's objects. The backend's decisions (name resolution,
task waiting, revert power handling, consolidation) run against small fakes that stand in for the
pyvmomi service instance. What the fakes assume of real vSphere, each also exercised for real
against vcsim in tests/integration/test_vmware_playbooks.py:

- ``vim.vm.SnapshotTree`` nodes carry ``name``, ``description``, ``snapshot`` (the MO), ``createTime``
  (aware datetime), ``state`` (the VM's power state recorded: poweredOff without memory),
  ``quiesced`` and ``childSnapshotList``; ``SnapshotInfo.currentSnapshot`` is the current MO;
- ``SearchIndex.FindByInventoryPath`` returns the object at ``<dc>/vm/<folder...>/<name>`` or None
  (any entity type, so a folder of that name can come back);
- ``SearchIndex.FindAllByUuid`` returns every VM with the UUID (BIOS UUIDs repeat after clones);
- ``SearchIndex.FindChild(folder, name)`` returns the entity of that name directly in the folder or vApp,
  or None; vSphere keeps names unique per folder, not per datacenter;
- a task's ``info.state`` is queued / running until success (``info.result``) or error (``info.error``,
  a MethodFault whose ``msg`` is vSphere's own localized text);
- ``RevertToSnapshot_Task(suppressPowerOn=True)`` never powers the VM on.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from ansible_collections.prechange.snapshots.plugins.module_utils import _vmware
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import (
    AmbiguousVm,
    InvalidRequest,
    PrecheckFailed,
    ProviderError,
    SnapshotTimeout,
    VmNotFound,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import join_description, make_marker
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import CreateRequest, Snapshot, VmRecord
from ansible_collections.prechange.snapshots.plugins.module_utils._vmware import (
    classify_ref,
    fault_text,
    folder_is_absolute,
    inventory_paths,
    name_check,
    normalize_uuid,
    power_state,
    snapshots_from_info,
)

T0 = datetime(2026, 11, 22, 2, 0, 0, tzinfo=timezone.utc)


# --- pure helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize("ref, kind", [
    ("vm-1234", "moid"),
    ("web01", "name"),
    ("vm-web01", "name"),
    ("4207f3c1-5b1a-2e6c-8d3e-0a1b2c3d4e5f", "uuid"),
    ("4207F3C15B1A2E6C8D3E0A1B2C3D4E5F", "uuid"),
    ("4207f3c1-5b1a", "name"),
])
def test_classify_ref(ref, kind):
    assert classify_ref(ref) == kind


def test_normalize_uuid():
    assert normalize_uuid("4207F3C15B1A2E6C8D3E0A1B2C3D4E5F") == "4207f3c1-5b1a-2e6c-8d3e-0a1b2c3d4e5f"
    assert normalize_uuid("not-a-uuid") == "not-a-uuid"


@pytest.mark.parametrize("folder, absolute", [
    ("DC1/vm", True), ("/DC1/vm/linux", True), ("Europe/DC1/vm/web", True),
    ("linux", False), ("linux/web", False), ("vm/linux", False),
])
def test_folder_is_absolute(folder, absolute):
    assert folder_is_absolute(folder) is absolute


def test_inventory_paths():
    assert inventory_paths("web01", ["DC1", "F/DC2"]) == ["DC1/vm/web01", "F/DC2/vm/web01"]
    assert inventory_paths("web01", ["DC1", "DC2"], "linux/") == ["DC1/vm/linux/web01", "DC2/vm/linux/web01"]
    assert inventory_paths("web01", ["DC1", "DC2"], "/DC2/vm/linux") == ["DC2/vm/linux/web01"]


def test_power_state_names():
    assert [power_state(s) for s in ("poweredOn", "poweredOff", "suspended", None)] == \
        ["running", "stopped", "suspended", "unknown"]


def test_fault_text_prefers_vsphere_text():
    assert fault_text(SimpleNamespace(msg="Insufficient disk space")) == "Insufficient disk space"
    messages = [SimpleNamespace(message="a"), SimpleNamespace(message="b")]
    assert fault_text(SimpleNamespace(msg=None, faultMessage=messages)) == "a; b"

    class Bare(Exception):
        pass
    assert fault_text(Bare()) == "Bare"


# --- snapshot trees ------------------------------------------------------------------------------


def node(name, moid, minutes, children=(), state="poweredOff", quiesced=False, description=""):
    return SimpleNamespace(name=name, description=description, snapshot=SimpleNamespace(_moId=moid),
                           createTime=T0 + timedelta(minutes=minutes), state=state, quiesced=quiesced,
                           childSnapshotList=list(children))


def tree():
    #  base ── a ── a-child
    #       └─ b (current)
    marker = make_marker(run="r1", creator="ops@bastion", expires=None, ticket="CHG1",
                         created=T0)
    a_child = node("a-child", "snapshot-4", 3)
    a = node("a", "snapshot-2", 1, [a_child], state="poweredOn", description=join_description("text", marker))
    b = node("b", "snapshot-3", 2, quiesced=True)
    base = node("base", "snapshot-1", 0, [a, b], state="suspended")
    return SimpleNamespace(rootSnapshotList=[base], currentSnapshot=SimpleNamespace(_moId="snapshot-3"))


def test_snapshots_from_info_walks_the_whole_tree():
    snaps = {s.name: s for s in snapshots_from_info(tree())}
    assert sorted(snaps) == ["a", "a-child", "b", "base"]
    assert snaps["a-child"].parent == "a" and snaps["a-child"].depth == 3
    assert snaps["b"].parent == "base" and snaps["b"].current is True
    assert sorted(snaps["base"].children) == ["a", "b"]
    assert [s.name for s in snapshots_from_info(tree()) if s.current] == ["b"]


def test_snapshots_from_info_reports_what_vsphere_recorded():
    snaps = {s.name: s for s in snapshots_from_info(tree())}
    assert (snaps["a"].memory, snaps["a"].power_state) == (True, "running")
    assert (snaps["base"].memory, snaps["base"].power_state) == (True, "suspended")
    assert (snaps["b"].memory, snaps["b"].quiesced, snaps["b"].power_state) == (False, True, "stopped")
    assert snaps["a"].description == "text" and snaps["a"].owner["ticket"] == "CHG1"
    assert snaps["b"].owner is None
    assert snaps["a"].created == T0 + timedelta(minutes=1)
    assert snaps["a"].id == "snapshot-2"


def test_snapshots_from_info_naive_and_offset_times_become_utc():
    info = SimpleNamespace(rootSnapshotList=[node("x", "snapshot-9", 0)], currentSnapshot=None)
    info.rootSnapshotList[0].createTime = datetime(2026, 1, 1, 12, 0, 0, 123456,
                                                   tzinfo=timezone(timedelta(hours=2)))
    [snap] = snapshots_from_info(info)
    assert snap.created == datetime(2026, 1, 1, 10, 0, 0, tzinfo=timezone.utc)
    assert snapshots_from_info(None) == []


def test_duplicate_names_stay_two_records():
    info = SimpleNamespace(rootSnapshotList=[node("dup", "snapshot-1", 0, [node("dup", "snapshot-2", 1)])],
                           currentSnapshot=None)
    assert [s.id for s in snapshots_from_info(info)] == ["snapshot-1", "snapshot-2"]


# --- backend decisions on fakes ------------------------------------------------------------------

vim = pytest.importorskip("pyVmomi").vim


def make_backend(params=None, **attrs):
    """A VmwareBackend without a session: what the tests need is set by hand."""
    backend = object.__new__(_vmware.VmwareBackend)
    backend.params = dict({"hostname": "vc", "vm_lookup": "auto"}, **(params or {}))
    backend.warnings = []
    backend.warn = backend.warnings.append
    backend.si = SimpleNamespace(_stub=None)
    backend._datacenters = None  # pylint: disable=protected-access
    backend._action = "create"  # pylint: disable=protected-access
    for key, value in attrs.items():
        setattr(backend, key, value)
    return backend


class FakeIndex(object):
    def __init__(self, paths=None, uuids=None, children=None):
        self.paths = paths or {}
        self.uuids = uuids or {}
        self.children = children or {}
        self.calls = []

    def FindByInventoryPath(self, path):  # noqa: N802  pylint: disable=invalid-name
        self.calls.append(path)
        return self.paths.get(path)

    def FindAllByUuid(self, uuid, vmSearch, instanceUuid):  # noqa: N802,N803  pylint: disable=invalid-name
        return self.uuids.get((uuid, instanceUuid), [])

    def FindChild(self, entity, name):  # noqa: N802  pylint: disable=invalid-name
        self.calls.append(("child", entity._moId, name))  # pylint: disable=protected-access
        return self.children.get((entity._moId, name))  # pylint: disable=protected-access


def vm_mo(moid):
    return vim.VirtualMachine(moid, None)


ROOT = vim.Folder("group-d1", None)
VM_FOLDER = ["Folder", "VirtualMachine", "VirtualApp"]


def folder_backend(folders, children=None, params=None, scope=None):
    """A backend whose scope holds ``folders`` ({moid: childType}) and whose FindChild answers ``children``."""
    index = FakeIndex(children=children)
    backend = make_backend(params, content=SimpleNamespace(searchIndex=index, rootFolder=ROOT))
    backend._search_scope = lambda: scope or [ROOT]  # pylint: disable=protected-access
    rows = [(vim.Folder(moid, None), {"childType": kinds}) for moid, kinds in folders.items()]
    backend.views = []

    def view(container, obj_type, paths, more=()):
        backend.views.append((container._moId, obj_type, list(more)))  # pylint: disable=protected-access
        return rows

    backend._view_properties = view  # pylint: disable=protected-access
    backend._search_names = lambda names: pytest.fail("searched")  # pylint: disable=protected-access
    backend._path_of = lambda obj: "path-of-" + obj._moId  # pylint: disable=protected-access
    return backend, index


@pytest.mark.parametrize("lookup, names, folders, expected", [
    ("auto", ["web01"], None, "find_child"),
    ("auto", ["web01"], 1, "find_child"),
    ("auto", ["web01"], _vmware.FIND_CHILD_MAX, "find_child"),
    ("auto", ["web01"], _vmware.FIND_CHILD_MAX + 1, "search"),
    ("auto", ["web01", "web02"], _vmware.FIND_CHILD_MAX // 2, "find_child"),
    ("auto", ["web01", "web02"], _vmware.FIND_CHILD_MAX // 2 + 1, "search"),
    ("auto", ["vm%d" % i for i in range(_vmware.FIND_CHILD_MAX + 1)], None, "search"),
    ("search", ["web01"], 1, "search"),
])
def test_name_check_find_child_while_names_times_folders_are_few(lookup, names, folders, expected):
    assert name_check(lookup, names, folders) == expected


def test_resolve_bare_name_directly_in_the_vm_folder_with_a_namesake_in_a_subfolder_is_ambiguous():
    """The issue 14 case: the fast path used to take DC0/vm/web01 without looking further."""
    root_vm, team_vm = vm_mo("vm-42"), vm_mo("vm-51")
    backend, index = folder_backend(
        {"group-v3": VM_FOLDER, "group-h4": ["Folder", "ComputeResource"], "group-v9": VM_FOLDER},
        children={("group-v3", "web01"): root_vm, ("group-v9", "web01"): team_vm})
    error = backend._resolve(["web01"])["web01"]  # pylint: disable=protected-access
    assert isinstance(error, AmbiguousVm)
    assert error.action == "create"
    assert [c["id"] for c in error.details["candidates"]] == ["vm-42", "vm-51"]
    assert "2 VMs match this name: path-of-vm-42 (vm-42), path-of-vm-51 (vm-51)" in error.message
    # Only VM folders are asked; no inventory-path shortcut is taken for a bare name.
    assert sorted(index.calls) == [("child", "group-v3", "web01"), ("child", "group-v9", "web01")]


def test_resolve_unique_bare_name_by_folder_and_vapp():
    web = vm_mo("vm-7")
    backend, index = folder_backend({"group-v3": VM_FOLDER}, children={("resgroup-v5", "web01"): web})
    app = vim.VirtualApp("resgroup-v5", None)
    rows = backend._view_properties(ROOT, None, None) + [(app, {"name": "app"})]  # pylint: disable=protected-access
    backend._view_properties = lambda container, obj_type, paths, more=(): rows  # pylint: disable=protected-access
    assert backend._resolve(["web01"]) == {"web01": web}  # pylint: disable=protected-access
    assert sorted(index.calls) == [("child", "group-v3", "web01"), ("child", "resgroup-v5", "web01")]


def test_resolve_a_folder_named_like_the_vm_is_not_the_vm():
    backend, _index = folder_backend({"group-v3": VM_FOLDER},
                                     children={("group-v3", "web01"): vim.Folder("group-v8", None)})
    assert isinstance(backend._resolve(["web01"])["web01"], VmNotFound)  # pylint: disable=protected-access


def test_resolve_scope_folder_is_asked_too_and_folders_are_read_once_per_scope_container():
    team = vim.Folder("group-v9", None)
    web = vm_mo("vm-51")
    backend, index = folder_backend({}, children={("group-v9", "web01"): web}, scope=[team])
    assert backend._resolve(["web01"]) == {"web01": web}  # pylint: disable=protected-access
    assert index.calls == [("child", "group-v9", "web01")]
    assert backend.views == [("group-v9", vim.Folder, [(vim.VirtualApp, ["name"])])]


def test_resolve_bare_name_in_many_folders_takes_one_search():
    folders = {"group-v%d" % i: VM_FOLDER for i in range(_vmware.FIND_CHILD_MAX + 1)}
    backend, index = folder_backend(folders)
    searched = []
    backend._search_names = lambda names: searched.append(names) or {"web01": [vm_mo("vm-1")]}  # pylint: disable=protected-access
    assert backend._resolve(["web01"])["web01"]._moId == "vm-1"  # pylint: disable=protected-access
    assert searched == [["web01"]]
    assert index.calls == []


def test_resolve_batch_checks_every_bare_name_in_every_folder_and_qualified_refs_by_index():
    uuid = "4207f3c1-5b1a-2e6c-8d3e-0a1b2c3d4e5f"
    by_uuid = vm_mo("vm-3")
    backend, index = folder_backend(
        {"group-v3": VM_FOLDER, "group-v9": VM_FOLDER},
        children={("group-v3", "web01"): vm_mo("vm-1"), ("group-v3", "twin"): vm_mo("vm-8"),
                  ("group-v9", "twin"): vm_mo("vm-9")})
    index.uuids[(uuid, True)] = [by_uuid]
    result = backend._resolve(["web01", "twin", uuid, "vm-5"])  # pylint: disable=protected-access
    assert sorted(index.calls) == sorted(("child", f, n) for f in ("group-v3", "group-v9") for n in ("web01", "twin"))
    assert len(backend.views) == 1
    assert result["web01"]._moId == "vm-1"
    assert isinstance(result["twin"], AmbiguousVm)
    assert [c["id"] for c in result["twin"].details["candidates"]] == ["vm-8", "vm-9"]
    assert result[uuid] is by_uuid and result["vm-5"]._moId == "vm-5"


def test_resolve_big_batch_checks_every_bare_name_in_one_query():
    names = ["vm%d" % i for i in range(_vmware.FIND_CHILD_MAX + 1)]
    backend, index = folder_backend({"group-v3": VM_FOLDER})
    searched = []

    def search(wanted):
        searched.append(list(wanted))
        return dict({n: [vm_mo("vm-%d" % i)] for i, n in enumerate(wanted)}, vm0=[vm_mo("vm-8"), vm_mo("vm-9")])

    backend._search_names = search  # pylint: disable=protected-access
    result = backend._resolve(names)  # pylint: disable=protected-access
    assert searched == [names]
    assert backend.views == [] and index.calls == []
    assert isinstance(result["vm0"], AmbiguousVm) and result["vm1"]._moId == "vm-1"


def test_resolve_with_a_folder_takes_the_inventory_path_without_a_search():
    web = vm_mo("vm-51")
    backend, index = folder_backend({"group-v3": VM_FOLDER}, params={"folder": "team"})
    index.paths = {"DC2/vm/team/web01": web}
    backend._datacenters = ["DC1", "DC2"]  # pylint: disable=protected-access
    assert backend._resolve(["web01"]) == {"web01": web}  # pylint: disable=protected-access
    assert index.calls == ["DC1/vm/team/web01", "DC2/vm/team/web01"] and backend.views == []


def test_resolve_same_folder_path_in_two_datacenters_is_ambiguous():
    backend, index = folder_backend({}, params={"folder": "team"})
    index.paths = {"DC1/vm/team/web01": vm_mo("vm-1"), "DC2/vm/team/web01": vm_mo("vm-2")}
    backend._datacenters = ["DC1", "DC2"]  # pylint: disable=protected-access
    error = backend._resolve(["web01"])["web01"]  # pylint: disable=protected-access
    assert isinstance(error, AmbiguousVm)
    assert [c["id"] for c in error.details["candidates"]] == ["vm-1", "vm-2"]
    assert "path-of-vm-1 (vm-1)" in error.message


def test_resolve_search_mode_checks_every_name_in_one_query():
    searched = []
    index = FakeIndex()
    backend = make_backend({"vm_lookup": "search"}, content=SimpleNamespace(searchIndex=index))
    backend._datacenters = ["DC1"]  # pylint: disable=protected-access
    deep = vm_mo("vm-7")

    def search(names):
        searched.append(list(names))
        return {"deep": [deep], "gone": [], "twice": [vm_mo("vm-8"), vm_mo("vm-9")]}

    backend._search_names = search  # pylint: disable=protected-access
    backend._path_of = lambda obj: None  # pylint: disable=protected-access
    result = backend._resolve(["deep", "gone", "twice"])  # pylint: disable=protected-access
    assert searched == [["deep", "gone", "twice"]]
    assert result["deep"] is deep
    assert isinstance(result["gone"], VmNotFound) and result["gone"].action == "create"
    assert isinstance(result["twice"], AmbiguousVm)


def test_resolve_search_mode_skips_the_path_index():
    index = FakeIndex(paths={"DC1/vm/web01": vm_mo("vm-1")})
    backend = make_backend({"vm_lookup": "search"}, content=SimpleNamespace(searchIndex=index))
    backend._search_names = lambda names: {n: [vm_mo("vm-1")] for n in names}  # pylint: disable=protected-access
    assert backend._resolve(["web01"])["web01"]._moId == "vm-1"  # pylint: disable=protected-access
    assert index.calls == []


def test_resolve_uuid_instance_first_then_bios_and_duplicates_fail():
    uuid = "4207f3c1-5b1a-2e6c-8d3e-0a1b2c3d4e5f"
    one, two = vm_mo("vm-1"), vm_mo("vm-2")
    index = FakeIndex(uuids={(uuid, True): [], (uuid, False): [one, two]})
    backend = make_backend(content=SimpleNamespace(searchIndex=index))
    backend._path_of = lambda obj: None  # pylint: disable=protected-access
    assert isinstance(backend._resolve([uuid.upper()])[uuid.upper()], AmbiguousVm)  # pylint: disable=protected-access
    index.uuids[(uuid, True)] = [two]
    assert backend._resolve([uuid])[uuid] is two  # pylint: disable=protected-access


def test_resolve_moid_needs_no_lookup():
    backend = make_backend(content=SimpleNamespace(searchIndex=FakeIndex()))
    assert backend._resolve(["vm-42"])["vm-42"]._moId == "vm-42"  # pylint: disable=protected-access


# --- tasks ---------------------------------------------------------------------------------------


def waiting_backend(states):
    """A backend whose task reports the given info dicts in turn (the last one repeats)."""
    backend = make_backend()
    seq = list(states)
    backend._task_state = lambda task, vm=None: seq.pop(0) if len(seq) > 1 else seq[0]  # pylint: disable=protected-access
    return backend


VM = VmRecord(name="web01", id="vm-1", power_state="running", handle=None)
TASK = SimpleNamespace(_moId="task-9")


def test_wait_returns_the_result():
    backend = waiting_backend([{"info.state": "queued"}, {"info.state": "running", "info.progress": 40},
                               {"info.state": "success", "info.result": "snapshot-5"}])
    assert backend._wait(TASK, VM, 10) == "snapshot-5"  # pylint: disable=protected-access


def test_wait_failed_task_raises_its_own_text():
    fault = SimpleNamespace(msg="An error occurred while saving the snapshot: disk full.")
    backend = waiting_backend([{"info.state": "error", "info.error": fault}])
    with pytest.raises(ProviderError) as error:
        backend._wait(TASK, VM, 10, snapshot="s1")  # pylint: disable=protected-access
    assert error.value.reason == "An error occurred while saving the snapshot: disk full."
    assert error.value.details["task"] == "task-9"
    assert (error.value.vm, error.value.snapshot) == ("web01", "s1")


def test_wait_timeout_names_the_task_and_its_last_state():
    backend = waiting_backend([{"info.state": "running", "info.progress": 30,
                                "info.descriptionId": "VirtualMachine.createSnapshot"}])
    with pytest.raises(SnapshotTimeout) as error:
        backend._wait(TASK, VM, 0.05)  # pylint: disable=protected-access
    assert error.value.last_state == "running (30%)"
    assert "task-9" in error.value.message and "VirtualMachine.createSnapshot" in error.value.message


# --- actions -------------------------------------------------------------------------------------


class Recorder(object):
    """Stands in for a VM or snapshot MO: records method calls, returns a task name."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        def call(**kwargs):
            self.log.append((name, kwargs))
            return name
        return call


def acting_backend(power_after_revert, consolidation=False, params=None):
    log = []
    backend = make_backend(params)
    backend._wait = lambda task, vm, timeout, snapshot=None, read_vm=False: log.append(("wait", task))  # pylint: disable=protected-access
    props = {"runtime.powerState": power_after_revert, "runtime.consolidationNeeded": consolidation}
    backend._properties = lambda objs, kind, paths: [(None, {p: props[p] for p in paths})]  # pylint: disable=protected-access
    vm = VmRecord(name="web01", id="vm-1", power_state="running", handle=Recorder(log))
    snap = Snapshot(name="s1", id="snapshot-1", handle=Recorder(log))
    return backend, vm, snap, log


@pytest.mark.parametrize("asked, after_revert, calls", [
    ("snapshot", "poweredOff", ["RevertToSnapshot_Task"]),
    ("running", "poweredOff", ["RevertToSnapshot_Task", "PowerOnVM_Task"]),
    ("running", "poweredOn", ["RevertToSnapshot_Task"]),
    ("stopped", "poweredOff", ["RevertToSnapshot_Task"]),
    ("stopped", "suspended", ["RevertToSnapshot_Task", "PowerOffVM_Task"]),
    ("paused", "poweredOn", ["RevertToSnapshot_Task", "SuspendVM_Task"]),
    ("paused", "poweredOff", ["RevertToSnapshot_Task", "PowerOnVM_Task", "SuspendVM_Task"]),
])
def test_revert_power_state(asked, after_revert, calls):
    backend, vm, snap, log = acting_backend(after_revert)
    backend.revert(vm, snap, asked, 10)
    assert [c[0] for c in log if c[0] != "wait"] == calls
    assert log[0][1] == {"suppressPowerOn": asked == "stopped"}


def test_delete_warns_when_consolidation_is_needed():
    backend, vm, snap, log = acting_backend("poweredOn", consolidation=True)
    backend.delete(vm, snap, True, 10)
    assert log[0] == ("RemoveSnapshot_Task", {"removeChildren": True, "consolidate": True})
    assert [c[0] for c in log if c[0] != "wait"] == ["RemoveSnapshot_Task"]
    assert "needs disk consolidation" in backend.warnings[0]


def test_delete_consolidates_when_asked():
    backend, vm, snap, log = acting_backend("poweredOn", consolidation=True, params={"consolidate": True})
    backend.delete(vm, snap, False, 10)
    assert [c[0] for c in log if c[0] != "wait"] == ["RemoveSnapshot_Task", "ConsolidateVMDisks_Task"]
    assert backend.warnings == []


def test_delete_without_consolidation_does_nothing_more():
    backend, vm, snap, log = acting_backend("poweredOn", consolidation=False, params={"consolidate": True})
    backend.delete(vm, snap, False, 10)
    assert [c[0] for c in log if c[0] != "wait"] == ["RemoveSnapshot_Task"]


def test_update_renames_and_redescribes_in_one_call():
    backend, vm, snap, log = acting_backend("poweredOn")
    backend.update(vm, snap, new_name="s2", description="text")
    assert log == [("RenameSnapshot", {"name": "s2", "description": "text"})]


def test_update_refuses_to_empty_a_description():
    backend, vm, snap, log = acting_backend("poweredOn")
    snap.description = "old"
    with pytest.raises(InvalidRequest):
        backend.update(vm, snap, description="")
    assert log == []


def request(**kw):
    values = dict(name="s", description="", marker=None, memory=False, quiesce=False, strict=False, timeout=10)
    values.update(kw)
    return CreateRequest(**values)


def test_check_create_prechecks():
    backend = make_backend()
    stopped = VmRecord(name="web01", id="vm-1", power_state="stopped", handle=None)
    with pytest.raises(PrecheckFailed, match="quiesce needs a powered-on VM"):
        backend.check_create(stopped, request(quiesce=True, strict=True), [])
    backend.check_create(stopped, request(quiesce=True), [])  # not strict: the engine warns afterwards
    template = VmRecord(name="t", id="vm-2", power_state="stopped", handle=None, extra={"template": True})
    with pytest.raises(PrecheckFailed, match="template"):
        backend.check_create(template, request(), [])
    deep = Snapshot(name="deep", current=True, depth=_vmware.MAX_CHAIN_DEPTH)
    with pytest.raises(PrecheckFailed, match="at most 32"):
        backend.check_create(VM, request(), [deep])
    needs = VmRecord(name="web01", id="vm-1", power_state="running", handle=None,
                     extra={"consolidation_needed": True})
    backend.check_create(needs, request(), [])
    assert "already needs disk consolidation" in backend.warnings[0]


def test_list_snapshots_uses_the_prefetched_tree_once():
    backend = make_backend()
    fetched = []

    def properties(objs, kind, paths):
        fetched.append(paths)
        return [(None, {"snapshot": None, "runtime.powerState": "poweredOff"})]

    backend._properties = properties  # pylint: disable=protected-access
    vm = VmRecord(name="web01", id="vm-1", power_state="running", handle=None, extra={"_snapshot_info": tree()})
    assert len(backend.list_snapshots(vm)) == 4
    assert fetched == []
    assert backend.list_snapshots(vm) == []
    assert len(fetched) == 1 and vm.power_state == "stopped"


def test_connection_spec_has_community_vmware_fallbacks_and_no_log():
    spec = _vmware.connection_argument_spec()
    assert spec["password"]["no_log"] is True
    assert {k: v["fallback"][1][0] for k, v in spec.items()} == {
        "hostname": "VMWARE_HOST", "username": "VMWARE_USER", "password": "VMWARE_PASSWORD",
        "port": "VMWARE_PORT", "validate_certs": "VMWARE_VALIDATE_CERTS",
        "proxy_host": "VMWARE_PROXY_HOST", "proxy_port": "VMWARE_PROXY_PORT"}
    assert spec["validate_certs"]["default"] is True


def test_create_reads_the_tree_with_the_finished_task_and_serves_it_once_more():
    """CreateSnapshot_Task, then one query for the task and the VM together; the engine's next
    list_snapshots costs nothing."""
    backend = make_backend()
    log = []
    vm = VmRecord(name="web01", id="vm-1", power_state="running", handle=Recorder(log))
    created = tree()

    def task_state(task, vm_arg=None):
        log.append(("query", vm_arg is not None))
        vm_arg.extra["_task_vm_state"] = {"snapshot": created, "runtime.powerState": "poweredOn"}
        return {"info.state": "success", "info.result": SimpleNamespace(_moId="snapshot-3")}

    backend._task_state = task_state  # pylint: disable=protected-access
    backend._properties = lambda *a: pytest.fail("extra round trip")  # pylint: disable=protected-access
    snap = backend.create(vm, request(name="b"))
    assert snap.id == "snapshot-3" and snap.current
    assert [c[0] for c in log] == ["CreateSnapshot_Task", "query"] and log[1] == ("query", True)
    assert len(backend.list_snapshots(vm)) == 4


# --- proxy (issue 11) ----------------------------------------------------------------------------


class _RecordingConnect(object):
    """Stands in for pyVim.connect.SmartConnect: records its keyword arguments."""

    def __init__(self):
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return SimpleNamespace(content=SimpleNamespace(), _stub=SimpleNamespace(poolSize=5))


def _connect_params(**extra):
    params = {"hostname": "vc.example.com", "port": 443, "username": "u", "password": "p", "validate_certs": False,
              "state": "present"}
    params.update(extra)
    return params


@pytest.mark.parametrize("extra, expected", [
    ({"proxy_host": "proxy.example.com", "proxy_port": 3128},
     {"httpProxyHost": "proxy.example.com", "httpProxyPort": 3128}),
    ({"proxy_host": "proxy.example.com"}, {"httpProxyHost": "proxy.example.com", "httpProxyPort": 80}),
    ({}, {}),
    ({"proxy_host": None, "proxy_port": None}, {}),
])
def test_proxy_options_reach_smartconnect(monkeypatch, extra, expected):
    recorder = _RecordingConnect()
    monkeypatch.setattr(_vmware, "SmartConnect", recorder)
    _vmware.VmwareBackend(_connect_params(**extra))
    (call,) = recorder.calls
    assert {k: v for k, v in call.items() if k.startswith("httpProxy")} == expected
    assert call["host"] == "vc.example.com" and call["port"] == 443


def test_proxy_port_without_proxy_host_is_refused_before_connecting(monkeypatch):
    recorder = _RecordingConnect()
    monkeypatch.setattr(_vmware, "SmartConnect", recorder)
    with pytest.raises(_vmware.ConnectionFailed) as caught:
        _vmware.VmwareBackend(_connect_params(proxy_port=3128))
    assert "proxy_host" in caught.value.reason and recorder.calls == []


def test_unreachable_through_a_proxy_says_so(monkeypatch):
    def refuse(**kwargs):
        raise OSError("Tunnel connection failed: 502 Bad Gateway")
    monkeypatch.setattr(_vmware, "SmartConnect", refuse)
    with pytest.raises(_vmware.ConnectionFailed) as caught:
        _vmware.VmwareBackend(_connect_params(proxy_host="proxy.example.com", proxy_port=3128))
    assert "through the proxy proxy.example.com:3128" in caught.value.reason
    assert "proxy" in caught.value.hint
