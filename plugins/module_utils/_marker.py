# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Ownership marker kept in a snapshot's description.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

VMware snapshots cannot carry custom fields, so the one place every platform keeps for us
is the description. The marker is the last line of it, for example::

    Before the kernel update
    [prechange.snapshots v1 run=20261122T021500Z-4f2a creator=ops%40bastion created=2026-11-22T02:15:00Z expires=2026-11-29T02:15:00Z ticket=CHG0042]

Values are percent-encoded, so the line has no spaces inside values and no brackets. The
user's own text above the marker is kept as it is.

The marker also carries the run's state, so that any controller (another operator, a fresh AWX
container) sees it on the hypervisor itself:

* ``phase``: ``pending`` from the snapshot until the run reaches a verdict, then ``verified``
  (the change passed; the snapshot is kept until it expires, or is being deleted), ``kept`` (kept
  without a verdict, or as asked), ``reverted`` (the VM was reverted to it) or ``released`` (an
  operator accepted the change by hand);
* ``lease``: until when the run holds the VM (only while pending);
* ``holder``: which ansible-playbook process holds the lease (two processes may share a run id);
* ``power``: the VM's power state when the snapshot was taken, restored after a revert.

A marker without ``phase`` was written before runs recorded their state: it never counts as a
pending run. A description whose last line does not
parse strictly is *not ours*: pruning must never act on a snapshot it cannot positively
identify.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, unquote

MARKER_TAG = "prechange.snapshots"
MARKER_VERSION = "v1"
# Order in which keys are written; run and created are required to count as ours.
MARKER_KEYS = ("run", "creator", "created", "expires", "ticket", "phase", "lease", "holder", "power")
PENDING = "pending"
VERDICT_PHASES = ("verified", "kept", "reverted", "released")
PHASES = (PENDING,) + VERDICT_PHASES
REQUIRED_KEYS = ("run", "created")
# A clone's or restore point's marker (kept on the VM it made, see _clone.py): the same line with its own keys, so
# that a snapshot's description with a clone marker (or the reverse) never parses as ours.
CLONE_KEYS = ("run", "creator", "created", "expires", "ticket", "kind", "source", "source_id", "snapshot")
CLONE_REQUIRED_KEYS = ("run", "created", "kind", "source_id", "snapshot")
CLONE_KINDS = ("clone", "restore_point")

_MARKER_LINE = re.compile(r"^\[%s %s((?: [a-z_]+=[^\s\]]*)+)\]$" % (re.escape(MARKER_TAG), MARKER_VERSION))
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def utcnow():
    return datetime.now(timezone.utc).replace(microsecond=0)


def isoformat(moment):
    """UTC ISO 8601 with a Z, the form every record and marker uses."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_time(text):
    """Parse an ISO 8601 timestamp (Z or offset; naive means UTC); None when empty."""
    if text in (None, ""):
        return None
    if isinstance(text, datetime):
        moment = text
    else:
        value = str(text).strip()
        if value.endswith("Z"):
            value = value[:-1] + "+00:00"
        moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def parse_duration(text):
    """'90s', '30m', '12h', '7d', '2w' to a timedelta; raises ValueError otherwise."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError("'%s' is not a duration like 30m, 12h, 7d or 2w" % text)
    return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


def resolve_expiry(expires, now=None):
    """Turn the user's ``expires`` (duration or timestamp) into an absolute UTC datetime."""
    if expires in (None, ""):
        return None
    now = now or utcnow()
    try:
        return now + parse_duration(expires)
    except ValueError:
        pass
    try:
        return parse_time(expires)
    except ValueError:
        raise ValueError("'%s' is neither a duration (30m, 12h, 7d, 2w) nor an ISO 8601 timestamp" % expires)


def make_marker(run, creator=None, created=None, expires=None, ticket=None, phase=None, lease=None, holder=None,
                power=None):
    """Build the marker dict written at create time (all values strings or None)."""
    return {
        "run": str(run),
        "creator": creator,
        "created": isoformat(created or utcnow()),
        "expires": isoformat(expires) if isinstance(expires, datetime) else expires,
        "ticket": ticket,
        "phase": phase,
        "lease": isoformat(lease) if isinstance(lease, datetime) else lease,
        "holder": holder,
        "power": power,
    }


def format_marker(marker, keys=MARKER_KEYS):
    parts = []
    for key in keys:
        value = marker.get(key)
        if value not in (None, ""):
            parts.append("%s=%s" % (key, quote(str(value), safe=":-_.")))
    return "[%s %s %s]" % (MARKER_TAG, MARKER_VERSION, " ".join(parts))


def split_description(description, keys=MARKER_KEYS, required=REQUIRED_KEYS):
    """Return (user_text, marker dict or None). Never raises on foreign text.

    ``keys``/``required``: CLONE_KEYS/CLONE_REQUIRED_KEYS for a clone's marker."""
    text = description or ""
    lines = text.rstrip("\n").split("\n")
    match = _MARKER_LINE.match(lines[-1].strip()) if lines else None
    if not match:
        return text, None
    marker = {}
    for pair in match.group(1).split():
        key, _sep, value = pair.partition("=")
        if key not in keys or key in marker:
            return text, None
        marker[key] = unquote(value)
    if any(not marker.get(key) for key in required):
        return text, None
    try:
        parse_time(marker["created"])
        for key in ("expires", "lease"):
            if marker.get(key):
                parse_time(marker[key])
    except ValueError:
        return text, None
    if marker.get("phase") and marker["phase"] not in PHASES:
        return text, None
    if marker.get("kind") and marker["kind"] not in CLONE_KINDS:
        return text, None
    for key in keys:
        marker.setdefault(key, None)
    return "\n".join(lines[:-1]).rstrip("\n"), marker


def join_description(user_text, marker, keys=MARKER_KEYS):
    """User text first (untouched), the marker as the last line."""
    if not marker:
        return user_text or ""
    if user_text:
        return "%s\n%s" % (user_text.rstrip("\n"), format_marker(marker, keys))
    return format_marker(marker, keys)


def is_expired(marker, now=None):
    """True only for our snapshots with an expiry in the past."""
    if not marker or not marker.get("expires"):
        return False
    return parse_time(marker["expires"]) <= (now or utcnow())


def lease_live(marker, now=None):
    """True while a pending run's lease has not run out."""
    if not marker or marker.get("phase") != PENDING or not marker.get("lease"):
        return False
    return parse_time(marker["lease"]) > (now or utcnow())
