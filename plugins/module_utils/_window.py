# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The maintenance window's deadline: what may still start before the window closes.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

The maintenance playbook asks three questions, through the workflow action's ``window`` step:

* ``batch_gate``: may this serial batch start? Only when the time left covers the batch's expected
  duration plus the time a revert takes. Else its hosts are ``deferred``.
* ``change_gate``: may the batch's changes start (after its snapshots)? Only when the time left covers
  what remains of the batch (the change and its checks) plus a revert. Else the snapshots are deleted
  again (nothing was changed) and the hosts are ``deferred``.
* ``delete_gate``: may a passed host's snapshot be deleted now? Not when the time left is shorter than
  a revert (a delete consolidates the delta, as long as a revert can take): the snapshot is kept with its
  expiry and the prune playbook deletes it after the window. ``large_delta``: nor when the delta measured
  at the decision (module_utils/_workflow.py) is large; the engine asks it, as only it measures the delta.

Expected durations are learned from the run's own batches (kept in the ``prechange_window`` fact of
localhost, shared by every serial batch): the longest batch so far, the longest change and checks so far,
the longest revert so far. Before any batch ran, the user's first estimates are used (defaults below).
All decisions take ``now`` so that they are tested without a clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

# The expected duration of a serial batch before any batch of the run has finished.
FIRST_BATCH_MINUTES = 15.0
# The time a revert (and the restored host's checks) takes, before the run has reverted any host.
FIRST_REVERT_MINUTES = 5.0
# A delta at least this large is deleted after the window, when its size is known.
LARGE_DELTA_GB = 50.0
GIB = 1024 ** 3

_LOCAL_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


def text_duration(seconds):
    """12m05s, 1h02m, 45s: short enough for a console line."""
    seconds = int(round(max(0.0, float(seconds))))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%dh%02dm" % (hours, minutes)
    if minutes:
        return "%dm%02ds" % (minutes, secs)
    return "%ds" % secs


def parse_end(end, started, local_tz=None):
    """The window's end as an aware datetime, from ``maintenance_window_end``.

    An ISO 8601 time with its offset (``2026-12-05T23:00:00+01:00``, ``...Z``) is that moment. A local
    time (``23:00`` or ``23:00:30``) is the next such time on the controller's clock after the run's
    start (``started``), so a window that ends after midnight works. An ISO time without an offset is
    refused: which zone it meant cannot be known.
    """
    text = str(end).strip()
    local_tz = local_tz or datetime.now().astimezone().tzinfo
    match = _LOCAL_TIME.match(text)
    if match:
        hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError("'%s' is not a time of day" % text)
        start_local = started.astimezone(local_tz)
        moment = start_local.replace(hour=hour, minute=minute, second=second, microsecond=0)
        if moment <= start_local:
            moment += timedelta(days=1)
        return moment
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("'%s' is neither an ISO 8601 time with its offset (2026-12-05T23:00:00+01:00) nor a "
                         "local time of day (23:00)" % text)
    if moment.tzinfo is None:
        raise ValueError("'%s' has no UTC offset, so which time it means is not known: add one (+01:00, Z), or "
                         "give a local time of day (23:00)" % text)
    return moment


def deadline(end=None, minutes=None, started=None, local_tz=None):
    """The window's end (aware datetime), or None when neither ``end`` nor ``minutes`` is set.

    With both, the earlier one counts.
    """
    started = started or datetime.now(timezone.utc)
    found = []
    if end not in (None, ""):
        found.append(parse_end(end, started, local_tz))
    if minutes not in (None, "", 0, "0"):
        try:
            value = float(minutes)
        except (TypeError, ValueError):
            raise ValueError("maintenance_window_minutes is '%s', not a number of minutes" % minutes)
        if value <= 0:
            raise ValueError("maintenance_window_minutes is '%s'; use a positive number of minutes" % minutes)
        found.append(started + timedelta(minutes=value))
    return min(found) if found else None


@dataclass
class Estimates:
    """What the run expects, in seconds, and where each number comes from."""

    batch: float
    change: float
    revert: float
    basis: str
    change_learned: bool = False

    @property
    def batch_needs(self):
        return self.batch + self.revert


def estimates(history, first_batch_minutes=FIRST_BATCH_MINUTES, first_revert_minutes=FIRST_REVERT_MINUTES):
    """Learn from the run's batches so far (``history``: the ``prechange_window`` fact's ``batches``).

    Each batch entry has epoch seconds ``started``, ``change_started``, ``settle_started``, ``finished``
    and ``reverted`` (whether any host of it was reverted). The longest of each counts: a window is
    safe when its slowest batch still fits.
    """
    def known(batch, *keys):
        return all(batch.get(key) is not None for key in keys)

    done = [b for b in history or [] if known(b, "finished", "started") and not b.get("deferred")]
    batches = [b["finished"] - b["started"] for b in done]
    changes = [b["settle_started"] - b["change_started"] for b in done if known(b, "settle_started", "change_started")]
    reverts = [b["finished"] - b["settle_started"] for b in done if b.get("reverted") and known(b, "settle_started")]
    batch = max(batches) if batches else float(first_batch_minutes) * 60
    revert = max(reverts) if reverts else float(first_revert_minutes) * 60
    change = max(changes) if changes else None
    parts = ["batch %s (%s)" % (text_duration(batch), "longest of %d batch%s so far" % (
        len(batches), "" if len(batches) == 1 else "es") if batches else "first estimate, maintenance_window_batch_minutes"),
        "revert %s (%s)" % (text_duration(revert), "longest revert so far" if reverts
                            else "first estimate, maintenance_window_revert_minutes")]
    return Estimates(batch=batch, change=change if change is not None else batch, revert=revert,
                     basis="; ".join(parts), change_learned=change is not None)


@dataclass
class Gate:
    """A window decision: go or not, the seconds left and needed, and the words for it."""

    go: bool
    left: float
    needed: float
    message: str

    def as_dict(self):
        return {"go": self.go, "left_seconds": round(self.left, 1), "needed_seconds": round(self.needed, 1),
                "message": self.message}


def _left(end, now):
    return (end - now).total_seconds()


def batch_gate(end, now, est):
    """May a serial batch start? The time left must cover the expected batch and a revert."""
    left, needed = _left(end, now), est.batch_needs
    if left >= needed:
        return Gate(True, left, needed, "%s left in the window (ends %s); the batch needs up to %s (%s): it starts"
                    % (text_duration(left), end.isoformat(), text_duration(needed), est.basis))
    return Gate(False, left, needed,
                "deferred by the window's deadline: %s left (ends %s), a batch needs up to %s (%s); not started, "
                "nothing was changed" % (text_duration(left), end.isoformat(), text_duration(needed), est.basis))


def change_gate(end, now, est, batch_started=None):
    """May the batch's changes start? The time left must cover the change, its checks and a revert.

    Before any change of the run was timed, the change may take what is left of the first estimate of the
    batch (the batch gate already counted the snapshots in it).
    """
    left = _left(end, now)
    change = est.change
    if batch_started is not None and not est.change_learned:
        change = max(0.0, est.batch - (now - batch_started).total_seconds())
    needed = change + est.revert
    if left >= needed:
        return Gate(True, left, needed, "%s left in the window; the change, its checks and a revert need up to %s: "
                    "the changes start" % (text_duration(left), text_duration(needed)))
    return Gate(False, left, needed,
                "deferred by the window's deadline: %s left (ends %s), the change, its checks and a revert need up "
                "to %s; the change was not started and this run's snapshot is deleted again, nothing was changed"
                % (text_duration(left), end.isoformat(), text_duration(needed)))


def delete_gate(end, now, est):
    """May a passed host's snapshot be deleted now? Not when the time left is shorter than a revert."""
    left = _left(end, now)
    if left < est.revert:
        return Gate(False, left, est.revert,
                    "deleting the snapshot was deferred: %s left in the window and a delete (it merges the delta) may "
                    "take as long as a revert, %s; it is kept until it expires: delete it after the window with the "
                    "prune playbook" % (text_duration(left), text_duration(est.revert)))
    return Gate(True, left, est.revert, "%s left in the window: the snapshot is deleted now" % text_duration(left))


def large_delta(delta_bytes, large_gb):
    """Why a passed host's snapshot is not deleted in the window (its delta, measured at the decision, is at
    least ``large_gb``), or None. Merging a large delta loads the datastore while other hosts still change."""
    if delta_bytes is None or not large_gb or float(delta_bytes) < float(large_gb) * GIB:
        return None
    sizes = (float(delta_bytes) / GIB, float(large_gb))
    return ("deleting the snapshot was deferred: its delta is %.1f GiB (at least %g GiB, "
            "maintenance_window_large_delta_gb) and merging it would load the storage in the window; it is kept "
            "until it expires: delete it after the window with the prune playbook" % sizes)


def check_settings(first_batch_minutes, first_revert_minutes, large_delta_gb=LARGE_DELTA_GB):
    """The first estimates (minutes) and the large delta's size (GiB) as numbers of 0 or more, or a ValueError
    that names the variable."""
    out = []
    for name, value, unit in (("maintenance_window_batch_minutes", first_batch_minutes, "minutes"),
                              ("maintenance_window_revert_minutes", first_revert_minutes, "minutes"),
                              ("maintenance_window_large_delta_gb", large_delta_gb, "GiB (0: no limit)")):
        try:
            number = float(value)
            if number < 0:
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError("%s is '%s'; use a number of %s (0 or more)" % (name, value, unit))
        out.append(number)
    return out


def parse_time_or_none(text):
    """An ISO 8601 time (as the run's facts keep it) as an aware datetime, or None."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def from_epoch(seconds):
    return datetime.fromtimestamp(float(seconds), timezone.utc)


# The registered results of the maintenance playbook's window steps, on every host of the batch.
GATE_RESULTS = {"batch": "__maintenance_window_batch", "change": "__maintenance_window_change",
                "settle": "__maintenance_window_settle"}


def host_window(record, gates):
    """A host's report record with what the window decided for it.

    ``gates``: {"batch" | "change" | "settle": the host's entry of that window step's ``hosts``}. A host
    whose batch or change the deadline did not let start is ``deferred`` (not failed); a passed host whose
    snapshot is kept because its deletion was deferred says so (``window.delete_deferred``).
    """
    batch, change, settle = (gates.get(k) or {} for k in ("batch", "change", "settle"))
    if batch.get("deferred"):
        record.update(outcome="deferred", reason=batch.get("message", ""), action="none")
        record["window"] = {"deferred": "batch"}
    elif change.get("deferred") and record["outcome"] in ("ok", "check"):
        record.update(outcome="deferred", reason=change.get("message", ""))
        record["window"] = {"deferred": "change"}
    elif settle.get("defer_delete") and record["action"] == "kept" and record["outcome"] == "ok":
        record["reason"] = settle.get("message", "")
        record["window"] = {"delete_deferred": settle.get("message", "")}
    return record
