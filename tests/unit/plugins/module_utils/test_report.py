# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the run report: each host's outcome from its facts, the counts, the Markdown."""

from __future__ import annotations

from ansible_collections.prechange.snapshots.plugins.module_utils import _report as report

RECORD = {"provider": "libvirt", "vm": "web01", "vm_name": "web01", "name": "prechange-r1", "id": "prechange-r1",
          "run_id": "r1", "action": "created", "owner": {"expires": "2026-12-06T00:00:00Z"}}


def _facts(snapshot=None, settle=None, **extra):
    facts = {"__snapshot_run": {"hosts": {"h1": snapshot or {"failed": False, "record": RECORD}}}}
    if settle is not None:
        facts["__revert_or_prune_run"] = {"hosts": {"h1": settle}}
    facts.update(extra)
    return facts


def test_a_failed_snapshot_is_an_error_with_the_providers_message():
    rec = report.host_record("h1", _facts({"failed": True, "msg": "Failed to create snapshot 'x': auth failed"}))
    assert rec["outcome"] == "error" and rec["error"] == "snapshot: Failed to create snapshot 'x': auth failed"
    assert rec["action"] == "none" and rec["snapshot"] is None


def test_a_reverted_host_says_why():
    settle = {"failed": False, "action": "reverted",
              "summary": {"action": "reverted", "reason": "the checks failed", "warnings": []}}
    verdict = {"passed": False, "snapshot_id": "prechange-r1", "failures": ["port 80 is not open"]}
    rec = report.host_record("h1", _facts(settle=settle, verify_verdict=verdict))
    assert rec["outcome"] == "reverted" and rec["verify"]["passed"] is False
    assert report.failure_message(rec, "/r/maintenance-r1") == (
        "h1: reverted to snapshot prechange-r1 (the checks failed): verify failed: port 80 is not open\n"
        "(report: /r/maintenance-r1.md)")


def test_a_snapshot_left_without_a_verdict_is_an_error_never_ok():
    rec = report.host_record("h1", _facts())
    assert rec["outcome"] == "error" and "still pending" in rec["error"]
    assert "revert_or_prune_run_id=r1" in rec["error"]


def test_a_verdict_of_another_snapshot_is_not_shown_as_this_hosts():
    settle = {"failed": False, "summary": {"action": "kept", "reason": "no verdict", "warnings": []}}
    rec = report.host_record("h1", _facts(settle=settle, verify_verdict={"passed": True, "snapshot_id": None}))
    assert rec["verify"]["passed"] is None and rec["outcome"] == "ok" and rec["action"] == "kept"


def test_counts_and_markdown_keep_one_row_per_host():
    settle = {"failed": False, "summary": {"action": "deleted", "reason": "the checks passed", "warnings": []}}
    ok = report.host_record("h1", _facts(settle=settle, verify_verdict={"passed": True, "snapshot_id": "prechange-r1"}))
    bad = report.host_record("h1", _facts({"failed": True, "msg": "line one\nline | two"}))
    whole = report.build("maintenance", "r1", False, "2026-11-29T00:00:00Z", "ctl", [ok, bad], ["h3"])
    assert whole["summary"] == {"hosts": 2, "ok": 1, "reverted": 0, "error": 1, "deleted": 1, "kept": 0,
                                "released": 0, "not_reached": 1}
    text = report.markdown(whole)
    rows = [line for line in text.splitlines() if line.startswith("| h1")]
    assert len(rows) == 2
    assert "line one line \\| two" in rows[1]
    assert "Not reached: h3" in text
