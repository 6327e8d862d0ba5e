# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The maintenance workflow's decisions, on top of the snapshot engine.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

Everything the roles used to compute in templates is decided here, per VM, from what the
hypervisor itself reports (the snapshot tree and each snapshot's ownership marker), so that
any controller reaches the same decision:

* ``plan_begin``: before a change, may this run take the VM? Refuse a VM held by another
  run's live lease; adopt an interrupted run's pending snapshot only when it is provably the
  same change; apply the policy limits; otherwise create.
* ``begin``: carry the plan out (create with a ``pending`` marker and a lease), and back off
  if another run took the same VM at the same moment.
* ``decide``: the verdict of the change: revert, delete, keep, or release.
* ``settle``: act on exactly the recorded snapshot (identity checked in the same call that acts)
  and record the run's phase in its marker.
* ``find_run_snapshot`` and ``select_prunable``: the revert and prune playbooks' choices.

Backends are used only through ``SnapshotBackend``; check mode is honoured by calling no
mutating method.
"""

from __future__ import annotations

import copy
import fnmatch
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Optional

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import (
    AmbiguousSnapshot,
    ConnectionFailed,
    InvalidRequest,
    PrecheckFailed,
    SnapshotError,
    SnapshotNotFound,
    SnapshotTimeout,
    VmNotFound,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._inventory import match_product_uuid
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import (
    PENDING,
    is_expired,
    isoformat,
    join_description,
    lease_live,
    make_marker,
    parse_duration,
    parse_time,
    utcnow,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._capacity import (
    CapacityPolicy,
    growth,
    growth_limit,
    measure_vm,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._retention import (
    Retention,
    candidate,
    retained,
    veto_reason,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._window import large_delta
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import (
    SnapshotParams,
    ensure,
    error_fields,
    wait_until_free,
    when_free,
)

DECISIONS = ("revert", "delete", "keep", "release")
# The phase a snapshot's marker records after each decision (a deleted snapshot has none).
PHASE_AFTER = {"revert": "reverted", "keep": "kept", "delete": "verified", "release": "released"}
ADOPT_CHOICES = ("run", "ticket")
POLICY_ACTIONS = ("fail", "warn")
GIB = 1024 ** 3


class RunConflict(PrecheckFailed):
    """Another run holds the VM, or left a snapshot without a verdict; nothing was changed."""


class IdentityMismatch(PrecheckFailed):
    """The recorded snapshot is not on the VM as recorded (missing, duplicated or another owner)."""


@dataclass
class Policy:
    """Limits over the snapshots a VM already has; 0 / None means no limit."""

    max_count: int = 0
    max_age: Optional[timedelta] = None
    max_depth: int = 0
    min_free_gb: float = 0
    action: str = "fail"


@dataclass
class BeginRequest:
    """What the snapshot step asks for one VM."""

    name: str
    run_id: str
    holder: str
    lease: timedelta
    description: str = ""
    ticket: Optional[str] = None
    creator: Optional[str] = None
    expires: Optional[object] = None  # aware datetime or None
    memory: Optional[bool] = None
    quiesce: bool = False
    strict: bool = False
    timeout: Optional[float] = None
    lock_timeout: float = 0
    options: dict = field(default_factory=dict)
    adopt: str = "run"
    takeover: bool = False
    policy: Policy = field(default_factory=Policy)
    check_only: bool = False
    # Free space before the create (``_capacity.CapacityPolicy``, with the policy's min_free_gb); None: not checked.
    capacity: Optional[object] = None


@dataclass
class Plan:
    """``plan_begin``'s answer: create, adopt (``snapshot``) or refuse (``error``)."""

    action: str
    snapshot: object = None
    error: Optional[SnapshotError] = None
    warnings: list = field(default_factory=list)


def _who(marker):
    ticket = marker.get("ticket")
    return "run %s%s" % (marker.get("run"), " (ticket %s)" % ticket if ticket else "")


def policy_violations(snapshots, policy, free_bytes=None, now=None):
    """The policy limits the VM's existing snapshots break, and the checks that could not run."""
    now = now or utcnow()
    violations, notes = [], []
    if policy.max_count and len(snapshots) >= policy.max_count:
        violations.append("the VM has %d snapshots, policy allows at most %d before a new one"
                          % (len(snapshots), policy.max_count))
    if policy.max_age:
        ages = [s.age_seconds(now) for s in snapshots if s.created is not None]
        if ages and max(ages) > policy.max_age.total_seconds():
            violations.append("the oldest snapshot is %ds old, policy allows %ds"
                              % (max(ages), policy.max_age.total_seconds()))
    depth = max([s.depth for s in snapshots] or [0])
    if policy.max_depth and depth + 1 > policy.max_depth:
        violations.append("the snapshot chain is %d deep, policy allows at most %d with the new one"
                          % (depth, policy.max_depth))
    if policy.min_free_gb and free_bytes is not None and free_bytes < policy.min_free_gb * GIB:
        # Only for a caller that measured free space itself; the snapshot step folds min_free_gb into the
        # engine's capacity decision (_capacity.check, BeginRequest.capacity), which measures every storage.
        violations.append("only %.1f GiB free, policy wants %s GiB" % (free_bytes / GIB, policy.min_free_gb))
    return violations, notes


def plan_begin(snapshots, request, now=None, free_bytes=None):
    """Decide, from the VM's snapshot tree alone, whether this run may take the VM."""
    now = now or utcnow()
    pending = [s for s in snapshots if s.owner and s.owner.get("phase") == PENDING]

    def this_run(owner):
        return owner.get("run") == request.run_id and (owner.get("holder") == request.holder or request.takeover)

    held = [s for s in pending if lease_live(s.owner, now) and not this_run(s.owner)]
    if held:
        snap = held[0]
        same_run = snap.owner.get("run") == request.run_id
        return Plan("refuse", error=RunConflict(
            "the VM is held by maintenance %s until %s: its snapshot '%s' (id %s) is waiting for that run's "
            "verdict" % (_who(snap.owner), snap.owner.get("lease"), snap.name, snap.id),
            hint=("This is the same run, started by another ansible-playbook (%s): if that one was interrupted and no "
                  "longer runs, resume with -e snapshot_takeover=true; nothing was changed" % snap.owner.get("holder")
                  if same_run else "Let that run finish, or wait until its lease ends; nothing was changed"),
            details={"holder_run": snap.owner.get("run"), "holder_ticket": snap.owner.get("ticket"),
                     "lease": snap.owner.get("lease"), "held_snapshot": snap.name}))

    def same_change(marker):
        if marker.get("run") == request.run_id:
            return True
        return request.adopt == "ticket" and bool(request.ticket) and marker.get("ticket") == request.ticket

    ours = [s for s in pending if same_change(s.owner)]
    foreign = [s for s in pending if not same_change(s.owner)]
    if foreign:
        snap = foreign[0]
        run = snap.owner.get("run")
        return Plan("refuse", error=RunConflict(
            "maintenance %s was interrupted: its snapshot '%s' (id %s) has no verdict and its lease ended at %s"
            % (_who(snap.owner), snap.name, snap.id, snap.owner.get("lease") or "an unknown time"),
            hint="Either revert to it (ansible-playbook prechange.snapshots.revert -e revert_or_prune_run_id=%s), "
                 "or accept that run's change and release the snapshot (ansible-playbook prechange.snapshots.revert "
                 "-e revert_or_prune_run_id=%s -e revert_action=release), or resume that run with "
                 "-e prechange_run_id=%s; nothing was changed" % (run, run, run),
            details={"interrupted_run": run, "interrupted_ticket": snap.owner.get("ticket"),
                     "interrupted_snapshot": snap.name}))
    if len(ours) > 1:
        return Plan("refuse", error=AmbiguousSnapshot(
            "%d snapshots of this change are waiting for a verdict (%s)"
            % (len(ours), ", ".join("'%s' id %s" % (s.name, s.id) for s in ours)),
            hint="Revert to or release all but one with the revert playbook; nothing was changed"))
    if ours:
        return Plan("adopt", snapshot=ours[0])

    same_name = [s for s in snapshots if s.name == request.name]
    if same_name:
        snap = same_name[0]
        if snap.owner and snap.owner.get("run") == request.run_id:
            phase = snap.owner.get("phase") or "recorded before runs kept a phase"
            why = "run %s already reached its verdict for it (%s)" % (request.run_id, phase)
            hint = "Start a new run (leave prechange_run_id unset) or choose another snapshot_name; nothing was changed"
        elif snap.owner:
            why = "it belongs to maintenance %s" % _who(snap.owner)
            hint = "Choose another snapshot_name; nothing was changed"
        else:
            why = "it was not made by this collection"
            hint = "Choose another snapshot_name; nothing was changed"
        return Plan("refuse", error=RunConflict("the VM already has a snapshot named '%s' (id %s): %s"
                                                % (request.name, snap.id, why), hint=hint))

    violations, notes = policy_violations(snapshots, request.policy, free_bytes, now)
    if violations and request.policy.action == "fail":
        return Plan("refuse", error=PrecheckFailed(
            "the VM breaks the snapshot policy: %s" % "; ".join(violations),
            hint="Remove old snapshots, or change the snapshot_policy_* limits; nothing was changed",
            details={"violations": violations}))
    return Plan("create", warnings=notes + ["snapshot policy: %s" % v for v in violations])


def begin(backend, vm, request, check_mode, now=None):
    """Prechecks, then adopt or create this run's pending snapshot of one VM. Returns a result dict."""
    now = now or utcnow()
    snapshots = backend.list_snapshots(vm)
    plan = plan_begin(snapshots, request, now, free_bytes=vm.extra.get("free_space_bytes"))
    if plan.action == "refuse":
        raise plan.error
    if plan.action == "adopt":
        snap = plan.snapshot
        if not check_mode and not request.check_only:
            # Take the lease over: from now on this process holds the VM.
            marker = dict(snap.owner, lease=isoformat(now + request.lease), holder=request.holder)
            when_free(lambda: backend.update(vm, snap, description=join_description(snap.description, marker),
                                             timeout=request.timeout), request.lock_timeout)
            snap.owner = marker
        return _begin_result(vm, snap, "adopted", snap.owner.get("power") or vm.power_state, plan.warnings,
                             predicted=False)

    marker = make_marker(run=request.run_id, creator=request.creator, created=now, expires=request.expires,
                         ticket=request.ticket, phase=PENDING, lease=now + request.lease, holder=request.holder,
                         power=vm.power_state)
    params = SnapshotParams(state="present", name=request.name, description=request.description,
                            memory=request.memory, quiesce=request.quiesce, strict=request.strict,
                            marker=marker, timeout=request.timeout, lock_timeout=request.lock_timeout,
                            options=dict(request.options), capacity=request.capacity)
    dry = check_mode or request.check_only
    try:
        outcome = ensure(backend, vm, params, dry)  # the provider's own prechecks run here, in both modes
    except SnapshotError as error:
        if dry or isinstance(error, (PrecheckFailed, InvalidRequest, SnapshotTimeout)):
            raise
        found = _after_failed_create(backend, vm, request, now, error)
        return _begin_result(vm, found, "created", vm.power_state, plan.warnings + [
            "The platform's answer to the create was lost (%s), but the snapshot is on the VM with this run's "
            "marker: it is recorded and used" % error.reason], predicted=False)
    if dry:
        return _begin_result(vm, outcome.snapshot, "checked" if request.check_only else "created",
                             vm.power_state, plan.warnings, predicted=True)
    made = outcome.snapshot
    if outcome.action != "created":
        # Another call made the same name at the same moment (vSphere allows two): the engine kept the
        # one made first and deleted ours. Whose it is decides nothing here: this run did not make it.
        owner = made.owner or {}
        same_run = owner.get("run") == request.run_id
        raise RunConflict(
            "%s created snapshot '%s' (id %s) at the same moment; this run's own snapshot was deleted again"
            % ("another ansible-playbook of the same run (%s)" % owner.get("holder") if same_run
               else "maintenance %s" % _who(owner) if owner else "another task", made.name, made.id),
            hint="Let that run finish, then run again if this VM still needs it; the VM was not changed",
            details={"held_snapshot": made.name})
    _back_off_if_raced(backend, vm, made, request, now)
    return _begin_result(vm, made, "created", vm.power_state, plan.warnings, predicted=False)


def _after_failed_create(backend, vm, request, now, error):
    """A create failed: look at the VM again so that nothing of ours is left unrecorded.

    The snapshot this run asked for may be there after all (the answer was lost on the way back),
    or another run took the VM at the same moment (the platform refused a second snapshot of the
    name). Returns this run's own snapshot when it is there; else raises what the VM now shows, or
    the original error.
    """
    try:
        snapshots = backend.list_snapshots(vm)
    except SnapshotError:
        raise error

    def made_by_this_run(snap):
        owner = snap.owner or {}
        ours = owner.get("run") == request.run_id and owner.get("holder") == request.holder
        return ours and snap.name == request.name and owner.get("phase") == PENDING

    mine = [s for s in snapshots if made_by_this_run(s)]
    if len(mine) == 1 and isinstance(error, ConnectionFailed):
        # Only a lost answer: a create the platform itself failed is not taken for a success.
        return mine[0]
    plan = plan_begin(snapshots, request, now, free_bytes=vm.extra.get("free_space_bytes"))
    if plan.action == "refuse" and isinstance(plan.error, RunConflict):
        plan.error.details["cause"] = error.message
        raise plan.error from error
    raise error


def _back_off_if_raced(backend, vm, made, request, now):
    """Two runs that listed the VM at the same moment may both have created: the later one backs off.

    Whoever sees another holder's live pending snapshot next to its own after creating deletes its
    own (identified by id) and refuses. A run that listed before the other created sees nothing
    and keeps its snapshot, so at least one run backs off and none is left with two snapshots.
    """
    # A rival of the same name is settled by the engine instead (the snapshot made first stays, the other
    # creator deletes its own), so that two runs with one run id end with exactly one snapshot.
    def is_rival(snap):
        if not snap.owner or snap.owner.get("phase") != PENDING or not lease_live(snap.owner, now):
            return False
        return snap.owner.get("holder") != request.holder and snap.id != made.id and snap.name != made.name

    rivals = [s for s in backend.list_snapshots(vm) if is_rival(s)]
    if not rivals:
        return
    when_free(lambda: backend.delete(vm, made, False, request.timeout), request.lock_timeout)
    rival = rivals[0]
    raise RunConflict(
        "maintenance %s took the VM at the same moment (its snapshot '%s', id %s); this run's own snapshot was "
        "deleted again" % (_who(rival.owner), rival.name, rival.id),
        hint="Let that run finish, then run again; the VM was not changed")


def _begin_result(vm, snap, action, power_state, warnings, predicted):
    result = snap.to_result() if snap is not None else {}
    return {
        "action": action,
        "changed": action in ("created", "adopted"),
        "predicted": predicted,
        "vm": vm.to_result(),
        "snapshot": result,
        "power_state": power_state,
        "warnings": list(warnings),
    }


# --- the verdict --------------------------------------------------------------------------------------


def verdict_for(record, verdict):
    """The verdict's ``passed`` when it belongs to this record's snapshot, else None (no verdict).

    A verdict taken before this run's snapshot, or for another snapshot, does not count.
    """
    if not isinstance(verdict, dict) or verdict.get("passed") is None:
        return None
    if not record or str(verdict.get("snapshot_id")) != str(record.get("id")):
        return None
    if verdict.get("run_id") != record.get("run_id"):
        return None
    return bool(verdict["passed"])


def decide(action, change_failed, passed, on_success):
    """revert / delete / keep / release, with the reason in words."""
    if action and action != "auto":
        return action, "%s was asked for" % action
    if change_failed:
        return "revert", "the change failed"
    if passed is None:
        return "keep", "no verdict belongs to this run's snapshot (the checks did not run after it)"
    if not passed:
        return "revert", "the checks failed"
    return on_success, "the checks passed"


def guard(snapshots, expected, vm, provider):
    """The one snapshot the run recorded: same name, same id, same run; anything else refuses."""
    name, snap_id, run = expected.get("name"), expected.get("id"), expected.get("run_id")
    matches = [s for s in snapshots if s.name == name]
    if len(matches) == 1:
        snap = matches[0]
        owner_run = (snap.owner or {}).get("run")
        if (snap_id in (None, "") or str(snap.id) == str(snap_id)) and owner_run == run:
            return snap
        why = "its id is %s and its run %s" % (snap.id, owner_run or "none (not ours)")
    elif not matches:
        raise SnapshotNotFound(
            "the snapshot this run recorded (id %s, run %s) is not on the VM (existing: %s)"
            % (snap_id, run, ", ".join(s.name for s in snapshots) or "none"),
            vm=vm, snapshot=name, provider=provider, hint="Nothing was changed")
    else:
        why = "%d snapshots share the name (ids %s)" % (len(matches), ", ".join(str(s.id) for s in matches))
    raise IdentityMismatch(
        "refusing to act: this run recorded id %s of run %s, but %s" % (snap_id, run, why),
        vm=vm, snapshot=name, provider=provider, hint="Inspect the VM's snapshots; nothing was changed")


def revert_power(requested, recorded, memory):
    """The power state to ask the provider for after a revert.

    ``recorded`` (the default) brings the VM back in the power state it had when the snapshot was
    taken; a disk-only snapshot of a running VM is booted (its memory was not kept).
    """
    if requested != "recorded":
        return requested
    if recorded in ("running", "paused"):
        return recorded
    if recorded in ("stopped", "suspended"):
        return "stopped"
    return "snapshot"


def settle(backend, vm, expected, decision, power_state, check_mode, timeout=None, now=None, passed=None,
           lock_timeout=0, veto=None):
    """Act on exactly the recorded snapshot: revert, delete, keep or release; record the phase.

    ``passed`` is the verdict behind a keep: a kept snapshot of a passed change is ``verified``,
    one kept without a verdict (or as asked) is ``kept``. ``veto`` (the request's veto settings) is
    asked before a delete: a vetoed snapshot is kept until its expiry instead, and the result says why.
    """
    now = now or utcnow()
    if decision not in DECISIONS:
        raise InvalidRequest("unknown decision '%s'" % decision, hint="Use revert, delete, keep or release")
    snapshots = backend.list_snapshots(vm)
    snap = guard(snapshots, expected, vm.name, backend.provider)
    owner = dict(snap.owner or {})
    vetoed = veto_reason(candidate(vm.name, snap, backend.provider), veto) if veto and decision == "delete" else None
    if vetoed:
        decision, passed = "keep", True
    power = revert_power(power_state, owner.get("power") or expected.get("power_state"), snap.memory)
    phase = "verified" if decision == "keep" and passed else PHASE_AFTER[decision]
    result = {"action": {"revert": "reverted", "delete": "deleted", "keep": "kept", "release": "released"}[decision],
              "changed": decision in ("revert", "delete") or owner.get("phase") != phase,
              "vm": vm.to_result(), "snapshot": snap.to_result(now), "power_state": power, "warnings": []}
    if vetoed:
        result["vetoed"] = vetoed
        result["warnings"].append(veto_warning(snap, vm, owner, vetoed, "deleted"))
    if check_mode and decision == "revert" and power in ("running", "paused") and not snap.memory:
        # A real revert says so through the engine's warning.
        result["warnings"].append(
            "Snapshot '%s' of VM '%s' has no memory state; the VM boots from the snapshot's disks" % (snap.name, vm.name))
    if decision != "revert":
        # A revert waits for a busy VM inside the engine; a delete or a marker update waits here.
        wait_until_free(backend, vm, lock_timeout)
    if check_mode:
        return result
    marker = dict(owner, phase=phase, lease=None, holder=None)
    if decision == "revert":
        params = SnapshotParams(state="reverted", name=snap.name, revert_power_state=power, timeout=timeout,
                                lock_timeout=lock_timeout)
        outcome = ensure(backend, vm, params, False)
        result["vm"] = outcome.vm.to_result()
        snap = outcome.snapshot or snap
    # The verdict goes on the platform before a delete, so that a failed delete leaves a snapshot
    # no later run takes for an interrupted one.
    if owner.get("run"):
        when_free(lambda: backend.update(vm, snap, description=join_description(snap.description, marker),
                                         timeout=timeout), lock_timeout)
        snap.owner = marker
    if decision == "delete":
        when_free(lambda: backend.delete(vm, snap, False, timeout), lock_timeout)
    result["snapshot"] = snap.to_result(now)
    return result


def veto_warning(snap, vm, owner, why, verb):
    """What a user reads when a veto kept a snapshot."""
    until = ("it is kept until its expiry %s, when the prune playbook asks again" % owner["expires"]
             if owner.get("expires") else "it has no expiry: the prune playbook with revert_or_prune_prune_select=owned "
                                          "asks again")
    return "Snapshot '%s' of VM '%s' was not %s: %s; %s" % (snap.name, vm.name, verb, why, until)


def predicted_settle(vm, record, decision, why, power_state):
    """What settle would do to a snapshot that check mode only predicted."""
    return {"action": {"revert": "reverted", "delete": "deleted", "keep": "kept", "release": "released",
                       "depends": "depends"}[decision],
            "changed": decision in ("revert", "delete", "depends"), "predicted": True, "vm": vm.to_result(),
            "snapshot": {"name": record.get("name"), "id": record.get("id"), "owner": record.get("owner")},
            "power_state": revert_power(power_state, record.get("power_state"), record.get("memory")),
            "warnings": [], "reason": why}


# --- revert and prune playbooks -----------------------------------------------------------------------


def find_run_snapshot(snapshots, run_id=None, name=None, vm=None, provider=None):
    """The one snapshot of ours matching the run id and/or name (for the revert playbook)."""
    if not run_id and not name:
        raise InvalidRequest("say which snapshot: a run id and/or a snapshot name",
                             hint="Set revert_or_prune_run_id and/or revert_or_prune_snapshot_name")
    found = [s for s in snapshots if s.owner and (not run_id or s.owner.get("run") == run_id) and (not name or s.name == name)]
    if len(found) != 1:
        raise (SnapshotNotFound if not found else AmbiguousSnapshot)(
            "%d snapshots of this collection match run '%s' name '%s' (%s); exactly one is needed"
            % (len(found), run_id or "*", name or "*", ", ".join(s.name for s in found) or "none"),
            vm=vm, snapshot=name, provider=provider, hint="Nothing was changed")
    return found[0]


def select_prunable(snapshots, select="expired", run_id=None, name_pattern=None, now=None):
    """Our snapshots to delete: expired (or all of ours), never one a live run still holds."""
    now = now or utcnow()
    chosen, held = [], []
    for snap in snapshots:
        if not snap.owner:
            continue
        if run_id and snap.owner.get("run") != run_id:
            continue
        if name_pattern and not fnmatch.fnmatchcase(snap.name, name_pattern):
            continue
        if select == "expired" and not is_expired(snap.owner, now):
            continue
        if snap.owner.get("phase") == PENDING and lease_live(snap.owner, now):
            held.append(snap)
            continue
        chosen.append(snap)
    chosen.sort(key=lambda s: -s.depth)  # deepest first: no delete re-parents a snapshot deleted next
    return chosen, held


def parse_lease(text):
    try:
        lease = parse_duration(text)
    except ValueError as error:
        raise InvalidRequest(str(error), hint="Set snapshot_lease to a duration like 2h")
    if lease.total_seconds() <= 0:
        raise InvalidRequest("the lease must be longer than 0", hint="Set snapshot_lease to a duration like 2h")
    return lease


def check_expiry(expires, now=None):
    """An expiry in the past would make the snapshot prunable at once: refuse it."""
    if expires is not None and expires <= (now or utcnow()):
        raise InvalidRequest("the expiry %s is already in the past" % isoformat(expires),
                             hint="Give a duration (7d) or a future timestamp; nothing was changed")
    return expires


# --- one call per endpoint ----------------------------------------------------------------------------

KINDS = ("snapshot", "settle", "lookup", "prune")
# The verb of each kind's errors: "Failed to <verb> snapshot ...".
VERBS = {"snapshot": "create", "revert": "revert", "delete": "delete", "keep": "keep", "release": "release",
         "lookup": "find", "prune": "prune"}


def group_key(provider, connection):
    """Hosts whose VMs sit behind the same endpoint with the same credentials share one API session."""
    return (provider, tuple(sorted((str(k), repr(v)) for k, v in (connection or {}).items())))


def group_requests(requests):
    """``{host: request}`` to ``[(provider, connection, [(host, request), ...]), ...]`` in host order."""
    groups = {}
    for host, request in requests.items():
        key = group_key(request["provider"], request.get("connection"))
        groups.setdefault(key, (request["provider"], dict(request.get("connection") or {}), []))[2].append(
            (host, request))
    return list(groups.values())


def failure(error, action, vm, snapshot, provider):
    """A failed host's result: the engine's own message and structured keys, unchanged."""
    error.bind(action=action, vm=vm, snapshot=snapshot, provider=provider)
    result = {"failed": True, "changed": False, "msg": error.message}
    result.update(error_fields(error))
    return result


def begin_request(request, run_id, holder):
    """A snapshot request (already validated by the action plugin) as a ``BeginRequest``."""
    policy = request.get("policy") or {}
    return BeginRequest(
        name=request["name"], run_id=run_id, holder=holder, lease=timedelta(seconds=request["lease_seconds"]),
        description=request.get("description") or "", ticket=request.get("ticket") or None,
        creator=request.get("creator") or None,
        expires=parse_time(request.get("expires")),
        memory=request.get("memory"), quiesce=bool(request.get("quiesce")), strict=bool(request.get("strict")),
        timeout=request.get("timeout"), lock_timeout=float(request.get("lock_timeout") or 0),
        options=dict(request.get("options") or {}),
        adopt=request.get("adopt") or "run", takeover=bool(request.get("takeover")),
        policy=Policy(max_count=int(policy.get("max_count") or 0),
                      max_age=timedelta(seconds=policy["max_age_seconds"]) if policy.get("max_age_seconds") else None,
                      max_depth=int(policy.get("max_depth") or 0), min_free_gb=float(policy.get("min_free_gb") or 0),
                      action=policy.get("action") or "fail"),
        check_only=bool(request.get("check_only")),
        capacity=capacity_policy(request))


def capacity_policy(request):
    """The snapshot step's capacity decision: snapshot_capacity_* plus snapshot_min_free_gb, one policy."""
    capacity = request.get("capacity") or {}
    policy = request.get("policy") or {}
    return CapacityPolicy(action=capacity.get("action") or "fail", growth=float(capacity.get("growth", 0.1)),
                          reserve_gb=float(capacity.get("reserve_gb") or 0),
                          min_free_gb=float(policy.get("min_free_gb") or 0)).validate()


def resolve_vms(backend, items):
    """Each host's VM: ``{host: VmRecord or SnapshotError}``, with one lookup per endpoint.

    A request names its VM (``vm``) and says how to match it (``vm_match``, see ``_inventory``):
    ``name`` looks ``vm`` up as the provider does (name or id); ``product_uuid`` finds the VM whose SMBIOS
    UUID is the host's ``product_uuid``; ``auto`` does the first, and the second only for a host whose
    ``vm`` matches no VM at all. All SMBIOS UUIDs of the endpoint are read once, and only when needed.
    """
    by_name = [request["vm"] for _host, request in items if request.get("vm_match") != "product_uuid"]
    found = backend.find_vms(list(dict.fromkeys(by_name))) if by_name else {}
    resolved, by_uuid = {}, []
    for host, request in items:
        mode = request.get("vm_match") or "name"
        named = found.get(request["vm"])
        by_name_failed = isinstance(named, VmNotFound)
        if mode == "product_uuid" or (mode == "auto" and request.get("product_uuid") and by_name_failed):
            by_uuid.append((host, request))
        else:
            resolved[host] = named
    if not by_uuid:
        return resolved
    try:
        candidates = backend.product_uuid_candidates()
    except SnapshotError as error:
        for host, _request in by_uuid:
            resolved[host] = copy.copy(error)
        return resolved
    chosen = {}
    for host, request in by_uuid:
        try:
            chosen[host] = match_product_uuid(host, request.get("product_uuid"), candidates, backend.endpoint())
        except SnapshotError as error:
            if request.get("vm_match") == "auto":
                error.reason = "no VM is named '%s', and %s" % (request["vm"], error.reason)
            resolved[host] = error
    records = backend.find_vms(list(dict.fromkeys(vm.id for vm in chosen.values()))) if chosen else {}
    for host, vm in chosen.items():
        resolved[host] = records[vm.id]
        if not isinstance(resolved[host], SnapshotError):
            resolved[host].extra["matched_by"] = "product_uuid"
    return resolved


def run_group(backend, items, kind, check_mode, run_id=None, holder=None, now=None):
    """Run one kind of step for every host of one endpoint through one backend session.

    ``items`` is ``[(host, request), ...]``; returns ``{host: result}``. One VM's failure never
    stops the others; each failure carries the engine's own message.
    """
    now = now or utcnow()
    found = resolve_vms(backend, items)
    results = {}

    def one(item):
        host, request = item
        vm = found.get(host)
        verb = verb_for(kind, request)
        snapshot_name = request.get("name") or (request.get("record") or {}).get("name") or \
            request.get("snapshot_name")
        if isinstance(vm, SnapshotError):
            return host, failure(vm, verb, request["vm"], snapshot_name, backend.provider)
        try:
            result = _one(backend, vm, request, kind, check_mode, run_id, holder, now)
            if vm.extra.get("matched_by") == "product_uuid":
                # Found by the host's SMBIOS UUID: later steps (revert, delete) name the VM by its id.
                result["vm_ref"] = vm.id
            return host, result
        except SnapshotError as error:
            return host, failure(error, verb, vm.name, snapshot_name, backend.provider)
        except Exception as error:  # pylint: disable=broad-except
            # One VM's unexpected failure must not lose the other VMs' results.
            result = failure(SnapshotError("unexpected error: %s" % error), verb, vm.name, snapshot_name,
                             backend.provider)
            result["exception"] = traceback.format_exc()
            return host, result

    concurrency = max(1, min([int(r.get("concurrency") or 10) for _h, r in items] + [backend.max_concurrency]))
    if concurrency == 1 or len(items) == 1:
        pairs = [one(item) for item in items]
    else:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
            pairs = list(pool.map(one, items))
    results.update(pairs)
    return results


def verb_for(kind, request):
    """The verb of a host's errors, known before any API call: what the host was about to do."""
    if kind == "settle":
        return VERBS[settle_decision(request)[0]]
    if kind == "lookup":
        return VERBS.get(request.get("action") or "revert", "find")
    return VERBS[kind]


def settle_decision(request, check_mode=False):
    """A settle request's decision and its reason, from the request alone.

    In check mode the change did not happen, so no verdict can exist yet: unless the user forced an
    action, the decision is ``depends`` (revert if the checks fail, else the on-success action),
    never a verdict about a change that did not run.
    """
    passed = request.get("verify_passed")
    if passed is None:
        passed = verdict_for(request["record"], request.get("verdict"))
    on_success = request.get("on_success") or "delete"
    if check_mode and request.get("action") in (None, "", "auto") and passed is None \
            and not request.get("change_failed"):
        return "depends", ("check mode: the change did not run, so there is no verdict; the run reverts if the "
                           "change or the checks fail, else it will %s the snapshot" % on_success), None
    if request.get("rehearsal_failed") and request.get("action") in (None, "", "auto"):
        # Issue 13: the change failed on the clone and never reached this VM; the snapshot is settled as
        # for a host with no change (the on-success action), never reverted.
        return on_success, "the rehearsal failed on the clone, so the change never reached this VM", None
    decision, why = decide(request.get("action"), request.get("change_failed"), passed, on_success)
    return decision, why, passed


def _one(backend, vm, request, kind, check_mode, run_id, holder, now):
    if kind == "snapshot":
        result = begin(backend, vm, begin_request(request, run_id, holder), check_mode, now)
        # Growth is measured from here (the snapshot's size, else the disks' allocation, and free space).
        made = None if result.get("predicted") else (result.get("snapshot") or {}).get("id")
        result["capacity"] = measure_vm(backend, vm, made)
        return result
    if kind == "settle":
        record = request["record"]
        decision, why, passed = settle_decision(request, check_mode)
        # Why the action plugin changed the decision: another member of the host's change set failed
        # (module_utils/_changeset.py), or the window's deadline (module_utils/_window.py).
        why = request.get("because") or why
        grown = None
        if record.get("capacity") and not record.get("predicted"):
            grown = growth(record["capacity"], measure_vm(backend, vm, record.get("id")),
                           growth_limit(request.get("growth_limit")))
            if grown["action"] == "stop" and decision in ("delete", "keep", "depends"):
                # Too much growth is a failed change: back to this run's snapshot, said as such.
                decision, why = "revert", "%s; the change is treated as failed and reverted (growth limit, " \
                    "action stop)" % grown["message"]
        deferred = None
        if grown is not None and decision == "delete" and request.get("defer_delete_over_gb"):
            # The maintenance window is on: a large delta is merged after the window, by the prune playbook.
            deferred = large_delta(grown["size_after_bytes"] if grown["measured"] == "snapshot"
                                   else grown["growth_bytes"], request["defer_delete_over_gb"])
            if deferred:
                decision, why = "keep", deferred
        if record.get("predicted"):
            # Check mode: the snapshot was only predicted, so there is nothing on the VM to check yet.
            result = predicted_settle(vm, record, decision, why, request.get("power_state") or "recorded")
        else:
            # A "depends" (check mode, no verdict yet) still checks the snapshot's identity, as keep.
            result = settle(backend, vm, record, "keep" if decision == "depends" else decision,
                            request.get("power_state") or "recorded", check_mode, request.get("timeout"), now,
                            passed=passed, lock_timeout=float(request.get("lock_timeout") or 0), veto=request)
            result["reason"] = why if not result.get("vetoed") else "%s, but the deletion was vetoed" % why
        if decision == "depends":
            result.update(action="depends", predicted=True, if_passed=request.get("on_success") or "delete")
        if deferred:
            result["delete_deferred"] = deferred
        if grown is not None:
            result["growth"] = grown
            if grown["message"] and grown["action"] != "stop":
                result.setdefault("warnings", []).append(
                    "VM '%s': %s%s" % (vm.name, grown["message"], " (growth limit, action alert)"
                                       if grown["action"] == "alert" else ""))
        return result
    if kind == "lookup":
        snap = find_run_snapshot(backend.list_snapshots(vm), request.get("run_id"), request.get("snapshot_name"),
                                 vm.name, backend.provider)
        record = {"name": snap.name, "id": snap.id, "run_id": snap.owner.get("run"),
                  "power_state": snap.owner.get("power")}
        decision = request.get("action") or "revert"
        result = settle(backend, vm, record, decision, request.get("power_state") or "recorded", check_mode,
                        request.get("timeout"), now, lock_timeout=float(request.get("lock_timeout") or 0))
        result["reason"] = "%s was asked for" % decision
        result["record"] = record
        return result
    raise InvalidRequest("unknown step kind '%s'" % kind)


def prune_group(backend, items, check_mode, now=None, plan=False):
    """Prune one endpoint: the hosts' VMs, or every VM when one of them asks to sweep the endpoint.

    Returns ``{host: result}``; VMs of the endpoint that map to no host are reported on the
    group's first host under ``others``. ``plan``: only list the candidates (after the retention
    policy, before any veto), for the user's veto tasks; nothing is asked or changed.
    """
    now = now or utcnow()
    results = {}
    sweep = any(request.get("scope") == "endpoint" for _h, request in items)
    found = resolve_vms(backend, items)
    first = items[0][0]
    others = []
    by_vm = {}
    for host, request in items:
        vm = found.get(host)
        if isinstance(vm, SnapshotError):
            results[host] = failure(vm, "prune", request["vm"], None, backend.provider)
            continue
        by_vm.setdefault(vm.id, (vm, []))[1].append(host)
    targets = list(by_vm.values())
    if sweep:
        known = {vm.id for vm, _hosts in targets}
        targets += [(vm, None) for vm in backend.list_vms() if vm.id not in known]
    for vm, hosts in targets:
        request = dict(items[0][1]) if hosts is None else dict(next(r for h, r in items if h == hosts[0]))
        try:
            entry = _prune_vm(backend, vm, request, check_mode or plan, now, plan)
        except SnapshotError as error:
            entry = failure(error, "prune", vm.name, None, backend.provider)
        if hosts is None:
            if any(entry.get(key) for key in ("deleted", "held", "failed", "vetoed", "retained", "candidates")):
                others.append(entry)
            continue
        for host in hosts:
            results[host] = dict(entry)
    if not plan:
        _prune_expired_clones(backend, [(vm, hosts) for vm, hosts in targets if hosts], results, check_mode, now)
    results.setdefault(first, {"changed": False, "deleted": [], "held": []})
    results[first]["others"] = others
    if any(o.get("failed") for o in others):
        results[first].setdefault("warnings", []).append(
            "prune failed on %d other VM(s) of the endpoint: %s"
            % (len([o for o in others if o.get("failed")]), "; ".join(o["msg"] for o in others if o.get("failed"))))
    for other in others:
        results[first].setdefault("warnings", []).extend(other.get("warnings") or [])
    results[first]["changed"] = results[first].get("changed") or any(o.get("changed") for o in others)
    return results


def retention_of(request):
    """A prune request's retention policy (already validated by the action plugin), or None."""
    keep = request.get("retention") or {}
    policy = Retention(**{key: int(keep.get(key) or 0) for key in ("last", "hourly", "daily", "weekly", "monthly")},
                       per=keep.get("per") or "vm")
    return policy if policy.active else None


def _prune_expired_clones(backend, targets, results, check_mode, now):
    """Issue 13: this collection's expired clones and restore points of the hosts' VMs (by their marker's source)
    go with the snapshots; a VM without the clone marker is never touched. Listed under ``clones_removed``."""
    if not hasattr(backend, "list_clones") or not targets:
        return
    from ansible_collections.prechange.snapshots.plugins.module_utils._clone import prune_clones  # pylint: disable=import-outside-toplevel
    try:
        removed = prune_clones(backend, [vm for vm, _hosts in targets], check_mode, now=now)
    except SnapshotError as error:
        for _vm, hosts in targets:
            for host in hosts:
                results.get(host, {}).setdefault("warnings", []).append("expired clones not pruned: %s" % error.message)
        return
    for vm, hosts in targets:
        mine = [(record, error) for record, error in removed if str(record.owner.get("source_id")) == str(vm.id)]
        for host in hosts:
            entry = results.get(host)
            if entry is None or entry.get("failed"):
                continue
            entry["clones_removed"] = [record.to_result() for record, error in mine if error is None]
            entry["changed"] = entry.get("changed") or bool(entry["clones_removed"])
            for _record, error in mine:
                if error is not None:
                    entry.setdefault("warnings", []).append(error.message)


def _prune_vm(backend, vm, request, check_mode, now, plan=False):
    snapshots = backend.list_snapshots(vm)
    chosen, held = select_prunable(snapshots, request.get("select") or "expired",
                                   request.get("run_id") or None, request.get("name_pattern") or None, now)
    # The retention policy keeps restore points past their expiry; a veto keeps any candidate.
    kept = retained(snapshots, retention_of(request))
    chosen, keeping = [s for s in chosen if str(s.id) not in kept], [s for s in chosen if str(s.id) in kept]
    vetoed, warnings = [], []
    if plan:
        return {"changed": False, "failed": False, "vm": vm.to_result(),
                "candidates": [candidate(vm.name, s, backend.provider) for s in chosen]}
    for snap in list(chosen):
        why = veto_reason(candidate(vm.name, snap, backend.provider), request)
        if why:
            chosen.remove(snap)
            vetoed.append({"name": snap.name, "id": snap.id, "run": snap.owner.get("run"),
                           "ticket": snap.owner.get("ticket"), "reason": why})
            warnings.append("Snapshot '%s' of VM '%s' was not pruned: %s; the prune playbook asks again next time"
                            % (snap.name, vm.name, why))
    deleted = []
    if chosen:
        wait_until_free(backend, vm, float(request.get("lock_timeout") or 0))
    for snap in chosen:
        backend.check_delete(vm, snap, snapshots, False)
        if not check_mode:
            try:
                when_free(lambda s=snap: backend.delete(vm, s, False, request.get("timeout")),
                          float(request.get("lock_timeout") or 0))
            except SnapshotError as error:
                raise error.bind(action="delete", vm=vm.name, snapshot=snap.name, provider=backend.provider)
        deleted.append(snap.to_result(now))
    return {"changed": bool(deleted), "failed": False, "vm": vm.to_result(), "deleted": deleted,
            "held": [{"name": s.name, "run": s.owner.get("run"), "lease": s.owner.get("lease")} for s in held],
            "vetoed": vetoed, "warnings": warnings,
            "retained": [{"name": s.name, "id": s.id, "run": s.owner.get("run"), "expires": s.owner.get("expires"),
                          "rules": kept[str(s.id)]} for s in keeping]}
