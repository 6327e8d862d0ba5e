# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""VMware vSphere provider: a ``SnapshotBackend`` over pyvmomi, plus its connection spec.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

Speed on large estates comes from never walking the inventory per VM:

* a UUID is looked up with ``SearchIndex.FindAllByUuid``, a managed object id directly, a name with
  ``folder`` by inventory path (``<datacenter>/vm/<folder>/<name>``: unique, vSphere keeps names
  unique per folder). A bare name must be unique in the whole scope, so it is never taken from the
  first place it is found (issue 14): the bare names of a call are looked for with
  ``SearchIndex.FindChild`` in every VM folder and vApp of the scope (one query for the folders, then
  one cheap call per name and folder, at most ``FIND_CHILD_MAX``); with more calls than that, or
  with ``vm_lookup: search``, one property-collector query over a container view reads every VM's
  name for all of them (its cost is pyvmomi parsing one row per VM: about 0.45 s at 10000 VMs);
* the properties of every VM of a call (power state, the whole snapshot tree, consolidation flag)
  come from one ``RetrievePropertiesEx`` call, and the snapshot tree read there serves the engine's
  first ``list_snapshots`` without another round trip;
* one API session per module call; the engine's ``ensure_many`` drives many VMs at once through it
  (pyvmomi's SOAP stub keeps a pool of HTTP connections and is safe to share between threads).

Every vSphere task is polled through ``_wait.poll`` with the user's timeout; a failed task raises
its own fault text, a timeout names the task and the state it was last in.

A VM with a task queued or running (its ``recentTask``, read with the tasks' states in one query)
is what ``busy`` reports to the engine's lock_timeout precheck; a ``TaskInProgress`` fault on our
own create/delete/revert (a task that started just after the precheck) is retried within
lock_timeout, then reported the same way.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import timezone
from xml.parsers.expat import ExpatError

from ansible.module_utils.basic import env_fallback

from ansible_collections.prechange.snapshots.plugins.module_utils._capacity import Capacity, DiskUsage
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import (
    AmbiguousVm,
    ConnectionFailed,
    ConnectionLost,
    InvalidRequest,
    PrecheckFailed,
    ProviderError,
    SnapshotError,
    SnapshotNotFound,
    SnapshotTimeout,
    VmNotFound,
    as_connection_lost,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import split_description
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import (
    RUNNING,
    Snapshot,
    SnapshotBackend,
    VmRecord,
    link_tree,
    retry_while_busy,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._wait import poll

PYVMOMI_IMPORT_ERROR = None
try:
    from pyVim.connect import Disconnect, SmartConnect
    from pyVmomi import vim, vmodl
except ImportError:  # pragma: no cover - reported by the module through missing_required_lib
    Disconnect = SmartConnect = vim = vmodl = None
    PYVMOMI_IMPORT_ERROR = traceback.format_exc()

PROVIDER = "vmware"
VM_LOOKUPS = ("auto", "search")
# vSphere supports at most 32 snapshots in one chain (VMware KB 1025279).
MAX_CHAIN_DEPTH = 32
# What one property-collector query reads of every VM the call acts on.
VM_PROPERTIES = ["name", "runtime.powerState", "runtime.consolidationNeeded", "snapshot",
                 "config.uuid", "config.instanceUuid", "config.template"]
POWER_STATES = {"poweredOn": "running", "poweredOff": "stopped", "suspended": "suspended"}
# Bare VM names are checked for namesakes with one FindChild call per name and VM folder / vApp of the
# scope while that makes at most this many calls (their cost grows with names x folders, not with the
# VMs); beyond, one container-view query of every VM's name is cheaper. Measured on vcsim at 10000 VMs:
# about 0.7 ms of client CPU per FindChild call, about 35 us per VM for the query (0.45 s in all).
FIND_CHILD_MAX = 128
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_MOID = re.compile(r"^vm-\d+$")
_UNSET = object()
# What qualifies a VM: a folder (vSphere keeps names unique per folder), an instance UUID or a moid.
AMBIGUOUS_HINTS = {
    "this name": "Name the VM by its instance UUID or managed object id, or give its 'folder' (and 'datacenter' "
                 "when several datacenters have that folder); nothing was changed",
    "this BIOS UUID": "Name the VM by its instance UUID or managed object id; nothing was changed",
}
# The module's timeout when it has none (info): bounds each SOAP call's connect and read.
DEFAULT_TIMEOUT = 600
# What the SOAP stub and its XML parser raise when the connection breaks under them.
TRANSPORT_ERRORS = (OSError, http.client.HTTPException, ExpatError)
# socket.setdefaulttimeout is process-wide: one connect at a time changes it.
_DEFAULT_TIMEOUT_LOCK = threading.Lock()


def connection_argument_spec():
    """The vSphere connection options, with community.vmware's environment fallbacks."""
    return dict(
        hostname=dict(type="str", fallback=(env_fallback, ["VMWARE_HOST"])),
        username=dict(type="str", aliases=["user", "admin"], fallback=(env_fallback, ["VMWARE_USER"])),
        password=dict(type="str", aliases=["pass", "pwd"], no_log=True,
                      fallback=(env_fallback, ["VMWARE_PASSWORD"])),
        port=dict(type="int", default=443, fallback=(env_fallback, ["VMWARE_PORT"])),
        validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["VMWARE_VALIDATE_CERTS"])),
        proxy_host=dict(type="str", fallback=(env_fallback, ["VMWARE_PROXY_HOST"])),
        proxy_port=dict(type="int", fallback=(env_fallback, ["VMWARE_PROXY_PORT"])),
    )


def location_argument_spec():
    """Where to look for VMs by name (both modules)."""
    return dict(
        datacenter=dict(type="str"),
        folder=dict(type="str"),
        vm_lookup=dict(type="str", choices=list(VM_LOOKUPS), default="auto"),
    )


def snapshot_extra_spec():
    """VMware-only options of vmware_snapshot."""
    spec = location_argument_spec()
    spec["consolidate"] = dict(type="bool", default=False)
    return spec


def info_extra_spec():
    """VMware-only options of vmware_snapshot_info."""
    spec = location_argument_spec()
    spec["cluster"] = dict(type="str")
    return spec


# --- pure helpers (unit tested without pyvmomi) -----------------------------------------------


def classify_ref(ref):
    """'moid', 'uuid' or 'name' for what the user gave as ``vm``."""
    text = str(ref).strip()
    if _MOID.match(text):
        return "moid"
    if _UUID.match(text):
        return "uuid"
    return "name"


def normalize_uuid(text):
    """vSphere UUIDs with dashes, lower case (FindAllByUuid wants the dashed form)."""
    raw = str(text).replace("-", "").lower()
    if len(raw) != 32:
        return str(text)
    return "%s-%s-%s-%s-%s" % (raw[:8], raw[8:12], raw[12:16], raw[16:20], raw[20:])


def folder_is_absolute(folder):
    """A folder path that names its datacenter: it has a ``vm`` component after the first one.

    ``DC1/vm/linux``, ``/DC1/vm``, ``Europe/DC1/vm/web`` are absolute (as community.vmware takes
    them); ``linux`` or ``linux/web`` are relative to each datacenter's VM folder.
    """
    parts = [p for p in str(folder).split("/") if p]
    return "vm" in parts[1:]


def inventory_paths(name, datacenters, folder=None):
    """Candidate inventory paths for a VM name: one per datacenter (or the one absolute folder)."""
    if folder:
        clean = "/".join(p for p in folder.split("/") if p)
        if folder_is_absolute(folder):
            return ["%s/%s" % (clean, name)]
        return ["%s/vm/%s/%s" % (dc, clean, name) for dc in datacenters]
    return ["%s/vm/%s" % (dc, name) for dc in datacenters]


def name_check(lookup, names, folders=None):
    """How bare VM names are checked for namesakes in the scope: 'find_child' or 'search'.

    ``folders`` is the number of VM folders and vApps in scope (None: not counted yet). In ``auto``
    mode each name is looked for in each folder while that takes at most FIND_CHILD_MAX calls; else,
    and always in ``search`` mode, one query reads every VM's name for all the names at once.
    """
    if lookup != "auto" or not names:
        return "search"
    if len(names) * (folders or 1) > FIND_CHILD_MAX:
        return "search"
    return "find_child"


def power_state(value):
    return POWER_STATES.get(str(value), "unknown")


def _utc(moment):
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc, microsecond=0)
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def _moid(obj):
    return getattr(obj, "_moId", None) or str(obj)


def snapshots_from_info(info):
    """A ``vim.vm.SnapshotInfo`` (or None) as linked ``Snapshot`` records, oldest first.

    Walks ``rootSnapshotList`` and every ``childSnapshotList``: the whole tree, siblings included.
    """
    if info is None:
        return []
    current = _moid(info.currentSnapshot) if getattr(info, "currentSnapshot", None) is not None else None
    found = []

    def walk(nodes, parent_id):
        for node in nodes or []:
            sid = _moid(node.snapshot)
            user_text, owner = split_description(node.description or "")
            state = str(node.state) if node.state is not None else None
            found.append(Snapshot(
                name=node.name, id=sid, description=user_text, created=_utc(node.createTime),
                parent_id=parent_id, current=sid == current,
                # A poweredOn snapshot holds memory; a suspended one holds the suspended state.
                memory=state in ("poweredOn", "suspended"),
                quiesced=bool(node.quiesced), owner=owner,
                power_state=power_state(state) if state else None,
                handle=node.snapshot,
            ))
            walk(node.childSnapshotList, sid)

    walk(info.rootSnapshotList, None)
    found.sort(key=lambda s: (s.created is None, s.created, s.id))
    return link_tree(found)


def fault_text(fault):
    """The human text of a vSphere fault (what the vSphere client would show)."""
    for attr in ("msg", "localizedMessage", "reason"):
        text = getattr(fault, attr, None)
        if text:
            return str(text)
    messages = [getattr(m, "message", None) for m in getattr(fault, "faultMessage", None) or []]
    messages = [m for m in messages if m]
    if messages:
        return "; ".join(messages)
    return type(fault).__name__


def task_label(props):
    """A task's name for messages: its TaskInfo.name without '_Task', or its descriptionId."""
    name = props.get("info.name") or ""
    return name[:-len("_Task")] if name.endswith("_Task") else (name or props.get("info.descriptionId") or "?")


def in_progress(fault):
    """What a TaskInProgress fault says holds the VM."""
    task = getattr(fault, "task", None)
    return "another task (%s) in progress on the VM: %s" % (_moid(task) if task is not None else "unknown",
                                                            fault_text(fault))


# --- the backend ------------------------------------------------------------------------------


class VmwareCloneMixin(object):
    """The clone methods of ``VmwareBackend`` (see _clone.py): CloneVM_Task from the snapshot, linked with
    diskMoveType createNewChildDiskBacking; the marker in the VM's annotation; NICs disconnected."""

    CLONE_PATHS = ["name", "runtime.powerState", "config.annotation", "config.hardware.device"]

    def _clone_records(self, names=None):
        from ansible_collections.prechange.snapshots.plugins.module_utils._clone import (  # pylint: disable=import-outside-toplevel
            CloneRecord, parse_clone_text)
        records = []
        for container in self._list_scope():
            rows = self._sdk(lambda c=container: self._view_properties(c, vim.VirtualMachine, self.CLONE_PATHS))
            for obj, props in rows:
                if names is not None and props.get("name") not in names:
                    continue
                _text, owner = parse_clone_text(props.get("config.annotation") or "")
                nics = [d for d in props.get("config.hardware.device") or [] if isinstance(d, vim.vm.device.VirtualEthernetCard)]
                connected = [d for d in nics if d.connectable is not None and d.connectable.startConnected]
                network = None
                if connected:
                    labels = {getattr(d.backing, "deviceName", None) for d in connected}
                    network = ", ".join(sorted(str(x) for x in labels))
                linked = None
                if owner is not None:
                    linked = "linked=yes" in (props.get("config.annotation") or "")
                records.append(CloneRecord(name=props.get("name"), id=_moid(obj),
                                           power_state=power_state(props.get("runtime.powerState")),
                                           owner=owner, linked=linked, network=network, handle=obj))
        return records

    def find_clone(self, name):
        found = {r.id: r for r in self._clone_records({name})}
        if len(found) > 1:
            raise PrecheckFailed("%d VMs are named '%s'" % (len(found), name), hint="Choose another 'name'")
        return next(iter(found.values()), None)

    def list_clones(self):
        return [r for r in self._clone_records() if r.ours]

    def plan_clone(self, vm, snapshot, request):
        from ansible_collections.prechange.snapshots.plugins.module_utils._clone import ClonePlan  # pylint: disable=import-outside-toplevel
        if snapshot.handle is None:
            raise PrecheckFailed("snapshot '%s' cannot be read" % snapshot.name, hint="Check the snapshot")
        placement = request.placement
        datastore = None
        if placement.get("datastore"):
            datastore = self._named(vim.Datastore, placement["datastore"], "datastore")
        pool = None
        if placement.get("resource_pool"):
            pool = self._named(vim.ResourcePool, placement["resource_pool"], "resource_pool")
        if request.network:
            self._named(vim.Network, request.network, "network")
        rows = self._sdk(lambda: self._properties([vm.handle], vim.VirtualMachine,
                                                  ["parent", "resourcePool", "datastore", "layoutEx.file"]), vm=vm.name)
        props = rows[0][1] if rows else {}
        linked = not request.full
        need = None
        free = None
        if not linked:
            need = sum(int(f.size or 0) for f in (props.get("layoutEx.file") or []) if f.type in ("diskExtent", "diskDescriptor"))
            target = datastore or next(iter(props.get("datastore") or []), None)
            if target is not None:
                free = self._sdk(lambda: target.summary.freeSpace)
        why = ("linked: a child disk on snapshot '%s' (createNewChildDiskBacking)" % snapshot.name if linked
               else "full copy, as asked" + (" (restore point)" if request.restore_point else ""))
        return ClonePlan(linked=linked, why=why, need_bytes=need, free_bytes=free,
                         data={"datastore": datastore, "pool": pool or props.get("resourcePool"),
                               "folder": props.get("parent")})

    def _named(self, kind, name, option):
        rows = []
        for container in self._search_scope():
            rows.extend(self._sdk(lambda c=container: self._view_properties(c, kind, ["name"])))
        matches = [obj for obj, props in rows if props.get("name") == name]
        if not matches:
            raise PrecheckFailed("there is no %s called '%s'" % (option.replace("_", " "), name),
                                 hint="Check '%s'" % option)
        return matches[0]

    def _nic_changes(self, clone_obj, network):
        rows = self._sdk(lambda: self._properties([clone_obj], vim.VirtualMachine, ["config.hardware.device"]))
        devices = rows[0][1].get("config.hardware.device") or [] if rows else []
        changes = []
        net = self._named(vim.Network, network, "network") if network else None
        for device in devices:
            if not isinstance(device, vim.vm.device.VirtualEthernetCard):
                continue
            if net is not None and not isinstance(net, vim.dvs.DistributedVirtualPortgroup):
                device.backing = vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(network=net, deviceName=network)
            device.connectable = vim.vm.device.VirtualDevice.ConnectInfo(
                connected=bool(net), startConnected=bool(net), allowGuestControl=bool(net))
            changes.append(vim.vm.device.VirtualDeviceSpec(operation="edit", device=device))
        return changes

    def clone(self, vm, snapshot, request, plan):
        from ansible_collections.prechange.snapshots.plugins.module_utils._clone import format_clone_text  # pylint: disable=import-outside-toplevel
        relocate = vim.vm.RelocateSpec(pool=plan.data["pool"])
        if plan.data.get("datastore") is not None:
            relocate.datastore = plan.data["datastore"]
        relocate.diskMoveType = "createNewChildDiskBacking" if plan.linked else "moveAllDiskBackingsAndDisallowSharing"
        annotation = format_clone_text("linked=%s" % ("yes" if plan.linked else "no"), request.marker)
        spec = vim.vm.CloneSpec(location=relocate, powerOn=False, template=False, snapshot=snapshot.handle,
                                config=vim.vm.ConfigSpec(annotation=annotation))
        folder = plan.data["folder"]
        if request.placement.get("folder"):
            folder = self._sdk(lambda: self.content.searchIndex.FindByInventoryPath(request.placement["folder"]))
            if not isinstance(folder, vim.Folder):
                raise PrecheckFailed("there is no folder '%s'" % request.placement["folder"],
                                     hint="Give the folder's inventory path, for example DC0/vm/rehearsals")
        made = self._run_task(lambda: vm.handle.CloneVM_Task(folder=folder, name=request.name, spec=spec),
                              vm, request.timeout, snapshot.name)
        clone_vm = VmRecord(name=request.name, id=_moid(made), power_state="stopped", handle=made)
        try:
            # Before any power-on: the NICs cut off (or on the named network), the marker in the annotation
            # (vcsim copies neither from the clone spec; vSphere does, and this is then a no-op).
            config = vim.vm.ConfigSpec(annotation=annotation, deviceChange=self._nic_changes(made, request.network))
            self._run_task(lambda: made.ReconfigVM_Task(spec=config), clone_vm, request.timeout, snapshot.name)
            if request.power_on:
                self._run_task(made.PowerOnVM_Task, clone_vm, request.timeout, snapshot.name)
        except SnapshotError:
            try:
                self._run_task(made.Destroy_Task, clone_vm, request.timeout, snapshot.name)
            except SnapshotError:
                pass
            raise
        return self.find_clone(request.name)

    def remove_clone(self, record, timeout):
        vm = VmRecord(name=record.name, id=record.id, power_state=record.power_state, handle=record.handle)
        if record.power_state != "stopped":
            self._run_task(record.handle.PowerOffVM_Task, vm, timeout)
        self._run_task(record.handle.Destroy_Task, vm, timeout)


class VmwareBackend(VmwareCloneMixin, SnapshotBackend):
    provider = PROVIDER
    supports_update = True
    supports_rename = True
    unique_names = False  # vSphere accepts two snapshots of one name: the engine checks after creating
    max_concurrency = 16
    provider_options = {"consolidate": False}

    def __init__(self, params, warn=None):
        super().__init__(params, warn)
        if SmartConnect is None:
            raise ConnectionFailed("the pyvmomi library is not installed",
                                   provider=self.provider, details={"exception": PYVMOMI_IMPORT_ERROR},
                                   hint="Install pyvmomi on the controller")
        self.si = None
        self._datacenters = None
        self.timeout = params.get("timeout") or DEFAULT_TIMEOUT
        # Set once a call lost the connection: close() then does not wait for a Logout answer.
        self._broken = False
        # The action a lookup failure is reported under (the engine binds it too, in batch mode).
        self._action = {"present": "create", "absent": "delete", "reverted": "revert"}.get(params.get("state"), "list")
        self._connect()

    # --- session ------------------------------------------------------------------------------

    def _connect(self):
        p = self.params
        host = p.get("hostname")
        port = p.get("port") or 443
        if not host:
            raise ConnectionFailed("no vCenter or ESXi host was given", provider=self.provider,
                                   hint="Set 'hostname' or the VMWARE_HOST environment variable")
        if not p.get("username") or p.get("password") is None:
            raise ConnectionFailed("no username or password was given", provider=self.provider,
                                   hint="Set 'username' and 'password' (or VMWARE_USER and VMWARE_PASSWORD)")
        if p.get("validate_certs", True):
            context = ssl.create_default_context()
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        where = "%s:%s" % (host, port)
        proxy = {}
        if p.get("proxy_host"):
            # Every request, the API version probe included, goes through an HTTP CONNECT tunnel.
            proxy = dict(httpProxyHost=p["proxy_host"], httpProxyPort=int(p.get("proxy_port") or 80))
            where += " through the proxy %s:%s" % (proxy["httpProxyHost"], proxy["httpProxyPort"])
        elif p.get("proxy_port"):
            raise ConnectionFailed("proxy_port is set but proxy_host is not", provider=self.provider,
                                   hint="Set 'proxy_host' (or VMWARE_PROXY_HOST) too, or unset 'proxy_port' (VMWARE_PROXY_PORT)")
        try:
            # httpConnectionTimeout bounds the connect and every read of the session's SOAP calls (pyvmomi
            # has no read timeout otherwise); the default socket timeout bounds SmartConnect's version
            # probe, which opens its own connection without one.
            with _DEFAULT_TIMEOUT_LOCK:
                previous = socket.getdefaulttimeout()
                socket.setdefaulttimeout(self.timeout)
                try:
                    self.si = SmartConnect(host=host, port=int(port), user=p["username"], pwd=p["password"],
                                           sslContext=context, httpConnectionTimeout=self.timeout, **proxy)
                finally:
                    socket.setdefaulttimeout(previous)
        except vim.fault.InvalidLogin as error:
            raise ConnectionFailed("cannot log in to %s as %s: %s" % (where, p["username"], fault_text(error)),
                                   provider=self.provider,
                                   hint="Check 'username' and 'password'")
        except ssl.SSLCertVerificationError as error:
            raise ConnectionFailed("TLS with %s failed: %s" % (where, error),
                                   provider=self.provider,
                                   hint="Trust the server's CA on the controller, or set validate_certs: false")
        except vmodl.MethodFault as error:
            raise ConnectionFailed("cannot log in to %s: %s" % (where, fault_text(error)),
                                   provider=self.provider)
        except TRANSPORT_ERRORS as error:
            lost = as_connection_lost(error, host, timeout=self.timeout, provider=self.provider,
                                      hint="Check 'hostname' and 'port'" + (" and the proxy" if proxy else ""))
            if lost is not None:
                raise lost
            if isinstance(error, ssl.SSLError):
                raise ConnectionFailed("TLS with %s failed: %s" % (where, error), provider=self.provider,
                                       hint="Trust the server's CA on the controller, or set validate_certs: false")
            raise ConnectionFailed("cannot reach %s: %s" % (where, error),
                                   provider=self.provider,
                                   hint="Check 'hostname' and 'port'" + (" and the proxy" if proxy else ""))
        except Exception as error:  # pylint: disable=broad-except
            # pyvmomi raises bare exceptions for an endpoint that is not vSphere at all.
            raise ConnectionFailed("cannot connect to %s: %s" % (where, error),
                                   provider=self.provider, hint="Check that 'hostname' is a vCenter or ESXi host")
        self.content = self.si.content
        # Batch mode drives up to max_concurrency calls at once through this one session: keep that
        # many HTTP connections alive instead of pyvmomi's default 5.
        stub = getattr(self.si, "_stub", None)
        if stub is not None and hasattr(stub, "poolSize"):
            stub.poolSize = max(stub.poolSize, self.max_concurrency)

    def close(self):
        si, self.si = getattr(self, "si", None), None
        if si is not None:
            try:
                if self._broken:
                    # No Logout through a connection that just failed: it would wait out the timeout again.
                    si._stub.DropConnections()  # pylint: disable=protected-access
                    return
                Disconnect(si)
            except Exception:  # pylint: disable=broad-except
                pass

    # --- SDK boundary -------------------------------------------------------------------------

    def _translate(self, error, vm=None, snapshot=None):
        """A pyvmomi / transport exception as the engine's error, keeping vSphere's own text."""
        if isinstance(error, vmodl.fault.ManagedObjectNotFound):
            obj = getattr(error, "obj", None)
            if isinstance(obj, vim.vm.Snapshot):
                return SnapshotNotFound("the snapshot no longer exists on the server (%s)" % fault_text(error),
                                        vm=vm, snapshot=snapshot, provider=self.provider)
            return VmNotFound("the VM no longer exists on the server (%s)" % fault_text(error), vm=vm,
                              provider=self.provider)
        if isinstance(error, vim.fault.TaskInProgress):
            return ProviderError(fault_text(error), vm=vm, snapshot=snapshot, provider=self.provider,
                                 details={"busy": in_progress(error)})
        if isinstance(error, vim.fault.NotAuthenticated):
            return ConnectionFailed("the vSphere session is no longer valid: %s" % fault_text(error), vm=vm,
                                    snapshot=snapshot, provider=self.provider)
        if isinstance(error, vmodl.MethodFault):
            return ProviderError(fault_text(error), vm=vm, snapshot=snapshot, provider=self.provider)
        lost = as_connection_lost(error, self.params.get("hostname"), timeout=self.timeout, vm=vm,
                                  snapshot=snapshot, provider=self.provider)
        if lost is not None:
            self._broken = True
            return lost
        if isinstance(error, TRANSPORT_ERRORS):
            return ConnectionFailed("lost the connection to %s: %s" % (self.params.get("hostname"), error), vm=vm,
                                    snapshot=snapshot, provider=self.provider)
        return ProviderError("%s: %s" % (type(error).__name__, error), vm=vm, snapshot=snapshot,
                             provider=self.provider)

    def _sdk(self, func, vm=None, snapshot=None):
        try:
            return func()
        except (vmodl.MethodFault,) + TRANSPORT_ERRORS as error:
            raise self._translate(error, vm=vm, snapshot=snapshot)

    def _retrieve(self, spec):
        """RetrievePropertiesEx with paging: ``[(obj, {path: value})]``."""
        collector = self.content.propertyCollector
        options = vmodl.query.PropertyCollector.RetrieveOptions()
        result = collector.RetrievePropertiesEx([spec], options)
        rows = []
        while result is not None:
            for item in result.objects or []:
                rows.append((item.obj, {prop.name: prop.val for prop in item.propSet or []}))
            if not getattr(result, "token", None):
                break
            result = collector.ContinueRetrievePropertiesEx(result.token)
        return rows

    def _properties(self, objects, obj_type, paths):
        """The given properties of the given objects, in one query."""
        pc = vmodl.query.PropertyCollector
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=obj, skip=False) for obj in objects],
            propSet=[pc.PropertySpec(type=obj_type, pathSet=list(paths))])
        return self._retrieve(spec)

    def _view_properties(self, container, obj_type, paths, more=()):
        """The given properties of every ``obj_type`` under ``container``, in one query.

        ``more``: further ``(type, paths)`` pairs read in the same query."""
        pc = vmodl.query.PropertyCollector
        wanted = [(obj_type, paths)] + list(more)
        view = self.content.viewManager.CreateContainerView(container, [t for t, _p in wanted], True)
        try:
            traverse = pc.TraversalSpec(name="traverseView", path="view", skip=False, type=vim.view.ContainerView)
            spec = pc.FilterSpec(
                objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[traverse])],
                propSet=[pc.PropertySpec(type=t, pathSet=list(p)) for t, p in wanted])
            return self._retrieve(spec)
        finally:
            try:
                view.Destroy()
            except vmodl.MethodFault:
                pass

    # --- lookup -------------------------------------------------------------------------------

    def _datacenter_paths(self):
        """Inventory paths of every datacenter (datacenters may sit in folders), in one query."""
        if self._datacenters is not None:
            return self._datacenters
        pc = vmodl.query.PropertyCollector
        root = self.content.rootFolder
        recurse = pc.TraversalSpec(name="folders", path="childEntity", skip=False, type=vim.Folder,
                                   selectSet=[pc.SelectionSpec(name="folders")])
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=root, skip=False, selectSet=[recurse])],
            propSet=[pc.PropertySpec(type=vim.Folder, pathSet=["name", "parent"]),
                     pc.PropertySpec(type=vim.Datacenter, pathSet=["name", "parent"])])
        rows = self._sdk(lambda: self._retrieve(spec))
        by_id = {_moid(obj): (obj, props) for obj, props in rows}
        root_id = _moid(root)
        paths = []
        for obj, props in rows:
            if not isinstance(obj, vim.Datacenter):
                continue
            parts, parent = [props.get("name")], props.get("parent")
            while parent is not None and _moid(parent) != root_id and _moid(parent) in by_id:
                parent_props = by_id[_moid(parent)][1]
                parts.insert(0, parent_props.get("name"))
                parent = parent_props.get("parent")
            paths.append("/".join(parts))
        self._datacenters = sorted(paths)
        return self._datacenters

    def _scope_paths(self):
        datacenter = self.params.get("datacenter")
        return [datacenter.strip("/")] if datacenter else self._datacenter_paths()

    def _find_by_path(self, path):
        index = self.content.searchIndex
        obj = self._sdk(lambda: index.FindByInventoryPath(path))
        return obj if isinstance(obj, vim.VirtualMachine) else None

    def _find_by_uuid(self, ref):
        index = self.content.searchIndex
        uuid = normalize_uuid(ref)
        # The instance UUID is unique per vCenter; the BIOS UUID is copied by clones.
        for instance in (True, False):
            found = self._sdk(lambda: index.FindAllByUuid(uuid=uuid, vmSearch=True, instanceUuid=instance), vm=ref)
            found = [obj for obj in found or [] if isinstance(obj, vim.VirtualMachine)]
            if found:
                return found
        return []

    def _search_scope(self):
        """The container a name search runs in: the folder, the datacenter, or everything."""
        folder = self.params.get("folder")
        datacenter = self.params.get("datacenter")
        index = self.content.searchIndex
        if folder:
            paths = inventory_paths("", self._scope_paths(), folder)
            containers = [self._sdk(lambda p=path.rstrip("/"): index.FindByInventoryPath(p)) for path in paths]
            containers = [c for c in containers if c is not None]
            if not containers:
                raise VmNotFound("the folder '%s' does not exist" % folder, provider=self.provider,
                                 hint="Check 'folder' (and 'datacenter'); nothing was changed")
            return containers
        if datacenter:
            dc = self._sdk(lambda: index.FindByInventoryPath(datacenter.strip("/")))
            if not isinstance(dc, vim.Datacenter):
                raise VmNotFound("the datacenter '%s' does not exist" % datacenter, provider=self.provider,
                                 hint="Check 'datacenter'; nothing was changed")
            return [dc]
        return [self.content.rootFolder]

    def _search_names(self, names):
        """One property-collector query per scope container: ``{name: [vm, ...]}``."""
        wanted = set(names)
        found = {name: [] for name in names}
        seen = set()
        for container in self._search_scope():
            rows = self._sdk(lambda c=container: self._view_properties(c, vim.VirtualMachine, ["name"]))
            for obj, props in rows:
                if props.get("name") in wanted and _moid(obj) not in seen:
                    seen.add(_moid(obj))
                    found[props["name"]].append(obj)
        return found

    def _vm_containers(self):
        """Every VM folder and vApp of the search scope (the scope's own folder included), in one query
        per scope container (folders are few: the query's cost hardly grows with the VMs)."""
        found, seen = [], set()
        root_id = _moid(self.content.rootFolder)

        def add(obj):
            if _moid(obj) not in seen:
                seen.add(_moid(obj))
                found.append(obj)

        for container in self._search_scope():
            # A 'folder' scope holds VMs itself; the root folder never does.
            if isinstance(container, (vim.Folder, vim.VirtualApp)) and _moid(container) != root_id:
                add(container)
            rows = self._sdk(lambda c=container: self._view_properties(
                c, vim.Folder, ["childType"], more=[(vim.VirtualApp, ["name"])]))
            for obj, props in rows:
                if isinstance(obj, vim.VirtualApp) or "VirtualMachine" in (props.get("childType") or []):
                    add(obj)
        return found

    def _find_children(self, names, containers):
        """``{name: [vm, ...]}``: the VMs called so directly in one of ``containers`` (one FindChild call
        per name and container, up to max_concurrency at once)."""
        index = self.content.searchIndex
        pairs = [(name, container) for name in names for container in containers]

        def child(pair):
            return self._sdk(lambda: index.FindChild(pair[1], pair[0]), vm=pair[0])

        workers = min(self.max_concurrency, len(pairs))
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                children = list(pool.map(child, pairs))
        else:
            children = [child(pair) for pair in pairs]
        found = {name: {} for name in names}
        for (name, _container), obj in zip(pairs, children):
            if isinstance(obj, vim.VirtualMachine):
                found[name].setdefault(_moid(obj), obj)
        return {name: list(vms.values()) for name, vms in found.items()}

    def _namesakes(self, names, lookup):
        """``{name: [vm, ...]}``: every VM of the scope with each bare name, for the uniqueness check.

        The cheapest correct way (see ``name_check``): FindChild in each VM folder while the calls are
        few, else one container-view query for all the names."""
        if name_check(lookup, names) == "find_child":
            containers = self._vm_containers()
            if name_check(lookup, names, len(containers)) == "find_child":
                return self._find_children(names, containers)
        return self._search_names(names)

    def _path_of(self, obj):
        """Inventory path of one object, walking up its parents (used for error messages only)."""
        parts = []
        root_id = _moid(self.content.rootFolder)
        node = obj
        try:
            for dummy in range(64):
                if node is None or _moid(node) == root_id:
                    break
                parts.insert(0, node.name)
                node = node.parent
        except (vmodl.MethodFault, OSError):
            return None
        return "/".join(parts)

    def _index_lookup(self, ref, lookup):
        """A VM, an error, or None when only a search can tell (index lookups only)."""
        kind = classify_ref(ref)
        try:
            if kind == "moid":
                return vim.VirtualMachine(str(ref).strip(), self.si._stub)  # pylint: disable=protected-access
            if kind == "uuid":
                matches = self._find_by_uuid(ref)
                if len(matches) == 1:
                    return matches[0]
                if len(matches) > 1:
                    return self._ambiguous(ref, matches, "this BIOS UUID")
                # Not a UUID of any VM: it may still be a VM's name.
            if lookup == "auto" and self.params.get("folder"):
                # Qualified by its folder: vSphere keeps names unique per folder. A bare name is not
                # looked up here: a VM directly in a datacenter's VM folder may have namesakes in
                # sub-folders, and only the uniqueness check in _resolve can tell.
                paths = inventory_paths(ref, self._scope_paths(), self.params.get("folder"))
                matches = [vm for vm in (self._find_by_path(path) for path in paths) if vm is not None]
                if len(matches) == 1:
                    return matches[0]
                if len(matches) > 1:
                    return self._ambiguous(ref, matches, "this name")
        except (VmNotFound, ConnectionFailed, ProviderError) as error:
            return error
        return None

    def _resolve(self, refs):
        """``{ref: vim.VirtualMachine or SnapshotError}``: index lookups for qualified refs (UUID, moid, name
        with ``folder``), then one uniqueness check for every bare name (``_namesakes``)."""
        resolved, by_name = {}, []
        lookup = self.params.get("vm_lookup") or "auto"
        if lookup == "auto" and self.params.get("folder") and any(classify_ref(ref) == "name" for ref in refs):
            self._scope_paths()  # once, before the threads need it
        workers = min(self.max_concurrency, len(refs))
        if workers > 1:
            # One round trip per index lookup: many VMs of a batch are looked up at once.
            with ThreadPoolExecutor(max_workers=workers) as pool:
                found = list(pool.map(lambda ref: self._index_lookup(ref, lookup), refs))
        else:
            found = [self._index_lookup(ref, lookup) for ref in refs]
        for ref, value in zip(refs, found):
            if value is None:
                by_name.append(ref)
            else:
                resolved[ref] = value
        if by_name:
            try:
                searched = self._namesakes(by_name, lookup)
            except (VmNotFound, ConnectionFailed, ProviderError) as error:
                searched = None
                for ref in by_name:
                    resolved[ref] = error
            for ref in by_name if searched is not None else ():
                matches = searched[ref]
                if len(matches) == 1:
                    resolved[ref] = matches[0]
                elif matches:
                    resolved[ref] = self._ambiguous(ref, matches, "this name")
                else:
                    resolved[ref] = VmNotFound(
                        "no VM with this name, UUID or managed object id exists%s" % self._where(),
                        action=self._action, vm=ref, provider=self.provider,
                        hint="Check 'vm' (and 'datacenter' / 'folder'); nothing was changed")
        return resolved

    def _where(self):
        scope = [("datacenter", self.params.get("datacenter")), ("folder", self.params.get("folder"))]
        scope = ["%s '%s'" % (k, v) for k, v in scope if v]
        return " in %s" % " and ".join(scope) if scope else " on %s" % self.params.get("hostname")

    def _ambiguous(self, ref, matches, what):
        candidates = [{"id": _moid(vm), "path": self._path_of(vm)} for vm in matches]
        listing = ", ".join("%s (%s)" % (c["path"] or "?", c["id"]) for c in candidates)
        return AmbiguousVm("%d VMs match %s: %s" % (len(matches), what, listing), action=self._action, vm=ref,
                           provider=self.provider,
                           hint=AMBIGUOUS_HINTS[what],
                           details={"candidates": candidates})

    def _records(self, handles):
        """One query for the properties of many VMs: ``{moid: VmRecord}``."""
        if not handles:
            return {}
        rows = self._sdk(lambda: self._properties(handles, vim.VirtualMachine, VM_PROPERTIES))
        return {_moid(obj): self._record(obj, props) for obj, props in rows}

    def _record(self, obj, props):
        extra = {
            "uuid": props.get("config.uuid"),
            "instance_uuid": props.get("config.instanceUuid"),
            "template": bool(props.get("config.template")),
            "consolidation_needed": bool(props.get("runtime.consolidationNeeded")),
            # Served once to list_snapshots, so the engine's first listing costs no round trip.
            "_snapshot_info": props.get("snapshot"),
        }
        return VmRecord(name=props.get("name"), id=_moid(obj), power_state=power_state(props.get("runtime.powerState")),
                        handle=obj, extra=extra)

    def find_vms(self, refs):
        resolved = self._resolve(list(dict.fromkeys(refs)))
        handles = [v for v in resolved.values() if not isinstance(v, Exception)]
        unique = list({_moid(h): h for h in handles}.values())
        try:
            records = self._records(unique)
        except VmNotFound:
            # A managed object id that does not exist can fail the whole query: ask one by one.
            records = {}
            for handle in unique:
                try:
                    records.update(self._records([handle]))
                except VmNotFound:
                    pass
        found = {}
        for ref in refs:
            value = resolved[ref]
            if isinstance(value, Exception):
                found[ref] = value
                continue
            record = records.get(_moid(value))
            if record is None or record.name is None:
                found[ref] = VmNotFound("no VM with this managed object id exists on %s" % self.params.get("hostname"),
                                        action=self._action, vm=ref, provider=self.provider,
                                        hint="Check 'vm'; nothing was changed")
                continue
            # Each VM gets its own record: two refs naming one VM must not share the prefetched tree.
            found[ref] = VmRecord(name=record.name, id=record.id, power_state=record.power_state,
                                  handle=record.handle, extra=dict(record.extra))
        return found

    def find_vm(self, ref):
        result = self.find_vms([ref])[ref]
        if isinstance(result, Exception):
            raise result
        return result

    def list_vms(self):
        """Every VM under the cluster / folder / datacenter given (or the whole vCenter), in one query."""
        containers = self._list_scope()
        records, seen = [], set()
        for container in containers:
            rows = self._sdk(lambda c=container: self._view_properties(c, vim.VirtualMachine, VM_PROPERTIES))
            for obj, props in rows:
                if _moid(obj) in seen:
                    continue
                seen.add(_moid(obj))
                records.append(self._record(obj, props))
        records.sort(key=lambda r: (r.name or "", r.id))
        return records

    def endpoint(self):
        return self._where().strip()

    def product_uuid_candidates(self):
        """The BIOS UUID (config.uuid) of every VM in the datacenter / folder scope: one query per container."""
        pairs, seen = [], set()
        for container in self._search_scope():
            rows = self._sdk(lambda c=container: self._view_properties(
                c, vim.VirtualMachine, ["name", "config.uuid", "config.template"]))
            for obj, props in rows:
                if _moid(obj) in seen or props.get("config.template"):
                    continue
                seen.add(_moid(obj))
                pairs.append((props.get("config.uuid"),
                              VmRecord(name=props.get("name"), id=_moid(obj), power_state="unknown", handle=obj)))
        return pairs

    def _list_scope(self):
        cluster = self.params.get("cluster")
        if not cluster:
            return self._search_scope()
        index = self.content.searchIndex
        clean = "/".join(p for p in cluster.split("/") if p)
        if "host" in clean.split("/")[1:]:
            paths = [clean]
        else:
            paths = ["%s/host/%s" % (dc, clean) for dc in self._scope_paths()]
        found = [self._sdk(lambda p=path: index.FindByInventoryPath(p)) for path in paths]
        found = [obj for obj in found if isinstance(obj, vim.ComputeResource)]
        if not found:
            raise VmNotFound("the cluster '%s' does not exist" % cluster, provider=self.provider,
                             hint="Check 'cluster' (and 'datacenter')")
        if len(found) > 1:
            raise InvalidRequest("%d datacenters have a cluster called '%s'" % (len(found), cluster),
                                 hint="Set 'datacenter'")
        return found

    VM_STATE_PATHS = ("snapshot", "runtime.powerState", "runtime.consolidationNeeded")

    def _apply_vm_state(self, vm, props):
        vm.power_state = power_state(props.get("runtime.powerState"))
        vm.extra["consolidation_needed"] = bool(props.get("runtime.consolidationNeeded"))
        return props.get("snapshot")

    def list_snapshots(self, vm):
        info = vm.extra.pop("_snapshot_info", _UNSET)
        if info is _UNSET:
            rows = self._sdk(lambda: self._properties([vm.handle], vim.VirtualMachine, self.VM_STATE_PATHS),
                             vm=vm.name)
            if not rows:
                raise VmNotFound("the VM no longer exists", vm=vm.name, provider=self.provider)
            info = self._apply_vm_state(vm, rows[0][1])
        return snapshots_from_info(info)

    # --- capacity ---------------------------------------------------------------------------

    CAPACITY_PATHS = ("config.hardware.device", "config.hardware.memoryMB", "config.files.snapshotDirectory",
                      "config.files.vmPathName", "layoutEx.file", "layoutEx.disk", "layoutEx.snapshot")

    def _layout(self, vm):
        rows = self._sdk(lambda: self._properties([vm.handle], vim.VirtualMachine, self.CAPACITY_PATHS), vm=vm.name)
        if not rows:
            raise VmNotFound("the VM no longer exists", vm=vm.name, provider=self.provider)
        return rows[0][1]

    def capacity(self, vm):
        """Each virtual disk's datastore (a snapshot's delta disk is made next to its parent) with the datastore
        summary's free space and capacity; the disk's capacity, and its files' sizes in layoutEx as its use."""
        return self._capacity_of(vm, self._layout(vm))

    def measure_storage(self, vm, snapshots, refresh=False):
        """``capacity`` and ``snapshot_sizes`` from one read of the VM's layout. With ``refresh``, vSphere is asked
        first to re-read the VM's files (RefreshStorageInfo: layoutEx is otherwise only refreshed now and then)
        and, after the layout, its datastores' free space (RefreshDatastore); a refresh that fails leaves
        vSphere's last numbers and says so in the note, it never fails the measurement."""
        notes = []
        if refresh:
            try:
                self._sdk(vm.handle.RefreshStorageInfo, vm=vm.name)
            except Exception as error:  # pylint: disable=broad-except
                notes.append("the VM's storage could not be refreshed (%s); its file sizes are vSphere's last" % error)
        props = self._layout(vm)
        stores = {}
        for dev in (props.get("config.hardware.device") or []) if refresh else []:
            store = getattr(dev.backing, "datastore", None) if isinstance(dev, vim.vm.device.VirtualDisk) else None
            if store is not None:
                stores[_moid(store)] = store
        for key, store in stores.items():
            try:
                self._sdk(store.RefreshDatastore, vm=vm.name)
            except Exception as error:  # pylint: disable=broad-except
                notes.append("datastore %s could not be refreshed (%s); its free space is vSphere's last" % (key, error))
        sizes = self._sizes_of(props, snapshots) if snapshots else {}
        return self._capacity_of(vm, props), sizes, "; ".join(notes) or None

    def _capacity_of(self, vm, props):
        files = {f.key: f for f in props.get("layoutEx.file") or []}
        chains = {d.key: d.chain for d in props.get("layoutEx.disk") or []}
        disks, stores = [], {}
        for dev in props.get("config.hardware.device") or []:
            if not isinstance(dev, vim.vm.device.VirtualDisk):
                continue
            label = dev.deviceInfo.label if dev.deviceInfo is not None else "disk %s" % dev.key
            store = getattr(dev.backing, "datastore", None)
            keys = [k for link in chains.get(dev.key) or [] for k in link.fileKey or []]
            usage = DiskUsage(disk=label, storage=None,
                              provisioned_bytes=int(dev.capacityInBytes or (dev.capacityInKB or 0) * 1024) or None,
                              used_bytes=sum(int(files[k].size or 0) for k in keys if k in files) if keys else None)
            if store is None:
                usage.note = "the disk's backing names no datastore"
            else:
                stores[_moid(store)] = store
                usage.storage = _moid(store)
            disks.append(usage)
        summaries = {}
        if stores:
            rows = self._sdk(lambda: self._properties(list(stores.values()), vim.Datastore,
                                                      ("summary.name", "summary.freeSpace", "summary.capacity")),
                             vm=vm.name)
            summaries = {_moid(obj): p for obj, p in rows}
        for usage in disks:
            summary = summaries.get(usage.storage)
            if summary is not None:
                usage.storage = summary.get("summary.name") or usage.storage
                usage.free_bytes = _int_or_none(summary.get("summary.freeSpace"))
                usage.total_bytes = _int_or_none(summary.get("summary.capacity"))
        memory = _int_or_none(props.get("config.hardware.memoryMB"))
        # The memory file (.vmem) goes to the snapshot directory, by default the VM's home: "[datastore] dir/".
        home = props.get("config.files.snapshotDirectory") or props.get("config.files.vmPathName") or ""
        match = re.match(r"^\[([^\]]+)\]", home)
        return Capacity(disks=disks, memory_bytes=memory * 1024 * 1024 if memory else None,
                        memory_storage=match.group(1) if match else None,
                        note=None if disks else "the VM has no virtual disks")

    def snapshot_sizes(self, vm, snapshots):
        """From layoutEx: a snapshot's state and memory files plus, per disk, the delta that the next link of the
        chain (a child snapshot's or the running disk's) added after it: the data written since the snapshot."""
        return self._sizes_of(self._layout(vm), snapshots)

    @staticmethod
    def _sizes_of(props, snapshots):
        files = {f.key: int(f.size or 0) for f in props.get("layoutEx.file") or []}
        layouts = {_moid(s.key): s for s in props.get("layoutEx.snapshot") or []}
        chains = [[tuple(link.fileKey or ()) for link in d.chain or []] for d in props.get("layoutEx.disk") or []]
        chains += [[tuple(link.fileKey or ()) for link in d.chain or []]
                   for s in layouts.values() for d in s.disk or []]
        sizes = {}
        for snap in snapshots:
            layout = layouts.get(snap.id)
            if layout is None:
                sizes[snap.id] = (None, "the VM's file layout (layoutEx) lists no files for this snapshot")
                continue
            keys = {k for k in (layout.dataKey, layout.memoryKey) if k is not None and k >= 0}
            for disk in layout.disk or []:
                mine = [tuple(link.fileKey or ()) for link in disk.chain or []]
                for chain in chains:
                    if len(chain) > len(mine) and chain[:len(mine)] == mine:
                        keys.update(chain[len(mine)])
                        break
            sizes[snap.id] = (sum(files.get(k, 0) for k in keys),
                              "layoutEx: the snapshot's state and memory files and the delta disks written after it")
        return sizes

    # --- another task on the VM -------------------------------------------------------------

    BUSY_TASK_PATHS = ("info.state", "info.name", "info.descriptionId", "info.key")

    def busy(self, vm):
        """The VM's tasks that are queued or running: its recentTask and their states, in one query."""
        pc = vmodl.query.PropertyCollector
        to_tasks = pc.TraversalSpec(name="recentTask", type=vim.VirtualMachine, path="recentTask", skip=False)
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=vm.handle, skip=True, selectSet=[to_tasks])],
            propSet=[pc.PropertySpec(type=vim.Task, pathSet=list(self.BUSY_TASK_PATHS))])
        rows = self._sdk(lambda: self._retrieve(spec), vm=vm.name)
        active = [(obj, props) for obj, props in rows if str(props.get("info.state")) in ("queued", "running")]
        if not active:
            return None
        return ", ".join("task '%s' (%s) %s" % (task_label(props), _moid(obj), props.get("info.state"))
                         for obj, props in active) + " on the VM"

    def _busy_of(self, error):
        """What a TaskInProgress fault (raised by the call, or the task's own error) says holds the VM."""
        return error.details.get("busy") if isinstance(error, ProviderError) else None

    def _act(self, start, vm, timeout, snapshot=None, read_vm=False):
        """``_run_task`` for a change, retried within lock_timeout while vSphere answers TaskInProgress."""
        return retry_while_busy(lambda: self._run_task(start, vm, timeout, snapshot, read_vm=read_vm),
                                self._busy_of, float(self.params.get("lock_timeout") or 0))

    # --- prechecks ----------------------------------------------------------------------------

    def check_create(self, vm, request, snapshots):
        if vm.extra.get("template"):
            raise PrecheckFailed("the VM is a template, and templates cannot have snapshots",
                                 hint="Snapshot the VMs deployed from it instead; nothing was changed")
        if request.quiesce and request.strict and vm.power_state != RUNNING:
            raise PrecheckFailed(
                "quiesce needs a powered-on VM with VMware Tools running, and the VM is %s" % vm.power_state,
                hint="Power the VM on, or set quiesce: false or strict: false; nothing was changed")
        current = next((s for s in snapshots if s.current), None)
        if current is not None and current.depth >= MAX_CHAIN_DEPTH:
            raise PrecheckFailed(
                "the snapshot chain is already %d deep and vSphere supports at most %d"
                % (current.depth, MAX_CHAIN_DEPTH),
                hint="Delete older snapshots of this VM first; nothing was changed")
        if vm.extra.get("consolidation_needed"):
            self.warn("VM '%s' already needs disk consolidation; consolidate it before relying on new snapshots"
                      % vm.name)

    def check_revert(self, vm, snapshot, snapshots, power_state):  # pylint: disable=redefined-outer-name
        if vm.extra.get("template"):
            raise PrecheckFailed("the VM is a template", hint="Nothing was changed")

    # --- tasks --------------------------------------------------------------------------------

    TASK_PATHS = ("info.state", "info.progress", "info.error", "info.result", "info.descriptionId")

    def _task_state(self, task, vm=None):
        """The task's info; with ``vm``, the VM's snapshot tree and power state read in the same query,
        so a finished task's effect is known without another round trip."""
        pc = vmodl.query.PropertyCollector
        objects = [pc.ObjectSpec(obj=task, skip=False)]
        props = [pc.PropertySpec(type=vim.Task, pathSet=list(self.TASK_PATHS))]
        if vm is not None:
            objects.append(pc.ObjectSpec(obj=vm.handle, skip=False))
            props.append(pc.PropertySpec(type=vim.VirtualMachine, pathSet=list(self.VM_STATE_PATHS)))
        rows = self._retrieve(pc.FilterSpec(objectSet=objects, propSet=props))
        info = next((p for obj, p in rows if isinstance(obj, vim.Task)), None)
        if info is None:
            raise ProviderError("the vSphere task %s disappeared" % _moid(task), provider=self.provider)
        if vm is not None:
            state = next((p for obj, p in rows if isinstance(obj, vim.VirtualMachine)), None)
            if state is not None:
                # Valid after a success only; before, the next list_snapshots reads afresh anyway.
                vm.extra["_task_vm_state"] = state
        return info

    def _wait(self, task, vm, timeout, snapshot=None, read_vm=False):
        """Wait for a vSphere task; return its result. A failed task raises its own fault text.

        With ``read_vm``, the VM's snapshot tree as the finished task left it is kept for the next
        ``list_snapshots``."""
        label = {"id": _moid(task), "name": None}

        def check():
            info = self._sdk(lambda: self._task_state(task, vm if read_vm else None), vm=vm.name,
                             snapshot=snapshot)
            label["name"] = info.get("info.descriptionId") or label["name"]
            state = str(info.get("info.state"))
            if state == "success":
                after = vm.extra.pop("_task_vm_state", None)
                if read_vm and after is not None:
                    vm.extra["_snapshot_info"] = self._apply_vm_state(vm, after)
                return True, info.get("info.result")
            if state == "error":
                fault = info.get("info.error")
                details = {"task": _moid(task), "fault": type(fault).__name__}
                if isinstance(fault, vim.fault.TaskInProgress):
                    details["busy"] = in_progress(fault)
                raise ProviderError(fault_text(fault) if fault is not None else "the vSphere task failed",
                                    vm=vm.name, snapshot=snapshot, provider=self.provider, details=details)
            progress = info.get("info.progress")
            return False, "%s%s" % (state, " (%s%%)" % progress if progress is not None else "")

        try:
            return poll(check, timeout, "vSphere task %s" % _moid(task), initial=0.02, maximum=1.0)
        except SnapshotTimeout as error:
            error.details.setdefault("task", _moid(task))
            error.hint = ("vCenter may still finish task %s (%s); check it in the vSphere client before retrying"
                          % (_moid(task), label["name"] or "unknown"))
            raise

    def _run_task(self, start, vm, timeout, snapshot=None, read_vm=False):
        try:
            task = self._sdk(start, vm=vm.name, snapshot=snapshot)
        except ConnectionLost as error:
            # A refused request changed nothing; a lost answer may have started the task.
            raise error.during_change()
        try:
            return self._wait(task, vm, timeout, snapshot, read_vm=read_vm)
        except ConnectionLost as error:
            raise error.during_change(after_request=True)

    # --- actions ------------------------------------------------------------------------------

    def create(self, vm, request):
        result = self._act(
            lambda: vm.handle.CreateSnapshot_Task(name=request.name, description=request.full_description,
                                                  memory=bool(request.memory), quiesce=bool(request.quiesce)),
            vm, request.timeout, request.name, read_vm=True)
        info = vm.extra.pop("_snapshot_info", _UNSET)
        if info is not _UNSET:
            # The tree read with the finished task; the engine's next listing gets it too.
            vm.extra["_snapshot_info"] = info
            snapshots = snapshots_from_info(info)
        else:
            snapshots = self.list_snapshots(vm)
        created_id = _moid(result) if result is not None else None
        match = [s for s in snapshots if s.id == created_id] or [s for s in snapshots if s.current]
        if not match:
            raise SnapshotNotFound("vSphere reported success but the snapshot is not there", vm=vm.name,
                                   snapshot=request.name, provider=self.provider)
        return match[0]

    def delete(self, vm, snapshot, remove_children, timeout):
        self._act(lambda: snapshot.handle.RemoveSnapshot_Task(removeChildren=bool(remove_children),
                                                              consolidate=True),
                  vm, timeout, snapshot.name)
        self._after_delete(vm, snapshot, timeout)

    def _after_delete(self, vm, snapshot, timeout):
        """vSphere may need disk consolidation after a delete: consolidate or warn, as asked."""
        rows = self._sdk(lambda: self._properties([vm.handle], vim.VirtualMachine, ["runtime.consolidationNeeded"]),
                         vm=vm.name, snapshot=snapshot.name)
        needed = bool(rows and rows[0][1].get("runtime.consolidationNeeded"))
        vm.extra["consolidation_needed"] = needed
        if not needed:
            return
        if not self.option("consolidate"):
            self.warn("VM '%s' needs disk consolidation after deleting snapshot '%s'; run 'Consolidate' in "
                      "vSphere, or set consolidate: true" % (vm.name, snapshot.name))
            return
        try:
            self._run_task(vm.handle.ConsolidateVMDisks_Task, vm, timeout, snapshot.name)
        except ProviderError as error:
            error.reason = "the snapshot was deleted but consolidating the disks failed: %s" % error.reason
            raise
        vm.extra["consolidation_needed"] = False

    def revert(self, vm, snapshot, power_state, timeout):  # pylint: disable=redefined-outer-name
        power_state_after = power_state
        # With 'stopped', never let the revert itself power the VM on.
        suppress = power_state_after == "stopped"
        self._act(lambda: snapshot.handle.RevertToSnapshot_Task(suppressPowerOn=suppress),
                  vm, timeout, snapshot.name)
        if power_state_after == "snapshot":
            return
        rows = self._sdk(lambda: self._properties([vm.handle], vim.VirtualMachine, ["runtime.powerState"]),
                         vm=vm.name, snapshot=snapshot.name)
        state = str(rows[0][1].get("runtime.powerState")) if rows else "unknown"
        if power_state_after == "running" and state != "poweredOn":
            self._run_task(vm.handle.PowerOnVM_Task, vm, timeout, snapshot.name)
        elif power_state_after == "stopped" and state != "poweredOff":
            self._run_task(vm.handle.PowerOffVM_Task, vm, timeout, snapshot.name)
        elif power_state_after == "paused" and state != "suspended":
            # vSphere has no paused state; suspended is the one that keeps memory without running.
            if state == "poweredOff":
                self._run_task(vm.handle.PowerOnVM_Task, vm, timeout, snapshot.name)
            self._run_task(vm.handle.SuspendVM_Task, vm, timeout, snapshot.name)

    def update(self, vm, snapshot, new_name=None, description=None, timeout=None):
        if description == "" and snapshot.raw_description:
            raise InvalidRequest("vSphere cannot clear a snapshot's description (an empty one leaves it unchanged)",
                                 vm=vm.name, snapshot=snapshot.name, provider=self.provider,
                                 hint="Give a non-empty description; nothing was changed")
        kwargs = {}
        if new_name:
            kwargs["name"] = new_name
        if description:
            kwargs["description"] = description
        if kwargs:
            self._sdk(lambda: snapshot.handle.RenameSnapshot(**kwargs), vm=vm.name, snapshot=snapshot.name)


def _int_or_none(value):
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
