"""The clone engine (_clone.py) over an in-memory provider: the decision, check mode, refusals, prune."""

from datetime import timedelta

import pytest

from ansible_collections.prechange.snapshots.plugins.module_utils._clone import (
    CloneParams,
    ClonePlan,
    CloneRecord,
    clone_marker,
    ensure_clone,
    format_clone_text,
    parse_clone_text,
    prune_clones,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import InvalidRequest, PrecheckFailed, VmNotFound
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import isoformat, split_description, utcnow
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import Snapshot, VmRecord


class FakeClones(object):
    provider = "fake"

    def __init__(self, free=10 ** 12, need=10 ** 9):
        self.vms = {"web01": VmRecord("web01", "1", "running")}
        self.snaps = {"1": [Snapshot("before", id="s1", depth=1)]}
        self.clones = {}
        self.calls = []
        self.free, self.need = free, need

    def find_vm(self, ref):
        for vm in self.vms.values():
            if ref in (vm.name, vm.id):
                return vm
        raise VmNotFound("no such VM", vm=ref)

    def list_snapshots(self, vm):
        return list(self.snaps.get(vm.id, []))

    def busy(self, vm):
        return None

    def find_clone(self, name):
        return self.clones.get(name)

    def list_clones(self):
        return [c for c in self.clones.values() if c.ours]

    def plan_clone(self, vm, snapshot, request):
        self.calls.append("plan")
        return ClonePlan(linked=not request.full, why="because", need_bytes=None if not request.full else self.need,
                         free_bytes=self.free)

    def clone(self, vm, snapshot, request, plan):
        self.calls.append("clone")
        record = CloneRecord(request.name, "c-" + request.name, "stopped", owner=request.marker, linked=plan.linked)
        self.clones[request.name] = record
        return record

    def remove_clone(self, record, timeout):
        self.calls.append("remove " + record.name)
        del self.clones[record.name]


def params(**kwargs):
    base = dict(vm="web01", snapshot="before", name="web01-rehearsal", marker={"run": "r1"})
    base.update(kwargs)
    return CloneParams(**base)


def test_check_mode_predicts_and_changes_nothing():
    backend = FakeClones()
    outcome = ensure_clone(backend, params(), check_mode=True)
    assert outcome.changed and outcome.clone.id is None and outcome.clone.linked is True
    assert backend.calls == ["plan"] and not backend.clones
    real = ensure_clone(backend, params(), check_mode=False)
    assert real.to_result(diff=True)["diff"]["after"] == outcome.to_result(diff=True)["diff"]["after"]


def test_same_clone_again_is_no_change_and_foreign_name_refused():
    backend = FakeClones()
    ensure_clone(backend, params(), False)
    again = ensure_clone(backend, params(), False)
    assert again.changed is False and backend.calls.count("clone") == 1
    backend.clones["web01-rehearsal"].owner = None
    with pytest.raises(PrecheckFailed) as error:
        ensure_clone(backend, params(), False)
    assert error.value.message == (
        "Failed to clone snapshot 'before' of VM 'web01' on fake: the name 'web01-rehearsal' is already used by a VM "
        "this collection did not make (no clone marker). Choose another 'name', or remove that VM first; nothing "
        "was changed.")


def test_space_precheck_for_a_full_copy():
    backend = FakeClones(free=10, need=2 * 1024 ** 3)
    with pytest.raises(PrecheckFailed) as error:
        ensure_clone(backend, params(full=True), True)
    assert "a full copy needs about 2.0 GiB and the target storage has 10 B free" in error.value.message
    assert "clone" not in backend.calls


def test_restore_point_is_full_and_refuses_power_on():
    backend = FakeClones()
    made = ensure_clone(backend, params(restore_point=True), False)
    assert made.clone.linked is False and made.to_result()["clone"]["restore_point"] is True
    with pytest.raises(InvalidRequest):
        ensure_clone(backend, params(name="other", restore_point=True, network="lab"), False)


def test_absent_removes_only_our_clone():
    backend = FakeClones()
    backend.clones["foreign"] = CloneRecord("foreign", "9", "running", owner=None)
    with pytest.raises(PrecheckFailed) as error:
        ensure_clone(backend, CloneParams(state="absent", name="foreign"), False)
    assert "did not make" in error.value.message and "foreign" in backend.clones
    ensure_clone(backend, params(), False)
    check = ensure_clone(backend, CloneParams(state="absent", name="web01-rehearsal"), True)
    assert check.changed and "web01-rehearsal" in backend.clones
    gone = ensure_clone(backend, CloneParams(state="absent", name="web01-rehearsal"), False)
    assert gone.changed and "web01-rehearsal" not in backend.clones
    assert ensure_clone(backend, CloneParams(state="absent", name="web01-rehearsal"), False).changed is False


def test_prune_removes_expired_clones_of_the_sources_only():
    backend = FakeClones()
    past = isoformat(utcnow() - timedelta(hours=1))
    future = isoformat(utcnow() + timedelta(days=1))
    backend.clones["old"] = CloneRecord("old", "2", "stopped", owner=clone_marker("r", None, past, None, "restore_point",
                                                                                  "web01", "1", "before"))
    backend.clones["young"] = CloneRecord("young", "3", "stopped", owner=clone_marker("r", None, future, None, "clone",
                                                                                      "web01", "1", "before"))
    backend.clones["other-source"] = CloneRecord("other-source", "4", "stopped",
                                                 owner=clone_marker("r", None, past, None, "clone", "db01", "7", "x"))
    backend.clones["foreign"] = CloneRecord("foreign", "5", "stopped", owner=None)
    assert [r.name for r, _e in prune_clones(backend, [backend.vms["web01"]], check_mode=True)] == ["old"]
    assert "old" in backend.clones
    prune_clones(backend, [backend.vms["web01"]])
    assert sorted(backend.clones) == ["foreign", "other-source", "young"]


def test_clone_marker_round_trip_and_never_a_snapshot_marker():
    marker = clone_marker("r1", "ops@x", None, "CHG1", "clone", "web 01", "1", "before")
    text = format_clone_text("linked=yes", marker)
    user, parsed = parse_clone_text(text)
    assert user == "linked=yes" and parsed["source"] == "web 01" and parsed["kind"] == "clone"
    assert split_description(text)[1] is None  # a snapshot's parser does not take a clone's marker
    assert parse_clone_text("[prechange.snapshots v1 run=r created=2026-01-01T00:00:00Z]")[1] is None


def test_remove_messages_name_the_clone_vm_in_the_one_grammar():
    """A removal's message names the clone VM, and its source only where it is known (issue 13's leftover:
    "Failed to remove clone 'x' made from snapshots on <provider>" when no snapshot was named)."""
    from ansible_collections.prechange.snapshots.plugins.module_utils._errors import ProviderError  # pylint: disable=import-outside-toplevel
    backend = FakeClones()
    backend.clones["db01"] = CloneRecord("db01", "9", "running", owner=None)
    with pytest.raises(PrecheckFailed) as error:
        ensure_clone(backend, CloneParams(state="absent", name="db01"), False)
    assert error.value.message == (
        "Failed to remove clone VM 'db01' on fake: VM 'db01' is a VM this collection did not make (no clone "
        "marker). Only clones this collection made are removed; remove that VM by hand if it must go; nothing "
        "was changed.")

    def broken(record, timeout):
        # What a provider raises: its own action and the clone as the VM.
        raise ProviderError("the API said no", action="delete", vm=record.name)

    ensure_clone(backend, params(), False)
    backend.remove_clone = broken
    with pytest.raises(ProviderError) as error:
        ensure_clone(backend, CloneParams(state="absent", name="web01-rehearsal"), False)
    assert error.value.message == ("Failed to remove clone VM 'web01-rehearsal' made from snapshot 'before' of VM "
                                   "'web01' on fake: the API said no")
    assert error.value.vm == "web01" and error.value.snapshot == "before"


def test_prune_failures_name_the_clone_vm():
    from ansible_collections.prechange.snapshots.plugins.module_utils._errors import ProviderError  # pylint: disable=import-outside-toplevel
    backend = FakeClones()
    past = isoformat(utcnow() - timedelta(hours=1))
    backend.clones["old"] = CloneRecord("old", "2", "stopped", owner=clone_marker("r", None, past, None, "clone",
                                                                                  "web01", "1", "before"))

    def broken(record, timeout):
        raise ProviderError("locked", vm=record.name)

    backend.remove_clone = broken
    [(_record, error)] = prune_clones(backend, [backend.vms["web01"]])
    assert error.message == "Failed to remove clone VM 'old' made from snapshot 'before' of VM 'web01' on fake: locked"
