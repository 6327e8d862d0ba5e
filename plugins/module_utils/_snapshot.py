# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The shared snapshot engine: records, the provider interface, and the one decision function.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

* ``Snapshot`` and ``VmRecord`` are the records every provider returns.
* ``SnapshotBackend`` is what a provider implements. Its methods block until the work is
  done or raise a ``SnapshotError``; they never see check mode.
* ``ensure()`` decides present / absent / reverted. It is the only code that reads
  ``check_mode``, and in check mode it calls no mutating backend method.
* ``ensure_many()`` runs ``ensure()`` for many VMs with a concurrency cap, one result per VM;
  one VM's failure does not stop the others.
* ``wait_until_free()`` is the one precheck for a VM held by another job (a backup, a migration,
  a task already running): refused at once, or waited for up to ``lock_timeout``; providers say
  only what holds the VM (``SnapshotBackend.busy``).

Provider-specific options (libvirt ``location``, VMware ``consolidate``, Proxmox ``force``) take one
channel. A backend declares them in ``SnapshotBackend.provider_options`` (name and default); the
module glue copies exactly those from the module's params into ``SnapshotParams.options``;
``ensure()`` hands them on (``CreateRequest.options``, ``default_memory``); and a backend reads one
only through ``SnapshotBackend.option(name, options)``: the call's options when they carry it,
else the backend's own params (for the roles: the ``prechange_<provider>_<option>`` variables and
``module_defaults``), else the declared default. A backend never reads one from ``self.params``.
"""

from __future__ import annotations

import abc
import fnmatch
import re
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.prechange.snapshots.plugins.module_utils import _capacity
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import (
    AmbiguousSnapshot,
    ConnectionLost,
    GuestBusy,
    InvalidRequest,
    PrecheckFailed,
    ProviderError,
    SnapshotError,
    SnapshotNotFound,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import (
    is_expired,
    isoformat,
    join_description,
    parse_duration,
    utcnow,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._wait import Deadline, backoff

STATES = ("present", "absent", "reverted")
# The verb each state's errors use: "Failed to <action> snapshot ...".
ACTIONS = {"present": "create", "absent": "delete", "reverted": "revert"}
# Power state after a revert: as recorded in the snapshot, or forced.
REVERT_POWER_STATES = ("snapshot", "running", "paused", "stopped")
DELETE_ALL_CHOICES = ("owned", "expired", "all")
RUNNING = "running"


@dataclass
class VmRecord:
    """One VM as every provider reports it; ``handle`` is the provider's own object."""

    name: str
    id: str
    power_state: str  # running, paused, stopped, suspended or unknown
    handle: Any = field(default=None, repr=False, compare=False)
    extra: dict = field(default_factory=dict)

    def to_result(self):
        return {"name": self.name, "id": self.id, "power_state": self.power_state}


@dataclass
class Snapshot:
    """One snapshot; ``description`` is the user's text, the marker is parsed into ``owner``."""

    name: str
    id: Optional[str] = None
    description: str = ""
    created: Any = None  # aware datetime (UTC) or None
    parent: Optional[str] = None  # parent's name
    parent_id: Optional[str] = None
    children: list = field(default_factory=list)  # children's names
    current: bool = False
    memory: bool = False
    quiesced: Optional[bool] = None  # None where the platform does not say
    owner: Optional[dict] = None  # our marker, or None when not ours
    power_state: Optional[str] = None  # the VM's state recorded in the snapshot
    depth: int = 0  # 1 for a root snapshot
    extra: dict = field(default_factory=dict)
    handle: Any = field(default=None, repr=False, compare=False)

    @property
    def raw_description(self):
        return join_description(self.description, self.owner)

    def age_seconds(self, now=None):
        if self.created is None:
            return None
        return max(0, int(((now or utcnow()) - self.created).total_seconds()))

    def to_result(self, now=None):
        result = {
            "name": self.name,
            "id": self.id,
            "description": self.description,
            "created": isoformat(self.created),
            "age_seconds": self.age_seconds(now),
            "parent": self.parent,
            "children": list(self.children),
            "current": self.current,
            "memory": self.memory,
            "quiesced": self.quiesced,
            "owner": dict(self.owner) if self.owner else None,
            "power_state": self.power_state,
            "depth": self.depth,
        }
        result.update(self.extra)
        return result


@dataclass
class CreateRequest:
    """What ``create`` is asked to make; ``memory`` is already resolved to a bool."""

    name: str
    description: str  # the user's text
    marker: Optional[dict]
    memory: bool
    quiesce: bool
    strict: bool
    timeout: Optional[float]
    options: dict = field(default_factory=dict)  # provider-specific options

    @property
    def full_description(self):
        return join_description(self.description, self.marker)


@dataclass
class SnapshotParams:
    """The provider-independent part of a module call."""

    state: str = "present"
    name: Optional[str] = None
    description: Optional[str] = None
    memory: Optional[bool] = None
    quiesce: bool = False
    strict: bool = False
    remove_children: bool = False
    revert_power_state: str = "snapshot"
    new_name: Optional[str] = None
    delete_all: Optional[str] = None
    marker: Optional[dict] = None
    timeout: Optional[float] = None
    # Seconds to wait for another job (backup, migration, running task) to release the VM; 0: refuse at once.
    lock_timeout: float = 0
    options: dict = field(default_factory=dict)
    # Free space before a create (``_capacity.CapacityPolicy``); None: not checked.
    capacity: Optional[Any] = None


@dataclass
class Outcome:
    """What ``ensure`` did (or would do in check mode) to one VM."""

    vm: VmRecord
    changed: bool
    action: str  # created, exists, updated, renamed, deleted, absent, reverted
    snapshot: Optional[Snapshot] = None
    snapshots: list = field(default_factory=list)  # every snapshot acted on (delete_all)
    before: list = field(default_factory=list)
    after: list = field(default_factory=list)

    def to_result(self, diff=False):
        result = {
            "changed": self.changed,
            "action": self.action,
            "vm": self.vm.to_result(),
            "snapshot": self.snapshot.to_result() if self.snapshot else None,
        }
        if self.snapshots:
            result["snapshots"] = [s.to_result() for s in self.snapshots]
        if diff:
            result["diff"] = {"before": {"snapshots": self.before}, "after": {"snapshots": self.after}}
        return result


class SnapshotBackend(abc.ABC):
    """What a provider implements. Methods block until done or raise ``SnapshotError``.

    Backends never import AnsibleModule and never see check mode; warnings go through
    the ``warn`` callback. ``check_*`` methods are read-only prechecks that raise
    ``PrecheckFailed`` for what the platform would refuse or corrupt.
    """

    provider = "unknown"
    #: How many VMs ``ensure_many`` may work on at once through one backend.
    max_concurrency = 16
    supports_update = False  # re-describe an existing snapshot
    supports_rename = False
    #: Whether the platform itself refuses a second snapshot of the same name on one VM (libvirt and
    #: Proxmox do; vSphere does not, so a create that races another one is checked afterwards).
    unique_names = True
    #: The provider-specific options of ``<provider>_snapshot`` this backend reads, with their defaults.
    provider_options = {}

    def __init__(self, params, warn=None):
        self.params = params
        self.warn = warn or (lambda message: None)

    def option(self, name, options=None):
        """A provider-specific option: from the call's ``options``, else this backend's params, else its default.

        The one way a backend reads one (see the module docstring); ``name`` must be declared in
        ``provider_options``.
        """
        if name not in self.provider_options:
            raise KeyError("%s is not a provider option of %s" % (name, self.provider))
        for source in (options or {}, self.params or {}):
            if source.get(name) is not None:
                return source[name]
        return self.provider_options[name]

    def close(self):
        """Release the API session."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @abc.abstractmethod
    def find_vm(self, ref):
        """Return the ``VmRecord`` for a name or id; raise VmNotFound / AmbiguousVm."""

    def find_vms(self, refs):
        """Resolve many VMs; return ``{ref: VmRecord or SnapshotError}``. Override for one query."""
        found = {}
        for ref in refs:
            try:
                found[ref] = self.find_vm(ref)
            except SnapshotError as error:
                found[ref] = error
        return found

    def list_vms(self):
        """Every VM on the endpoint (for info across all VMs)."""
        raise InvalidRequest("listing every VM is not supported by this provider; name the VM with 'vm'")

    def endpoint(self):
        """Where the VMs are, for messages: 'at qemu:///system', 'on vcenter.example.com', ..."""
        return "on this %s endpoint" % self.provider

    def product_uuid_candidates(self):
        """``[(SMBIOS UUID the guest sees, VmRecord), ...]`` for every VM of the endpoint, in one query where
        the API allows. ``find_vms`` resolves the chosen record's ``id`` again for the full record."""
        raise InvalidRequest("finding a VM by its SMBIOS UUID is not supported by this provider",
                             hint="Name the VM with prechange_vm")

    @abc.abstractmethod
    def list_snapshots(self, vm):
        """Every snapshot of the VM, the whole tree, as ``Snapshot`` records."""

    def default_memory(self, vm, options):
        """Whether to save memory state when the user did not say: when the VM is running."""
        return vm.power_state == RUNNING

    def busy(self, vm):
        """What holds the VM right now (another job: a lock, a running task), as a short text; None when free.

        Read-only. The engine asks before every change, in check mode too, and refuses or waits
        (``wait_until_free``); a provider whose platform has no such notion keeps this default.
        """
        return None

    def busy_hint(self, vm, what):
        """A provider's own advice for what ``busy`` reported, or None for the engine's wait-or-lock_timeout."""
        return None

    def capacity(self, vm):
        """Per disk, the storage its snapshot data grows on, with free and total bytes (``_capacity.Capacity``).

        Read-only; the engine decides (``_capacity.check``). A provider that cannot measure keeps this default.
        """
        return _capacity.Capacity(note="%s does not report the VM's storage" % self.provider)

    def snapshot_sizes(self, vm, snapshots):
        """``{snapshot id: (size in bytes or None, a note saying how it was measured or why not)}``; read-only."""
        return {}

    def measure_storage(self, vm, snapshots, refresh=False):
        """``(capacity(vm), snapshot_sizes(vm, snapshots), note)``: what a report records of a VM. ``refresh``:
        where the platform caches the VM's storage figures, have it re-read them first (a provider may do it in
        one read); ``note`` says what could not be refreshed, or None. Read-only."""
        return self.capacity(vm), self.snapshot_sizes(vm, snapshots) if snapshots else {}, None

    def check_create(self, vm, request, snapshots):
        """Refuse what the platform would refuse or corrupt; changes nothing."""

    @abc.abstractmethod
    def create(self, vm, request):
        """Create the snapshot and return its ``Snapshot``."""

    def check_delete(self, vm, snapshot, snapshots, remove_children):
        """Refuse a delete the platform would refuse or corrupt; changes nothing."""

    @abc.abstractmethod
    def delete(self, vm, snapshot, remove_children, timeout):
        """Delete the snapshot (and its descendants when asked; else children are re-parented)."""

    def check_revert(self, vm, snapshot, snapshots, power_state):
        """Refuse a revert the platform would refuse or corrupt; changes nothing."""

    @abc.abstractmethod
    def revert(self, vm, snapshot, power_state, timeout):
        """Revert the VM to the snapshot, leaving it in ``power_state`` (see REVERT_POWER_STATES)."""

    def update(self, vm, snapshot, new_name=None, description=None, timeout=None):
        """Rename or re-describe; ``description`` is the full text, marker included."""
        raise InvalidRequest("%s snapshots cannot be renamed or re-described" % self.provider)


# --- tree helpers -------------------------------------------------------------------------


def link_tree(snapshots):
    """Fill ``parent``, ``children`` and ``depth`` from ``parent_id`` (or ``parent`` names)."""
    by_id = {s.id if s.id is not None else s.name: s for s in snapshots}
    for snap in snapshots:
        snap.children = []
    for snap in snapshots:
        key = snap.parent_id if snap.parent_id is not None else snap.parent
        parent = by_id.get(key)
        if parent is not None:
            snap.parent = parent.name
            parent.children.append(snap.name)
    for snap in snapshots:
        depth, node, seen = 1, snap, set()
        while node is not None:
            key = node.parent_id if node.parent_id is not None else node.parent
            node = by_id.get(key)
            if node is None or id(node) in seen:
                break
            seen.add(id(node))
            depth += 1
        snap.depth = depth
    return snapshots


def names(snapshots):
    return [s.name for s in snapshots]


def find_one(snapshots, name, vm, provider, action, required):
    """The one snapshot called ``name`` anywhere in the tree; ambiguous names always fail."""
    matches = [s for s in snapshots if s.name == name]
    if len(matches) > 1:
        raise AmbiguousSnapshot(
            "%d snapshots share this name (ids: %s)" % (len(matches), ", ".join(str(s.id) for s in matches)),
            action=action, vm=vm.name, snapshot=name, provider=provider,
            hint="Rename or delete the duplicates so the name is unique; nothing was changed",
            details={"candidates": [s.to_result() for s in matches]},
        )
    if not matches:
        if required:
            raise SnapshotNotFound(
                "no snapshot with this name exists (existing: %s)" % (", ".join(names(snapshots)) or "none"),
                action=action, vm=vm.name, snapshot=name, provider=provider,
                hint="Check the snapshot name; nothing was changed",
            )
        return None
    return matches[0]


def descendants(snapshots, snapshot):
    """Names of every snapshot below ``snapshot``."""
    by_name = {s.name: s for s in snapshots}
    found, stack = [], list(snapshot.children)
    while stack:
        child = stack.pop()
        found.append(child)
        if child in by_name:
            stack.extend(by_name[child].children)
    return found


def select(snapshots, name_pattern=None, owned=None, run_id=None, older_than=None, expired=None, now=None):
    """Filter snapshot records for info and bulk deletion."""
    now = now or utcnow()
    min_age = parse_duration(older_than).total_seconds() if older_than else None
    chosen = []
    for snap in snapshots:
        if name_pattern and not fnmatch.fnmatchcase(snap.name, name_pattern):
            continue
        if owned is not None and bool(snap.owner) != owned:
            continue
        if run_id and not (snap.owner and snap.owner.get("run") == run_id):
            continue
        if min_age is not None and (snap.age_seconds(now) is None or snap.age_seconds(now) < min_age):
            continue
        if expired is not None and is_expired(snap.owner, now) != expired:
            continue
        chosen.append(snap)
    return chosen


# --- another job holds the VM -------------------------------------------------------------


def _seconds(value):
    return ("%g" % value) if isinstance(value, float) else str(value)


def busy_error(what, lock_timeout, hint=None, nothing_changed=True, details=None):
    """The one ``GuestBusy`` every provider reports: what holds the VM, and for how long we waited."""
    tail = "; nothing was changed" if nothing_changed else ""
    if lock_timeout and lock_timeout > 0:
        reason = "the VM is still busy with another job after waiting %ss: %s" % (_seconds(lock_timeout), what)
        default = "Wait for it, or raise lock_timeout (now %s) to wait longer%s" % (_seconds(lock_timeout), tail)
    else:
        reason = "the VM is busy with another job: %s" % what
        default = "Wait for it, or set lock_timeout to wait up to N seconds%s" % tail
    all_details = {"busy": what}
    all_details.update(details or {})
    return GuestBusy(reason, hint=hint or default, details=all_details)


def wait_until_free(backend, vm, lock_timeout, sleep=None, clock=None):
    """Return once ``backend.busy(vm)`` says nothing else holds the VM.

    With ``lock_timeout`` 0 a busy VM is refused at once; otherwise it is polled with backoff
    until it is free or ``lock_timeout`` seconds have passed, then refused. Refused means
    ``GuestBusy`` naming what holds the VM, before anything was changed.
    """
    what = backend.busy(vm)
    if what is None:
        return
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    deadline = Deadline(lock_timeout or 0, clock=clock)
    for delay in backoff(initial=0.2, maximum=2.0):
        if deadline.expired:
            raise busy_error(what, lock_timeout, hint=backend.busy_hint(vm, what))
        sleep(min(delay, deadline.remaining))
        what = backend.busy(vm)
        if what is None:
            return


def retry_while_busy(attempt, busy_of, lock_timeout, hint_of=None, sleep=None, clock=None):
    """Run ``attempt()``; while it fails because another job took the VM (``busy_of(error)`` names it,
    else None), retry with backoff for up to ``lock_timeout`` seconds, then raise ``GuestBusy``.

    For a job that starts between the precheck and the provider's own call: the platform refuses
    the call (a lock, TaskInProgress, libvirt's job lock), and that is the same condition.
    """
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    deadline = None
    delays = backoff(initial=0.2, maximum=2.0)
    while True:
        try:
            return attempt()
        except Exception as error:  # pylint: disable=broad-except
            what = busy_of(error)
            if what is None:
                raise
            if deadline is None:
                deadline = Deadline(lock_timeout or 0, clock=clock)
            if deadline.expired:
                busy = busy_error(what, lock_timeout, hint=hint_of(what) if hint_of else None)
                for key in ("vm", "snapshot", "provider", "action"):
                    setattr(busy, key, getattr(busy, key) or getattr(error, key, None))
                raise busy from error
            sleep(min(next(delays), deadline.remaining))


def when_free(call, lock_timeout, sleep=None, clock=None):
    """Run one mutating backend call; while the platform refuses it because another job holds the VM
    (``GuestBusy``: a job that started after the precheck), try again with backoff until ``lock_timeout``
    seconds have passed since the first try, then report it as ``busy_error`` does.

    The engine's one busy policy for every provider and every caller (modules and workflow alike),
    bounded by the caller's own ``lock_timeout`` rather than the provider session's.
    """
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    deadline = Deadline(lock_timeout or 0, clock=clock)
    delays = backoff(initial=0.2, maximum=2.0)
    while True:
        try:
            return call()
        except GuestBusy as error:
            if not deadline.expired:
                sleep(min(next(delays), deadline.remaining))
                continue
            if not lock_timeout:
                raise
            busy = busy_error(error.details.get("busy") or error.reason, lock_timeout,
                              details={k: v for k, v in error.details.items() if k != "busy"})
            busy.bind(action=error.action, vm=error.vm, snapshot=error.snapshot, provider=error.provider)
            raise busy from error


# --- the decision function ----------------------------------------------------------------


def ensure(backend, vm, params, check_mode):
    """Bring one VM's snapshot to ``params.state``; return an ``Outcome``.

    The only code that reads check mode. In check mode it runs the same lookups and
    prechecks as a real run, so it reports the same ``changed`` and fails the same way,
    and it calls no mutating backend method. Before any change (and its provider prechecks)
    a VM held by another job is refused, or waited for up to ``params.lock_timeout``.
    """
    action = ACTIONS[params.state]
    backend = _ChangeGuard(backend)
    try:
        snapshots = backend.list_snapshots(vm)
        before = names(snapshots)
        if params.state == "present":
            return _ensure_present(backend, vm, params, check_mode, snapshots, before)
        if params.state == "absent":
            if params.delete_all:
                return _ensure_all_absent(backend, vm, params, check_mode, snapshots, before)
            return _ensure_absent(backend, vm, params, check_mode, snapshots, before)
        return _ensure_reverted(backend, vm, params, check_mode, snapshots, before)
    except SnapshotError as error:
        if isinstance(error, ConnectionLost) and backend.asked:
            # Lost after a change was asked for: it may be done (or still be done) on the platform.
            error.during_change(after_request=True)
        raise error.bind(action=action, vm=vm.name, snapshot=params.name, provider=backend.provider)


class _ChangeGuard(object):
    """The backend as ``ensure`` sees it: it notes when a change is asked for, so that a connection lost
    in or after that call says the change may still complete (``ConnectionLost.during_change``).

    Inside a change call the provider knows best (a refused change request changed nothing); what it did
    not say is taken as 'may have completed', the safe reading.
    """

    CHANGES = ("create", "delete", "revert", "update")

    def __init__(self, backend):
        self._backend = backend
        self.asked = False

    def __getattr__(self, name):
        value = getattr(self._backend, name)
        if name not in self.CHANGES:
            return value

        def change(*args, **kwargs):
            try:
                return value(*args, **kwargs)
            except ConnectionLost as error:
                raise error.during_change(after_request=True)
            finally:
                self.asked = True

        return change


def _ensure_present(backend, vm, params, check_mode, snapshots, before):
    if params.new_name:
        return _ensure_renamed(backend, vm, params, check_mode, snapshots, before)
    existing = find_one(snapshots, params.name, vm, backend.provider, "create", required=False)
    if existing is not None:
        if params.description is None or params.description == existing.description:
            return Outcome(vm, False, "exists", existing, before=before, after=before)
        if not backend.supports_update:
            raise InvalidRequest(
                "the snapshot exists with another description and %s cannot change it" % backend.provider,
                hint="Omit 'description' or delete the snapshot first")
        wait_until_free(backend, vm, params.lock_timeout)
        if not check_mode:
            when_free(lambda: backend.update(vm, existing, description=join_description(params.description, existing.owner),
                                             timeout=params.timeout), params.lock_timeout)
        existing.description = params.description
        return Outcome(vm, True, "updated", existing, before=before, after=before)

    if params.memory and vm.power_state != RUNNING:
        raise PrecheckFailed(
            "memory state was requested but the VM is %s" % vm.power_state,
            hint="Start the VM or set memory to false for a disk-only snapshot")
    memory = backend.default_memory(vm, params.options) if params.memory is None else params.memory
    request = CreateRequest(
        name=params.name, description=params.description or "", marker=params.marker,
        memory=memory, quiesce=params.quiesce, strict=params.strict, timeout=params.timeout,
        options=dict(params.options))
    wait_until_free(backend, vm, params.lock_timeout)
    backend.check_create(vm, request, snapshots)
    if params.capacity is not None and params.capacity.action != "ignore":
        # Read-only, so check mode predicts the refusal too.
        for text in _capacity.check(backend.capacity(vm), params.capacity, memory=request.memory):
            backend.warn("Snapshot '%s' of VM '%s' on %s: %s" % (request.name, vm.name, backend.provider, text))
    if check_mode:
        current = next((s for s in snapshots if s.current), None)
        predicted = Snapshot(
            name=request.name, description=request.description, created=utcnow(),
            parent=current.name if current else None, current=True, memory=request.memory,
            quiesced=request.quiesce, owner=request.marker)
        return Outcome(vm, True, "created", predicted, before=before, after=before + [request.name])
    created = when_free(lambda: backend.create(vm, request), params.lock_timeout)
    if not backend.unique_names:
        kept = _keep_one_of_name(backend, vm, created, params.timeout, params.lock_timeout)
        if kept is not created:
            return Outcome(vm, False, "exists", kept, before=before, after=before + [kept.name])
    if request.quiesce and created.quiesced is False:
        if request.strict:
            raise ProviderError(
                "the snapshot was created but the platform did not quiesce the guest",
                hint="It was kept; delete it, or fix the guest agent / tools and retry")
        backend.warn("Snapshot '%s' of VM '%s' was created without quiescing the guest file systems"
                     % (created.name, vm.name))
    # The new snapshot joins the tree; no second listing is needed to say so.
    return Outcome(vm, True, "created", created, before=before, after=before + [created.name])


def creation_order(snapshot):
    """Sort key that puts the snapshot made first first: its creation time, then its id's number
    (vSphere numbers snapshot ids in creation order), then the id itself."""
    digits = re.findall(r"\d+", str(snapshot.id or ""))
    return (snapshot.created is None, snapshot.created or 0, int(digits[-1]) if digits else 0, str(snapshot.id))


def _keep_one_of_name(backend, vm, created, timeout, lock_timeout=0):
    """On a platform that allows two snapshots of one name: after creating, make sure there is one.

    Another call may have created the same name at the same moment (two tasks, two runs with the
    same run id, a retry after an answer was lost). Every caller keeps the snapshot made first and
    deletes its own if it came later, so they all agree and exactly one remains; a same-named
    snapshot this call did not make is never deleted. Returns the snapshot to report.
    """
    same = [s for s in backend.list_snapshots(vm) if s.name == created.name]
    if len(same) < 2:
        return created
    first = min(same, key=creation_order)
    if str(first.id) == str(created.id):
        backend.warn("Snapshot '%s' of VM '%s' was also created by another task at the same moment (ids %s); "
                     "this call's snapshot (id %s) came first and is kept, the other task removes its own"
                     % (created.name, vm.name, ", ".join(str(s.id) for s in same), created.id))
        return created
    mine = next((s for s in same if str(s.id) == str(created.id)), created)
    when_free(lambda: backend.delete(vm, mine, False, timeout), lock_timeout)
    backend.warn("Snapshot '%s' of VM '%s' was created by another task at the same moment (id %s); this call's "
                 "duplicate (id %s) was deleted again, so the VM has one snapshot of that name"
                 % (created.name, vm.name, first.id, created.id))
    return first


def _ensure_renamed(backend, vm, params, check_mode, snapshots, before):
    target = find_one(snapshots, params.new_name, vm, backend.provider, "rename", required=False)
    source = find_one(snapshots, params.name, vm, backend.provider, "rename", required=target is None)
    if source is None:
        return Outcome(vm, False, "exists", target, before=before, after=before)
    if target is not None:
        raise AmbiguousSnapshot(
            "both '%s' and '%s' exist" % (params.name, params.new_name),
            hint="Delete or rename one of them first; nothing was changed")
    if not backend.supports_rename:
        raise InvalidRequest("%s snapshots cannot be renamed" % backend.provider)
    wait_until_free(backend, vm, params.lock_timeout)
    after = [params.new_name if n == params.name else n for n in before]
    if not check_mode:
        description = None
        if params.description is not None:
            description = join_description(params.description, source.owner)
        when_free(lambda: backend.update(vm, source, new_name=params.new_name, description=description,
                                         timeout=params.timeout), params.lock_timeout)
    source.name = params.new_name
    if params.description is not None:
        source.description = params.description
    return Outcome(vm, True, "renamed", source, before=before, after=after)


def _ensure_absent(backend, vm, params, check_mode, snapshots, before):
    existing = find_one(snapshots, params.name, vm, backend.provider, "delete", required=False)
    if existing is None:
        return Outcome(vm, False, "absent", None, before=before, after=before)
    wait_until_free(backend, vm, params.lock_timeout)
    backend.check_delete(vm, existing, snapshots, params.remove_children)
    gone = {existing.name}
    if params.remove_children:
        gone.update(descendants(snapshots, existing))
    after = [n for n in before if n not in gone]
    if not check_mode:
        when_free(lambda: backend.delete(vm, existing, params.remove_children, params.timeout), params.lock_timeout)
    return Outcome(vm, True, "deleted", existing, before=before, after=after)


def _ensure_all_absent(backend, vm, params, check_mode, snapshots, before):
    if params.delete_all == "all":
        chosen = list(snapshots)
    else:
        chosen = select(snapshots, owned=True, expired=True if params.delete_all == "expired" else None)
    if params.name:
        chosen = [s for s in chosen if fnmatch.fnmatchcase(s.name, params.name)]
    # Deepest first, so no deletion has to re-parent a snapshot that is deleted next.
    chosen.sort(key=lambda s: -s.depth)
    if chosen:
        wait_until_free(backend, vm, params.lock_timeout)
    for snap in chosen:
        backend.check_delete(vm, snap, snapshots, False)
    gone = {s.name for s in chosen}
    if not check_mode:
        for snap in chosen:
            try:
                when_free(lambda s=snap: backend.delete(vm, s, False, params.timeout), params.lock_timeout)
            except SnapshotError as error:
                raise error.bind(snapshot=snap.name)
    return Outcome(vm, bool(chosen), "deleted" if chosen else "absent", None, snapshots=chosen,
                   before=before, after=[n for n in before if n not in gone])


def _ensure_reverted(backend, vm, params, check_mode, snapshots, before):
    existing = find_one(snapshots, params.name, vm, backend.provider, "revert", required=True)
    if params.revert_power_state in ("running", "paused") and not existing.memory:
        # Not an error: a disk-only snapshot is booted afresh; say so rather than surprise.
        backend.warn("Snapshot '%s' of VM '%s' has no memory state; the VM boots from the snapshot's disks"
                     % (existing.name, vm.name))
    wait_until_free(backend, vm, params.lock_timeout)
    backend.check_revert(vm, existing, snapshots, params.revert_power_state)
    if not check_mode:
        when_free(lambda: backend.revert(vm, existing, params.revert_power_state, params.timeout), params.lock_timeout)
        vm = backend.find_vm(vm.id)
        refreshed = find_one(backend.list_snapshots(vm), existing.name, vm, backend.provider, "revert", required=False)
        existing = refreshed or existing
    existing.current = True
    return Outcome(vm, True, "reverted", existing, before=before, after=before)


# --- many VMs ------------------------------------------------------------------------------


@dataclass
class VmResult:
    """One VM's line in a batch: its outcome, or its error."""

    ref: str
    outcome: Optional[Outcome] = None
    error: Optional[SnapshotError] = None

    def to_result(self, diff=False):
        if self.outcome is not None:
            result = self.outcome.to_result(diff=diff)
            result.update({"item": self.ref, "failed": False})
            return result
        result = {"item": self.ref, "failed": True, "changed": False, "msg": self.error.message}
        result.update(error_fields(self.error))
        return result


def error_fields(error):
    """The structured keys every failure carries next to its message."""
    fields = {"vm": error.vm, "snapshot": error.snapshot, "provider": error.provider,
              "error": type(error).__name__}
    fields.update(error.details)
    if isinstance(error, ConnectionLost):
        fields["may_have_completed"] = error.may_have_completed
    return fields


def ensure_many(backend, refs, params, check_mode, concurrency):
    """``ensure`` for many VMs at once, up to ``concurrency`` in flight; one result per VM."""
    found = backend.find_vms(refs)

    def one(ref):
        vm = found[ref]
        if isinstance(vm, SnapshotError):
            return VmResult(ref, error=vm.bind(action=ACTIONS[params.state], vm=ref, snapshot=params.name,
                                               provider=backend.provider))
        try:
            return VmResult(ref, outcome=ensure(backend, vm, params, check_mode))
        except SnapshotError as error:
            return VmResult(ref, error=error)
        except Exception as error:  # pylint: disable=broad-except
            # One VM's unexpected failure must not lose the other VMs' results.
            wrapped = ProviderError("unexpected error: %s" % error, vm=vm.name, snapshot=params.name,
                                    provider=backend.provider,
                                    details={"exception": traceback.format_exc()})
            return VmResult(ref, error=wrapped)

    workers = max(1, min(concurrency, backend.max_concurrency, len(refs) or 1))
    if workers == 1:
        return [one(ref) for ref in refs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, refs))
