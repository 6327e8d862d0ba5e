"""Snapshot size and growth on VMware (issue 12 point 2), against vcsim with real snapshot files.

vcsim writes a snapshot's state and memory files and a delta disk per disk on the datastore's backing
directory and lists them in layoutEx as vSphere does (tests/backends/vcsim, patch 0008). "The guest writes
after the snapshot" is simulated by appending bytes to the running delta's extent on this machine; vSphere
picks such writes up when it refreshes the VM's storage (RefreshStorageInfo, or its own periodic refresh).

- vmware_snapshot_info reports a snapshot's size (its .vmsn/.vmem plus the delta written after it), equal to
  the files pyvmomi lists, and the size grows by what was written.
- a maintenance run whose change writes 64 MiB into the delta, with a growth limit smaller than that and
  action stop, reverts the change: the decision's measurement refreshes the VM's storage itself (the change
  does not), so the growth is measured from the snapshot's files ("snapshot"), not the disks' allocation.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import _vsphere, _vsphere_vm, vmware_backend, vsphere_remove_snapshots  # pylint: disable=import-error
from test_module_contract import run_module  # pylint: disable=import-error

MIB = 1024 ** 2

# The user's change: a guest writing data, here straight into the running delta of the VM's first disk.
WRITER = '''
import json, os, sys
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim
conn, name, size = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
si = SmartConnect(host=conn["hostname"], port=int(conn["port"]), user=conn["username"], pwd=conn["password"],
                  disableSslCertValidation=True)
view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
vm = [v for v in view.view if v.name == name][0]
files = {f.key: f for f in vm.layoutEx.file}
extent = [files[k].name for k in vm.layoutEx.disk[0].chain[-1].fileKey if files[k].type == "diskExtent"][0]
store, rel = extent[1:].split("] ", 1)
url = [d.info.url for d in vm.datastore if d.name == store][0]
with open(os.path.join(url, rel), "ab") as handle:
    handle.write(b"\\x5a" * size)
Disconnect(si)
'''


def _pyvmomi_view(conn, vm):
    """From the API: the VM's snapshots, its layoutEx as plain data and the running delta's extent file."""
    from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
    si = _vsphere(conn)
    try:
        machine = _vsphere_vm(si, vm)
        machine.RefreshStorageInfo()
        files = {f.key: (f.name, f.type, f.size) for f in machine.layoutEx.file}
        chain = [list(u.fileKey) for u in machine.layoutEx.disk[0].chain]
        snaps = {s.key._moId: (s.dataKey, s.memoryKey, [list(u.fileKey) for u in s.disk[0].chain])
                 for s in machine.layoutEx.snapshot}
        names = {}
        pending = list(machine.snapshot.rootSnapshotList) if machine.snapshot else []
        while pending:
            node = pending.pop(0)
            names[node.name] = node.snapshot._moId
            pending.extend(node.childSnapshotList or [])
        current = machine.snapshot.currentSnapshot._moId if machine.snapshot else None
        url = {d.name: d.info.url for d in machine.datastore}
    finally:
        Disconnect(si)
    extent = next(files[k][0] for k in chain[-1] if files[k][1] == "diskExtent")
    store, rel = extent[1:].split("] ", 1)
    return {"files": files, "chain": chain, "snaps": snaps, "names": names, "current": current,
            "extent": Path(url[store]) / rel}


def _write(conn, vm, size, tmp_path):
    import subprocess  # pylint: disable=import-outside-toplevel
    script = tmp_path / "guest_writes.py"
    script.write_text(WRITER)
    subprocess.run([sys.executable, str(script), json.dumps(conn), vm, str(size)], check=True)


def test_info_reports_the_snapshot_size_and_its_growth(vcsim, tmp_path):
    vm = "DC0_C0_RP0_VM3"
    backend = vmware_backend(vcsim, [vm])
    args = dict(backend.module_args, vm=vm)
    try:
        assert run_module("vmware_snapshot", dict(args, name="pcs-size", memory=True))["changed"]
        api = _pyvmomi_view(backend.conn, vm)
        sid = api["names"]["pcs-size"]
        data_key, memory_key, frozen = api["snaps"][sid]
        assert api["chain"][:len(frozen)] == frozen and len(api["chain"]) == len(frozen) + 1
        expected = sum(api["files"][k][2] for k in [data_key, memory_key] + api["chain"][-1])
        info = run_module("vmware_snapshot_info", args)
        snap = next(s for s in info["vms"][0]["snapshots"] if s["name"] == "pcs-size")
        assert snap["size_bytes"] == expected and expected > 0, (snap, api)
        assert snap["size_note"].startswith("layoutEx: ")

        _write(backend.conn, vm, 64 * MIB, tmp_path)
        grown = _pyvmomi_view(backend.conn, vm)  # RefreshStorageInfo: what vSphere's own refresh does
        extent_key = api["chain"][-1][-1]
        assert grown["files"][extent_key][2] == api["files"][extent_key][2] + 64 * MIB
        assert grown["files"][extent_key][2] == grown["extent"].stat().st_size
        info = run_module("vmware_snapshot_info", args)
        after = next(s for s in info["vms"][0]["snapshots"] if s["name"] == "pcs-size")
        assert after["size_bytes"] - snap["size_bytes"] == 64 * MIB, (snap, after)
    finally:
        vsphere_remove_snapshots(backend.conn, vm, {"pcs-size"})


@pytest.fixture(scope="module")
def growth_run(vcsim, tmp_path_factory):  # pylint: disable=redefined-outer-name
    """One maintenance run on vcsim whose change writes 64 MiB into the VM's delta, with a growth limit of
    0.03 GiB and action stop: its report, its Markdown, its output and the VM read back through pyvmomi."""
    from conftest import Workspace, new_run_id  # pylint: disable=import-error,import-outside-toplevel
    tmp_path = tmp_path_factory.mktemp("vgrowth")
    vm = "DC0_C0_RP0_VM2"
    backend = vmware_backend(vcsim, [vm])
    ws = Workspace(tmp_path, "vmware", backend.conn, {"h1": vm}, group_vars=backend.inventory_vars)
    script = tmp_path / "guest_writes.py"
    script.write_text(WRITER)
    # The change only writes; it does not refresh vSphere's view: the maintenance run's measurement must.
    argv = [sys.executable, str(script), json.dumps(backend.conn), vm, str(64 * MIB)]
    ws.change.write_text(
        "- name: My change | the guest writes 64 MiB\n"
        "  ansible.builtin.command:\n"
        "    argv: %s\n"
        "  delegate_to: localhost\n" % json.dumps(argv))
    run_id = new_run_id("vgrowth")
    try:
        result = ws.run("prechange.snapshots.maintenance", {
            "prechange_run_id": run_id, "revert_or_prune_growth_limit_gb": 0.03,
            "revert_or_prune_growth_action": "stop"})
        report = json.loads((ws.report_dir / ("maintenance-%s.json" % run_id)).read_text())
        markdown = (ws.report_dir / ("maintenance-%s.md" % run_id)).read_text()
        yield {"host": report["hosts"][0], "markdown": markdown, "stdout": result.stdout,
               "api": _pyvmomi_view(backend.conn, vm)}
    finally:
        vsphere_remove_snapshots(backend.conn, vm, set(_pyvmomi_view(backend.conn, vm)["names"]))


def test_growth_over_the_limit_reverts_the_change(growth_run):  # pylint: disable=redefined-outer-name
    host, markdown = growth_run["host"], growth_run["markdown"]
    grown = host["capacity"]["growth"]
    assert grown is not None, growth_run["stdout"][-4000:]
    assert grown["growth_bytes"] == 64 * MIB and grown["over"] is True and grown["action"] == "stop", grown
    assert grown["message"].startswith("the snapshot grew by 64 MiB during the change ("), grown
    assert host["action"] == "reverted", host
    assert "the change is treated as failed and reverted (growth limit, action stop)" in host["reason"]
    assert "## Storage and growth" in markdown and "over: reverted" in markdown
    # Read back: the revert went back to the run's snapshot, which stays (kept as reverted, current); the
    # 64 MiB delta was discarded and a fresh one started on the disk the snapshot froze.
    api = growth_run["api"]
    assert len(api["names"]) == 1 and api["current"] == next(iter(api["names"].values())), api["names"]
    frozen = api["snaps"][api["current"]][2]
    assert api["chain"][:len(frozen)] == frozen and len(api["chain"]) == len(frozen) + 1
    assert api["extent"].stat().st_size < MIB


def test_growth_is_measured_from_the_snapshot_files(growth_run):  # pylint: disable=redefined-outer-name
    """At snapshot time the snapshot is its .vmem (the VM's 32 MiB of memory), its 8 KiB .vmsn and the new
    delta (descriptor and 4 KiB extent); at the decision the delta has the change's 64 MiB more."""
    host, markdown = growth_run["host"], growth_run["markdown"]
    grown = host["capacity"]["growth"]
    assert host["capacity"]["at_snapshot"]["snapshot_bytes"] == 32 * MIB + 8 * 1024 + 4096 + 152, host
    assert grown["measured"] == "snapshot", grown
    assert grown["message"].startswith("the snapshot grew by 64 MiB during the change (snapshot 32 MiB -> 96 MiB)")
    assert "| +0.06 GiB (snapshot) | over: reverted |" in markdown, markdown
