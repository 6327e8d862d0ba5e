# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A VM name that two folders share is refused unless qualified (issue 14, point 6), against vcsim.

vSphere keeps VM names unique per folder only. Here ``amb-twin`` is both directly in DC0's VM folder
(where an inventory-path lookup finds it at once) and in the sub-folder ``amb``; ``amb-solo`` is
unique. Every way of naming ``amb-twin`` bare (vm_lookup auto and search; one VM per task and a
batch; create, revert, delete, info) must fail with AmbiguousVm listing both, and leave both VMs as
they were, read back from the API; the other VM of a batch still acts. Named with ``folder``, a
managed object id or a UUID, the same VM is found; a unique bare name still works.

    python -m pytest tests/integration/test_vmware_ambiguous.py
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

from conftest import REPO, _vsphere, _vsphere_tree, run_playbook  # pylint: disable=import-error

pyVmomi = pytest.importorskip("pyVmomi")
from pyVim.task import WaitForTask  # noqa: E402  pylint: disable=wrong-import-position
from pyVmomi import vim  # noqa: E402  pylint: disable=wrong-import-position

# The workflow's lookup is driven directly (the checkout as the collection, linked by conftest).
sys.path.insert(0, os.path.join(REPO, "build", "collections"))
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import AmbiguousVm  # noqa: E402
from ansible_collections.prechange.snapshots.plugins.module_utils._vmware import VmwareBackend  # noqa: E402
from ansible_collections.prechange.snapshots.plugins.module_utils._workflow import resolve_vms  # noqa: E402

TWIN, SOLO, FOLDER = "amb-twin", "amb-solo", "amb"
MODES = ("auto", "search")
ACTIONS = (  # (key, module, arguments): the order they run in, batch revert/delete need the create first
    ("create", "vmware_snapshot", {"name": "amb-new", "memory": False}),
    ("revert", "vmware_snapshot", {"name": "keep", "state": "reverted"}),
    ("delete", "vmware_snapshot", {"name": "keep", "state": "absent"}),
    ("info", "vmware_snapshot_info", {}),
)


def _child(si, folder, name):
    return si.content.searchIndex.FindChild(folder, name)


def _clone(si, source, folder, name):
    existing = _child(si, folder, name)
    if existing is not None:
        return existing
    spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(), powerOn=False)
    WaitForTask(source.CloneVM_Task(folder=folder, name=name, spec=spec), si=si)
    return _child(si, folder, name)


def _reset_snapshots(si, vm, names):
    if vm.snapshot:
        WaitForTask(vm.RemoveAllSnapshots_Task(), si=si)
    for name in names:
        WaitForTask(vm.CreateSnapshot_Task(name, "made by the test", False, False), si=si)


def _state(vm):
    """What must not change on a refused call: every snapshot (name, id), the current one, the power state."""
    nodes = list(_vsphere_tree(vm))
    current = vm.snapshot.currentSnapshot if vm.snapshot else None
    return {
        "snapshots": sorted((n.name, n.snapshot._moId) for n in nodes),  # pylint: disable=protected-access
        "current": next((n.name for n in nodes if current is not None and n.snapshot == current), None),
        "power": str(vm.runtime.powerState),
    }


@pytest.fixture(scope="module")
def twins(vcsim):  # pylint: disable=redefined-outer-name
    """amb-twin directly in DC0/vm and in DC0/vm/amb, amb-solo directly in DC0/vm; each with snapshots
    keep -> later (current: later), so a revert to keep or a delete of keep would show."""
    si = _vsphere(vcsim)
    dc = si.content.searchIndex.FindByInventoryPath("DC0")
    root = dc.vmFolder
    sub = _child(si, root, FOLDER) or root.CreateFolder(FOLDER)
    source = si.content.searchIndex.FindByInventoryPath("DC0/vm/DC0_H0_VM1")
    vms = {"root": _clone(si, source, root, TWIN), "sub": _clone(si, source, sub, TWIN),
           "solo": _clone(si, source, root, SOLO)}
    for vm in vms.values():
        _reset_snapshots(si, vm, ["keep", "later"])
    yield {"si": si, "vms": vms, "conn": vcsim}


def _play(conn, calls, path):
    """A playbook running ``calls`` ([(key, module, args, check_mode)]) with ignore_errors; every result
    lands in one JSON file, keyed."""
    tasks = []
    for key, module, args, check in calls:
        tasks.append({"name": key, "prechange.snapshots.%s" % module: args, "register": "r_" + key,
                      "ignore_errors": True, "check_mode": check})
    keys = ["r_" + key for key, _m, _a, _c in calls]
    tasks.append({"ansible.builtin.copy": {
        "content": "{{ dict(%s | zip(query('vars', *%s))) | to_json }}" % (json.dumps(keys), json.dumps(keys)),
        "dest": str(path) + ".json"}, "check_mode": False})
    play = [{"hosts": "localhost", "gather_facts": False,
             "module_defaults": {"group/prechange.snapshots.vmware": {
                 "hostname": conn["hostname"], "port": conn["port"], "username": conn["username"],
                 "password": conn["password"], "validate_certs": False}},
             "tasks": tasks}]
    path.write_text(json.dumps(play))
    proc = run_playbook(str(path))
    out = path.with_name(path.name + ".json")
    assert out.exists(), proc.stdout[-5000:]
    return {key[2:]: value for key, value in json.loads(out.read_text()).items()}


def _candidates_re(vms):
    """Both twins, inventory path and moid each, in the AmbiguousVm message."""
    return [re.escape("DC0/vm/%s (%s)" % (TWIN, vms["root"]._moId)),  # pylint: disable=protected-access
            re.escape("DC0/vm/%s/%s (%s)" % (FOLDER, TWIN, vms["sub"]._moId))]  # pylint: disable=protected-access


def _assert_ambiguous(result, action, vms, where):
    assert result.get("error") == "AmbiguousVm", (where, result)
    verb = {"create": "create", "revert": "revert", "delete": "delete", "info": "list"}[action]
    assert re.search(r"Failed to %s snapshots? (?:'[^']*' )?of VM '%s' on vmware: 2 VMs match this name: " % (verb, TWIN),
                     result["msg"]), (where, result["msg"])
    for pattern in _candidates_re(vms):
        assert re.search(pattern, result["msg"]), (where, result["msg"])
    assert result["msg"].endswith(". Name the VM by its instance UUID or managed object id, or give its 'folder' (and "
                                  "'datacenter' when several datacenters have that folder); nothing was changed."), (
        where, result["msg"])
    moids = sorted(c["id"] for c in result["candidates"])
    assert moids == sorted(vm._moId for k, vm in vms.items() if k != "solo"), where  # pylint: disable=protected-access


def test_bare_name_in_two_folders_is_refused_everywhere_and_nothing_changes(twins, tmp_path):  # pylint: disable=redefined-outer-name
    vms = twins["vms"]
    before = {k: _state(vm) for k, vm in vms.items()}
    calls = []
    for mode in MODES:
        for action, module, args in ACTIONS:
            one = dict(args, vm=TWIN, vm_lookup=mode)
            calls.append(("one_%s_%s" % (mode, action), module, one, False))
            # A datacenter narrows the scope but does not qualify the name: both twins are in DC0.
            calls.append(("dc_%s_%s" % (mode, action), module, dict(one, datacenter="DC0"), False))
            batch_args = dict(args, vms=[TWIN, SOLO], vm_lookup=mode)
            if "name" in args:
                # The unique VM of the batch gets this snapshot, is reverted to it, and loses it again.
                batch_args["name"] = "amb-batch-%s" % mode
            calls.append(("batch_%s_%s" % (mode, action), module, batch_args, False))
    results = _play(twins["conn"], calls, tmp_path / "refused.yml")

    for mode in MODES:
        for action, _module, _args in ACTIONS:
            for kind in ("one", "dc"):
                _assert_ambiguous(results["%s_%s_%s" % (kind, mode, action)], action, vms, (kind, mode, action))
            batch = results["batch_%s_%s" % (mode, action)]
            if action == "info":
                # The info module fails as a whole on a VM it cannot name.
                _assert_ambiguous(batch, action, vms, ("batch", mode, action))
                continue
            # One result per VM: the twin is refused, the unique VM acts.
            assert batch["failed_vms"] == [TWIN], (mode, action, batch)
            rows = {row["item"]: row for row in batch["results"]}
            assert sorted(rows) == sorted([TWIN, SOLO]), batch
            _assert_ambiguous(rows[TWIN], action, vms, ("batch row", mode, action))
            assert rows[SOLO]["changed"] is True and rows[SOLO]["vm"]["id"] == vms["solo"]._moId, (  # pylint: disable=protected-access
                mode, action, rows[SOLO])
            assert batch["msg"].startswith("Failed on 1 of 2 VMs: "), batch["msg"]

    after = {k: _state(vm) for k, vm in vms.items()}
    assert after["root"] == before["root"]
    assert after["sub"] == before["sub"]
    # The unique VM got, was reverted to, and lost each batch snapshot: back where it was.
    assert after["solo"]["snapshots"] == before["solo"]["snapshots"]


def test_qualified_names_and_unique_bare_names_still_work(twins, tmp_path):  # pylint: disable=redefined-outer-name
    vms = twins["vms"]
    root, sub, solo = vms["root"], vms["sub"], vms["solo"]
    ids = {k: vm._moId for k, vm in vms.items()}  # pylint: disable=protected-access
    calls = [
        ("folder", "vmware_snapshot", {"vm": TWIN, "folder": FOLDER, "name": "q-folder", "memory": False}, False),
        ("folder_abs", "vmware_snapshot_info", {"vm": TWIN, "folder": "DC0/vm/" + FOLDER}, False),
        ("root_folder", "vmware_snapshot_info", {"vm": TWIN, "folder": "DC0/vm"}, False),
        ("moid", "vmware_snapshot", {"vm": ids["root"], "name": "q-moid", "memory": False}, False),
        ("uuid", "vmware_snapshot_info", {"vm": sub.config.instanceUuid}, False),
        ("batch_folder", "vmware_snapshot", {"vms": [TWIN], "folder": FOLDER, "name": "q-batch",
                                             "memory": False}, False),
        ("batch_ids", "vmware_snapshot_info", {"vms": [ids["root"], sub.config.instanceUuid]}, False),
        ("solo_auto", "vmware_snapshot", {"vm": SOLO, "name": "q-solo", "memory": False}, False),
        ("solo_search", "vmware_snapshot_info", {"vm": SOLO, "vm_lookup": "search"}, False),
        ("solo_batch", "vmware_snapshot", {"vms": [SOLO, "DC0_H0_VM1"], "name": "q-solo", "memory": False},
         True),
    ]
    results = _play(twins["conn"], calls, tmp_path / "qualified.yml")
    for key, result in results.items():
        assert not result.get("failed"), (key, result)
    assert results["folder"]["vm"]["id"] == ids["sub"] and results["folder"]["changed"]
    assert results["folder_abs"]["vms"][0]["vm"]["id"] == ids["sub"]
    assert results["root_folder"]["vms"][0]["vm"]["id"] == ids["root"]
    assert results["moid"]["vm"]["id"] == ids["root"] and results["moid"]["changed"]
    assert results["uuid"]["vms"][0]["vm"]["id"] == ids["sub"]
    assert [r["vm"]["id"] for r in results["batch_folder"]["results"]] == [ids["sub"]]
    assert [v["vm"]["id"] for v in results["batch_ids"]["vms"]] == [ids["root"], ids["sub"]]
    assert results["solo_auto"]["vm"]["id"] == ids["solo"] and results["solo_auto"]["changed"]
    assert results["solo_search"]["vms"][0]["vm"]["id"] == ids["solo"]
    assert results["solo_batch"]["results"][0]["vm"]["id"] == ids["solo"]
    # Read back: each snapshot went to the VM that was named.
    names = {k: {n for n, _id in _state(vm)["snapshots"]} for k, vm in (("root", root), ("sub", sub), ("solo", solo))}
    assert {"q-folder", "q-batch"} <= names["sub"] and not {"q-folder", "q-batch"} & names["root"]
    assert "q-moid" in names["root"] and "q-moid" not in names["sub"]
    assert "q-solo" in names["solo"]


@pytest.mark.parametrize("mode", MODES)
def test_the_workflows_lookup_refuses_the_bare_name_and_finds_the_others(twins, mode):  # pylint: disable=redefined-outer-name
    """The roles' hosts are looked up together (resolve_vms, batch mode): one host per VM name."""
    conn, vms = twins["conn"], twins["vms"]
    params = {"hostname": conn["hostname"], "port": conn["port"], "username": conn["username"],
              "password": conn["password"], "validate_certs": False, "state": "reverted", "vm_lookup": mode}
    items = [("web", {"vm": TWIN, "vm_match": "name"}), ("web-auto", {"vm": TWIN, "vm_match": "auto"}),
             ("solo", {"vm": SOLO, "vm_match": "name"}),
             ("by-id", {"vm": vms["sub"]._moId, "vm_match": "name"})]  # pylint: disable=protected-access
    with VmwareBackend(params) as backend:
        found = resolve_vms(backend, items)
    for host in ("web", "web-auto"):
        assert isinstance(found[host], AmbiguousVm), (host, found[host])
        assert sorted(c["id"] for c in found[host].details["candidates"]) == sorted(
            [vms["root"]._moId, vms["sub"]._moId])  # pylint: disable=protected-access
    assert found["solo"].id == vms["solo"]._moId  # pylint: disable=protected-access
    assert found["by-id"].id == vms["sub"]._moId  # pylint: disable=protected-access
