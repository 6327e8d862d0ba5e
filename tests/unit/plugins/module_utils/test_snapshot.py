# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the engine's decision function against an in-memory FakeBackend.

The FakeBackend assumes only what every real provider does: snapshots form a tree with one
current snapshot, create makes the new snapshot current under the old current one, delete
re-parents children unless asked to remove them, revert makes the target current.
"""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.prechange.snapshots.plugins.module_utils import _snapshot
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import (
    AmbiguousSnapshot,
    GuestBusy,
    InvalidRequest,
    PrecheckFailed,
    SnapshotNotFound,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import make_marker, split_description, utcnow
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import (
    Snapshot,
    SnapshotBackend,
    SnapshotParams,
    VmRecord,
    ensure,
    ensure_many,
    link_tree,
    retry_while_busy,
    wait_until_free,
)

MUTATORS = ("create", "delete", "revert", "update")


class FakeBackend(SnapshotBackend):
    provider = "fake"
    supports_update = True
    supports_rename = True

    def __init__(self, snapshots=(), power_state="running", refuse=None, busy=()):
        super().__init__({}, warn=self.warnings_append)
        # What busy() answers in turn (the last answer repeats); empty: never busy.
        self.busy_script = list(busy)
        self.warnings = []
        self.calls = []
        self.power_state = power_state
        self.refuse = refuse  # name of a check_* method that raises PrecheckFailed
        self.snaps = [Snapshot(**s) for s in snapshots]
        self._next = 100

    def warnings_append(self, text):
        self.warnings.append(text)

    def find_vm(self, ref):
        if ref == "missing":
            from ansible_collections.prechange.snapshots.plugins.module_utils._errors import VmNotFound
            raise VmNotFound("no such VM", vm=ref, provider=self.provider)
        return VmRecord(name=ref, id="id-" + ref, power_state=self.power_state)

    def busy(self, vm):
        self.calls.append("busy")
        if not self.busy_script:
            return None
        return self.busy_script.pop(0) if len(self.busy_script) > 1 else self.busy_script[0]

    def list_snapshots(self, vm):
        self.calls.append("list_snapshots")
        copies = [Snapshot(name=s.name, id=s.id, description=s.description, parent_id=s.parent_id,
                           current=s.current, memory=s.memory, owner=s.owner, created=s.created)
                  for s in self.snaps]
        return link_tree(copies)

    def _check(self, which):
        self.calls.append(which)
        if self.refuse == which:
            raise PrecheckFailed("refused by %s" % which)

    def check_create(self, vm, request, snapshots):
        self._check("check_create")

    def check_delete(self, vm, snapshot, snapshots, remove_children):
        self._check("check_delete")

    def check_revert(self, vm, snapshot, snapshots, power_state):
        self._check("check_revert")

    def create(self, vm, request):
        self.calls.append("create")
        self._next += 1
        parent = next((s for s in self.snaps if s.current), None)
        for s in self.snaps:
            s.current = False
        new = Snapshot(name=request.name, id=str(self._next), description=request.description,
                       parent_id=parent.id if parent else None, current=True, memory=request.memory,
                       owner=request.marker, created=utcnow())
        self.snaps.append(new)
        return new

    def delete(self, vm, snapshot, remove_children, timeout):
        self.calls.append("delete")
        target = next(s for s in self.snaps if s.id == snapshot.id)
        doomed = {target.id}
        if remove_children:
            changed = True
            while changed:
                changed = False
                for s in self.snaps:
                    if s.parent_id in doomed and s.id not in doomed:
                        doomed.add(s.id)
                        changed = True
        else:
            for s in self.snaps:
                if s.parent_id == target.id:
                    s.parent_id = target.parent_id
        self.snaps = [s for s in self.snaps if s.id not in doomed]

    def revert(self, vm, snapshot, power_state, timeout):
        self.calls.append("revert")
        for s in self.snaps:
            s.current = s.id == snapshot.id

    def update(self, vm, snapshot, new_name=None, description=None, timeout=None):
        self.calls.append("update")
        for s in self.snaps:
            if s.id == snapshot.id:
                s.name = new_name or s.name
                if description is not None:
                    s.description, s.owner = split_description(description)


VM = VmRecord(name="web01", id="id-web01", power_state="running")
EXISTING = [
    {"name": "base", "id": "1", "current": False},
    {"name": "snap", "id": "2", "parent_id": "1", "current": True, "memory": True},
    {"name": "child", "id": "3", "parent_id": "2"},
]
ABSENT = [{"name": "base", "id": "1", "current": True}]


def _params(state, **kw):
    kw.setdefault("name", "snap")
    if state == "present":
        kw.setdefault("marker", make_marker(run="r1"))
    return SnapshotParams(state=state, **kw)


def _run(state, exists, check_mode, **kw):
    backend = FakeBackend(EXISTING if exists else ABSENT)
    outcome = ensure(backend, backend.find_vm("web01"), _params(state, **kw), check_mode)
    return backend, outcome


# state x exists; revert of a missing snapshot raises and is tested separately.
CASES = [(s, e) for s, e in itertools.product(("present", "absent", "reverted"), (True, False))
         if not (s == "reverted" and not e)]


@pytest.mark.parametrize("state,exists", CASES)
def test_check_mode_never_mutates_and_predicts_changed(state, exists):
    check_backend, predicted = _run(state, exists, check_mode=True)
    real_backend, actual = _run(state, exists, check_mode=False)
    assert not set(check_backend.calls) & set(MUTATORS), check_backend.calls
    assert predicted.changed == actual.changed
    assert predicted.action == actual.action
    assert predicted.after == actual.after
    assert [s.name for s in check_backend.snaps] == [s["name"] for s in (EXISTING if exists else ABSENT)]


# Every action the engine has, by the kwargs that ask for it: (label, snapshots, state, kwargs).
TREE = [{"name": "base", "id": "1", "description": "a"},
        {"name": "snap", "id": "2", "parent_id": "1", "current": True, "description": "b",
         "owner": make_marker(run="r1", expires="2000-01-01T00:00:00Z")}]
ACTIONS = [
    ("create", ABSENT, "present", {}),
    ("exists", TREE, "present", {"description": "b"}),
    ("re-describe", TREE, "present", {"description": "new text"}),
    ("rename", TREE, "present", {"new_name": "renamed"}),
    ("rename, done already", TREE, "present", {"name": "gone", "new_name": "snap"}),
    ("delete", TREE, "absent", {}),
    ("absent", ABSENT, "absent", {}),
    ("delete with children", TREE, "absent", {"name": "base", "remove_children": True}),
    ("revert", TREE, "reverted", {"name": "base"}),
    ("delete_all owned", TREE, "absent", {"name": None, "delete_all": "owned"}),
    ("delete_all expired", TREE, "absent", {"name": None, "delete_all": "expired"}),
    ("delete_all all", TREE, "absent", {"name": None, "delete_all": "all"}),
    ("delete_all, nothing", ABSENT, "absent", {"name": None, "delete_all": "owned"}),
]


def _outcome_or_error(backend, state, kwargs, check_mode):
    try:
        outcome = ensure(backend, backend.find_vm("web01"), _params(state, **kwargs), check_mode)
    except Exception as error:  # pylint: disable=broad-except
        return ("failed", type(error).__name__, str(error))
    return (outcome.changed, outcome.action, outcome.after)


@pytest.mark.parametrize("supports", [True, False], ids=["supported", "unsupported"])
@pytest.mark.parametrize("label,snaps,state,kwargs", ACTIONS, ids=[a[0] for a in ACTIONS])
def test_check_mode_predicts_every_action_and_mutates_nothing(label, snaps, state, kwargs, supports):
    """Where the provider cannot re-describe or rename, check mode fails exactly as the real run does."""
    check, real = FakeBackend(snaps), FakeBackend(snaps)
    for backend in (check, real):
        backend.supports_update = backend.supports_rename = supports
    predicted = _outcome_or_error(check, state, kwargs, check_mode=True)
    actual = _outcome_or_error(real, state, kwargs, check_mode=False)
    assert predicted == actual
    assert not set(check.calls) & set(MUTATORS), check.calls
    assert [(s.name, s.description, s.current) for s in check.snaps] == [
        (s["name"], s.get("description", ""), s.get("current", False)) for s in snaps]
    if not supports and label in ("re-describe", "rename"):
        assert predicted[:2] == ("failed", "InvalidRequest")


@pytest.mark.parametrize("state,exists,changed,action", [
    ("present", True, False, "exists"),
    ("present", False, True, "created"),
    ("absent", True, True, "deleted"),
    ("absent", False, False, "absent"),
    ("reverted", True, True, "reverted"),
])
def test_changed_and_action(state, exists, changed, action):
    _backend, outcome = _run(state, exists, check_mode=False)
    assert (outcome.changed, outcome.action) == (changed, action)


@pytest.mark.parametrize("check_mode", [True, False])
def test_revert_missing_snapshot_fails_loudly(check_mode):
    backend = FakeBackend(ABSENT)
    with pytest.raises(SnapshotNotFound) as info:
        ensure(backend, VM, _params("reverted", name="nope"), check_mode)
    assert str(info.value) == (
        "Failed to revert snapshot 'nope' of VM 'web01' on fake: no snapshot with this name exists "
        "(existing: base). Check the snapshot name; nothing was changed.")
    assert not set(backend.calls) & set(MUTATORS)


@pytest.mark.parametrize("state", ["present", "absent", "reverted"])
def test_duplicate_names_are_never_guessed(state):
    backend = FakeBackend([{"name": "dup", "id": "1"}, {"name": "x", "id": "2", "parent_id": "1"},
                           {"name": "dup", "id": "3", "parent_id": "1", "current": True}])
    with pytest.raises(AmbiguousSnapshot) as info:
        ensure(backend, VM, _params(state, name="dup"), check_mode=False)
    assert "2 snapshots share this name (ids: 1, 3)" in str(info.value)
    assert len(info.value.details["candidates"]) == 2
    assert not set(backend.calls) & set(MUTATORS)


def test_sibling_branch_is_found():
    backend = FakeBackend([{"name": "root", "id": "1"}, {"name": "a", "id": "2", "parent_id": "1", "current": True},
                           {"name": "b", "id": "3", "parent_id": "1"}])
    outcome = ensure(backend, VM, _params("reverted", name="b"), check_mode=False)
    assert outcome.snapshot.name == "b" and outcome.changed
    assert [s.name for s in backend.snaps if s.current] == ["b"]


@pytest.mark.parametrize("check_mode", [True, False])
def test_precheck_failure_changes_nothing(check_mode):
    backend = FakeBackend(ABSENT, refuse="check_create")
    with pytest.raises(PrecheckFailed) as info:
        ensure(backend, VM, _params("present", name="new"), check_mode)
    assert info.value.action == "create" and info.value.snapshot == "new" and info.value.vm == "web01"
    assert "create" not in backend.calls


def test_memory_on_stopped_vm_is_refused_before_anything():
    backend = FakeBackend(ABSENT, power_state="stopped")
    vm = backend.find_vm("db01")
    with pytest.raises(PrecheckFailed) as info:
        ensure(backend, vm, _params("present", name="new", memory=True), check_mode=False)
    assert "memory state was requested but the VM is stopped" in str(info.value)
    assert "check_create" not in backend.calls and "create" not in backend.calls


def test_memory_default_follows_power_state():
    running = FakeBackend(ABSENT)
    stopped = FakeBackend(ABSENT, power_state="stopped")
    assert ensure(running, running.find_vm("a"), _params("present", name="n"), False).snapshot.memory is True
    assert ensure(stopped, stopped.find_vm("a"), _params("present", name="n"), False).snapshot.memory is False


def test_delete_keeps_or_removes_children():
    _b, kept = _run("absent", True, check_mode=False)
    assert kept.after == ["base", "child"]
    _b, removed = _run("absent", True, check_mode=False, remove_children=True)
    assert removed.after == ["base"]


def test_diff_lists_names_before_and_after():
    _b, outcome = _run("present", False, check_mode=True)
    result = outcome.to_result(diff=True)
    assert result["diff"] == {"before": {"snapshots": ["base"]}, "after": {"snapshots": ["base", "snap"]}}


def test_redescribe_keeps_marker_and_is_idempotent():
    owner = make_marker(run="r0")
    backend = FakeBackend([{"name": "snap", "id": "1", "description": "old", "owner": owner, "current": True}])
    outcome = ensure(backend, VM, _params("present", description="new"), check_mode=False)
    assert outcome.changed and outcome.action == "updated" and "update" in backend.calls
    assert backend.snaps[0].description == "new" and backend.snaps[0].owner == owner
    again = ensure(backend, VM, _params("present", description="new"), check_mode=False)
    assert (again.changed, again.action) == (False, "exists")


def test_rename_is_idempotent():
    backend = FakeBackend([{"name": "old", "id": "1", "current": True}])
    first = ensure(backend, VM, _params("present", name="old", new_name="new"), check_mode=False)
    second = ensure(backend, VM, _params("present", name="old", new_name="new"), check_mode=False)
    assert (first.changed, first.after) == (True, ["new"])
    assert (second.changed, second.action) == (False, "exists")


def test_rename_without_either_snapshot_fails():
    backend = FakeBackend(ABSENT)
    with pytest.raises(SnapshotNotFound):
        ensure(backend, VM, _params("present", name="old", new_name="new"), check_mode=False)


def test_rename_refused_where_unsupported():
    backend = FakeBackend([{"name": "old", "id": "1"}])
    backend.supports_rename = False
    with pytest.raises(InvalidRequest):
        ensure(backend, VM, _params("present", name="old", new_name="new"), check_mode=False)


def _owned(name, sid, parent=None, expires=None):
    return {"name": name, "id": sid, "parent_id": parent,
            "owner": make_marker(run="r", expires=expires)}


@pytest.mark.parametrize("selector,expected_left", [
    ("owned", ["mine-not-theirs"]),
    ("expired", ["mine-not-theirs", "fresh"]),
    ("all", []),
])
def test_delete_all_touches_only_what_was_asked(selector, expected_left):
    snaps = [
        {"name": "mine-not-theirs", "id": "1", "description": "hand made"},
        _owned("old", "2", "1", expires="2000-01-01T00:00:00Z"),
        _owned("fresh", "3", "2", expires="2999-01-01T00:00:00Z"),
    ]
    check = FakeBackend(snaps)
    predicted = ensure(check, VM, SnapshotParams(state="absent", delete_all=selector), check_mode=True)
    backend = FakeBackend(snaps)
    outcome = ensure(backend, VM, SnapshotParams(state="absent", delete_all=selector), check_mode=False)
    assert [s.name for s in backend.snaps] == expected_left
    assert predicted.after == outcome.after == expected_left
    assert "delete" not in check.calls


def test_batch_one_failure_does_not_stop_others():
    backend = FakeBackend(ABSENT)
    results = ensure_many(backend, ["a", "missing", "b"], _params("present", name="n"), False, concurrency=2)
    assert [r.ref for r in results] == ["a", "missing", "b"]
    assert [r.error is None for r in results] == [True, False, True]
    row = results[1].to_result()
    assert row["failed"] and row["vm"] == "missing" and row["error"] == "VmNotFound"
    assert row["msg"].startswith("Failed to create snapshot 'n' of VM 'missing' on fake:")


# --- a VM held by another job ------------------------------------------------------------------


class FakeClock(object):
    """Monotonic time that moves only when the code under test sleeps."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(_snapshot, "time", fake)
    return fake


BUSY_STATES = [("present", False), ("absent", True), ("reverted", True)]


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("state,exists", BUSY_STATES)
def test_busy_vm_is_refused_at_once_before_any_precheck_or_change(clock, state, exists, check_mode):
    backend = FakeBackend(EXISTING if exists else ABSENT, busy=["locked (backup)"])
    with pytest.raises(GuestBusy) as info:
        ensure(backend, VM, _params(state, timeout=600), check_mode)
    action = {"present": "create", "absent": "delete", "reverted": "revert"}[state]
    assert str(info.value) == (
        "Failed to %s snapshot 'snap' of VM 'web01' on fake: the VM is busy with another job: locked (backup). "
        "Wait for it, or set lock_timeout to wait up to N seconds; nothing was changed." % action)
    assert isinstance(info.value, PrecheckFailed)
    assert info.value.details == {"busy": "locked (backup)"}
    assert backend.calls.count("busy") == 1 and clock.sleeps == []
    assert not [c for c in backend.calls if c.startswith("check_") or c in MUTATORS], backend.calls


@pytest.mark.parametrize("check_mode", [False, True])
def test_busy_then_free_within_lock_timeout_proceeds(clock, check_mode):
    backend = FakeBackend(ABSENT, busy=["task 'Backup' in progress"] * 3 + [None])
    outcome = ensure(backend, VM, _params("present", name="new", lock_timeout=30), check_mode)
    assert outcome.changed and outcome.action == "created"
    assert backend.calls.count("busy") == 4 and len(clock.sleeps) == 3
    assert 0 < clock.now < 30
    assert backend.calls.index("check_create") > max(i for i, c in enumerate(backend.calls) if c == "busy")
    assert ("create" in backend.calls) is (not check_mode)


def test_busy_past_lock_timeout_is_refused_naming_the_wait(clock):
    backend = FakeBackend(EXISTING, busy=["libvirt job 'backup' running"])
    with pytest.raises(GuestBusy) as info:
        ensure(backend, VM, _params("reverted", lock_timeout=5), check_mode=False)
    assert info.value.message == (
        "Failed to revert snapshot 'snap' of VM 'web01' on fake: the VM is still busy with another job after "
        "waiting 5s: libvirt job 'backup' running. Wait for it, or raise lock_timeout (now 5) to wait longer; "
        "nothing was changed.")
    assert clock.now == pytest.approx(5)
    assert not [c for c in backend.calls if c.startswith("check_") or c in MUTATORS]


def test_nothing_to_do_does_not_ask_whether_the_vm_is_busy(clock):
    for state, exists in (("present", True), ("absent", False)):
        backend = FakeBackend(EXISTING if exists else ABSENT, busy=["locked (backup)"])
        outcome = ensure(backend, VM, _params(state), check_mode=False)
        assert not outcome.changed and "busy" not in backend.calls


def test_provider_hint_replaces_the_default(clock):
    backend = FakeBackend(EXISTING, busy=["locked (snapshot-delete)"])
    backend.busy_hint = lambda vm, what: "Delete that snapshot again with force: true"
    with pytest.raises(GuestBusy) as info:
        ensure(backend, VM, _params("absent"), check_mode=False)
    assert info.value.message.endswith("locked (snapshot-delete). Delete that snapshot again with force: true.")


def test_wait_until_free_polls_with_backoff_up_to_the_bound():
    fake = FakeClock()
    backend = FakeBackend(busy=["locked (migrate)"])
    with pytest.raises(GuestBusy) as info:
        wait_until_free(backend, VM, 10, sleep=fake.sleep, clock=fake.monotonic)
    assert fake.now == pytest.approx(10)
    assert max(fake.sleeps) > 4 * fake.sleeps[0] and len(fake.sleeps) < 20  # backing off, not hammering
    assert info.value.details["busy"] == "locked (migrate)"
    free = FakeBackend()
    assert wait_until_free(free, VM, 0, sleep=fake.sleep, clock=fake.monotonic) is None
    assert free.calls == ["busy"]


def test_retry_while_busy_retries_what_the_platform_refused_then_reports_it():
    fake = FakeClock()
    attempts = []

    def attempt():
        attempts.append(fake.now)
        if len(attempts) < 3:
            raise RuntimeError("Another task is already in progress.")
        return "done"

    def busy_of(error):
        return "task 'Create virtual machine snapshot' in progress" if "in progress" in str(error) else None

    assert retry_while_busy(attempt, busy_of, 10, sleep=fake.sleep, clock=fake.monotonic) == "done"
    assert len(attempts) == 3
    attempts[:] = []
    with pytest.raises(GuestBusy) as info:
        retry_while_busy(attempt, busy_of, 0, sleep=fake.sleep, clock=fake.monotonic)
    assert len(attempts) == 1 and "Create virtual machine snapshot" in info.value.reason
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ValueError):
        retry_while_busy(lambda: int("x"), busy_of, 10, sleep=fake.sleep, clock=fake.monotonic)


def test_batch_waits_for_or_refuses_each_vm_on_its_own(clock):
    class PerVm(FakeBackend):
        def busy(self, vm):
            return "locked (backup)" if vm.name == "b" else None

    backend = PerVm(ABSENT)
    # (The fake shares one snapshot tree between its VMs: the busy VM goes first.)
    results = ensure_many(backend, ["b", "a"], _params("present", name="n"), False, concurrency=1)
    assert [r.error is None for r in results] == [False, True]
    assert results[1].outcome.action == "created"
    row = results[0].to_result()
    assert row["error"] == "GuestBusy" and row["busy"] == "locked (backup)"
    assert row["msg"].startswith("Failed to create snapshot 'n' of VM 'b' on fake: the VM is busy")


# --- a create that races another create of the same name -------------------------------------------


class DuplicatingBackend(FakeBackend):
    """A platform that accepts two snapshots of one name (vSphere); ``rival`` is made at the same moment."""

    unique_names = False

    def __init__(self, rival_first, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rival_first = rival_first

    def create(self, vm, request):
        if self.rival_first:
            rival = super().create(vm, request)
            rival.owner = {"run": "other"}
        made = super().create(vm, request)
        if not self.rival_first:
            super().create(vm, request).owner = {"run": "other"}
        return made


@pytest.mark.parametrize("rival_first", [True, False])
def test_a_create_that_raced_another_of_the_same_name_leaves_exactly_one(rival_first):
    backend = DuplicatingBackend(rival_first, ABSENT)
    outcome = ensure(backend, backend.find_vm("web01"), _params("present"), False)
    left = [s for s in backend.snaps if s.name == "snap"]
    if rival_first:
        # The other task came first: ours is deleted again, the other one is reported, nothing changed.
        assert [s.owner for s in left] == [{"run": "other"}]
        assert (outcome.changed, outcome.action, outcome.snapshot.id) == (False, "exists", left[0].id)
        assert "deleted again" in backend.warnings[0]
    else:
        # Ours came first: kept; the rival (which would delete its own) is never touched by us.
        assert len(left) == 2 and "delete" not in backend.calls
        assert (outcome.changed, outcome.action) == (True, "created")
        assert outcome.snapshot.id == min(left, key=lambda s: int(s.id)).id


def test_platforms_with_unique_names_are_not_listed_again_after_a_create():
    backend = FakeBackend(ABSENT)
    ensure(backend, backend.find_vm("web01"), _params("present"), False)
    assert backend.calls.count("list_snapshots") == 1


def test_when_free_retries_a_call_the_platform_refused_as_busy_within_the_callers_lock_timeout(clock):
    from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import when_free

    answers = [GuestBusy("locked", details={"busy": "locked (backup)"})] * 3 + ["done"]

    def call():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert when_free(call, 30) == "done"
    assert 0 < clock.now < 30


def test_when_free_reports_what_holds_the_vm_after_waiting(clock):
    from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import when_free

    def call():
        raise GuestBusy("the VM is busy with another job: locked (backup)", vm="web01", provider="proxmox",
                        details={"busy": "locked (backup)"})

    with pytest.raises(GuestBusy) as caught:
        when_free(call, 5)
    assert caught.value.message.startswith("Failed to manage snapshots of VM 'web01' on proxmox: the VM is still "
                                           "busy with another job after waiting 5s: locked (backup)")
    with pytest.raises(GuestBusy) as at_once:
        when_free(call, 0)
    assert "after waiting" not in at_once.value.message
