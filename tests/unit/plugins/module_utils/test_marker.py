# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ownership marker: written, parsed back, user text kept, foreign text never taken as ours."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.prechange.snapshots.plugins.module_utils._marker import (
    format_marker,
    is_expired,
    join_description,
    make_marker,
    parse_duration,
    resolve_expiry,
    split_description,
)

NOW = datetime(2026, 11, 22, 2, 15, tzinfo=timezone.utc)


def test_round_trip_keeps_user_text_and_values():
    marker = make_marker(run="20261122T021500Z-4f2a", creator="ops team@bastion", created=NOW,
                         expires=NOW + timedelta(days=7), ticket="CHG 42]")
    text = join_description("Line one\nLine two [not a marker]", marker)
    user, parsed = split_description(text)
    assert user == "Line one\nLine two [not a marker]"
    assert parsed == {"run": "20261122T021500Z-4f2a", "creator": "ops team@bastion",
                      "created": "2026-11-22T02:15:00Z", "expires": "2026-11-29T02:15:00Z", "ticket": "CHG 42]",
                      "phase": None, "lease": None, "holder": None, "power": None}
    assert text.splitlines()[-1] == format_marker(marker)
    # Values are encoded, so spaces and brackets in them cannot break the line apart.
    assert len(format_marker(marker)[1:-1].split(" ")) == 2 + 5


def test_marker_alone():
    user, parsed = split_description(join_description("", make_marker(run="r", created=NOW)))
    assert user == "" and parsed["run"] == "r" and parsed["expires"] is None


@pytest.mark.parametrize("text", [
    "",
    "hand made snapshot",
    "[prechange.snapshots v1 created=2026-11-22T02:15:00Z]",  # no run id
    "[prechange.snapshots v1 run=r created=yesterday]",  # created does not parse
    "[prechange.snapshots v2 run=r created=2026-11-22T02:15:00Z]",  # unknown version
    "[prechange.snapshots v1 run=r created=2026-11-22T02:15:00Z owner=me]",  # unknown key
    "[prechange.snapshots v1 run=r run=s created=2026-11-22T02:15:00Z]",  # repeated key
    "[prechange.snapshots v1 run=r created=2026-11-22T02:15:00Z]\nuser text after it",  # not the last line
])
def test_foreign_or_broken_markers_are_not_ours(text):
    user, parsed = split_description(text)
    assert parsed is None and user == text


def test_expiry():
    assert is_expired(make_marker(run="r", created=NOW, expires=NOW), now=NOW)
    assert not is_expired(make_marker(run="r", created=NOW, expires=NOW + timedelta(seconds=1)), now=NOW)
    assert not is_expired(make_marker(run="r", created=NOW), now=NOW)
    assert not is_expired(None, now=NOW)


def test_durations_and_timestamps():
    assert parse_duration("7d") == timedelta(days=7)
    assert resolve_expiry("12h", now=NOW) == NOW + timedelta(hours=12)
    assert resolve_expiry("2026-12-01T00:00:00+01:00") == datetime(2026, 11, 30, 23, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="neither a duration"):
        resolve_expiry("next week")
