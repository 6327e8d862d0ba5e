"""The clone modules against the real backends: each clone is read back from the hypervisor (pyvmomi, proxmoxer,
libvirt): NICs cut off, marker present, linked or full, the source untouched (issue 13)."""

import json
import os
import time
import uuid

import pytest

from conftest import _vsphere, _vsphere_vm, module_result, vmware_backend

HERE = os.path.dirname(os.path.abspath(__file__))


def _clone_name(tag):
    return "pcstest-pt-clone-%s-%s" % (tag, uuid.uuid4().hex[:6])


# --- vSphere (vcsim) ------------------------------------------------------------------------------------------


@pytest.fixture
def vsphere(vcsim):
    backend = vmware_backend(vcsim, ["DC0_H0_VM0"])
    si = _vsphere(backend.conn)
    yield backend, si
    from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
    Disconnect(si)


def _vsphere_snapshot(backend, tmp_path, vm, name):
    result = module_result("vmware_snapshot", dict(backend.module_args, vm=vm, name=name, memory=False), tmp_path)
    assert not result.get("failed"), result


@pytest.mark.parametrize("full", [False, True])
def test_vmware_clone_cut_off_marked_and_removed(vsphere, tmp_path, full):
    backend, si = vsphere
    source = backend.vms[0]
    snap = "clone-src-%s" % uuid.uuid4().hex[:6]
    _vsphere_snapshot(backend, tmp_path, source, snap)
    name = _clone_name("vmw")
    args = dict(backend.module_args, vm=source, snapshot=snap, name=name, full=full, expires="1d")
    check = module_result("vmware_clone", args, tmp_path, check=True)
    assert check["changed"] and check["clone"]["id"] is None, check
    with pytest.raises(LookupError):
        _vsphere_vm(si, name)  # check mode made nothing
    started = time.monotonic()
    made = module_result("vmware_clone", args, tmp_path)
    print("vmware clone (%s) took %.2f s" % ("full" if full else "linked", time.monotonic() - started))
    assert made["changed"] and not made.get("failed"), made
    assert made["clone"]["linked"] is (not full)
    vm = _vsphere_vm(si, name)
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    nics = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    assert nics, "vcsim's VM has NICs to cut off"
    assert all(not n.connectable.connected and not n.connectable.startConnected for n in nics)
    assert "kind=clone" in vm.config.annotation and "snapshot=%s" % snap in vm.config.annotation
    assert vm.runtime.powerState == "poweredOff"
    # The source keeps its snapshot and its NICs.
    src = _vsphere_vm(si, source)
    assert any(n.snapshot and True for n in [src]) and src.snapshot is not None
    again = module_result("vmware_clone", args, tmp_path)
    assert again["changed"] is False and again["clone"]["id"] == made["clone"]["id"]
    gone = module_result("vmware_clone", dict(backend.module_args, name=name, state="absent"), tmp_path)
    assert gone["changed"] and not gone.get("failed"), gone
    with pytest.raises(LookupError):
        _vsphere_vm(si, name)


def test_vmware_clone_refuses_foreign_name(vsphere, tmp_path):
    backend, si = vsphere
    snap = "clone-src-%s" % uuid.uuid4().hex[:6]
    _vsphere_snapshot(backend, tmp_path, backend.vms[0], snap)
    args = dict(backend.module_args, vm=backend.vms[0], snapshot=snap, name="DC0_H0_VM1")
    result = module_result("vmware_clone", args, tmp_path)
    assert result["failed"]
    assert result["msg"] == (
        "Failed to clone snapshot '%s' of VM '%s' on vmware: the name 'DC0_H0_VM1' is already used by a VM this "
        "collection did not make (no clone marker). Choose another 'name', or remove that VM first; nothing was "
        "changed." % (snap, backend.vms[0]))
    gone = module_result("vmware_clone", dict(backend.module_args, name="DC0_H0_VM1", state="absent"), tmp_path)
    assert gone["failed"] and "did not make" in gone["msg"], gone
    assert _vsphere_vm(si, "DC0_H0_VM1") is not None


# --- Proxmox VE (fakepve) -------------------------------------------------------------------------------------


def test_proxmox_clone_is_full_cut_off_marked_and_removed(pve, tmp_path):
    from conftest import _pve_api, proxmox_backend  # pylint: disable=import-outside-toplevel
    backend = proxmox_backend(pve)
    api = _pve_api(backend.conn)
    snap = "clonesrc%s" % uuid.uuid4().hex[:6]
    # The cluster's guests have no network device; give db01 (102) one for the test, removed at the end.
    api.nodes("pve3").qemu(102).config.put(net0="virtio=BC:24:11:00:00:66,bridge=vmbr0")
    made = module_result("proxmox_snapshot", dict(backend.module_args, vm=102, name=snap, memory=False), tmp_path)
    assert not made.get("failed"), made
    name = _clone_name("pve")
    args = dict(backend.module_args, vm=102, snapshot=snap, name=name, expires="1d")
    check = module_result("proxmox_clone", args, tmp_path, check=True)
    assert check["changed"] and check["clone"]["linked"] is False, check
    assert name not in [r.get("name") for r in api.cluster.resources.get(type="vm")]
    started = time.monotonic()
    result = module_result("proxmox_clone", args, tmp_path)
    print("proxmox clone (full) took %.2f s" % (time.monotonic() - started))
    assert result["changed"] and not result.get("failed"), result
    assert result["clone"]["why"].startswith("full copy: Proxmox VE links clones only to templates")
    res = next(r for r in api.cluster.resources.get(type="vm") if r.get("name") == name)
    config = api.nodes(res["node"]).qemu(res["vmid"]).config.get()
    nets = [v for k, v in config.items() if k.startswith("net")]
    assert nets and all("link_down=1" in v for v in nets), config
    assert "kind=clone" in config["description"] and "snapshot=%s" % snap in config["description"]
    source = api.nodes("pve3").qemu(102).config.get()
    assert all("link_down" not in v for k, v in source.items() if k.startswith("net")), source
    assert snap in [s["name"] for s in api.nodes("pve3").qemu(102).snapshot.get()]
    again = module_result("proxmox_clone", args, tmp_path)
    assert again["changed"] is False and again["clone"]["id"] == str(res["vmid"]), again
    foreign = module_result("proxmox_clone", dict(backend.module_args, name="web02", state="absent"), tmp_path)
    assert foreign["failed"] and "did not make" in foreign["msg"], foreign
    gone = module_result("proxmox_clone", dict(backend.module_args, name=name, state="absent"), tmp_path)
    assert gone["changed"] and not gone.get("failed"), gone
    assert name not in [r.get("name") for r in api.cluster.resources.get(type="vm")]
    api.nodes("pve3").qemu(102).config.put(delete="net0")


# --- libvirt (the real libvirtd) ------------------------------------------------------------------------------


def _libvirt_dom(uri, name):
    import libvirt  # pylint: disable=import-outside-toplevel
    conn = libvirt.open(uri)
    try:
        return conn.lookupByName(name).XMLDesc(0)
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()


def _image_backing(xml):
    import re  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel
    path = re.search(r"<source file='([^']+)'", xml).group(1)
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", path], capture_output=True,
                                     text=True, check=True).stdout)
    return path, info.get("backing-filename")


@pytest.mark.parametrize("location", ["internal", "external"])
def test_libvirt_clone_cut_off_marked_and_removed(libvirtd, libvirt_guest, tmp_path, location):
    import os.path  # pylint: disable=import-outside-toplevel,reimported
    guest = libvirt_guest("blank", start=True)
    source_before = _libvirt_dom(libvirtd, guest.name)
    # A NIC and a QEMU passthrough network for the clone to cut off (the e2e guest has the latter).
    import libvirt  # pylint: disable=import-outside-toplevel
    conn = libvirt.open(libvirtd)
    dom = conn.lookupByName(guest.name)
    inactive = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    inactive = inactive.replace("<domain type='qemu'>", "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/"
                                "domain/qemu/1.0'>").replace(
        "</devices>", "<interface type='user'><model type='virtio'/></interface></devices><qemu:commandline>"
        "<qemu:arg value='-netdev'/><qemu:arg value='user,id=pt0'/></qemu:commandline>")
    conn.defineXML(inactive)
    conn.close()
    snap = "clonesrc"
    made = module_result("libvirt_snapshot", {"uri": libvirtd, "vm": guest.name, "name": snap, "location": location},
                         tmp_path)
    assert not made.get("failed"), made
    name = guest.name + "-c"
    args = {"uri": libvirtd, "vm": guest.name, "snapshot": snap, "name": name, "expires": "1d"}
    check = module_result("libvirt_clone", args, tmp_path, check=True)
    assert check["changed"] and _libvirt_dom(libvirtd, name) is None, check
    try:
        started = time.monotonic()
        result = module_result("libvirt_clone", args, tmp_path)
        print("libvirt clone (%s) took %.2f s" % (location, time.monotonic() - started))
        assert result["changed"] and not result.get("failed"), result
        assert result["clone"]["linked"] is (location == "external"), result
        xml = _libvirt_dom(libvirtd, name)
        assert "<link state='down'/>" in xml and "-netdev" not in xml, xml
        assert "kind=clone" in xml and "snapshot=%s" % snap in xml
        assert result["clone"]["id"] != result["vm"]["id"]
        path, backing = _image_backing(xml)
        assert os.path.basename(path) == name + "-vda.qcow2"
        if location == "external":
            assert backing and backing not in xml  # an overlay on the frozen file, not on the running disk
        else:
            assert backing is None
        assert _libvirt_dom(libvirtd, guest.name).count("<link state='down'/>") == 0
        again = module_result("libvirt_clone", args, tmp_path)
        assert again["changed"] is False
        gone = module_result("libvirt_clone", {"uri": libvirtd, "name": name, "state": "absent"}, tmp_path)
        assert gone["changed"] and _libvirt_dom(libvirtd, name) is None and not os.path.exists(path)
        assert source_before is not None
    finally:
        module_result("libvirt_clone", {"uri": libvirtd, "name": name, "state": "absent"}, tmp_path)


def test_libvirt_restore_point_refuses_power_on(libvirtd, libvirt_guest, tmp_path):
    guest = libvirt_guest("blank", start=False)
    args = {"uri": libvirtd, "vm": guest.name, "snapshot": "x", "name": guest.name + "-rp", "restore_point": True,
            "power_on": True}
    result = module_result("libvirt_clone", args, tmp_path)
    assert result["msg"] == (
        "Failed to clone snapshot 'x' of VM '%s' on libvirt: a restore point is kept powered off and disconnected. "
        "Remove 'power_on' and 'network', or set restore_point: false; nothing was changed." % guest.name)


def test_prune_removes_expired_clones_of_the_play_vms_only(pve, tmp_path):
    """The workflow's prune step (prune_group) on fakepve: an expired clone and an expired restore point of the
    host's VM go; a clone not yet expired, an expired clone of another VM and a VM without the marker stay."""
    import sys  # pylint: disable=import-outside-toplevel
    from conftest import _pve_api, proxmox_backend  # pylint: disable=import-outside-toplevel
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", "collections"))
    from ansible_collections.prechange.snapshots.plugins.module_utils._proxmox import ProxmoxBackend  # noqa: E501 pylint: disable=import-outside-toplevel
    from ansible_collections.prechange.snapshots.plugins.module_utils._workflow import prune_group  # pylint: disable=import-outside-toplevel
    backend = proxmox_backend(pve)
    api = _pve_api(backend.conn)
    snap = "prunesrc%s" % uuid.uuid4().hex[:6]
    for vm in (100, 102):
        assert not module_result("proxmox_snapshot", dict(backend.module_args, vm=vm, name=snap, memory=False,
                                                          expires="1d"), tmp_path).get("failed")
    made = {}
    for tag, vm, extra in (("old", 100, {}), ("rp", 100, {"restore_point": True}), ("young", 100, {}),
                           ("other", 102, {})):
        name = _clone_name("prune-" + tag)
        result = module_result("proxmox_clone", dict(backend.module_args, vm=vm, snapshot=snap, name=name,
                                                     expires="1d", **extra), tmp_path)
        assert result["changed"], result
        made[tag] = result["clone"]
    # Let three of them expire: rewrite the expiry in their marker on the hypervisor (no waiting).
    for tag in ("old", "rp", "other"):
        res = next(r for r in api.cluster.resources.get(type="vm") if r.get("name") == made[tag]["name"])
        guest = api.nodes(res["node"]).qemu(res["vmid"])
        text = guest.config.get()["description"]
        import re  # pylint: disable=import-outside-toplevel
        guest.config.put(description=re.sub(r"expires=[^ \]]+", "expires=2020-01-01T00:00:00Z", text))
    params = dict(backend.module_args, timeout=120)
    with ProxmoxBackend({"api_host": params["api_host"], "api_port": params["api_port"],
                         "api_user": params["api_user"], "api_password": params["api_password"],
                         "ca_path": params["ca_path"], "timeout": 120}) as provider:
        check = prune_group(provider, [("h1", {"vm": "web01", "select": "expired"})], True)
        assert sorted(c["name"] for c in check["h1"]["clones_removed"]) == sorted(
            [made["old"]["name"], made["rp"]["name"]])
        result = prune_group(provider, [("h1", {"vm": "web01", "select": "expired"})], False)
    names = [r.get("name") for r in api.cluster.resources.get(type="vm")]
    assert result["h1"]["changed"] and made["old"]["name"] not in names and made["rp"]["name"] not in names
    assert made["young"]["name"] in names and made["other"]["name"] in names and "web02" in names
    for tag in ("young", "other"):
        module_result("proxmox_clone", dict(backend.module_args, name=made[tag]["name"], state="absent"), tmp_path)


@pytest.mark.parametrize("location", ["internal", "external"])
def test_libvirt_clone_is_the_vm_as_at_the_snapshot(libvirtd, libvirt_guest, tmp_path, location):
    """The clone's definition is the one the snapshot stored, not the source's current one: memory, vCPUs and
    a device changed after the snapshot stay as they were in the clone (read back from libvirt)."""
    import re  # pylint: disable=import-outside-toplevel
    import libvirt  # pylint: disable=import-outside-toplevel
    guest = libvirt_guest("blank", start=True)
    snap = "asat"
    made = module_result("libvirt_snapshot", {"uri": libvirtd, "vm": guest.name, "name": snap, "location": location},
                         tmp_path)
    assert not made.get("failed"), made
    conn = libvirt.open(libvirtd)
    try:
        dom = conn.lookupByName(guest.name)
        then = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        memory_then = int(re.search(r"<memory unit='KiB'>(\d+)</memory>", then).group(1))
        vcpus_then = re.search(r"<vcpu[^>]*>(\d+)</vcpu>", then).group(1)
        # After the snapshot: more memory, another vCPU, a watchdog (the persistent definition; the VM runs on).
        now = re.sub(r"<memory unit='KiB'>\d+</memory>", "<memory unit='KiB'>%d</memory>" % (memory_then * 2), then)
        now = re.sub(r"<currentMemory unit='KiB'>\d+</currentMemory>",
                     "<currentMemory unit='KiB'>%d</currentMemory>" % (memory_then * 2), now)
        now = re.sub(r"(<vcpu[^>]*>)\d+(</vcpu>)", r"\g<1>%d\g<2>" % (int(vcpus_then) + 1), now)
        now = now.replace("</devices>", "<watchdog model='i6300esb' action='reset'/></devices>")
        conn.defineXML(now)
        changed = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert "<memory unit='KiB'>%d</memory>" % (memory_then * 2) in changed and "i6300esb" in changed
    finally:
        conn.close()
    name = guest.name + "-asat"
    args = {"uri": libvirtd, "vm": guest.name, "snapshot": snap, "name": name, "expires": "1d"}
    try:
        result = module_result("libvirt_clone", args, tmp_path)
        assert result["changed"] and not result.get("failed"), result
        xml = _libvirt_dom(libvirtd, name)
        assert "<memory unit='KiB'>%d</memory>" % memory_then in xml, xml
        assert re.search(r"<vcpu[^>]*>%s</vcpu>" % vcpus_then, xml), xml
        assert "i6300esb" not in xml, xml
        assert "<link state='down'/>" in xml or "<interface" not in xml
        assert "as stored in the snapshot" in result["clone"]["why"], result
        assert not any("stores no domain definition" in w for w in result.get("warnings", [])), result
    finally:
        module_result("libvirt_clone", {"uri": libvirtd, "name": name, "state": "absent"}, tmp_path)
    assert _libvirt_dom(libvirtd, name) is None
