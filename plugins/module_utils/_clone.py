# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The shared clone engine: make a VM from a named snapshot of another VM, or remove one this collection made.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

* ``CloneRecord``: a VM that may be a clone, with its parsed clone marker (``owner``) or None.
* A provider adds four methods to its ``SnapshotBackend`` (they never see check mode):
  ``find_clone(name)`` (a CloneRecord or None), ``plan_clone(vm, snapshot, request)`` (read-only: refuses
  what cannot be cloned, says linked or full and why, checks space), ``clone(vm, snapshot, request, plan)``
  and ``remove_clone(record, timeout)``; ``list_clones()`` lists every VM carrying a clone marker (prune).
* ``ensure_clone()`` is the one decision (present/absent, idempotence by name + marker, exact check mode).
* ``prune_clones()`` removes this collection's expired clones and restore points of given source VMs.

Errors keep the collection's grammar with the action ``clone``:
"Failed to clone snapshot '<snap>' of VM '<vm>' on <provider>: <reason>. <hint>; nothing was changed."
A removal names the clone VM as its subject (``bind_remove``), with its source where known:
"Failed to remove clone VM '<name>'[ made from snapshot '<snap>'][ of VM '<vm>'] on <provider>: <reason>."
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import (
    InvalidRequest,
    PrecheckFailed,
    SnapshotError,
    VmNotFound,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import (
    CLONE_KEYS,
    CLONE_KINDS,
    CLONE_REQUIRED_KEYS,
    is_expired,
    isoformat,
    join_description,
    split_description,
    utcnow,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import find_one, wait_until_free

STATES = ("present", "absent")
ACTION = "clone"
REMOVE_ACTION = "remove"


def remove_subject(name, snapshot=None):
    """What a removal's message names: the clone VM, and the snapshot it was made from when that is known."""
    return "clone VM '%s'%s" % (name, " made from snapshot '%s'" % snapshot if snapshot else "")


def bind_remove(error, name, vm=None, snapshot=None, provider=None):
    """``error`` as a failure to remove the clone ``name`` (of snapshot ``snapshot`` of VM ``vm``, when known).

    The removal is what was asked, so it is the action even where a lookup on the way named another one; the
    clone itself is the subject, so a backend error that names the clone as its VM names only its source."""
    if error.vm == name:
        error.vm = None
    error.action, error.subject = REMOVE_ACTION, remove_subject(name, error.snapshot or snapshot)
    return error.bind(vm=vm, snapshot=snapshot, provider=provider)


def clone_marker(run, creator, expires, ticket, kind, source, source_id, snapshot, created=None):
    """The marker a clone carries (see _marker.CLONE_KEYS)."""
    return {"run": str(run), "creator": creator, "created": isoformat(created or utcnow()), "expires": expires,
            "ticket": ticket, "kind": kind, "source": source, "source_id": str(source_id), "snapshot": snapshot}


def format_clone_text(user_text, marker):
    """A description / annotation with the clone marker as its last line."""
    return join_description(user_text, marker, keys=CLONE_KEYS)


def parse_clone_text(text):
    """(user text, clone marker or None) of a description / annotation; never raises."""
    return split_description(text or "", keys=CLONE_KEYS, required=CLONE_REQUIRED_KEYS)


@dataclass
class CloneRecord:
    """A VM that may be a clone; ``owner`` is its clone marker, None when this collection did not make it."""

    name: str
    id: Optional[str]
    power_state: str
    owner: Optional[dict] = None
    linked: Optional[bool] = None
    network: Optional[str] = None
    handle: Any = field(default=None, repr=False, compare=False)

    @property
    def ours(self):
        return bool(self.owner) and self.owner.get("kind") in CLONE_KINDS

    def to_result(self):
        owner = self.owner or {}
        return {
            "name": self.name, "id": self.id, "linked": bool(self.linked),
            "restore_point": owner.get("kind") == "restore_point", "power_state": self.power_state,
            "network": self.network,
            "source": {"vm": owner.get("source"), "id": owner.get("source_id"), "snapshot": owner.get("snapshot")},
            "created": owner.get("created"), "owner": dict(self.owner) if self.owner else None,
        }


@dataclass
class CloneRequest:
    """What ``clone`` is asked to make."""

    name: str
    full: bool
    restore_point: bool
    power_on: bool
    network: Optional[str]
    marker: dict
    timeout: Optional[float]
    placement: dict = field(default_factory=dict)  # provider specific: folder, datastore, pool, node, storage...


@dataclass
class ClonePlan:
    """What a provider will do: ``linked`` or a full copy, and why (said in the result's warnings)."""

    linked: bool
    why: str = ""
    need_bytes: Optional[int] = None
    free_bytes: Optional[int] = None
    data: dict = field(default_factory=dict)  # the provider's own details for ``clone``


@dataclass
class CloneParams:
    state: str = "present"
    vm: Optional[str] = None
    snapshot: Optional[str] = None
    name: Optional[str] = None
    full: bool = False
    restore_point: bool = False
    power_on: bool = False
    network: Optional[str] = None
    marker: Optional[dict] = None  # run, creator, expires, ticket (the rest is filled in here)
    timeout: Optional[float] = 600
    lock_timeout: float = 0
    placement: dict = field(default_factory=dict)


@dataclass
class CloneOutcome:
    changed: bool
    vm: Any  # the source VmRecord, or None
    clone: Optional[CloneRecord]
    before: Optional[dict] = None
    after: Optional[dict] = None
    why: str = ""

    def to_result(self, diff=False):
        result = {"changed": self.changed, "vm": self.vm.to_result() if self.vm is not None else None,
                  "clone": self.clone.to_result() if self.clone is not None else None}
        if result["clone"] is not None:
            result["clone"]["why"] = self.why or None
        if diff:
            result["diff"] = {"before": {"clone": self.before}, "after": {"clone": self.after}}
        return result


def _diff_view(record):
    if record is None:
        return None
    owner = record.owner or {}
    return {"name": record.name, "source": owner.get("source"), "snapshot": owner.get("snapshot"),
            "kind": owner.get("kind"), "linked": bool(record.linked), "power_state": record.power_state,
            "network": record.network}


def validate(params):
    """Contradictory options, refused before anything is read (InvalidRequest)."""
    if params.state not in STATES:
        raise InvalidRequest("state must be present or absent",
                             hint="Set state: present or absent; nothing was changed")
    if not params.name:
        raise InvalidRequest("'name' (the clone's VM name) is required",
                             hint="Name the clone with 'name'; nothing was changed")
    if params.state == "present":
        if not params.vm or not params.snapshot:
            raise InvalidRequest("state=present needs 'vm' and 'snapshot'",
                                 hint="Name the source VM with 'vm' and its snapshot with 'snapshot'; nothing was "
                                      "changed")
        if params.name == params.vm:
            raise InvalidRequest("the clone cannot have the source VM's name",
                                 hint="Choose another 'name'; nothing was changed")
        if params.restore_point and (params.power_on or params.network):
            raise InvalidRequest("a restore point is kept powered off and disconnected",
                                 hint="Remove 'power_on' and 'network', or set restore_point: false; nothing was "
                                      "changed")
    if params.timeout is not None and params.timeout <= 0:
        raise InvalidRequest("'timeout' must be a positive number of seconds",
                             hint="Set timeout to the seconds to wait, for example 600; nothing was changed")


def _owned_by(record, vm_id, snapshot):
    """The record is this collection's clone of ``vm_id``'s ``snapshot`` (either may be None: any)."""
    if not record.ours:
        return False
    if vm_id is not None and str(record.owner.get("source_id")) != str(vm_id):
        return False
    return snapshot is None or record.owner.get("snapshot") == snapshot


def _describe_owner(record):
    if not record.ours:
        return "a VM this collection did not make (no clone marker)"
    owner = record.owner
    return "this collection's %s of snapshot '%s' of VM '%s'" % (
        "restore point" if owner.get("kind") == "restore_point" else "clone", owner.get("snapshot"),
        owner.get("source"))


def ensure_clone(backend, params, check_mode):
    """Bring the clone ``params.name`` to ``params.state``; return a ``CloneOutcome``.

    The only code that reads check mode for clones: in check mode it makes the same reads and prechecks
    (plan_clone) and calls no mutating backend method."""
    validate(params)
    if params.state == "absent":
        return _ensure_absent(backend, params, check_mode)
    vm, started = None, False
    try:
        vm = backend.find_vm(params.vm)
        snapshots = backend.list_snapshots(vm)
        snap = find_one(snapshots, params.snapshot, vm, backend.provider, ACTION, required=True)
        existing = backend.find_clone(params.name)
        if existing is not None:
            if _owned_by(existing, vm.id, snap.name):
                view = _diff_view(existing)
                return CloneOutcome(False, vm, existing, before=view, after=view)
            raise PrecheckFailed(
                "the name '%s' is already used by %s" % (params.name, _describe_owner(existing)),
                hint="Choose another 'name', or remove that VM first")
        kind = "restore_point" if params.restore_point else "clone"
        marker = dict(params.marker or {})
        marker = clone_marker(marker.get("run"), marker.get("creator"), marker.get("expires"), marker.get("ticket"),
                              kind, vm.name, vm.id, snap.name)
        request = CloneRequest(name=params.name, full=bool(params.full or params.restore_point),
                               restore_point=params.restore_point, power_on=params.power_on, network=params.network,
                               marker=marker, timeout=params.timeout, placement=dict(params.placement))
        wait_until_free(backend, vm, params.lock_timeout)
        plan = backend.plan_clone(vm, snap, request)
        if plan.need_bytes is not None and plan.free_bytes is not None and plan.need_bytes > plan.free_bytes:
            raise PrecheckFailed(
                "a full copy needs about %s and the target storage has %s free"
                % (human_bytes(plan.need_bytes), human_bytes(plan.free_bytes)),
                hint="Free space, choose other storage for the clone, or ask for a linked clone (full: false)")
        if check_mode:
            predicted = CloneRecord(name=request.name, id=None, power_state="running" if request.power_on else "stopped",
                                    owner=marker, linked=plan.linked, network=request.network)
            return CloneOutcome(True, vm, predicted, before=None, after=_diff_view(predicted), why=plan.why)
        started = True
        made = backend.clone(vm, snap, request, plan)
        return CloneOutcome(True, vm, made, before=None, after=_diff_view(made), why=plan.why)
    except SnapshotError as error:
        if not started and "nothing was changed" not in (error.hint or "").lower():
            error.hint = (error.hint.rstrip(".") + "; nothing was changed") if error.hint else "Nothing was changed"
        raise error.bind(action=ACTION, vm=vm.name if vm is not None else params.vm, snapshot=params.snapshot,
                         provider=backend.provider)


def _ensure_absent(backend, params, check_mode):
    existing = None
    try:
        existing = backend.find_clone(params.name)
        vm = None
        if params.vm:
            try:
                vm = backend.find_vm(params.vm)
            except VmNotFound:
                vm = None  # the source may be gone; the clone's marker still names it
        if existing is None:
            return CloneOutcome(False, vm, None, before=None, after=None)
        mine = _owned_by(existing, vm.id if vm is not None else None, params.snapshot)
        if mine and params.vm and vm is None:
            mine = existing.owner.get("source") == params.vm
        if not mine:
            raise PrecheckFailed(
                "VM '%s' is %s%s" % (existing.name, _describe_owner(existing),
                                     ", not of the 'vm'/'snapshot' given" if existing.ours else ""),
                hint="Only clones this collection made are removed; remove that VM by hand if it must go")
        if vm is None:
            try:
                vm = backend.find_vm(existing.owner["source_id"])
            except VmNotFound:
                vm = None
        if not check_mode:
            backend.remove_clone(existing, params.timeout)
        return CloneOutcome(True, vm, existing, before=_diff_view(existing), after=None)
    except SnapshotError as error:
        if isinstance(error, (PrecheckFailed, InvalidRequest)) and "nothing was changed" not in (error.hint or ""):
            error.hint = (error.hint.rstrip(".") + "; nothing was changed") if error.hint else "Nothing was changed"
        owner = existing.owner if existing is not None and existing.ours else {}
        raise bind_remove(error, params.name, vm=params.vm or owner.get("source"),
                          snapshot=params.snapshot or owner.get("snapshot"), provider=backend.provider)


def human_bytes(value):
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024
    return "%d B" % value  # pragma: no cover


def expired_clones(backend, sources, now=None):
    """This collection's clones and restore points of the VMs ``sources`` (VmRecords) whose marker expired.

    Only VMs whose clone marker parses strictly and names one of ``sources`` by id are returned: a VM
    without the marker is never a candidate."""
    ids = {str(vm.id) for vm in sources}
    now = now or utcnow()
    return [record for record in backend.list_clones()
            if record.ours and str(record.owner.get("source_id")) in ids and is_expired(record.owner, now)]


def prune_clones(backend, sources, check_mode=False, timeout=600, now=None):
    """Remove (or, in check mode, list) the expired clones of ``sources``; returns ``[(record, error or None)]``."""
    done = []
    for record in expired_clones(backend, sources, now):
        error = None
        if not check_mode:
            try:
                backend.remove_clone(record, timeout)
            except SnapshotError as failure:
                error = bind_remove(failure, record.name, vm=record.owner.get("source"),
                                    snapshot=record.owner.get("snapshot"), provider=backend.provider)
        done.append((record, error))
    return done


# --- module glue ---------------------------------------------------------------------------


def clone_argument_spec():
    """Options every ``<provider>_clone`` module shares (documented in the clone doc fragment)."""
    return dict(
        vm=dict(type="str"),
        snapshot=dict(type="str"),
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=list(STATES)),
        full=dict(type="bool", default=False),
        restore_point=dict(type="bool", default=False),
        power_on=dict(type="bool", default=False),
        network=dict(type="str"),
        run_id=dict(type="str"),
        ticket=dict(type="str"),
        expires=dict(type="str"),
        creator=dict(type="str"),
        timeout=dict(type="int", default=600),
        lock_timeout=dict(type="int", default=0),
    )


def run_clone_module(backend_class, connection_spec, placement_spec, module_kwargs=None, requirements=(),
                     module_class=None):
    """Entry point of every ``<provider>_clone`` module (``module_class``: see _module.run_snapshot_module)."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.prechange.snapshots.plugins.module_utils._module import (
        _merge, _new_module, default_creator, fail, new_run_id)
    from ansible_collections.prechange.snapshots.plugins.module_utils._marker import resolve_expiry
    from ansible_collections.prechange.snapshots.plugins.module_utils._workflow import check_expiry

    module = _new_module(_merge(clone_argument_spec(), placement_spec), connection_spec, module_kwargs,
                         requirements, module_class)
    p = module.params
    provider = getattr(backend_class, "provider", None)
    try:
        try:
            expires = resolve_expiry(p["expires"])
        except ValueError as error:
            raise InvalidRequest(str(error), hint="Use 'expires: 7d' or an ISO 8601 timestamp; nothing was changed")
        if p["state"] == "present":
            check_expiry(expires)
        params = CloneParams(
            state=p["state"], vm=p["vm"], snapshot=p["snapshot"], name=p["name"], full=p["full"],
            restore_point=p["restore_point"], power_on=p["power_on"], network=p["network"],
            marker={"run": p["run_id"] or new_run_id(), "creator": p["creator"] or default_creator(),
                    "expires": isoformat(expires), "ticket": p["ticket"]},
            timeout=p["timeout"], lock_timeout=p["lock_timeout"] or 0,
            placement={key: p.get(key) for key in placement_spec})
        with backend_class(p, warn=module.warn) as backend:
            outcome = ensure_clone(backend, params, module.check_mode)
    except SnapshotError as error:
        if p["state"] == "present":
            error.bind(action=ACTION, vm=p["vm"], snapshot=p["snapshot"], provider=provider)
        else:
            bind_remove(error, p["name"], vm=p["vm"], snapshot=p["snapshot"], provider=provider)
        fail(module, error)
    module.exit_json(**outcome.to_result(diff=module._diff))  # pylint: disable=protected-access
