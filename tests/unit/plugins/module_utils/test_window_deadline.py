# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the window's deadline (issue 12, point 3): the end, the learned estimates and the three gates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.prechange.snapshots.plugins.module_utils import _report as report
from ansible_collections.prechange.snapshots.plugins.module_utils import _window as window
from ansible_collections.prechange.snapshots.plugins.module_utils import _workflow as wf

from test_snapshot import FakeBackend  # pylint: disable=import-error

START = datetime(2026, 12, 5, 21, 0, 0, tzinfo=timezone.utc)
CET = timezone(timedelta(hours=1))


def test_the_end_is_an_iso_time_with_its_offset_or_a_local_time_after_the_start():
    assert window.deadline("2026-12-05T23:00:00+01:00", started=START) == START + timedelta(hours=1)
    assert window.deadline("2026-12-05T22:30:00Z", started=START) == START + timedelta(minutes=90)
    # 23:00 local (CET) is 22:00 UTC, after the start; 21:30 local (20:30 UTC) is before it: the next day.
    assert window.deadline("23:00", started=START, local_tz=CET) == START + timedelta(hours=1)
    assert window.deadline("21:30", started=START, local_tz=CET) == START + timedelta(hours=23, minutes=30)
    assert window.deadline(minutes=45, started=START) == START + timedelta(minutes=45)
    # Both: the earlier end counts.
    assert window.deadline("2026-12-05T23:00:00Z", 30, started=START) == START + timedelta(minutes=30)
    assert window.deadline("", 0, started=START) is None


@pytest.mark.parametrize("end, words", [
    ("2026-12-05T23:00:00", "has no UTC offset"),
    ("tonight", "neither an ISO 8601 time"),
    ("25:00", "not a time of day"),
])
def test_an_end_that_cannot_be_read_is_refused_with_why(end, words):
    with pytest.raises(ValueError, match=words):
        window.deadline(end, started=START)


def test_before_any_batch_the_first_estimates_count_then_the_longest_batch_and_revert():
    first = window.estimates([], 15, 5)
    assert (first.batch, first.revert, first.batch_needs) == (900, 300, 1200)
    assert "first estimate, maintenance_window_batch_minutes" in first.basis and not first.change_learned
    history = [{"started": 0, "change_started": 20, "settle_started": 80, "finished": 100, "reverted": False},
               {"started": 100, "change_started": 110, "settle_started": 200, "finished": 260, "reverted": True},
               {"started": 300, "deferred": True}]
    learned = window.estimates(history, 15, 5)
    assert learned.batch == 160 and learned.change == 90 and learned.revert == 60 and learned.change_learned
    assert "longest of 2 batches so far" in learned.basis and "longest revert so far" in learned.basis


def test_a_batch_starts_only_when_the_time_left_covers_the_batch_and_a_revert():
    est = window.Estimates(batch=600, change=400, revert=120, basis="b")
    end = START + timedelta(seconds=720)
    assert window.batch_gate(end, START, est).go  # exactly enough
    gate = window.batch_gate(end, START + timedelta(seconds=1), est)
    assert not gate.go and gate.needed == 720
    assert gate.message.startswith("deferred by the window's deadline: 11m59s left (ends 2026-12-05T21:12:00+00:00), "
                                   "a batch needs up to 12m00s (b); not started, nothing was changed")


def test_the_change_gate_counts_what_is_left_of_the_first_estimate_then_the_learned_change():
    first = window.estimates([], 10, 2)
    end = START + timedelta(minutes=12)
    # 4 minutes into the batch (the snapshots): what is left of the batch's estimate (6) and a revert (2) fit in 8.
    assert window.change_gate(end, START + timedelta(minutes=4), first, batch_started=START).go
    # 10.5 minutes in: 1.5 left; the batch's estimate is used up, but a revert (2) does not fit.
    late = window.change_gate(end, START + timedelta(minutes=10.5), first, batch_started=START)
    assert not late.go and "the change was not started and this run's snapshot is deleted again" in late.message
    learned = window.Estimates(batch=600, change=300, revert=60, basis="b", change_learned=True)
    assert not window.change_gate(START + timedelta(seconds=359), START, learned, batch_started=START).go
    assert window.change_gate(START + timedelta(seconds=360), START, learned, batch_started=START).go


def test_deleting_near_the_end_or_a_large_delta_is_deferred_to_the_prune_playbook():
    est = window.Estimates(batch=600, change=300, revert=120, basis="b")
    assert window.delete_gate(START + timedelta(seconds=120), START, est).go
    near = window.delete_gate(START + timedelta(seconds=119), START, est)
    assert not near.go and near.message == (
        "deleting the snapshot was deferred: 1m59s left in the window and a delete (it merges the delta) may take as "
        "long as a revert, 2m00s; it is kept until it expires: delete it after the window with the prune playbook")
    assert window.large_delta(60 * window.GIB, 50) == (
        "deleting the snapshot was deferred: its delta is 60.0 GiB (at least 50 GiB, maintenance_window_large_delta_gb) "
        "and merging it would load the storage in the window; it is kept until it expires: delete it after the "
        "window with the prune playbook")
    assert window.large_delta(1 * window.GIB, 50) is None
    assert window.large_delta(None, 50) is None and window.large_delta(60 * window.GIB, 0) is None


class _SizedBackend(FakeBackend):
    """The engine's FakeBackend with a snapshot size that grows by ``grow`` bytes after the first reading."""

    def __init__(self, grow, **kw):
        super().__init__(**kw)
        self.grow, self.readings = grow, 0

    def snapshot_sizes(self, vm, snapshots):
        self.readings += 1
        return {s.id: (0 if self.readings == 1 else self.grow, "files") for s in snapshots}


@pytest.mark.parametrize("grow_gb, over_gb, kept", [(60, 50, True), (10, 50, False), (60, None, False)])
def test_the_verdict_keeps_a_large_delta_it_measured_for_after_the_window(grow_gb, over_gb, kept):
    backend = _SizedBackend(int(grow_gb * window.GIB))
    vm = backend.find_vm("web01")
    made = wf.run_group(backend, [("h1", {"vm": "web01", "name": "prechange-r2", "lease_seconds": 600,
                                          "policy": {}})], "snapshot", check_mode=False, run_id="r2",
                        holder="h-me", now=START)["h1"]
    # The record as the action plugin keeps it from the snapshot call (plugins/action/workflow.py).
    assert made["capacity"]["snapshot_bytes"] == 0  # measured at snapshot time, by the snapshot's own size
    record = {"name": "prechange-r2", "id": made["snapshot"]["id"], "run_id": "r2", "capacity": made["capacity"]}
    request = {"vm": vm.name, "record": record, "action": "auto", "change_failed": False, "on_success": "delete",
               "verdict": {"passed": True, "snapshot_id": record["id"], "run_id": "r2"}}
    if over_gb:
        request["defer_delete_over_gb"] = over_gb
    result = wf.run_group(backend, [("h1", request)], "settle", check_mode=False, now=START)["h1"]
    names = [s.name for s in backend.snaps]
    if kept:
        assert result["action"] == "kept" and "prechange-r2" in names
        assert result["delete_deferred"].startswith("deleting the snapshot was deferred: its delta is 60.0 GiB")
        assert result["reason"] == result["delete_deferred"]
    else:
        assert result["action"] == "deleted" and "prechange-r2" not in names and "delete_deferred" not in result


def test_the_report_tells_deferred_hosts_apart_and_never_fails_them():
    waiting = report.not_reached_record("h4", "not_reached")
    rec = window.host_window(waiting, {"batch": {"deferred": True, "message": "deferred by the window's deadline"}})
    assert rec["outcome"] == "deferred" and rec["reason"] == "deferred by the window's deadline"
    kept = dict(report.not_reached_record("h1", "not_reached"), outcome="ok", action="kept")
    rec = window.host_window(kept, {"settle": {"defer_delete": True, "message": "deleting the snapshot was deferred"}})
    assert rec["outcome"] == "ok" and rec["window"] == {"delete_deferred": "deleting the snapshot was deferred"}
    built = report.build("maintenance", "r1", False, "now", "ctl", [waiting, kept], inventory=("inv.yml",),
                         window={"end": "2026-12-05T22:00:00+00:00", "left": "1m00s", "basis": "b"})
    assert built["summary"]["deferred"] == 1 and built["status"] == "deferred"
    assert not report.batch_stops([waiting], ["h4"], 0)
    steps = {s["what"]: s for s in built["next"]}
    run_later = steps["Deferred by the window's deadline (nothing was changed on them): run them in a later window"]
    assert run_later["command"] == "ansible-playbook prechange.snapshots.maintenance -i inv.yml --limit h4"
    prune = steps["Deleting these snapshots was deferred to keep the window: delete them after the window"]
    assert prune["command"] == ("ansible-playbook prechange.snapshots.prune -i inv.yml -e revert_or_prune_prune_run_id=r1"
                                " -e revert_or_prune_prune_select=owned --limit h1")
    text = report.markdown(built)
    assert "## Window" in text and "- Deferred by the deadline (not failed, nothing changed): h4." in text
    assert "deferred by the window 1" in text
