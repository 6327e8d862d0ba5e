# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""libvirt provider: a ``SnapshotBackend`` over libvirt-python, plus its connection spec.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

libvirt calls are synchronous, so waiting is a worker thread joined with the timeout; a
timeout reports the domain's job statistics as the last state. A connection that stops answering
(libvirtd hung, the network gone) is found by libvirt's keepalive within the module's timeout (at
most KEEPALIVE_WINDOW seconds), opening the connection included; a transport failure becomes the
engine's ``ConnectionLost``, never a timeout.

The prechecks refuse, before anything changes, what libvirt 9.x would refuse half way or
what would leave a VM that cannot be reverted (see docs/ and the tests for each message).
A domain job (backup, migration, dump, save...) or a block job (copy, commit, pull) is what
``busy`` reports to the engine's lock_timeout precheck; a call that libvirt refuses for the same
reason (its job lock timed out, a block job is active) is retried within lock_timeout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import traceback
from urllib.parse import urlparse
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape as xml_escape
from datetime import datetime, timezone

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import (
    ConnectionFailed,
    ConnectionLost,
    InvalidRequest,
    PrecheckFailed,
    ProviderError,
    SnapshotNotFound,
    SnapshotTimeout,
    VmNotFound,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._capacity import Capacity, DiskUsage
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import split_description
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import (
    RUNNING,
    Snapshot,
    SnapshotBackend,
    VmRecord,
    link_tree,
    retry_while_busy,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._wait import Deadline

LIBVIRT_IMPORT_ERROR = None
try:
    import libvirt
except ImportError:  # pragma: no cover - reported by the module through missing_required_lib
    libvirt = None
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()

# libvirt 9.9 is the first release that can revert to an external snapshot.
EXTERNAL_REVERT_VERSION = 9009000
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"
LOCATIONS = ("internal", "external")
# virDomainJobOperation and virDomainBlockJobType, as virsh names them.
JOB_OPERATIONS = {0: "unknown", 1: "start", 2: "save", 3: "restore", 4: "migration in", 5: "migration out",
                  6: "snapshot", 7: "snapshot revert", 8: "dump", 9: "backup", 10: "snapshot delete"}
BLOCK_JOB_TYPES = {0: "unknown", 1: "pull", 2: "copy", 3: "commit", 4: "active commit", 5: "backup"}
# virDomainJobType: a job is running while it is bounded (1) or unbounded (2).
JOB_RUNNING = (1, 2)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
# The module's timeout when it has none (info).
DEFAULT_TIMEOUT = 600
# Longest a silent connection is waited for (keepalive), whatever the timeout: a long job on a live
# connection still answers keepalive, so this bounds only a dead or hung connection.
KEEPALIVE_WINDOW = 30
# libvirt's error texts for a broken connection (virNetSocket, virNetClient), as ConnectionLost kinds.
_TRANSPORT_TEXTS = (
    ("keepalive", "no_answer"),
    ("connection refused", "refused"),
    ("connection reset", "reset"),
    ("broken pipe", "reset"),
    ("end of file while reading data", "closed"),
    ("socket is closed", "closed"),
)
_EVENT_LOOP = []


def transport_kind(code, domain, text):
    """The ``ConnectionLost`` kind of a libvirtError from the RPC layer (a remote connection), or None."""
    if libvirt is None or domain not in (getattr(libvirt, "VIR_FROM_RPC", 7), getattr(libvirt, "VIR_FROM_REMOTE", 8)):
        return None
    lowered = (text or "").lower()
    for needle, kind in _TRANSPORT_TEXTS:
        if needle in lowered:
            return kind
    if code == getattr(libvirt, "VIR_ERR_SYSTEM_ERROR", 38):
        return "closed"
    if code == getattr(libvirt, "VIR_ERR_RPC", 39):
        return "closed"
    return None


def keepalive(timeout):
    """(window, interval, count): libvirt drops a connection silent for interval * (count + 1) seconds,
    which stays within the window, min(timeout, KEEPALIVE_WINDOW) (at least 2 s: libvirt counts in seconds)."""
    window = max(2, min(int(timeout or DEFAULT_TIMEOUT), KEEPALIVE_WINDOW))
    count = 2 if window >= 3 else 1
    return window, max(1, window // (count + 1)), count


def _event_loop():
    """libvirt's keepalive needs an event loop: register the default one and run it, once per process."""
    if _EVENT_LOOP:
        return True
    try:
        libvirt.virEventRegisterDefaultImpl()
    except (libvirt.libvirtError, AttributeError):
        return False

    def run():
        while True:
            libvirt.virEventRunDefaultImpl()

    thread = threading.Thread(target=run, daemon=True, name="libvirt-events")
    thread.start()
    _EVENT_LOOP.append(thread)
    return True


def connection_argument_spec():
    """The libvirt connection options (documented in the libvirt doc fragment)."""
    return dict(
        uri=dict(type="str", default="qemu:///system"),
    )


def snapshot_extra_spec():
    """libvirt-only options of libvirt_snapshot."""
    return dict(location=dict(type="str", choices=list(LOCATIONS), default="internal"))


def _power_state(code):
    if libvirt is None:
        return "unknown"
    return {
        libvirt.VIR_DOMAIN_RUNNING: "running",
        libvirt.VIR_DOMAIN_BLOCKED: "running",
        libvirt.VIR_DOMAIN_PAUSED: "paused",
        libvirt.VIR_DOMAIN_SHUTDOWN: "stopped",
        libvirt.VIR_DOMAIN_SHUTOFF: "stopped",
        libvirt.VIR_DOMAIN_CRASHED: "stopped",
        libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
    }.get(code, "unknown")


def _version_text(number):
    return "%d.%d.%d" % (number // 1000000, (number // 1000) % 1000, number % 1000)


class DomainLayout(object):
    """What the prechecks need from a domain's XML: its disks, firmware and agent channel."""

    def __init__(self, xml):
        root = ET.fromstring(xml)
        self.disks = []
        for disk in root.findall("./devices/disk"):
            if disk.get("device", "disk") != "disk":
                continue
            driver = disk.find("driver")
            target = disk.find("target")
            source = disk.find("source")
            self.disks.append({
                "target": target.get("dev") if target is not None else "?",
                "format": driver.get("type") if driver is not None else None,
                "source": (source.get("file") or source.get("dev") or source.get("name")) if source is not None else None,
            })
        loader = root.find("./os/loader")
        self.pflash = loader is not None and loader.get("type") == "pflash"
        self.guest_agent = any(
            target.get("name") == GUEST_AGENT_CHANNEL for target in root.findall("./devices/channel/target"))

    def sources(self):
        return {d["target"]: d["source"] for d in self.disks}


def parse_snapshot_xml(xml, current):
    """A libvirt snapshot XML document as a ``Snapshot`` record."""
    root = ET.fromstring(xml)
    name = root.findtext("name")
    user_text, owner = split_description(root.findtext("description") or "")
    created = root.findtext("creationTime")
    state = root.findtext("state")
    memory = root.find("memory")
    memory_mode = memory.get("snapshot") if memory is not None else None
    disk_modes = [d.get("snapshot") for d in root.findall("./disks/disk") if d.get("snapshot") not in (None, "no")]
    external = memory_mode == "external" or "external" in disk_modes
    has_memory = memory_mode in ("internal", "external") or (memory_mode is None and state in ("running", "paused"))
    power = {"running": "running", "paused": "paused", "shutoff": "stopped", "disk-snapshot": None}.get(state, state)
    domain = root.find("domain")
    # Where each disk's data lived when the snapshot was taken; an internal snapshot is inside that file.
    disk_sources = DomainLayout(ET.tostring(domain, encoding="unicode")).sources() if domain is not None else {}
    return Snapshot(
        name=name, id=name, description=user_text,
        created=datetime.fromtimestamp(int(created), tz=timezone.utc) if created else None,
        parent=root.findtext("./parent/name"), current=current, memory=has_memory, quiesced=None,
        owner=owner, power_state=power,
        extra={"location": "external" if external else "internal", "libvirt_state": state},
        handle={"disk_sources": disk_sources,
                # An external snapshot's new overlay files: where the writes after it go (its data size).
                "overlays": {d.get("name"): d.find("source").get("file")
                             for d in root.findall("./disks/disk")
                             if d.get("snapshot") == "external" and d.find("source") is not None}},
    )


def set_description(snapshot_xml, description):
    """The snapshot XML with only its own <description> replaced, as text.

    The XML also embeds the domain's definition; a parse-and-serialise round trip would rewrite its
    namespaces (metadata of other tools), and a redefine would then change the VM's definition.
    """
    inner = re.search(r"<domain[\s>]", snapshot_xml)
    cut = inner.start() if inner else len(snapshot_xml)
    head, tail = snapshot_xml[:cut], snapshot_xml[cut:]
    element = "<description>%s</description>" % xml_escape(description)
    if re.search(r"<description>.*?</description>|<description/>", head, re.S):
        head = re.sub(r"<description>.*?</description>|<description/>", lambda _m: element, head, count=1,
                      flags=re.S)
    else:
        head = re.sub(r"(</name>)", lambda m: m.group(1) + "\n  " + element, head, count=1)
    return head + tail


# --- clones (issue 13; the engine is _clone.py) ------------------------------------------------------

# Where a clone's marker lives: an element of its own namespace in the domain's <metadata>.
CLONE_NS = "https://github.com/prechange/snapshots/clone/1"
CLONE_KEY = "prechange"
# QEMU command-line options that give a guest a network behind libvirt's back (<qemu:commandline>); a clone
# must not keep them, or it answers on the source's network (the e2e guest gets its network this way).
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
_QEMU_NET_OPTIONS = ("-netdev", "-nic", "-net")
_QEMU_NET_DEVICES = re.compile(r"(^|,)netdev=|^(virtio-net|e1000|rtl8139|vmxnet|ne2k|pcnet|i82)")


def is_local_uri(uri):
    """A URI whose libvirtd runs on this machine (its files are this machine's files)."""
    parsed = urlparse(uri)
    return not parsed.hostname or parsed.hostname in ("localhost", "127.0.0.1", "::1")


def strip_network_passthrough(root):
    """Drop the <qemu:commandline> arguments that make network devices; return what was dropped (for the warning)."""
    dropped = []
    for cmdline in root.findall("{%s}commandline" % QEMU_NS):
        args = cmdline.findall("{%s}arg" % QEMU_NS)
        index = 0
        while index < len(args):
            value = args[index].get("value") or ""
            following = args[index + 1].get("value") if index + 1 < len(args) else ""
            if value in _QEMU_NET_OPTIONS or (value == "-device" and _QEMU_NET_DEVICES.search(following or "")):
                dropped.append("%s %s" % (value, following))
                cmdline.remove(args[index])
                if index + 1 < len(args):
                    cmdline.remove(args[index + 1])
                index += 2
                continue
            index += 1
        if not list(cmdline):
            root.remove(cmdline)
    return dropped


def clone_domain_xml(xml, name, disks, network=None, logs_dir=None):
    """The new domain's XML: ``xml`` (the definition the snapshot stored, else the source's inactive one)
    renamed, without UUID or MACs (libvirt makes new ones), its disks replaced (``disks``: {target: (path,
    format)}), its NICs down (or on ``network``), serial logs of its own. Returns (xml text, dropped passthrough arguments)."""
    ET.register_namespace("qemu", QEMU_NS)
    root = ET.fromstring(xml)
    root.attrib.pop("id", None)
    root.find("name").text = name
    for tag in ("uuid", "genid"):
        for element in root.findall(tag):
            root.remove(element)
    metadata = root.find("metadata")
    if metadata is not None:
        for element in list(metadata):
            if element.tag == "{%s}%s" % (CLONE_NS, "clone"):
                metadata.remove(element)
    loader_nvram = root.find("./os/nvram")
    if loader_nvram is not None:
        # A fresh NVRAM from the template: the source's variables file stays the source's.
        root.find("os").remove(loader_nvram)
    devices = root.find("devices")
    for disk in devices.findall("disk"):
        target = disk.find("target")
        if disk.get("device", "disk") != "disk" or target is None or target.get("dev") not in disks:
            continue
        path, fmt = disks[target.get("dev")]
        disk.set("type", "file")
        for element in disk.findall("backingStore"):
            disk.remove(element)
        source = disk.find("source")
        if source is not None:
            disk.remove(source)
        source = ET.Element("source", file=path)
        disk.insert(1, source)
        driver = disk.find("driver")
        if driver is None:
            driver = ET.SubElement(disk, "driver", name="qemu")
        driver.set("type", fmt)
    interfaces = devices.findall("interface")
    for iface in interfaces:
        for element in iface.findall("mac"):
            iface.remove(element)
        for element in iface.findall("target"):
            iface.remove(element)
        if network:
            for element in iface.findall("source"):
                iface.remove(element)
            iface.set("type", "network")
            iface.insert(0, ET.Element("source", network=network))
            for element in iface.findall("link"):
                iface.remove(element)
        else:
            link = iface.find("link")
            if link is None:
                link = ET.SubElement(iface, "link")
            link.set("state", "down")
    if network and not interfaces:
        iface = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(iface, "source", network=network)
        ET.SubElement(iface, "model", type="virtio")
    for number, serial in enumerate(devices.findall("serial") + devices.findall("console")):
        source = serial.find("source")
        if serial.get("type") == "file" and source is not None and logs_dir:
            source.set("path", "%s/%s-serial%d.log" % (logs_dir, name, number))
    for channel in devices.findall("channel"):
        source = channel.find("source")
        if channel.get("type") == "unix" and source is not None:
            channel.remove(source)  # libvirt makes a socket of the clone's own
    for graphics in devices.findall("graphics"):
        if graphics.get("port") not in (None, "-1"):
            graphics.set("port", "-1")
            graphics.set("autoport", "yes")
    dropped = strip_network_passthrough(root)
    return ET.tostring(root, encoding="unicode"), dropped


def snapshot_domain_xml(snapshot_xml):
    """The domain definition a snapshot stored (``<domainsnapshot><domain>``), as XML text, or None.

    A snapshot of a running domain also stores its persistent definition (``<inactiveDomain>``, libvirt 7.0+):
    that one is what the user configured, without the runtime state of the live one, so it is preferred."""
    root = ET.fromstring(snapshot_xml)
    for tag in ("inactiveDomain", "domain"):
        element = root.find(tag)
        if element is not None and element.find("devices") is not None:
            element.tag = "domain"
            return ET.tostring(element, encoding="unicode")
    return None


def _network_of(xml):
    """The network every NIC is on (None when all are down or there is none)."""
    root = ET.fromstring(xml)
    nets = set()
    for iface in root.findall("./devices/interface"):
        link = iface.find("link")
        if link is not None and link.get("state") == "down":
            continue
        source = iface.find("source")
        nets.add(source.get("network") or source.get("bridge") if source is not None else iface.get("type"))
    return sorted(nets)[0] if len(nets) == 1 else (", ".join(sorted(str(n) for n in nets)) or None)


def _run_qemu_img(args, timeout):
    import subprocess  # pylint: disable=import-outside-toplevel
    try:
        proc = subprocess.run(["qemu-img"] + args, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ProviderError("qemu-img is not installed on the controller",
                            hint="Install qemu-utils (qemu-img) where the module runs")
    except subprocess.TimeoutExpired:
        raise SnapshotTimeout("qemu-img %s did not finish within %ss" % (args[0], timeout),
                              hint="Raise 'timeout' for large disks")
    if proc.returncode != 0:
        raise ProviderError("qemu-img %s failed: %s" % (args[0], (proc.stderr or proc.stdout).strip()))
    return proc.stdout


def _image_info(path, timeout=60):
    import json  # pylint: disable=import-outside-toplevel
    return json.loads(_run_qemu_img(["info", "-U", "--backing-chain", "--output=json", path], timeout))


class LibvirtCloneMixin(object):
    """The clone methods of ``LibvirtBackend`` (see _clone.py for the contract)."""

    def _clone_record(self, dom):
        from ansible_collections.prechange.snapshots.plugins.module_utils._clone import (  # pylint: disable=import-outside-toplevel
            CloneRecord, parse_clone_text)
        try:
            xml = dom.XMLDesc(0)
        except libvirt.libvirtError as error:
            raise self._translate(error, vm=dom.name())
        root = ET.fromstring(xml)
        element = root.find("./metadata/{%s}clone" % CLONE_NS)
        owner = None
        linked = None
        if element is not None:
            _text, owner = parse_clone_text(element.text or "")
            linked = element.get("linked") == "yes"
        return CloneRecord(name=dom.name(), id=dom.UUIDString(), power_state=_power_state(dom.state()[0]),
                           owner=owner, linked=linked, network=_network_of(xml), handle=dom)

    def find_clone(self, name):
        try:
            dom = self.conn.lookupByName(name)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise self._translate(error, vm=name)
        return self._clone_record(dom)

    def list_clones(self):
        try:
            doms = self.conn.listAllDomains(0)
        except libvirt.libvirtError as error:
            raise self._translate(error)
        records = []
        for dom in doms:
            try:
                if "%s" % CLONE_NS not in dom.XMLDesc(0):
                    continue
            except libvirt.libvirtError:
                continue  # gone meanwhile
            records.append(self._clone_record(dom))
        return [r for r in records if r.ours]

    def _target_dir(self, vm, placement, first_source):
        pool_name = placement.get("pool")
        if pool_name:
            try:
                pool = self.conn.storagePoolLookupByName(pool_name)
                path = ET.fromstring(pool.XMLDesc(0)).findtext("./target/path")
                free = pool.info()[3]
            except libvirt.libvirtError as error:
                raise PrecheckFailed("storage pool '%s': %s" % (pool_name, error.get_error_message()),
                                     hint="Name an existing, active storage pool with 'pool' (virsh pool-list)")
            if not path:
                raise PrecheckFailed("storage pool '%s' has no target directory" % pool_name,
                                     hint="Use a directory-backed pool for the clone's disks")
            return path, free, pool
        import os  # pylint: disable=import-outside-toplevel
        path = os.path.dirname(first_source)
        stat = os.statvfs(path)
        return path, stat.f_bavail * stat.f_frsize, None

    def plan_clone(self, vm, snapshot, request):
        from ansible_collections.prechange.snapshots.plugins.module_utils._clone import ClonePlan  # pylint: disable=import-outside-toplevel
        import os  # pylint: disable=import-outside-toplevel
        snap_xml = self._call(lambda: self._lookup(vm, snapshot.name).getXMLDesc(
            libvirt.VIR_DOMAIN_SNAPSHOT_XML_SECURE), vm, self.timeout, "clone")
        root = ET.fromstring(snap_xml)
        location = snapshot.extra.get("location")
        disk_modes = {d.get("name"): d.get("snapshot") for d in root.findall("./disks/disk")}
        recorded = (snapshot.handle or {}).get("disk_sources") or {}
        layout = self._layout(vm)
        # The clone is the VM as it was at the snapshot: its memory, vCPUs and devices from the definition the
        # snapshot stored, and only the disks it had then. A snapshot without one falls back to the VM's
        # current definition, and the result says so.
        domain_xml = snapshot_domain_xml(snap_xml)
        if domain_xml is not None:
            then = [d["target"] for d in DomainLayout(domain_xml).disks]
            gone = [t for t in then if t not in [d["target"] for d in layout.disks]]
            if gone:
                raise PrecheckFailed(
                    "disk %s, which the VM had at snapshot '%s', is no longer attached"
                    % (", ".join(gone), snapshot.name),
                    hint="Attach it again, or clone from a snapshot taken with the VM's current disks")
            layout.disks = [d for d in layout.disks if d["target"] in then]
            config = "its configuration (memory, vCPUs, devices) as stored in the snapshot"
        else:
            config = ("its configuration (memory, vCPUs, devices) as the VM has it now: snapshot '%s' stores no "
                      "domain definition" % snapshot.name)
            self.warn("Clone '%s' of VM '%s' gets %s" % (request.name, vm.name, config))
        targets = [d["target"] for d in layout.disks]
        if not targets:
            raise PrecheckFailed("the VM has no disks to clone", hint="Clone a VM with at least one disk")
        if disk_modes and all(disk_modes.get(t) in ("no", None) for t in targets):
            raise PrecheckFailed("snapshot '%s' holds no disk state (memory only), so there is nothing to clone from"
                                 % snapshot.name, hint="Clone from a snapshot that includes the disks")
        if not is_local_uri(self.uri):
            raise PrecheckFailed(
                "the clone's disks are made with qemu-img where the module runs, and %s is a remote libvirt" % self.uri,
                hint="Run the task on the libvirt host (delegate_to it, with uri qemu:///system)")
        sources = {}
        linked_possible = True
        for disk in layout.disks:
            target = disk["target"]
            if location == "external" and disk_modes.get(target) == "external":
                # The file the snapshot froze: an overlay now sits on top of it, so it no longer changes.
                source = recorded.get(target)
                if not source or source == disk["source"]:
                    raise PrecheckFailed(
                        "disk %s of snapshot '%s' is the disk the VM runs on now, so its state still changes"
                        % (target, snapshot.name),
                        hint="Clone from a snapshot whose disks have an overlay on top of them")
                sources[target] = (source, None)
            else:
                source = recorded.get(target) or disk["source"]
                if disk["format"] != "qcow2":
                    raise PrecheckFailed("disk %s (%s) is %s and holds no internal snapshot" % (
                        target, source, disk["format"]), hint="Clone from an external snapshot of this VM")
                if source != disk["source"]:
                    raise PrecheckFailed(
                        "disk %s now runs on %s, but the internal snapshot is inside %s" % (target, disk["source"], source),
                        hint="Commit or remove the overlay first (virsh blockcommit)")
                sources[target] = (source, snapshot.name)  # copied out of the qcow2's internal snapshot
                linked_possible = False
        for source, _internal in sources.values():
            if not source or not os.path.exists(source):
                raise PrecheckFailed("disk file %s is not on this machine" % source,
                                     hint="Run the task on the libvirt host")
        linked = linked_possible and not request.full
        if request.full:
            why = "full copy, as asked" + (" (restore point)" if request.restore_point else "")
        elif linked:
            why = "linked: qcow2 overlays on the disk state the external snapshot froze"
        else:
            why = ("full copy: the internal snapshot lives inside the disk file the VM still writes to, so nothing "
                   "can be linked to it")
        directory, free, pool = self._target_dir(vm, request.placement, sorted(sources.values())[0][0])
        need = 0
        if not linked:
            for source, internal in sources.values():
                try:
                    chain = _image_info(source)
                except ProviderError as error:
                    raise PrecheckFailed("cannot read disk %s: %s" % (source, error.reason),
                                         hint="Check the disk file")
                need += sum(int(image.get("actual-size") or 0) for image in chain)
        disks = {}
        for target, (source, internal) in sources.items():
            path = os.path.join(directory, "%s-%s.qcow2" % (request.name, target))
            if os.path.exists(path):
                raise PrecheckFailed("the clone's disk file %s already exists" % path,
                                     hint="Remove it, or choose another 'name' or 'pool'")
            disks[target] = {"source": source, "internal": internal, "path": path}
        return ClonePlan(linked=linked, why="%s; %s" % (why, config), need_bytes=need if not linked else None,
                         free_bytes=free, data={"disks": disks, "pool": pool, "dir": directory, "domain_xml": domain_xml})

    def clone(self, vm, snapshot, request, plan):
        from ansible_collections.prechange.snapshots.plugins.module_utils._clone import format_clone_text  # pylint: disable=import-outside-toplevel
        made = []
        try:
            for target, disk in sorted(plan.data["disks"].items()):
                chain = _image_info(disk["source"])
                if plan.linked:
                    _run_qemu_img(["create", "-q", "-f", "qcow2", "-b", disk["source"],
                                   "-F", chain[0].get("format") or "qcow2", disk["path"]], request.timeout)
                elif disk["internal"]:
                    _run_qemu_img(["convert", "-U", "-O", "qcow2", "-l", "snapshot.name=%s" % disk["internal"],
                                   disk["source"], disk["path"]], request.timeout)
                else:
                    _run_qemu_img(["convert", "-U", "-O", "qcow2", disk["source"], disk["path"]], request.timeout)
                made.append(disk["path"])
            xml = plan.data.get("domain_xml") or self._call(
                lambda: vm.handle.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE),
                vm, request.timeout, "clone")
            new_xml, dropped = clone_domain_xml(
                xml, request.name, {t: (d["path"], "qcow2") for t, d in plan.data["disks"].items()},
                network=request.network, logs_dir=plan.data["dir"])
            if dropped:
                self.warn("Clone '%s' of VM '%s': dropped the network devices the source passes to QEMU directly "
                          "(<qemu:commandline>: %s)" % (request.name, vm.name, "; ".join(dropped)))
            dom = self._call(lambda: self.conn.defineXML(new_xml), vm, request.timeout, "clone")
            marker = "<clone linked='%s'>%s</clone>" % ("yes" if plan.linked else "no",
                                                        xml_escape(format_clone_text("", request.marker)))
            self._call(lambda: dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, marker, CLONE_KEY, CLONE_NS,
                                               libvirt.VIR_DOMAIN_AFFECT_CONFIG), vm, request.timeout, "clone")
            if request.power_on:
                self._call(dom.create, vm, request.timeout, "clone")
        except Exception:
            # Nothing half made is left behind: the files this call wrote, the domain it defined.
            self._undo_clone(request.name, made)
            raise
        if plan.data.get("pool") is not None:
            try:
                plan.data["pool"].refresh(0)
            except libvirt.libvirtError:
                pass
        return self._clone_record(self.conn.lookupByName(request.name))

    def _undo_clone(self, name, paths):
        import os  # pylint: disable=import-outside-toplevel
        try:
            dom = self.conn.lookupByName(name)
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        except libvirt.libvirtError:
            pass
        for path in paths:
            try:
                os.remove(path)
            except OSError:
                pass

    def remove_clone(self, record, timeout):
        """Stop and undefine the clone, and delete the disk files it was made with (named <clone>-<target>.qcow2)."""
        import os  # pylint: disable=import-outside-toplevel
        dom = record.handle
        vm = VmRecord(name=record.name, id=record.id, power_state=record.power_state, handle=dom)
        xml = self._call(lambda: dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), vm, timeout, "remove")
        paths = [d["source"] for d in DomainLayout(xml).disks
                 if d["source"] and os.path.basename(d["source"]).startswith(record.name + "-")]
        # The serial / console logs the clone got beside its disks (clone_domain_xml).
        paths += sorted({element.get("path") for element in ET.fromstring(xml).findall("./devices/*/source")
                         if os.path.basename(element.get("path") or "").startswith(record.name + "-serial")})
        if self._call(dom.isActive, vm, timeout, "remove"):
            self._call(dom.destroy, vm, timeout, "remove")
        flags = libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        flags |= libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        self._call(lambda: dom.undefineFlags(flags), vm, timeout, "remove")
        for path in paths:
            try:
                vol = self.conn.storageVolLookupByPath(path)
                vol.delete(0)
                continue
            except libvirt.libvirtError:
                pass
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            except OSError as error:
                self.warn("Clone '%s' was removed but its disk %s could not be deleted: %s" % (record.name, path, error))


class LibvirtBackend(LibvirtCloneMixin, SnapshotBackend):
    provider = "libvirt"
    supports_update = True
    # Renaming would need REDEFINE under a new name, which makes metadata that is not in the
    # qcow2 file; reverting to such a snapshot kills the VM. So it is refused.
    supports_rename = False
    max_concurrency = 8
    provider_options = {"location": "internal"}

    def __init__(self, params, warn=None):
        super().__init__(params, warn)
        if libvirt is None:
            raise ConnectionFailed("the libvirt-python library is not installed",
                                   provider=self.provider, details={"exception": LIBVIRT_IMPORT_ERROR},
                                   hint="Install libvirt-python on the controller")
        self.uri = params.get("uri") or "qemu:///system"
        self._looked_up = {}  # (vm id, snapshot name) -> virDomainSnapshot, see _look_up_once
        self.host = urlparse(self.uri).hostname or self.uri
        self.timeout = params.get("timeout") or DEFAULT_TIMEOUT
        # How long a silent connection is waited for (the bound messages name).
        self.silence, interval, count = keepalive(self.timeout)
        # Without this, libvirt prints every error to stderr as well as raising it.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        events = _event_loop()
        self.conn = self._open()
        if events:
            try:
                self.conn.setKeepAlive(interval, count)
            except libvirt.libvirtError:
                pass  # not a remote-driver connection (test:///): nothing to keep alive
        try:
            self.version = self.conn.getLibVersion()
        except libvirt.libvirtError as error:
            raise self._translate(error)

    def _open(self):
        """libvirt.open, given up when the endpoint does not answer within the keepalive window."""
        outcome = {}

        def worker():
            try:
                outcome["conn"] = libvirt.open(self.uri)
            except libvirt.libvirtError as error:
                outcome["error"] = error

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        thread.join(self.silence)
        if thread.is_alive():
            raise ConnectionLost(self.host, "no_answer", timeout=self.silence, sent=False, provider=self.provider,
                                 hint="Check 'uri' and that libvirtd answers")
        error = outcome.get("error")
        if error is not None:
            kind = transport_kind(error.get_error_code(), error.get_error_domain(), error.get_error_message())
            # Opening the connection: only a refusal reads as a transport fault; anything else (a socket that does
            # not exist, a bad URI) is said in libvirt's own words, never as a connection lost mid-answer.
            if kind == "refused":
                raise ConnectionLost(self.host, kind, timeout=self.silence, sent=False, provider=self.provider,
                                     hint="Check 'uri' and that libvirtd is running")
            raise ConnectionFailed("cannot connect to %s: %s" % (self.uri, error.get_error_message()),
                                   provider=self.provider,
                                   hint="Check 'uri' and that libvirtd is running")
        return outcome["conn"]

    def close(self):
        conn, self.conn = getattr(self, "conn", None), None
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass

    # --- lookup ---------------------------------------------------------------------------

    def _record(self, dom):
        return VmRecord(name=dom.name(), id=dom.UUIDString(), power_state=_power_state(dom.state()[0]), handle=dom)

    def find_vm(self, ref):
        ref = str(ref)
        try:
            if _UUID.match(ref):
                try:
                    return self._record(self.conn.lookupByUUIDString(ref))
                except libvirt.libvirtError as error:
                    if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
            return self._record(self.conn.lookupByName(ref))
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise VmNotFound("no domain with this name or UUID exists at %s" % self.uri, vm=ref,
                                 provider=self.provider, hint="Check 'vm' and 'uri'; nothing was changed")
            raise self._translate(error, vm=ref)

    def list_vms(self):
        try:
            return [self._record(dom) for dom in self.conn.listAllDomains(0)]
        except libvirt.libvirtError as error:
            raise self._translate(error)

    def endpoint(self):
        return "at %s" % self.uri

    def product_uuid_candidates(self):
        # libvirt gives the guest its domain UUID as the SMBIOS system UUID (a <sysinfo> uuid must equal it).
        return [(record.id, record) for record in self.list_vms()]

    def list_snapshots(self, vm):
        dom = vm.handle
        try:
            snaps = [parse_snapshot_xml(s.getXMLDesc(0), bool(s.isCurrent(0))) for s in dom.listAllSnapshots(0)]
        except libvirt.libvirtError as error:
            raise self._translate(error, vm=vm.name)
        snaps.sort(key=lambda s: (s.created is None, s.created, s.name))
        return link_tree(snaps)

    # --- prechecks ------------------------------------------------------------------------

    def default_memory(self, vm, options):
        # External snapshots here are disk-only; internal ones keep memory when running.
        return vm.power_state == RUNNING and self.option("location", options) == "internal"

    def _layout(self, vm):
        try:
            return DomainLayout(vm.handle.XMLDesc(0))
        except libvirt.libvirtError as error:
            raise self._translate(error, vm=vm.name)

    # --- capacity ------------------------------------------------------------------------

    def _local(self):
        """Whether the disk files are on this machine (a local URI), so the file system can be asked directly."""
        parsed = urlparse(self.uri)
        return parsed.scheme.split("+")[0] in ("qemu", "test") and not parsed.hostname and (
            "+" not in parsed.scheme or parsed.scheme.endswith("+unix"))

    def _unless_transport(self, error, vm=None):
        """A read that may fail quietly (no pool, no block info) must still not hide a lost connection."""
        if transport_kind(error.get_error_code(), error.get_error_domain(), error.get_error_message()) is not None:
            raise self._translate(error, vm=vm)

    def _pool_of(self, path, vm=None):
        """(pool name, free, total) of the storage pool that holds ``path``, or None when no pool does."""
        try:
            pool = self.conn.storageVolLookupByPath(path).storagePoolLookupByVolume()
        except libvirt.libvirtError as error:
            self._unless_transport(error, vm)
            return None
        try:
            # A directory pool's numbers are those of its last refresh: refresh first (read-only for the data).
            pool.refresh(0)
        except libvirt.libvirtError as error:
            self._unless_transport(error, vm)
        try:
            _state, total, _allocation, available = pool.info()
            return pool.name(), int(available), int(total)
        except libvirt.libvirtError as error:
            self._unless_transport(error, vm)
            return None

    def capacity(self, vm):
        """Each disk's current file (an external snapshot's overlay, when there is one): its size and allocation
        (virDomainGetBlockInfo), and its pool's free space, else statvfs of its directory on a local URI."""
        layout = self._layout(vm)
        disks = []
        for disk in layout.disks:
            source = disk["source"]
            usage = DiskUsage(disk=disk["target"], storage=None)
            if not source:
                usage.note = "disk %s has no source file" % disk["target"]
                disks.append(usage)
                continue
            try:
                size, allocation, _physical = vm.handle.blockInfo(disk["target"], 0)
                usage.provisioned_bytes, usage.used_bytes = int(size), int(allocation)
            except libvirt.libvirtError as error:
                self._unless_transport(error, vm.name)
                usage.note = "libvirt gives no block info for %s: %s" % (disk["target"], error.get_error_message())
            pool = self._pool_of(source, vm.name)
            if pool is not None:
                usage.storage, usage.free_bytes, usage.total_bytes = pool[0], pool[1], pool[2]
            elif self._local() and os.path.isdir(os.path.dirname(source)):
                directory = os.path.dirname(source)
                stat = os.statvfs(directory)
                usage.storage = directory
                usage.free_bytes, usage.total_bytes = stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize
            else:
                usage.storage = os.path.dirname(source) or source
                usage.note = ("%s is in no libvirt storage pool and the connection %s is remote, so its free space is "
                              "not known" % (source, self.uri))
            disks.append(usage)
        try:
            memory = int(vm.handle.info()[2]) * 1024
        except libvirt.libvirtError as error:
            self._unless_transport(error, vm.name)
            memory = None
        # An internal memory state is written into the first qcow2 disk.
        return Capacity(disks=disks, memory_bytes=memory, memory_storage=disks[0].storage if disks else None,
                        note=None if disks else "the domain has no disks")

    def snapshot_sizes(self, vm, snapshots):
        """External: the allocation of the overlay files the snapshot started (the writes since it). Internal: qcow2
        keeps a snapshot's clusters shared with the live disk and counts no size apart; only its memory state
        size is measurable (``qemu-img info``, on a local URI)."""
        sizes = {}
        images = {}
        for snap in snapshots:
            handle = snap.handle or {}
            if snap.extra.get("location") == "external":
                overlays = handle.get("overlays") or {}
                if not overlays:
                    sizes[snap.id] = (None, "the external snapshot names no overlay file")
                    continue
                if not self._local():
                    sizes[snap.id] = (None, "the overlay files are on the remote host %s; their size is not known here"
                                      % self.host)
                    continue
                total, missing = 0, []
                for path in overlays.values():
                    try:
                        total += os.stat(path).st_blocks * 512
                    except OSError:
                        missing.append(path)
                if missing:
                    sizes[snap.id] = (None, "overlay file(s) not found: %s" % ", ".join(missing))
                else:
                    sizes[snap.id] = (total, "allocation of the overlay file(s) %s: the writes since the snapshot"
                                      % ", ".join(sorted(overlays.values())))
                continue
            note = ("internal qcow2 snapshot: its disk data shares clusters with the live disk, and qcow2 counts no "
                    "size per snapshot; the disks' allocation (disks.used_bytes) grows as the guest writes")
            first = next(iter((handle.get("disk_sources") or {}).values()), None)
            if snap.memory and first and self._local():
                if first not in images:
                    images[first] = _qemu_img_snapshots(first)
                state = (images[first] or {}).get(snap.name)
                if state is not None:
                    note += "; its memory state takes %d bytes in %s (qemu-img info)" % (state, first)
            sizes[snap.id] = (None, note)
        return sizes

    def busy(self, vm):
        """A domain job (virDomainGetJobStats type bounded/unbounded) or an active block job on a disk."""
        dom = vm.handle
        try:
            stats = dom.jobStats(0)
        except libvirt.libvirtError as error:
            self._raise_transport(error, vm)
            stats = {}  # the driver keeps no job statistics (test driver)
        if stats.get("type") in JOB_RUNNING:
            operation = JOB_OPERATIONS.get(stats.get("operation"), "unknown")
            elapsed = stats.get("time_elapsed")
            return "libvirt job '%s' running%s" % (operation, " for %d s" % (elapsed // 1000) if elapsed else "")
        try:
            if not dom.isActive():
                return None  # block jobs need a running QEMU
        except libvirt.libvirtError as error:
            raise self._translate(error, vm=vm.name)
        jobs = []
        for disk in self._layout(vm).disks:
            try:
                info = dom.blockJobInfo(disk["target"], 0)
            except libvirt.libvirtError as error:
                self._raise_transport(error, vm)
                continue  # not supported by the driver, or no such job
            if info:
                jobs.append("'%s' on %s" % (BLOCK_JOB_TYPES.get(info.get("type"), info.get("type")), disk["target"]))
        if jobs:
            return "libvirt block job %s running" % ", ".join(jobs)
        return None

    def check_create(self, vm, request, snapshots):
        location = self.option("location", request.options)
        layout = self._layout(vm)
        locations = {s.extra.get("location") for s in snapshots}
        if location == "internal":
            raw = [d for d in layout.disks if d["format"] not in (None, "qcow2")]
            if raw:
                disk = raw[0]
                raise PrecheckFailed(
                    "disk %s (%s) is a %s image and internal snapshots need qcow2"
                    % (disk["target"], disk["source"], disk["format"]),
                    hint="Use location: external, or convert the disk to qcow2; nothing was changed")
            if layout.pflash:
                raise PrecheckFailed(
                    "the VM boots UEFI firmware from pflash, and libvirt refuses internal snapshots of such VMs "
                    "(their NVRAM is not part of the snapshot)",
                    hint="Use location: external (disk-only) for this VM; nothing was changed")
            if request.quiesce:
                raise PrecheckFailed(
                    "libvirt quiesces only disk-only external snapshots",
                    hint="Set location: external, or set quiesce: false; nothing was changed")
            if vm.power_state == RUNNING and not request.memory:
                raise PrecheckFailed(
                    "QEMU cannot take a disk-only internal snapshot of a running VM",
                    hint="Set memory: true, use location: external, or shut the VM down; nothing was changed")
            # A qcow2 disk with a backing file (a VM made from a base image) is fine; what breaks is
            # a tree in which external snapshots already moved the disks to overlays.
            if "external" in locations:
                raise PrecheckFailed(
                    "the VM already has external snapshots; mixing internal and external snapshots leaves "
                    "snapshots that can be neither deleted nor reverted",
                    hint="Keep using location: external for this VM, or remove its external snapshots first")
        else:
            if request.memory:
                raise PrecheckFailed(
                    "external snapshots made by this collection are disk-only",
                    hint="Set memory: false, or use location: internal to keep memory state")
            if "internal" in locations:
                raise PrecheckFailed(
                    "the VM already has internal snapshots; mixing internal and external snapshots leaves "
                    "snapshots that can be neither deleted nor reverted",
                    hint="Use location: internal for this VM, or remove its internal snapshots first")
            if request.quiesce:
                self._check_guest_agent(vm, layout)

    def _check_guest_agent(self, vm, layout):
        if vm.power_state != RUNNING:
            raise PrecheckFailed("quiesce needs a running VM with the QEMU guest agent, and the VM is %s"
                                 % vm.power_state, hint="Start the VM or set quiesce: false")
        if not layout.guest_agent:
            raise PrecheckFailed(
                "quiesce needs the QEMU guest agent and the VM has no %s channel" % GUEST_AGENT_CHANNEL,
                hint="Add a guest agent channel and run qemu-guest-agent in the guest, or set quiesce: false")
        try:
            import libvirt_qemu  # pylint: disable=import-outside-toplevel
            libvirt_qemu.qemuAgentCommand(vm.handle, '{"execute": "guest-ping"}', 5, 0)
        except libvirt.libvirtError as error:
            raise PrecheckFailed(
                "quiesce needs the QEMU guest agent and it does not answer: %s" % error.get_error_message(),
                hint="Start qemu-guest-agent in the guest, or set quiesce: false; nothing was changed")

    def _look_up_once(self, vm, snapshot):
        """The libvirt snapshot object, read in the precheck (check mode makes the same reads as a real run,
        which the transport tests count on) and kept for the change."""
        key = (vm.id, snapshot.name)
        if key not in self._looked_up:
            self._looked_up[key] = self._lookup(vm, snapshot.name)
        return self._looked_up[key]

    def check_delete(self, vm, snapshot, snapshots, remove_children):
        self._look_up_once(vm, snapshot)
        locations = {s.extra.get("location") for s in snapshots}
        if len(locations) > 1:
            raise PrecheckFailed(
                "the VM mixes internal and external snapshots, and libvirt cannot delete snapshots safely "
                "in such a tree",
                hint="Clean this VM's snapshots up by hand with virsh; nothing was changed")
        if snapshot.extra.get("location") == "internal":
            self._check_disks_unmoved(vm, snapshot, "deleted")

    def _check_disks_unmoved(self, vm, snapshot, what):
        """An internal snapshot lives inside the disk file it was taken on; once the disk moved
        to another file (an overlay made by an external snapshot or a block job), libvirt can no
        longer reach it, and the attempt fails half way."""
        recorded = (snapshot.handle or {}).get("disk_sources") or {}
        current = self._layout(vm).sources()
        for target, source in sorted(recorded.items()):
            if target in current and source and current[target] and current[target] != source:
                raise PrecheckFailed(
                    "disk %s now runs on %s, but the internal snapshot is inside %s, so it can no longer be %s"
                    % (target, current[target], source, what),
                    hint="Commit or remove the overlay first (virsh blockcommit); nothing was changed")

    def check_revert(self, vm, snapshot, snapshots, power_state):
        self._look_up_once(vm, snapshot)
        if snapshot.extra.get("location") == "internal":
            self._check_disks_unmoved(vm, snapshot, "reverted to")
        if snapshot.extra.get("location") == "external" and self.version < EXTERNAL_REVERT_VERSION:
            raise PrecheckFailed(
                "libvirt %s cannot revert to an external snapshot (that arrives in 9.9)"
                % _version_text(self.version),
                hint="Use internal snapshots for changes you may need to revert, or upgrade libvirt; "
                     "nothing was changed")

    # --- actions --------------------------------------------------------------------------

    def create(self, vm, request):
        location = self.option("location", request.options)
        root = ET.Element("domainsnapshot")
        ET.SubElement(root, "name").text = request.name
        if request.full_description:
            ET.SubElement(root, "description").text = request.full_description
        flags = 0
        if location == "external":
            ET.SubElement(root, "memory", snapshot="no")
            disks = ET.SubElement(root, "disks")
            for disk in self._layout(vm).disks:
                ET.SubElement(disks, "disk", name=disk["target"], snapshot="external")
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
            if request.quiesce:
                flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE
        xml = ET.tostring(root, encoding="unicode")
        self._act(lambda: vm.handle.snapshotCreateXML(xml, flags), vm, request.timeout, "create")
        created = self._one(vm, request.name)
        if location == "external":
            created.quiesced = bool(request.quiesce)
        return created

    def delete(self, vm, snapshot, remove_children, timeout):
        flags = libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN if remove_children else 0
        snap = self._look_up_once(vm, snapshot)
        self._act(lambda: snap.delete(flags), vm, timeout, "delete")

    def revert(self, vm, snapshot, power_state, timeout):
        flags = {
            "running": libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING,
            "paused": libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED,
        }.get(power_state, 0)
        snap = self._look_up_once(vm, snapshot)
        self._act(lambda: vm.handle.revertToSnapshot(snap, flags), vm, timeout, "revert")
        if power_state == "stopped" and self._call(vm.handle.isActive, vm, timeout, "revert"):
            self._call(vm.handle.destroy, vm, timeout, "revert")

    def update(self, vm, snapshot, new_name=None, description=None, timeout=None):
        if new_name:
            raise InvalidRequest("libvirt snapshots cannot be renamed")
        snap = self._lookup(vm, snapshot.name)
        xml = set_description(self._call(lambda: snap.getXMLDesc(libvirt.VIR_DOMAIN_SNAPSHOT_XML_SECURE), vm,
                                         timeout, "update"), description or "")
        flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE
        if snapshot.current:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT
        self._call(lambda: vm.handle.snapshotCreateXML(xml, flags), vm, timeout, "update")

    # --- helpers --------------------------------------------------------------------------

    def _lookup(self, vm, name):
        try:
            return vm.handle.snapshotLookupByName(name, 0)
        except libvirt.libvirtError as error:
            raise self._translate(error, vm=vm.name, snapshot=name)

    def _one(self, vm, name):
        for snap in self.list_snapshots(vm):
            if snap.name == name:
                return snap
        raise SnapshotNotFound("libvirt reported success but the snapshot is not there", vm=vm.name,
                               snapshot=name, provider=self.provider)

    def _act(self, func, vm, timeout, action):
        """``_call`` for a change: when libvirt refuses it because another job holds the domain (its
        job lock timed out, a block job is active), retry within lock_timeout, then GuestBusy."""
        deadline = Deadline(timeout)

        def attempt():
            try:
                return self._call(func, vm, None if timeout is None else max(deadline.remaining, 0.001), action)
            except ConnectionLost as error:
                # The call was the change: sent unless the connection was refused.
                raise error.during_change()

        return retry_while_busy(
            attempt, lambda error: error.details.get("busy") if isinstance(error, ProviderError) else None,
            float(self.params.get("lock_timeout") or 0))

    def _call(self, func, vm, timeout, action):
        """Run a blocking libvirt call, giving up after ``timeout`` seconds with the job's state."""
        outcome = {}

        def worker():
            try:
                outcome["value"] = func()
            except Exception as error:  # pylint: disable=broad-except
                outcome["error"] = error

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            # A silent connection, not a slow job, when the job statistics cannot be read either.
            self._raise_transport_of_job_state(vm)
            raise SnapshotTimeout(
                "timed out after %ss; last state: %s" % (timeout, self._job_state(vm)),
                last_state=self._job_state(vm),
                hint="libvirt may still finish the job; check 'virsh domjobinfo %s' before retrying" % vm.name)
        error = outcome.get("error")
        if isinstance(error, libvirt.libvirtError):
            raise self._translate(error, vm=vm.name)
        if error is not None:
            raise error
        return outcome.get("value")

    def _raise_transport_of_job_state(self, vm):
        try:
            vm.handle.jobStats(0)
        except libvirt.libvirtError as error:
            translated = self._translate(error, vm=vm.name)
            if isinstance(translated, ConnectionLost):
                raise translated.during_change(after_request=True)

    def _job_state(self, vm):
        try:
            stats = vm.handle.jobStats(0)
        except libvirt.libvirtError:
            # Not every driver keeps job statistics; the domain state still says something.
            try:
                return "domain %s, no job statistics" % _power_state(vm.handle.state()[0])
            except libvirt.libvirtError as error:
                return "unknown (%s)" % error.get_error_message()
        kind = {0: "none", 1: "bounded", 2: "unbounded", 3: "completed", 4: "failed", 5: "cancelled"}
        state = "job %s" % kind.get(stats.get("type"), stats.get("type"))
        if stats.get("operation") is not None:
            state += ", operation %s" % stats["operation"]
        if stats.get("time_elapsed") is not None:
            state += ", %s ms elapsed" % stats["time_elapsed"]
        return state

    def _raise_transport(self, error, vm):
        """Where a failed call is otherwise ignored: a broken connection is still an error."""
        translated = self._translate(error, vm=vm.name)
        if isinstance(translated, ConnectionLost):
            raise translated

    def _translate(self, error, vm=None, snapshot=None):
        """A libvirtError as the engine's error, keeping libvirt's own text."""
        code = error.get_error_code()
        text = error.get_error_message()
        kind = transport_kind(code, error.get_error_domain(), text)
        if kind is not None:
            return ConnectionLost(self.host, kind, timeout=self.silence, vm=vm, snapshot=snapshot,
                                  provider=self.provider)
        if code == libvirt.VIR_ERR_NO_DOMAIN:
            return VmNotFound(text, vm=vm, provider=self.provider)
        if code == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
            return SnapshotNotFound(text, vm=vm, snapshot=snapshot, provider=self.provider)
        if code == libvirt.VIR_ERR_OPERATION_TIMEOUT or "cannot acquire state change lock" in text:
            # QEMU driver: another job held the domain's job lock for libvirt's whole wait (30 s).
            return ProviderError(text, vm=vm, snapshot=snapshot, provider=self.provider,
                                 details={"busy": "libvirt job lock held by another job (%s)" % text})
        if code == getattr(libvirt, "VIR_ERR_BLOCK_COPY_ACTIVE", -1) or "active block job" in text:
            return ProviderError(text, vm=vm, snapshot=snapshot, provider=self.provider,
                                 details={"busy": "libvirt block job running (%s)" % text})
        return ProviderError(text, vm=vm, snapshot=snapshot, provider=self.provider)


def _qemu_img_snapshots(path):
    """``{snapshot name: memory state bytes}`` of a qcow2 file from ``qemu-img info -U``; None when not available."""
    binary = shutil.which("qemu-img")
    if not binary:
        return None
    try:
        out = subprocess.run([binary, "info", "-U", "--output=json", path], capture_output=True, timeout=30,
                             check=True).stdout
        return {s.get("name"): int(s.get("vm-state-size") or 0) for s in json.loads(out).get("snapshots") or ()}
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
