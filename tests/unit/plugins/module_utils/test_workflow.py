# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the workflow's decisions: leases, adoption, policy, the verdict, identity, prune.

They run on the engine's in-memory FakeBackend (test_snapshot.py), which keeps markers in the
description as every provider does; the providers themselves are exercised on their backends by
the integration tests and molecule scenarios.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import (
    AmbiguousSnapshot,
    InvalidRequest,
    PrecheckFailed,
    SnapshotNotFound,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import (
    format_marker,
    isoformat,
    lease_live,
    make_marker,
    split_description,
    utcnow,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import VmRecord
from ansible_collections.prechange.snapshots.plugins.module_utils import _workflow as wf

from test_snapshot import MUTATORS, FakeBackend  # pylint: disable=import-error

NOW = utcnow()
VM = VmRecord(name="web01", id="id-web01", power_state="running")


def _marker(run, phase="pending", lease_minutes=60, holder="h-other", ticket=None, power="running"):
    return make_marker(run=run, created=NOW - timedelta(minutes=5), phase=phase, ticket=ticket, holder=holder,
                       lease=NOW + timedelta(minutes=lease_minutes) if phase == "pending" else None, power=power)


def _snap(name, owner=None, snap_id=None, memory=True, current=False):
    return {"name": name, "id": snap_id or name, "owner": owner, "memory": memory, "current": current,
            "created": NOW - timedelta(minutes=5)}


def _request(**kw):
    base = dict(name="prechange-r2", run_id="r2", holder="h-me", lease=timedelta(hours=2), ticket="CHG2")
    base.update(kw)
    return wf.BeginRequest(**base)


def _mutations(backend):
    return [c for c in backend.calls if c in MUTATORS]


# --- marker --------------------------------------------------------------------------------------------


def test_marker_round_trips_phase_lease_holder_and_power():
    marker = _marker("r1", ticket="CHG1")
    text, parsed = split_description("Before it\n" + format_marker(marker))
    assert text == "Before it"
    assert parsed["phase"] == "pending" and parsed["holder"] == "h-other" and parsed["power"] == "running"
    assert lease_live(parsed, NOW) and not lease_live(parsed, NOW + timedelta(hours=2))


def test_marker_with_an_unknown_phase_is_not_ours():
    line = format_marker(_marker("r1")).replace("phase=pending", "phase=bogus")
    assert split_description(line)[1] is None


def test_a_verdict_phase_has_no_live_lease():
    assert not lease_live(dict(_marker("r1"), phase="verified"), NOW)


# --- taking the VM -------------------------------------------------------------------------------------


def test_a_live_lease_of_another_run_is_refused_naming_run_ticket_and_lease():
    held = _marker("r1", ticket="CHG1")
    backend = FakeBackend([_snap("prechange-r1", held)])
    with pytest.raises(wf.RunConflict) as caught:
        wf.begin(backend, VM, _request(), check_mode=False, now=NOW)
    message = caught.value.message
    assert "held by maintenance run r1 (ticket CHG1) until %s" % held["lease"] in message
    assert "nothing was changed" in message
    assert _mutations(backend) == []


def test_a_live_lease_of_the_same_run_id_in_another_process_is_refused_unless_taken_over():
    backend = FakeBackend([_snap("prechange-r2", _marker("r2", holder="h-dead"))])
    with pytest.raises(wf.RunConflict):
        wf.begin(backend, VM, _request(), check_mode=False, now=NOW)
    result = wf.begin(backend, VM, _request(takeover=True), check_mode=False, now=NOW)
    assert result["action"] == "adopted"
    assert backend.snaps[0].owner["holder"] == "h-me"
    assert _mutations(backend) == ["update"]


def test_an_interrupted_run_is_adopted_by_its_own_run_id_without_a_second_snapshot():
    backend = FakeBackend([_snap("prechange-r2", _marker("r2", lease_minutes=-1, power="stopped"))])
    result = wf.begin(backend, VM, _request(), check_mode=False, now=NOW)
    assert result["action"] == "adopted" and result["power_state"] == "stopped"
    assert len(backend.snaps) == 1 and "create" not in backend.calls
    assert lease_live(backend.snaps[0].owner, NOW)


def test_an_interrupted_run_of_another_change_is_refused_with_the_two_ways_out():
    backend = FakeBackend([_snap("prechange-r1", _marker("r1", lease_minutes=-1, ticket="CHG1"))])
    with pytest.raises(wf.RunConflict) as caught:
        wf.begin(backend, VM, _request(), check_mode=False, now=NOW)
    message = caught.value.message
    assert "revert_or_prune_run_id=r1" in message and "revert_action=release" in message
    assert _mutations(backend) == []


def test_the_same_ticket_adopts_only_when_asked():
    snaps = [_snap("prechange-r1", _marker("r1", lease_minutes=-1, ticket="CHG2"))]
    with pytest.raises(wf.RunConflict):
        wf.begin(FakeBackend(snaps), VM, _request(adopt="run"), check_mode=False, now=NOW)
    result = wf.begin(FakeBackend(snaps), VM, _request(adopt="ticket"), check_mode=False, now=NOW)
    assert result["action"] == "adopted" and result["snapshot"]["name"] == "prechange-r1"


@pytest.mark.parametrize("phase", ["verified", "reverted", "released"])
def test_a_snapshot_whose_run_reached_a_verdict_is_never_adopted(phase):
    backend = FakeBackend([_snap("prechange-r1", _marker("r1", phase=phase, ticket="CHG2"))])
    result = wf.begin(backend, VM, _request(adopt="ticket"), check_mode=False, now=NOW)
    assert result["action"] == "created" and result["snapshot"]["name"] == "prechange-r2"
    assert result["snapshot"]["owner"]["phase"] == "pending"


def test_the_same_run_after_its_verdict_refuses_to_make_the_name_again():
    backend = FakeBackend([_snap("prechange-r2", _marker("r2", phase="verified"))])
    with pytest.raises(wf.RunConflict) as caught:
        wf.begin(backend, VM, _request(), check_mode=False, now=NOW)
    assert "already reached its verdict" in caught.value.message


def test_a_foreign_snapshot_with_the_name_is_refused_as_not_ours():
    backend = FakeBackend([_snap("prechange-r2")])
    with pytest.raises(wf.RunConflict) as caught:
        wf.begin(backend, VM, _request(), check_mode=False, now=NOW)
    assert "not made by this collection" in caught.value.message


def test_create_writes_a_pending_marker_with_lease_holder_and_power():
    backend = FakeBackend([], power_state="paused")
    vm = VmRecord(name="web01", id="id-web01", power_state="paused")
    result = wf.begin(backend, vm, _request(), check_mode=False, now=NOW)
    owner = backend.snaps[0].owner
    assert result["action"] == "created" and result["changed"]
    assert owner["phase"] == "pending" and owner["holder"] == "h-me" and owner["power"] == "paused"
    assert owner["lease"] == isoformat(NOW + timedelta(hours=2)) and owner["ticket"] == "CHG2"


@pytest.mark.parametrize("check_only", [False, True])
def test_check_mode_and_check_only_change_nothing(check_only):
    backend = FakeBackend([])
    result = wf.begin(backend, VM, _request(check_only=check_only), check_mode=not check_only, now=NOW)
    assert _mutations(backend) == []
    assert result["predicted"] and result["action"] == ("checked" if check_only else "created")
    assert "check_create" in backend.calls  # the provider's own prechecks ran


def test_a_provider_precheck_refusal_is_the_providers_error():
    backend = FakeBackend([], refuse="check_create")
    with pytest.raises(PrecheckFailed) as caught:
        wf.begin(backend, VM, _request(), check_mode=False, now=NOW)
    assert "refused by check_create" in caught.value.message
    assert _mutations(backend) == []


def test_a_racing_run_that_sees_a_rival_backs_off_and_deletes_only_its_own():
    class Racing(FakeBackend):
        def create(self, vm, request):
            made = super().create(vm, request)
            # Another holder's snapshot appears while ours is being made.
            self.snaps.append(FakeBackend([_snap("prechange-r9", _marker("r9"), snap_id="900")]).snaps[0])
            return made

    backend = Racing([])
    with pytest.raises(wf.RunConflict) as caught:
        wf.begin(backend, VM, _request(), check_mode=False, now=NOW)
    assert "took the VM at the same moment" in caught.value.message
    assert [s.name for s in backend.snaps] == ["prechange-r9"]


def test_policy_limits_refuse_or_warn():
    snaps = [_snap("a"), _snap("b")]
    policy = wf.Policy(max_count=2, action="fail")
    with pytest.raises(PrecheckFailed) as caught:
        wf.begin(FakeBackend(snaps), VM, _request(policy=policy), check_mode=False, now=NOW)
    assert "at most 2" in caught.value.message
    result = wf.begin(FakeBackend(snaps), VM, _request(policy=wf.Policy(max_count=2, action="warn")),
                      check_mode=False, now=NOW)
    assert result["action"] == "created" and any("at most 2" in w for w in result["warnings"])


def test_policy_age_depth_and_free_space():
    old = dict(_snap("old"), created=NOW - timedelta(days=10))
    violations, notes = wf.policy_violations(FakeBackend([old]).list_snapshots(VM),
                                             wf.Policy(max_age=timedelta(days=7), max_depth=1, min_free_gb=5),
                                             free_bytes=None, now=NOW)
    assert any("oldest" in v for v in violations) and any("deep" in v for v in violations)
    # Unmeasured free space is no longer a note here: min_free_gb is part of the engine's capacity decision.
    assert notes == []
    violations, _notes = wf.policy_violations([], wf.Policy(min_free_gb=5), free_bytes=1024 ** 3, now=NOW)
    assert violations == ["only 1.0 GiB free, policy wants 5 GiB"]


# --- the verdict ---------------------------------------------------------------------------------------

RECORD = {"name": "prechange-r2", "id": "prechange-r2", "run_id": "r2"}


def test_a_verdict_taken_before_this_snapshot_is_no_verdict():
    assert wf.verdict_for(RECORD, {"passed": True, "snapshot_id": None, "run_id": None}) is None
    assert wf.verdict_for(RECORD, {"passed": True, "snapshot_id": "other", "run_id": "r2"}) is None
    assert wf.verdict_for(RECORD, {"passed": False, "snapshot_id": "prechange-r2", "run_id": "r2"}) is False
    assert wf.verdict_for(RECORD, None) is None


@pytest.mark.parametrize("action, failed, passed, on_success, expected", [
    ("auto", True, True, "delete", "revert"),
    ("auto", False, False, "delete", "revert"),
    ("auto", False, True, "delete", "delete"),
    ("auto", False, True, "keep", "keep"),
    ("auto", False, None, "delete", "keep"),
    ("release", True, False, "delete", "release"),
])
def test_decide(action, failed, passed, on_success, expected):
    assert wf.decide(action, failed, passed, on_success)[0] == expected


def test_guard_refuses_another_snapshot_with_the_recorded_name():
    backend = FakeBackend([_snap("prechange-r2", _marker("r1"), snap_id="7")])
    with pytest.raises(wf.IdentityMismatch):
        wf.settle(backend, VM, dict(RECORD, id="7"), "revert", "recorded", check_mode=False, now=NOW)
    with pytest.raises(wf.IdentityMismatch):
        wf.settle(FakeBackend([_snap("prechange-r2", _marker("r2"), snap_id="8")]), VM, dict(RECORD, id="7"),
                  "delete", "recorded", check_mode=False, now=NOW)
    with pytest.raises(SnapshotNotFound):
        wf.settle(FakeBackend([]), VM, RECORD, "delete", "recorded", check_mode=False, now=NOW)
    assert _mutations(backend) == []


def test_delete_records_the_verdict_before_deleting():
    backend = FakeBackend([_snap("prechange-r2", _marker("r2", holder="h-me"))])
    result = wf.settle(backend, VM, RECORD, "delete", "recorded", check_mode=False, now=NOW)
    assert result["action"] == "deleted" and backend.snaps == []
    assert _mutations(backend) == ["update", "delete"]


def test_keep_and_release_record_the_phase_and_end_the_lease():
    for decision, passed, phase in (("keep", True, "verified"), ("keep", None, "kept"), ("release", None, "released")):
        backend = FakeBackend([_snap("prechange-r2", _marker("r2"))])
        wf.settle(backend, VM, RECORD, decision, "recorded", check_mode=False, now=NOW, passed=passed)
        owner = backend.snaps[0].owner
        assert owner["phase"] == phase and owner["lease"] is None and not lease_live(owner, NOW)


def test_a_disk_only_revert_of_a_running_vm_comes_back_running_with_a_warning():
    backend = FakeBackend([_snap("prechange-r2", _marker("r2", power="running"), memory=False)])
    result = wf.settle(backend, VM, RECORD, "revert", "recorded", check_mode=False, now=NOW)
    assert result["power_state"] == "running" and result["action"] == "reverted"
    assert backend.snaps[0].owner["phase"] == "reverted"
    assert any("no memory state" in w for w in backend.warnings)


@pytest.mark.parametrize("requested, recorded, expected", [
    ("recorded", "running", "running"), ("recorded", "stopped", "stopped"), ("recorded", None, "snapshot"),
    ("paused", "running", "paused"),
])
def test_revert_power(requested, recorded, expected):
    assert wf.revert_power(requested, recorded, memory=False) == expected


def test_check_mode_settle_changes_nothing():
    backend = FakeBackend([_snap("prechange-r2", _marker("r2"))])
    result = wf.settle(backend, VM, RECORD, "revert", "recorded", check_mode=True, now=NOW)
    assert result["changed"] and _mutations(backend) == []


# --- revert and prune playbooks --------------------------------------------------------------------------


def test_find_run_snapshot_needs_exactly_one_of_ours():
    snaps = FakeBackend([_snap("a", _marker("r1")), _snap("b", _marker("r1")), _snap("c")]).list_snapshots(VM)
    with pytest.raises(AmbiguousSnapshot):
        wf.find_run_snapshot(snaps, run_id="r1")
    assert wf.find_run_snapshot(snaps, run_id="r1", name="b").name == "b"
    with pytest.raises(SnapshotNotFound):
        wf.find_run_snapshot(snaps, name="c")  # not ours
    with pytest.raises(InvalidRequest):
        wf.find_run_snapshot(snaps)


def test_prune_selects_expired_ones_of_ours_and_never_a_live_lease():
    expired = dict(_marker("r1", phase="verified"), expires=isoformat(NOW - timedelta(hours=1)))
    live = dict(_marker("r2"), expires=isoformat(NOW - timedelta(hours=1)))
    fresh = dict(_marker("r3", phase="verified"), expires=isoformat(NOW + timedelta(days=1)))
    snaps = FakeBackend([_snap("old", expired), _snap("held", live), _snap("new", fresh), _snap("foreign")]
                        ).list_snapshots(VM)
    chosen, held = wf.select_prunable(snaps, "expired", now=NOW)
    assert [s.name for s in chosen] == ["old"] and [s.name for s in held] == ["held"]
    chosen, held = wf.select_prunable(snaps, "owned", now=NOW)
    assert sorted(s.name for s in chosen) == ["new", "old"]


def test_an_expiry_in_the_past_is_refused():
    with pytest.raises(InvalidRequest) as caught:
        wf.check_expiry(NOW - timedelta(seconds=1), now=NOW)
    assert "already in the past" in caught.value.message


# --- one call per endpoint -------------------------------------------------------------------------------


def test_group_requests_by_provider_and_connection():
    requests = {
        "a": {"provider": "proxmox", "vm": "1", "connection": {"api_host": "pve1"}},
        "b": {"provider": "proxmox", "vm": "2", "connection": {"api_host": "pve1"}},
        "c": {"provider": "proxmox", "vm": "3", "connection": {"api_host": "pve2"}},
        "d": {"provider": "libvirt", "vm": "4", "connection": {}},
    }
    groups = wf.group_requests(requests)
    assert [[h for h, _r in items] for _p, _c, items in groups] == [["a", "b"], ["c"], ["d"]]


def test_run_group_keeps_going_after_one_vm_fails_with_its_own_message():
    backend = FakeBackend([])
    items = [("h1", {"vm": "web01", "name": "prechange-r2", "lease_seconds": 60, "policy": {}}),
             ("h2", {"vm": "missing", "name": "prechange-r2", "lease_seconds": 60, "policy": {}})]
    results = wf.run_group(backend, items, "snapshot", check_mode=False, run_id="r2", holder="h-me", now=NOW)
    assert results["h1"]["action"] == "created"
    assert results["h2"]["failed"] and results["h2"]["msg"].startswith(
        "Failed to create snapshot 'prechange-r2' of VM 'missing' on fake: no such VM")


def test_settle_through_run_group_uses_the_verdict_only_for_its_snapshot():
    backend = FakeBackend([_snap("prechange-r2", _marker("r2"))])
    request = {"vm": "web01", "record": RECORD, "action": "auto", "change_failed": False,
               "verdict": {"passed": True, "snapshot_id": None, "run_id": None}, "on_success": "delete"}
    result = wf.run_group(backend, [("h1", request)], "settle", check_mode=False, now=NOW)["h1"]
    assert result["action"] == "kept" and "no verdict" in result["reason"]
    assert len(backend.snaps) == 1


def test_check_mode_settles_a_predicted_snapshot_without_looking_for_it():
    backend = FakeBackend([])
    request = {"vm": "web01", "record": dict(RECORD, predicted=True, power_state="running"), "action": "auto",
               "change_failed": True, "on_success": "delete"}
    result = wf.run_group(backend, [("h1", request)], "settle", check_mode=True, now=NOW)["h1"]
    assert result["action"] == "reverted" and result["predicted"] and result["changed"]
    assert result["power_state"] == "running" and _mutations(backend) == []


def test_check_mode_never_decides_on_a_verdict_that_cannot_exist():
    record = {"id": "s1", "run_id": "r1", "name": "prechange-r1"}
    request = {"record": record, "action": "auto", "on_success": "keep", "change_failed": False,
               "verdict": {"passed": False, "snapshot_id": "s1", "run_id": "r1"}}
    # A real run acts on the verdict; a dry run has none yet (its checks did not run).
    assert wf.settle_decision(request)[0] == "revert"
    assert wf.settle_decision(dict(request, verdict=None), check_mode=True)[0] == "depends"
    assert "else it will keep" in wf.settle_decision(dict(request, verdict=None), check_mode=True)[1]
    # What the user forced is predicted as such.
    assert wf.settle_decision(dict(request, verdict=None, action="release"), check_mode=True)[0] == "release"


# --- two runs with one run id, and lost answers --------------------------------------------------------


def test_two_runs_with_one_run_id_end_with_one_snapshot_on_a_platform_that_allows_duplicates():
    class SameRunRace(FakeBackend):
        unique_names = False

        def create(self, vm, request):
            # The other ansible-playbook of the same run created the same name just before.
            rival = super().create(vm, request)
            rival.owner = dict(request.marker, holder="h-other-process")
            return super().create(vm, request)

    backend = SameRunRace([])
    with pytest.raises(wf.RunConflict) as caught:
        wf.begin(backend, VM, _request(), check_mode=False, now=NOW)
    assert "another ansible-playbook of the same run (h-other-process)" in caught.value.message
    assert [(s.name, s.owner["holder"]) for s in backend.snaps] == [("prechange-r2", "h-other-process")]


def test_a_create_whose_answer_was_lost_is_recorded_when_the_snapshot_is_there():
    from ansible_collections.prechange.snapshots.plugins.module_utils._errors import ConnectionFailed

    class LostAnswer(FakeBackend):
        def create(self, vm, request):
            super().create(vm, request)
            raise ConnectionFailed("lost the connection to pve (reset by peer)")

    backend = LostAnswer([])
    result = wf.begin(backend, VM, _request(), check_mode=False, now=NOW)
    assert result["action"] == "created" and result["snapshot"]["name"] == "prechange-r2"
    assert "answer to the create was lost" in result["warnings"][-1]


def test_a_create_the_platform_refused_because_another_run_took_the_name_names_that_run():
    from ansible_collections.prechange.snapshots.plugins.module_utils._errors import ProviderError

    class Taken(FakeBackend):
        def create(self, vm, request):
            self.snaps.append(FakeBackend([_snap("prechange-r2", _marker("r2", holder="h-other"))]).snaps[0])
            raise ProviderError("snapshot name 'prechange-r2' already used")

    backend = Taken([])
    with pytest.raises(wf.RunConflict) as caught:
        wf.begin(backend, VM, _request(), check_mode=False, now=NOW)
    assert "same run, started by another ansible-playbook" in caught.value.message
    assert caught.value.details["cause"].endswith("already used")


def test_a_create_the_platform_failed_is_not_taken_for_a_success_even_if_a_snapshot_is_left():
    from ansible_collections.prechange.snapshots.plugins.module_utils._errors import ProviderError

    class FailedHalfway(FakeBackend):
        def create(self, vm, request):
            super().create(vm, request)
            raise ProviderError("snapshot create failed: starting cleanup")

    with pytest.raises(ProviderError):
        wf.begin(FailedHalfway([]), VM, _request(), check_mode=False, now=NOW)
