# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Proxmox VE provider: a ``SnapshotBackend`` over proxmoxer, plus its connection spec.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

One ``ProxmoxBackend`` is one API session (one ticket, or one API token) for a whole module
call, however many guests it acts on. Guests are QEMU VMs or LXC containers; the kind and the
node come from one ``/cluster/resources`` query, also for many guests at once.

Every snapshot, delete and rollback is a PVE task (a UPID): it is polled through ``_wait`` until
it stops or the timeout runs out. A failed task reports the text of its own log. A guest whose
config carries a lock (a backup, a migration, another snapshot job) is reported by ``busy`` to
the engine's precheck, which refuses it or waits up to ``lock_timeout``; when PVE says the guest
is locked as our own task starts (``VM is locked (backup)``, or a lock file timeout), the call is
retried with backoff within the same ``lock_timeout``, then reported with the lock's name.

Prechecks refuse before anything changes what PVE would refuse half way: names PVE rejects,
memory state for containers, disks on storage without snapshot support, container bind mounts
and device mounts, rollback past newer snapshots on ZFS.
"""

from __future__ import annotations

import json
import re
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from ansible.module_utils.basic import env_fallback

from ansible_collections.prechange.snapshots.plugins.module_utils._capacity import Capacity, DiskUsage, gib
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import (
    AmbiguousVm,
    ConnectionFailed,
    ConnectionLost,
    InvalidRequest,
    PrecheckFailed,
    ProviderError,
    GuestBusy,
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
    descendants,
    link_tree,
    retry_while_busy,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._wait import Deadline, poll

PROXMOXER_IMPORT_ERROR = None
try:
    from proxmoxer import ProxmoxAPI
    from proxmoxer.core import AuthenticationError, ResourceException
except ImportError:  # pragma: no cover - reported by the module through missing_required_lib
    ProxmoxAPI = AuthenticationError = ResourceException = None
    PROXMOXER_IMPORT_ERROR = traceback.format_exc()

QEMU = "qemu"
LXC = "lxc"

# PVE's 'pve-configid' format for snapshot names (PVE::JSONSchema::pve_verify_configid, matched
# case-insensitively) and the API's maxLength of 40.
SNAPSHOT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]+$")
SNAPSHOT_NAME_MAX = 40
# Names PVE reserves: 'current' is the "You are here!" entry of every snapshot list; 'pending'
# (QEMU, any case) is the pending-changes section of a VM config; 'vzdump' (LXC) is the backup's
# own temporary snapshot.
RESERVED_NAMES = {QEMU: ("current", "pending"), LXC: ("current", "vzdump"), None: ("current",)}

# Storage types whose volumes snapshot whatever their format.
SNAPSHOT_STORAGE_TYPES = ("lvmthin", "zfspool", "zfs", "rbd", "btrfs")
# Storage types that hold files; only qcow2 images there can be snapshotted (QEMU internal snapshots).
FILE_STORAGE_TYPES = ("dir", "nfs", "cifs", "glusterfs", "cephfs")
# Never: thick LVM (unless PVE 9's snapshot-as-volume-chain with qcow2), iSCSI LUNs.
NO_SNAPSHOT_STORAGE_TYPES = ("lvm", "iscsi", "iscsidirect")

QEMU_DISK_KEY = re.compile(r"^(ide|sata|scsi|virtio)\d+$|^(efidisk|tpmstate)0$")
LXC_MOUNT_KEY = re.compile(r"^(rootfs|mp\d+)$")

# Seconds between starting a task and its first status poll.
FIRST_POLL_DELAY = 0.05

_LOCKED = re.compile(r"\b(?:VM|CT) is locked \(([^)]+)\)")
_LOCK_FILE = re.compile(r"can't lock file '([^']+)' - got timeout")


def connection_argument_spec():
    """The Proxmox connection options (documented in the proxmox doc fragment).

    Names and environment variables as community.proxmox has them, so existing inventories
    and ``module_defaults`` carry over.
    """
    return dict(
        api_host=dict(type="str", required=True, fallback=(env_fallback, ["PROXMOX_HOST"])),
        api_port=dict(type="int", fallback=(env_fallback, ["PROXMOX_PORT"])),
        api_user=dict(type="str", required=True, fallback=(env_fallback, ["PROXMOX_USER"])),
        api_password=dict(type="str", no_log=True, fallback=(env_fallback, ["PROXMOX_PASSWORD"])),
        api_token_id=dict(type="str", no_log=False, fallback=(env_fallback, ["PROXMOX_TOKEN_ID"])),
        api_token_secret=dict(type="str", no_log=True, fallback=(env_fallback, ["PROXMOX_TOKEN_SECRET"])),
        validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["PROXMOX_VALIDATE_CERTS"])),
        ca_path=dict(type="path", fallback=(env_fallback, ["PROXMOX_CA_PATH"])),
        api_timeout=dict(type="int", default=30, fallback=(env_fallback, ["PROXMOX_API_TIMEOUT"])),
    )


def request_timeout(params):
    """Seconds one HTTP call may take (to connect, and between answer bytes): api_timeout, and never
    more than the module's timeout."""
    limits = [params.get("api_timeout") or 30]
    if params.get("timeout"):
        limits.append(params["timeout"])
    return min(limits)


def connection_module_kwargs():
    """Argument rules for the connection options, merged into each module's AnsibleModule kwargs."""
    return dict(
        required_one_of=[("api_password", "api_token_id")],
        required_together=[("api_token_id", "api_token_secret")],
    )


def snapshot_extra_spec():
    """Proxmox-only options of proxmox_snapshot."""
    return dict(force=dict(type="bool", default=False))


# --- pure helpers (unit-tested without a server) ----------------------------------------------


def check_snapshot_name(name, kind=QEMU):
    """Why PVE would refuse this snapshot name, or None when it takes it."""
    if name is None or name == "":
        return "a snapshot name is required"
    if len(name) > SNAPSHOT_NAME_MAX:
        return "it is %d characters long and Proxmox allows at most %d" % (len(name), SNAPSHOT_NAME_MAX)
    if len(name) < 2:
        return "Proxmox needs at least 2 characters"
    if not name[0].isascii() or not name[0].isalpha():
        return "Proxmox needs it to start with a letter (a-z)"
    if not SNAPSHOT_NAME.match(name):
        bad = sorted(set(c for c in name if not (c.isascii() and (c.isalnum() or c in "_-"))))
        return "Proxmox allows only letters, digits, '-' and '_' (found %s)" % ", ".join(repr(c) for c in bad)
    for reserved in RESERVED_NAMES.get(kind, ()):
        # PVE compares 'pending' without regard to case, the others exactly.
        clash = name.lower() == reserved if reserved == "pending" else name == reserved
        if clash:
            return "'%s' is a name Proxmox reserves for %s" % (
                reserved, "guests" if reserved == "current" else ("VMs" if kind == QEMU else "containers"))
    return None


def split_props(value):
    """'vol,key=val,...' as (first bare item or None, {key: val})."""
    first, props = None, {}
    for index, part in enumerate(str(value).split(",")):
        key, sep, val = part.partition("=")
        if sep:
            props[key] = val
        elif index == 0 and part:
            first = part
    return first, props


def storage_of(volume):
    """The storage id of a volume (``local-lvm:vm-100-disk-0`` -> ``local-lvm``), or None for a host path."""
    if ":" not in volume or volume.startswith("/"):
        return None
    return volume.split(":", 1)[0]


def guest_volumes(kind, config):
    """(key, volume, options) of the disks a snapshot must cover: QEMU drives (no CD-ROMs, no
    'none'), LXC rootfs and mount points (bind and device mounts included, as paths)."""
    out = []
    for key in sorted(config):
        if kind == QEMU and QEMU_DISK_KEY.match(key):
            volume, props = split_props(config[key])
            volume = volume or props.pop("file", "")
            if props.get("media") == "cdrom" or volume in ("", "none", "cdrom"):
                continue
            out.append((key, volume, props))
        elif kind == LXC and LXC_MOUNT_KEY.match(key):
            volume, props = split_props(config[key])
            volume = volume or props.pop("volume", "")
            out.append((key, volume, props))
    return out


def snapshot_blockers(kind, config, storages):
    """Reasons PVE would answer 'snapshot feature is not available', one per disk; [] when none.

    ``storages`` maps storage id to its /storage entry (type, and options such as
    snapshot-as-volume-chain). An unknown storage type is left to PVE to judge.
    """
    reasons = []
    for key, volume, _props in guest_volumes(kind, config):
        if volume.startswith("/dev/"):
            reasons.append("%s is a device mount of %s, which cannot be snapshotted" % (key, volume))
            continue
        if volume.startswith("/"):
            reasons.append("%s is a bind mount of the host path %s, which cannot be snapshotted" % (key, volume))
            continue
        if ":" not in volume:
            continue
        sid, name = volume.split(":", 1)
        store = storages.get(sid)
        if store is None:
            continue
        stype = store.get("type")
        if stype in SNAPSHOT_STORAGE_TYPES:
            continue
        if stype in FILE_STORAGE_TYPES:
            if kind == QEMU and name.endswith(".qcow2"):
                continue
            fmt = name.rsplit(".", 1)[-1] if "." in name.rsplit("/", 1)[-1] else "subvol/raw"
            reasons.append("%s (%s) is a %s volume on %s storage '%s'; only qcow2 images there can be "
                           "snapshotted" % (key, volume, fmt, stype, sid))
            continue
        if stype == "lvm" and str(store.get("snapshot-as-volume-chain", "0")) in ("1", "true") \
                and name.endswith(".qcow2"):
            continue
        if stype in NO_SNAPSHOT_STORAGE_TYPES:
            reasons.append("%s (%s) is on %s storage '%s', which has no snapshot support" % (key, volume, stype, sid))
    return reasons


def zfs_newer_snapshots(kind, config, storages, snapshots, target):
    """Snapshots newer than ``target`` that block a ZFS rollback (ZFS rolls back only to the latest)."""
    on_zfs = any((storages.get(storage_of(volume)) or {}).get("type") == "zfspool"
                 for _key, volume, _props in guest_volumes(kind, config))
    if not on_zfs or target.created is None:
        return []
    return sorted(s.name for s in snapshots if s.name != target.name and s.created is not None and s.created > target.created)


def lock_name(text):
    """The lock named in a PVE 'locked' error, or None when the text is not about a lock."""
    found = _LOCKED.search(text or "")
    if found:
        return found.group(1)
    found = _LOCK_FILE.search(text or "")
    if found:
        return "lock file %s" % found.group(1)
    return None


def busy_text(lock):
    """What holds the guest, for a lock named by ``lock_name`` or a config's ``lock`` value."""
    if lock.startswith("lock file "):
        return "%s is held by another task" % lock
    return "locked (%s)" % lock


def parse_snapshot_list(items):
    """A /snapshot listing (any order, 'current' anywhere) as linked ``Snapshot`` records, oldest first."""
    current_parent = None
    snaps = []
    for item in items:
        if item.get("name") == "current":
            current_parent = item.get("parent")
            continue
        user_text, owner = split_description(item.get("description") or "")
        snaptime = item.get("snaptime")
        memory = bool(int(item.get("vmstate") or 0))
        extra = {}
        if item.get("snapstate"):
            extra["snapstate"] = item["snapstate"]
        snaps.append(Snapshot(
            name=item["name"], id=item["name"], description=user_text,
            created=datetime.fromtimestamp(int(snaptime), tz=timezone.utc) if snaptime else None,
            parent=item.get("parent"), memory=memory, quiesced=None, owner=owner,
            power_state="running" if memory else None, extra=extra))
    for snap in snaps:
        snap.current = snap.name == current_parent
    snaps.sort(key=lambda s: (s.created is None, s.created, s.name))
    return link_tree(snaps)


def task_failure_text(status, log_lines):
    """The error text of a failed task: its exit status, with the log lines that explain it."""
    exitstatus = str(status.get("exitstatus") or status.get("status") or "unknown")
    lines = [str(line.get("t", "")) if isinstance(line, dict) else str(line) for line in log_lines or []]
    detail = [line for line in lines if line and line not in ("TASK ERROR: " + exitstatus, exitstatus) and not line.startswith("TASK ")]
    # The last few lines before the error are what PVE's GUI shows; keep them short.
    if detail:
        return "%s (task log: %s)" % (exitstatus, " | ".join(detail[-5:]))
    return exitstatus


def power_state_of(resource):
    status = resource.get("status")
    if status == "running":
        if resource.get("qmpstatus") in ("paused", "prelaunch", "suspended"):
            return "paused"
        return "running"
    if status == "stopped":
        return "stopped"
    return "unknown"


def upid_node(upid):
    """The node a UPID ran on (UPID:<node>:...)."""
    parts = str(upid).split(":")
    return parts[1] if len(parts) > 2 and parts[0] == "UPID" else None


class _Locked(Exception):
    """PVE refused our task because the guest is locked; retried by ``ProxmoxBackend._run``."""

    def __init__(self, text, upid=None):
        super().__init__(text)
        self.text = text
        self.upid = upid


def size_bytes(text):
    """A PVE disk size ('32G', '512M', '4194304') in bytes; 0 when unknown."""
    match = re.match(r"^(\d+(?:\.\d+)?)([KMGT]?)$", str(text or "").strip())
    if not match:
        return 0
    return int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2) or " "))


class ProxmoxCloneMixin(object):
    """The clone methods of ``ProxmoxBackend`` (see _clone.py): POST .../clone with snapname, the marker in the
    clone's description, every net device link_down=1 (or on the named bridge)."""

    def _clone_record(self, item):
        from ansible_collections.prechange.snapshots.plugins.module_utils._clone import (  # pylint: disable=import-outside-toplevel
            CloneRecord, parse_clone_text)
        record = self._record(item)
        owner, linked, network = None, None, None
        if record.extra["type"] == QEMU:
            config = self._config(record)
            text, owner = parse_clone_text(config.get("description") or "")
            linked = "linked=yes" in text
            bridges = set()
            for key in sorted(config):
                if re.match(r"^net\d+$", key):
                    _model, props = split_props(config[key])
                    if props.get("link_down") not in ("1", 1):
                        bridges.add(props.get("bridge"))
            network = ", ".join(sorted(str(b) for b in bridges)) or None
        return CloneRecord(name=record.name, id=record.id, power_state=record.power_state, owner=owner,
                           linked=linked, network=network, handle=record)

    def find_clone(self, name):
        matches = [item for item in self._resources() if item.get("name") == name]
        if len(matches) > 1:
            raise PrecheckFailed("%d guests are named '%s'" % (len(matches), name), hint="Choose another 'name'")
        return self._clone_record(matches[0]) if matches else None

    def list_clones(self):
        records = []
        for item in self._resources():
            if item.get("type") != QEMU:
                continue
            record = self._clone_record(item)
            if record.ours:
                records.append(record)
        return records

    def plan_clone(self, vm, snapshot, request):
        from ansible_collections.prechange.snapshots.plugins.module_utils._clone import ClonePlan  # pylint: disable=import-outside-toplevel
        if vm.extra["type"] != QEMU:
            raise PrecheckFailed("the guest is a container, and this module clones QEMU VMs only",
                                 hint="Clone containers with 'pct clone'")
        try:
            snap_config = self._get(self._guest_path(vm) + "/snapshot/%s/config" % snapshot.name)
        except Exception as error:  # pylint: disable=broad-except
            raise self._translate(error, vm=vm.name, snapshot=snapshot.name)
        disks = guest_volumes(QEMU, snap_config)
        placement = request.placement
        # PVE links a clone only to a template's base volumes; a snapshot of a normal VM is always copied.
        linked = bool(vm.extra.get("template")) and not request.full
        if request.full:
            why = "full copy, as asked" + (" (restore point)" if request.restore_point else "")
        elif linked:
            why = "linked: the source is a template"
        else:
            why = "full copy: Proxmox VE links clones only to templates, and a snapshot of a VM is always copied"
        need = None if linked else sum(size_bytes(props.get("size")) for _key, _vol, props in disks)
        free = None
        storages = {placement.get("storage")} if placement.get("storage") else {v.split(":")[0] for _k, v, _p in disks}
        node = placement.get("node") or vm.extra["node"]
        if not linked and len(storages) == 1:
            storage = next(iter(storages))
            try:
                status = self._get("nodes/%s/storage/%s/status" % (vm.extra["node"], storage))
                free = int(status.get("avail")) if status.get("avail") is not None else None
            except Exception as error:  # pylint: disable=broad-except
                raise PrecheckFailed("cannot read storage '%s': %s" % (storage, self._error_text(error)),
                                     hint="Check 'storage'")
        newid = placement.get("newid")
        if newid is None:
            try:
                newid = int(self._get("cluster/nextid"))
            except Exception as error:  # pylint: disable=broad-except
                raise self._translate(error, vm=vm.name)
        elif any(int(item["vmid"]) == int(newid) for item in self._resources()):
            raise PrecheckFailed("vmid %s is already used" % newid, hint="Choose another 'newid', or omit it")
        return ClonePlan(linked=linked, why=why, need_bytes=need, free_bytes=free,
                         data={"newid": int(newid), "node": node})

    def clone(self, vm, snapshot, request, plan):
        from ansible_collections.prechange.snapshots.plugins.module_utils._clone import format_clone_text  # pylint: disable=import-outside-toplevel
        description = format_clone_text("linked=%s" % ("yes" if plan.linked else "no"), request.marker)
        newid = plan.data["newid"]
        data = {"newid": newid, "name": request.name, "snapname": snapshot.name, "full": 0 if plan.linked else 1,
                "description": description}
        for key in ("storage", "pool"):
            if request.placement.get(key):
                data[key] = request.placement[key]
        if plan.data["node"] != vm.extra["node"]:
            data["target"] = plan.data["node"]
        base = self.api(self._guest_path(vm) + "/clone")
        self._run(vm, "clone", lambda: base.post(**data), request.timeout, snapshot=snapshot.name)
        made = VmRecord(name=request.name, id=str(newid), power_state="stopped", handle=None,
                        extra={"node": plan.data["node"], "type": QEMU, "vmid": newid})
        try:
            config = self._config(made)
            changes = {"description": description}
            for key in sorted(config):
                if re.match(r"^net\d+$", key):
                    model, props = split_props(config[key])
                    props.pop("link_down", None)
                    if request.network:
                        props["bridge"] = request.network
                    else:
                        props["link_down"] = "1"
                    changes[key] = ",".join(([model] if model else []) + ["%s=%s" % item for item in props.items()])
            self.api(self._guest_path(made) + "/config").put(**changes)
            if request.power_on:
                start = self.api(self._guest_path(made) + "/status/start")
                self._run(made, "start", start.post, request.timeout)
        except Exception:
            self._remove_guest(made, request.timeout)
            raise
        return self.find_clone(request.name)

    def _remove_guest(self, made, timeout):
        try:
            self.api(self._guest_path(made)).delete(purge=1)
        except Exception:  # pylint: disable=broad-except
            pass

    def remove_clone(self, record, timeout):
        vm = record.handle
        if record.power_state != "stopped":
            stop = self.api(self._guest_path(vm) + "/status/stop")
            self._run(vm, "stop", stop.post, timeout)
        gone = self.api(self._guest_path(vm))
        self._run(vm, "destroy", lambda: gone.delete(purge=1), timeout)


class ProxmoxBackend(ProxmoxCloneMixin, SnapshotBackend):
    provider = "proxmox"
    supports_update = True  # PUT .../snapshot/{name}/config
    supports_rename = False  # PVE has no way to rename a snapshot
    max_concurrency = 16
    provider_options = {"force": False}

    def __init__(self, params, warn=None):
        super().__init__(params, warn)
        if ProxmoxAPI is None:
            raise ConnectionFailed("the proxmoxer library is not installed",
                                   provider=self.provider, details={"exception": PROXMOXER_IMPORT_ERROR},
                                   hint="Install proxmoxer and requests on the controller")
        self.host = params.get("api_host")
        # The action named in lookup errors (they are raised before the engine knows what it does).
        self._action = {"present": "create", "absent": "delete", "reverted": "revert"}.get(
            params.get("state"), "list")
        if params.get("state", "present") == "present" and params.get("name") and not params.get("delete_all"):
            # Before any API call: the rules every guest kind shares ('pending'/'vzdump' need the kind, later).
            why = check_snapshot_name(params["name"], kind=None)
            if why:
                raise InvalidRequest("the snapshot name is not valid on Proxmox: %s" % why, action="create",
                                     snapshot=params["name"], provider=self.provider,
                                     hint="Use 2-40 characters: a letter first, then letters, digits, '-' or "
                                          "'_'; nothing was changed")
        self._storages = None
        self._storage_lock = threading.Lock()
        self._configs = {}
        # vmid -> the snapshot list create() just read, handed once to the engine's next list_snapshots().
        self._fresh_lists = {}
        self._resources_by_vmid = {}
        self._nodes = None
        # Every HTTP call (connect, and each read) is bounded by api_timeout and by the module's timeout.
        self.request_timeout = request_timeout(params)
        kwargs = dict(user=params.get("api_user"), timeout=self.request_timeout)
        if params.get("api_port"):
            kwargs["port"] = params["api_port"]
        verify = bool(params.get("validate_certs", True))
        if verify and params.get("ca_path"):
            verify = params["ca_path"]
        kwargs["verify_ssl"] = verify
        if params.get("api_password"):
            kwargs["password"] = params["api_password"]
        else:
            kwargs["token_name"] = params.get("api_token_id")
            kwargs["token_value"] = params.get("api_token_secret")
        try:
            # Password auth fetches the ticket here: one ticket for the whole module call.
            self.api = ProxmoxAPI(self.host, **kwargs)
            if "password" not in kwargs:
                # A token is only checked on first use: use it now, so a bad token fails as a connection error.
                self.api.version.get()
        except AuthenticationError as error:
            raise ConnectionFailed("authentication to %s failed: %s" % (self.host, error),
                                   provider=self.provider,
                                   hint="Check api_user and api_password, or api_token_id and api_token_secret")
        except ResourceException as error:
            raise ConnectionFailed("authentication to %s failed: %s" % (self.host, self._error_text(error)),
                                   provider=self.provider,
                                   hint="Check api_user, api_token_id and api_token_secret")
        except Exception as error:  # pylint: disable=broad-except
            lost = as_connection_lost(error, self.host, timeout=self.request_timeout, provider=self.provider,
                                      hint="Check 'api_host' and 'api_port'")
            if lost is not None and lost.kind != "tls":
                raise lost
            # requests' connection and TLS errors, proxmoxer's config errors.
            raise ConnectionFailed("cannot reach %s: %s" % (self.host, error),
                                   provider=self.provider,
                                   hint="Check api_host, api_port, validate_certs and ca_path")

        self._guard_transport()

    # --- low level --------------------------------------------------------------------------

    def _guard_transport(self):
        """Make every API call raise ``ConnectionLost`` for a transport fault: requests' connection, TLS and
        read-timeout errors, and a 2xx answer that is not complete JSON (proxmoxer would hand back
        ``{'errors': <body>}`` as if it were the data)."""
        store = getattr(self.api, "_store", None)  # every resource copies it
        if not isinstance(store, dict) or "session" not in store:
            return  # not proxmoxer's HTTPS backend (a test double)
        session, serializer = store["session"], store["serializer"]
        send = session.request
        host, timeout, provider = self.host, self.request_timeout, self.provider

        def request(*args, **kwargs):
            try:
                return send(*args, **kwargs)
            except Exception as error:  # pylint: disable=broad-except
                lost = as_connection_lost(error, host, timeout=timeout, provider=provider)
                if lost is None:
                    raise
                raise lost from error

        def checked_loads(response):
            try:
                return json.loads(response.content.decode("utf-8"))["data"]
            except (UnicodeDecodeError, ValueError, KeyError, TypeError):
                raise ConnectionLost(host, "closed", cause="the answer was cut short or is not JSON",
                                     provider=provider)

        session.request = request
        serializer.loads = checked_loads

    @staticmethod
    def _error_text(error):
        if ResourceException is not None and isinstance(error, ResourceException):
            text = str(error.content or error.status_message or "").strip()
            if error.errors:
                fields = error.errors if isinstance(error.errors, dict) else {"": error.errors}
                text += " " + "; ".join("%s: %s" % (k, str(v).strip()) if k else str(v).strip()
                                        for k, v in sorted(fields.items()))
            return "%s (HTTP %s)" % (text.strip(), error.status_code)
        return str(error)

    def _translate(self, error, vm=None, snapshot=None):
        """A proxmoxer/requests exception as the engine's error, keeping PVE's own text."""
        if isinstance(error, SnapshotError):
            return error
        text = self._error_text(error)
        if ResourceException is not None and isinstance(error, ResourceException):
            if error.status_code == 595:
                return ProviderError(text, vm=vm, snapshot=snapshot, provider=self.provider,
                                     hint="The guest's node is offline or unreachable from the API node")
            if error.status_code == 403:
                return ProviderError(text, vm=vm, snapshot=snapshot, provider=self.provider,
                                     hint="Grant the API user or token VM.Snapshot (and VM.Audit) on the guest")
            if error.status_code == 401:
                return ConnectionFailed(text, vm=vm, snapshot=snapshot, provider=self.provider,
                                        hint="The ticket or token was refused")
        return ProviderError(text, vm=vm, snapshot=snapshot, provider=self.provider)

    def _get(self, path, **query):
        return self.api(path).get(**query)

    def _guest_path(self, vm):
        return "nodes/%s/%s/%s" % (vm.extra["node"], vm.extra["type"], vm.extra["vmid"])

    # --- lookup -----------------------------------------------------------------------------

    def _resources(self):
        try:
            items = self._get("cluster/resources", type="vm")
        except Exception as error:  # pylint: disable=broad-except
            raise self._translate(error)
        for item in items:
            if item.get("type") in (QEMU, LXC) and item.get("vmid") is not None:
                self._resources_by_vmid[int(item["vmid"])] = item
        return [i for i in items if i.get("type") in (QEMU, LXC)]

    def _record(self, item):
        kind = item["type"]
        name = item.get("name") or ("%s %s" % ("VM" if kind == QEMU else "CT", item["vmid"]))
        extra = {"node": item.get("node"), "type": kind, "vmid": int(item["vmid"]),
                 "template": bool(item.get("template")), "lock": item.get("lock")}
        return VmRecord(name=name, id=str(item["vmid"]), power_state=power_state_of(item), handle=item,
                        extra=extra)

    def _resolve(self, ref, resources):
        ref = str(ref).strip()
        if ref.isdigit():
            matches = [r for r in resources if int(r["vmid"]) == int(ref)]
            if not matches:
                raise VmNotFound("no VM or container with vmid %s exists in the cluster" % ref, vm=ref,
                                 action=self._action,
                                 provider=self.provider, hint="Check 'vm'; nothing was changed")
            return self._record(matches[0])
        matches = [r for r in resources if r.get("name") == ref]
        if not matches and ref in self._node_names():
            raise VmNotFound("'%s' is a Proxmox VE node of the cluster, not a guest: it has no VM to snapshot" % ref,
                             vm=ref, action=self._action, provider=self.provider,
                             hint="Run the play on the guests only (hosts: proxmox_all_qemu:proxmox_all_lxc, or "
                                  "-e maintenance_hosts='all:!proxmox_nodes'), or set exclude_nodes: true in the "
                                  "inventory source; nothing was changed")
        if not matches:
            raise VmNotFound("no VM or container named '%s' exists in the cluster" % ref, vm=ref,
                             action=self._action,
                             provider=self.provider,
                             hint="Check 'vm' (a name or a vmid) and that the API user may audit it; "
                                  "nothing was changed")
        if len(matches) > 1:
            candidates = sorted(matches, key=lambda r: int(r["vmid"]))
            listing = ", ".join("%s (%s on %s)" % (r["vmid"], r["type"], r.get("node")) for r in candidates)
            raise AmbiguousVm("%d guests are named '%s': %s" % (len(matches), ref, listing), vm=ref,
                              action=self._action,
                              provider=self.provider, hint="Name the guest by its vmid; nothing was changed",
                              details={"candidates": [{"vmid": int(r["vmid"]), "type": r["type"],
                                                       "node": r.get("node"), "name": r.get("name")}
                                                      for r in candidates]})
        return self._record(matches[0])

    def _node_names(self):
        """The cluster's node names (asked only when a name matches no guest)."""
        if self._nodes is None:
            try:
                self._nodes = {item.get("node") for item in self._get("nodes")}
            except Exception:  # pylint: disable=broad-except
                self._nodes = set()  # only an improvement of a message: never an error of its own
        return self._nodes

    def find_vm(self, ref):
        ref_text = str(ref).strip()
        known = self._resources_by_vmid.get(int(ref_text)) if ref_text.isdigit() else None
        if known is not None:
            # Refresh one known guest without listing the cluster again (after a rollback, for example).
            path = "nodes/%s/%s/%s/status/current" % (known["node"], known["type"], known["vmid"])
            try:
                status = self._get(path)
            except ConnectionLost:
                raise
            except Exception:  # pylint: disable=broad-except
                status = None  # moved or gone: fall back to the cluster query
            if status is not None:
                item = dict(known, status=status.get("status"), qmpstatus=status.get("qmpstatus"),
                            lock=status.get("lock"), name=status.get("name") or known.get("name"))
                self._resources_by_vmid[int(known["vmid"])] = item
                return self._record(item)
        return self._resolve(ref, self._resources())

    def find_vms(self, refs):
        resources = self._resources()  # one query for every guest
        found = {}
        for ref in refs:
            try:
                found[ref] = self._resolve(ref, resources)
            except SnapshotError as error:
                found[ref] = error
        return found

    def list_vms(self):
        return [self._record(r) for r in sorted(self._resources(), key=lambda r: int(r["vmid"]))
                if not r.get("template")]

    def endpoint(self):
        return "in the cluster at %s" % self.host

    def product_uuid_candidates(self):
        """The ``smbios1`` UUID of every QEMU VM (containers have no SMBIOS of their own).

        PVE lists no VM's config in the cluster query, so this reads each VM's config, concurrently.
        """
        guests = [r for r in self._resources() if r.get("type") == QEMU and not r.get("template")]

        def read(item):
            try:
                config = self._get("nodes/%s/qemu/%s/config" % (item["node"], item["vmid"]))
            except Exception as error:  # pylint: disable=broad-except
                raise self._translate(error, vm=item.get("name"))
            return split_props("," + str(config.get("smbios1") or ""))[1].get("uuid"), self._record(item)

        if len(guests) < 2:
            return [read(item) for item in guests]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(guests))) as pool:
            return list(pool.map(read, guests))

    def list_snapshots(self, vm):
        fresh = self._fresh_lists.pop(vm.id, None)
        if fresh is not None:
            # Read by create() a moment ago, with nothing done to the guest since: saves one call per guest.
            return fresh
        try:
            items = self._get(self._guest_path(vm) + "/snapshot")
        except Exception as error:  # pylint: disable=broad-except
            raise self._translate(error, vm=vm.name)
        return parse_snapshot_list(items)

    def _config(self, vm, fresh=True):
        if not fresh and vm.id in self._configs:
            # The config a precheck read just before; used once, so a later wait reads it again.
            return self._configs.pop(vm.id)
        try:
            return self._get(self._guest_path(vm) + "/config")
        except Exception as error:  # pylint: disable=broad-except
            raise self._translate(error, vm=vm.name)

    def _storage_map(self):
        with self._storage_lock:  # batch threads: read the storage list once
            return self._storage_map_locked()

    def _storage_map_locked(self):
        if self._storages is None:
            try:
                self._storages = {s["storage"]: s for s in self._get("storage")}
            except ConnectionLost:
                raise
            except Exception as error:  # pylint: disable=broad-except
                # Without Datastore.Audit the list may be refused; PVE will judge the storage itself.
                self.warn("Could not read the storage configuration (%s); the storage precheck is skipped"
                          % self._error_text(error))
                self._storages = {}
        return self._storages

    # --- capacity ---------------------------------------------------------------------------

    def capacity(self, vm):
        """Each disk's storage (the volume id's prefix) and its status (/nodes/{node}/storage/{storage}/status);
        the disk's size from the config, its use from the storage's content list where PVE gives it."""
        config = self._config(vm)
        node = vm.extra["node"]
        status, content, disks = {}, {}, []
        for key, volume, props in guest_volumes(vm.extra.get("type", QEMU), config):
            usage = DiskUsage(disk=key, storage=None, provisioned_bytes=parse_size(props.get("size")))
            sid = storage_of(volume)
            if sid is None:
                usage.note = "%s is a host path (%s), not on a Proxmox VE storage" % (key, volume)
                disks.append(usage)
                continue
            usage.storage = sid
            if sid not in status:
                try:
                    status[sid] = self._get("nodes/%s/storage/%s/status" % (node, sid))
                except ConnectionLost:
                    raise
                except Exception as error:  # pylint: disable=broad-except
                    status[sid] = {"error": self._error_text(error)}
                try:
                    content[sid] = {c.get("volid"): c for c in self._get(
                        "nodes/%s/storage/%s/content" % (node, sid), vmid=vm.extra["vmid"])}
                except ConnectionLost:
                    raise
                except Exception:  # pylint: disable=broad-except
                    content[sid] = {}
            if "error" in status[sid]:
                usage.note = "the status of storage %s could not be read: %s" % (sid, status[sid]["error"])
            else:
                usage.free_bytes = _int_or_none(status[sid].get("avail"))
                usage.total_bytes = _int_or_none(status[sid].get("total"))
            entry = content[sid].get(volume) or {}
            usage.used_bytes = _int_or_none(entry.get("used"))
            if usage.used_bytes is None and entry and not usage.note:
                usage.note = ("%s gives no per-volume use that counts snapshot data; only its free space shows "
                              "that data" % self._storage_label(sid))
            disks.append(usage)
        memory = _int_or_none(config.get("memory"))
        vmstate = config.get("vmstatestorage")
        return Capacity(disks=disks, memory_bytes=memory * 1024 * 1024 if memory else None,
                        memory_storage=vmstate or (disks[0].storage if disks else None),
                        note=None if disks else "the guest has no disks")

    def _storage_label(self, sid):
        stype = (self._storage_map().get(sid) or {}).get("type")
        return "storage %s (%s)" % (sid, stype) if stype else "storage %s" % sid

    def snapshot_sizes(self, vm, snapshots):
        """No size: the Proxmox VE API has none for a snapshot's disk data. The note says what it does give.

        What PVE reports (pve-storage src/PVE/Storage/*Plugin.pm list_images, API2/Storage/Content.pm; qemu-server
        src/PVE/QemuConfig.pm __snapshot_save_vmstate): the content list's ``used`` ("most storage plugins do not
        report anything useful here") is the image file's allocation (qemu-img actual-size) on file storages
        (dir, NFS, CIFS), so a qcow2's internal snapshots are inside it but not told apart; LVM-thin, ZFS and
        RBD give no ``used`` in the list, and their snapshot volumes (thin snap_ LVs, @snap datasets) are not
        listed at all; only the storage's status (free space) moves with snapshot data there. A snapshot with
        RAM has a volume of its own, ``vm-<vmid>-state-<snap>``, named in the snapshot's config (``vmstate``)
        and listed with its size (2 x memory + 500 MiB as allocated) and, on file storages, its use. So
        size_bytes stays null: the memory state is known, the disk data is not.
        """
        try:
            config = self._config(vm)
        except ConnectionLost:
            raise
        except SnapshotError as error:
            config, problem = {}, error.reason
        else:
            problem = None
        places = []
        for _key, volume, _props in guest_volumes(vm.extra.get("type", QEMU), config):
            sid = storage_of(volume)
            if sid is None:
                continue
            if (self._storage_map().get(sid) or {}).get("type") in FILE_STORAGE_TYPES:
                text = "on %s it is inside the disks' used_bytes (the image files' allocation)" % (
                    self._storage_label(sid))
            else:
                text = "%s gives no per-volume use that counts it, only its free space shows it" % (
                    self._storage_label(sid))
            if text not in places:
                places.append(text)
        disks = "the Proxmox VE API reports no size for a snapshot's disk data"
        if places:
            disks += "; " + "; ".join(places)
        elif problem:
            disks += " (the guest's config could not be read: %s)" % problem
        return {snap.id: (None, disks + self._vmstate_text(vm, snap)) for snap in snapshots}

    def _vmstate_text(self, vm, snap):
        """What the API gives about a snapshot's memory state: its volume, size and (file storages) use."""
        if not snap.memory or vm.extra.get("type") != QEMU:
            return ""
        path = "%s/snapshot/%s/config" % (self._guest_path(vm), snap.name)
        volid = None
        try:
            volid = self._get(path).get("vmstate")
            sid = str(volid).split(":", 1)[0]
            entries = self._get("nodes/%s/storage/%s/content" % (vm.extra["node"], sid), vmid=vm.extra["vmid"])
        except ConnectionLost:
            raise
        except Exception as error:  # pylint: disable=broad-except
            return "; its memory state%s could not be read: %s" % (" (%s)" % volid if volid else "",
                                                                   self._error_text(error))
        entry = next((e for e in entries if e.get("volid") == volid), None)
        if entry is None or _int_or_none(entry.get("size")) is None:
            return "; its memory state is the volume %s, not listed on %s" % (volid, self._storage_label(sid))
        text = "; its memory state is the volume %s of %s (%d bytes allocated" % (
            volid, gib(int(entry["size"])), int(entry["size"]))
        if _int_or_none(entry.get("used")) is not None:
            return text + ", %d bytes used)" % int(entry["used"])
        return text + "; its use is not reported on %s)" % self._storage_label(sid)

    # --- prechecks --------------------------------------------------------------------------

    def busy(self, vm):
        """The guest config's lock: another job (backup, migrate, clone, snapshot, rollback...) holds it."""
        config = self._configs[vm.id] = self._config(vm)  # the create/revert precheck reads it next
        lock = config.get("lock")
        if not lock:
            return None
        if lock == "snapshot-delete" and self.params.get("state") == "absent" and self.params.get("force"):
            # Not a job: what an earlier failed delete left; delete with force clears it (_clear_stuck_delete).
            return None
        return busy_text(lock)

    def busy_hint(self, vm, what):
        return self._lock_hint(vm, what[len("locked ("):-1] if what.startswith("locked (") else what)

    def _lock_timeout(self):
        return float(self.params.get("lock_timeout") or 0)

    def default_memory(self, vm, options):
        # vmstate exists for running QEMU guests only; containers never have it.
        return vm.extra.get("type") == QEMU and vm.power_state == RUNNING

    def _check_name(self, vm, name):
        why = check_snapshot_name(name, vm.extra.get("type", QEMU))
        if why:
            raise InvalidRequest("the snapshot name is not valid on Proxmox: %s" % why,
                                 hint="Use 2-40 characters: a letter first, then letters, digits, '-' or '_'; "
                                      "nothing was changed")

    def check_create(self, vm, request, snapshots):
        kind = vm.extra.get("type")
        self._check_name(vm, request.name)
        if vm.extra.get("template"):
            raise PrecheckFailed("the guest is a template, and Proxmox cannot snapshot templates",
                                 hint="Snapshot a clone instead; nothing was changed")
        if request.memory and kind == LXC:
            raise PrecheckFailed("containers have no memory state in Proxmox snapshots (vmstate is for QEMU VMs)",
                                 hint="Set memory: false (or leave it unset) for containers; nothing was changed")
        if request.quiesce:
            if request.strict:
                raise PrecheckFailed(
                    "Proxmox snapshots have no quiesce option (the QEMU guest agent freezes file systems on its "
                    "own when it is enabled), so quiesce cannot be guaranteed",
                    hint="Set quiesce: false, or strict: false to accept a warning; nothing was changed")
        config = self._config(vm, fresh=False)
        blockers = snapshot_blockers(kind, config, self._storage_map())
        if blockers:
            raise PrecheckFailed("Proxmox would refuse it with 'snapshot feature is not available': %s"
                                 % "; ".join(blockers),
                                 hint="Move the disks to storage with snapshot support (LVM-thin, ZFS, Ceph RBD, "
                                      "Btrfs, or qcow2 on a directory/NFS storage) or remove the mount; "
                                      "nothing was changed")

    def check_delete(self, vm, snapshot, snapshots, remove_children):
        self._check_name_exists(vm, snapshot)

    def _check_name_exists(self, vm, snapshot):
        if snapshot.name == "current":
            raise InvalidRequest("'current' is Proxmox's marker for the running state, not a snapshot")

    def check_revert(self, vm, snapshot, snapshots, power_state):
        kind = vm.extra.get("type")
        self._check_name_exists(vm, snapshot)
        if snapshot.extra.get("snapstate"):
            raise PrecheckFailed("the snapshot is incomplete (snapstate %s) and Proxmox cannot roll back to it"
                                 % snapshot.extra["snapstate"],
                                 hint="Delete it with force: true; nothing was changed")
        if power_state == "paused" and kind == LXC:
            raise InvalidRequest("containers cannot be left paused after a rollback",
                                 hint="Use revert_power_state: snapshot, running or stopped")
        config = self._config(vm, fresh=False)
        newer = zfs_newer_snapshots(kind, config, self._storage_map(), snapshots, snapshot)
        if newer:
            raise PrecheckFailed("the guest's disks are on ZFS, which can only roll back to the most recent "
                                 "snapshot, and these are newer: %s" % ", ".join(newer),
                                 hint="Delete the newer snapshots first; nothing was changed")

    # --- tasks ------------------------------------------------------------------------------

    def _task_status(self, node, upid):
        try:
            return self._get("nodes/%s/tasks/%s/status" % (node, upid))
        except Exception as error:  # pylint: disable=broad-except
            raise self._translate(error)

    def _task_log(self, node, upid):
        try:
            return self._get("nodes/%s/tasks/%s/log" % (node, upid), limit=50)
        except Exception:  # pylint: disable=broad-except
            return []

    def _wait_task(self, vm, upid, deadline, what):
        """Poll the UPID until it stops; return (ok, text). Timeout names the last task state."""
        node = upid_node(upid) or vm.extra["node"]

        def check():
            status = self._task_status(node, upid)
            if status.get("status") == "stopped":
                return True, status
            return False, "%s (task %s)" % (status.get("status") or "unknown", upid)

        # No task finishes within milliseconds of its POST: a short first pause saves a poll per task.
        time.sleep(min(FIRST_POLL_DELAY, deadline.remaining))
        try:
            status = poll(check, max(deadline.remaining, 0.001), "the %s task" % what, initial=0.05, maximum=1.0)
        except SnapshotTimeout as error:
            error.hint = ("PVE may still finish the task; check it in the node's task log before retrying")
            raise
        exitstatus = str(status.get("exitstatus") or "")
        if exitstatus == "OK":
            return True, None
        if exitstatus.startswith("WARNINGS"):
            lines = [line.get("t", "") for line in self._task_log(node, upid)]
            warnings = [line for line in lines if line.startswith("WARN")]
            self.warn("Proxmox task %s for %s finished with %s: %s"
                      % (what, vm.name, exitstatus, " | ".join(warnings[-5:]) or "see the task log"))
            return True, None
        return False, task_failure_text(status, self._task_log(node, upid))

    def _run(self, vm, what, start, timeout, snapshot=None):
        """Start a task with ``start()`` (returns a UPID) and wait for it.

        When PVE answers that the guest is locked (another job took it between the precheck and this
        call), the task is started again with backoff within ``lock_timeout``, then refused as GuestBusy.
        """
        deadline = Deadline(timeout)

        def attempt():
            try:
                upid = start()
            except ConnectionLost as error:
                # A refused request changed nothing; a lost answer may have started the task.
                raise error.during_change()
            except Exception as error:  # pylint: disable=broad-except
                if isinstance(error, SnapshotError):
                    raise
                text = self._error_text(error)
                if lock_name(text):
                    raise _Locked(text)
                raise self._translate(error, vm=vm.name, snapshot=snapshot)
            try:
                ok, text = self._wait_task(vm, upid, deadline, what)
            except ConnectionLost as error:
                raise error.during_change(after_request=True)
            if ok:
                return
            if lock_name(text):
                raise _Locked(text, upid)
            raise ProviderError("the Proxmox task failed: %s" % text, vm=vm.name, snapshot=snapshot,
                                provider=self.provider, details={"upid": upid})

        def busy_of(error):
            return busy_text(lock_name(error.text)) if isinstance(error, _Locked) else None

        try:
            retry_while_busy(attempt, busy_of, self._lock_timeout(), hint_of=lambda text: self.busy_hint(vm, text))
        except GuestBusy as error:
            locked = error.__cause__
            error.details["lock"] = lock_name(locked.text)
            if locked.upid:
                error.details["upid"] = locked.upid
            raise error.bind(vm=vm.name, snapshot=snapshot, provider=self.provider)

    @staticmethod
    def _lock_hint(vm, lock):
        if lock == "snapshot-delete":
            return ("A snapshot delete failed earlier and left the lock; delete that snapshot again with "
                    "force: true (which unlocks the guest as root@pam), or run 'qm unlock %s' / 'pct unlock %s' "
                    "after checking the storage; nothing was changed" % (vm.id, vm.id))
        return None

    # --- actions ----------------------------------------------------------------------------

    def create(self, vm, request):
        base = self.api(self._guest_path(vm) + "/snapshot")
        data = {"snapname": request.name}
        if request.full_description:
            data["description"] = request.full_description
        if request.memory:
            data["vmstate"] = 1
        self._run(vm, "snapshot", lambda: base.post(**data), request.timeout, snapshot=request.name)
        snaps = self.list_snapshots(vm)
        for snap in snaps:
            if snap.name == request.name:
                # Proxmox has no quiesce switch: report what is known, which is that we did not ask.
                snap.quiesced = False if request.quiesce else None
                self._fresh_lists[vm.id] = snaps
                return snap
        raise SnapshotNotFound("Proxmox reported success but the snapshot is not there", vm=vm.name,
                               snapshot=request.name, provider=self.provider)

    def delete(self, vm, snapshot, remove_children, timeout):
        force = bool(self.option("force"))
        deadline = Deadline(timeout)
        targets = [snapshot.name]
        if remove_children:
            snaps = self.list_snapshots(vm)
            by_name = {s.name: s for s in snaps}
            below = descendants(snaps, by_name.get(snapshot.name, snapshot))
            below.sort(key=lambda n: -by_name[n].depth if n in by_name else 0)
            targets = below + targets
        if force and snapshot.extra.get("snapstate") == "delete":
            self._clear_stuck_delete(vm, snapshot)
        for name in targets:
            path = self._guest_path(vm) + "/snapshot/" + name
            query = {"force": 1} if force else {}
            self._run(vm, "snapshot delete", lambda p=path, q=query: self.api(p).delete(**q),
                      max(deadline.remaining, 0.001), snapshot=name)

    def _clear_stuck_delete(self, vm, snapshot):
        """What 'qm unlock' / 'pct unlock' does, for the one state where it is safe to do it unasked.

        A delete of this very snapshot failed earlier: the snapshot is marked 'delete' and the guest keeps
        the 'snapshot-delete' lock, which PVE checks before anything else, force or not.
        """
        if self._config(vm).get("lock") != "snapshot-delete":
            return
        self.warn("Clearing the 'snapshot-delete' lock that an earlier failed delete of snapshot '%s' left on "
                  "guest '%s' (force: true)" % (snapshot.name, vm.name))
        try:
            self.api(self._guest_path(vm) + "/config").put(delete="lock", skiplock=1)
        except Exception as error:  # pylint: disable=broad-except
            raise self._translate(error, vm=vm.name, snapshot=snapshot.name)

    def revert(self, vm, snapshot, power_state, timeout):
        kind = vm.extra.get("type")
        deadline = Deadline(timeout)
        data = {}
        if power_state in ("running", "paused"):
            data["start"] = 1
        path = self._guest_path(vm) + "/snapshot/" + snapshot.name + "/rollback"
        self._run(vm, "rollback", lambda: self.api(path).post(**data), max(deadline.remaining, 0.001),
                  snapshot=snapshot.name)
        if power_state not in ("stopped", "paused"):
            return
        status = self._get(self._guest_path(vm) + "/status/current")
        if power_state == "stopped" and status.get("status") == "running":
            # A rollback to a snapshot with RAM resumes the guest (PVE semantics); stop it as asked.
            stop = self._guest_path(vm) + "/status/stop"
            self._run(vm, "stop", lambda: self.api(stop).post(), max(deadline.remaining, 0.001),
                      snapshot=snapshot.name)
        elif power_state == "paused" and kind == QEMU and status.get("qmpstatus") != "paused":
            suspend = self._guest_path(vm) + "/status/suspend"
            self._run(vm, "suspend", lambda: self.api(suspend).post(), max(deadline.remaining, 0.001),
                      snapshot=snapshot.name)

    def update(self, vm, snapshot, new_name=None, description=None, timeout=None):
        if new_name:
            raise InvalidRequest("Proxmox snapshots cannot be renamed")
        try:
            self.api(self._guest_path(vm) + "/snapshot/" + snapshot.name + "/config").put(
                description=description or "")
        except Exception as error:  # pylint: disable=broad-except
            raise self._translate(error, vm=vm.name, snapshot=snapshot.name)


def _int_or_none(value):
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def parse_size(text):
    """A PVE disk size ('32G', '512M', '1T', bytes) in bytes; None when absent or unreadable."""
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)", str(text or ""))
    if not match:
        return None
    return int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2) or " "))
