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
        "h1: reverted to snapshot prechange-r1 (the checks failed): checks failed: port 80 is not open\n"
        "(report: /r/maintenance-r1.md)")


def test_a_snapshot_left_without_a_verdict_is_an_error_never_ok():
    rec = report.host_record("h1", _facts())
    assert rec["outcome"] == "error" and "still pending" in rec["error"]
    assert "prechange_run_id=r1" in rec["error"]


def test_a_verdict_of_another_snapshot_is_not_shown_as_this_hosts():
    settle = {"failed": False, "summary": {"action": "kept", "reason": "no verdict", "warnings": []}}
    rec = report.host_record("h1", _facts(settle=settle, verify_verdict={"passed": True, "snapshot_id": None}))
    assert rec["verify"]["passed"] is None and rec["outcome"] == "ok" and rec["action"] == "kept"


def test_counts_and_markdown_keep_one_row_per_host():
    settle = {"failed": False, "summary": {"action": "deleted", "reason": "the checks passed", "warnings": []}}
    ok = report.host_record("h1", _facts(settle=settle, verify_verdict={"passed": True, "snapshot_id": "prechange-r1"}))
    bad = report.host_record("h1", _facts({"failed": True, "msg": "line one\nline | two"}))
    whole = report.build("maintenance", "r1", False, "2026-11-29T00:00:00Z", "ctl", [ok, bad], ["h3"])
    summary = whole["summary"]
    assert (summary["hosts"], summary["ok"], summary["error"], summary["not_reached"], summary["deleted"]) == (3, 1, 1, 1, 1)
    # The counts add up to every host the play named.
    assert sum(summary[o] for o in report.OUTCOMES) == summary["hosts"]
    text = report.markdown(whole)
    rows = [line for line in text.splitlines() if line.startswith("| h1")]
    assert len(rows) == 2
    assert "line one line \\| two" in rows[1]
    assert [r["host"] for r in whole["hosts"]] == ["h1", "h1", "h3"] and whole["not_reached"] == ["h3"]


SETTLED = {"failed": False, "summary": {"action": "reverted", "reason": "the checks failed", "warnings": []}}


def test_a_precheck_refusal_is_refused_not_error():
    refused = report.host_record("h1", _facts({"failed": True, "error": "PrecheckFailed", "msg": "Failed ...: disk"}))
    lost = report.host_record("h1", _facts({"failed": True, "error": "ConnectionFailed", "msg": "Failed ...: down"}))
    assert refused["outcome"] == "refused" and lost["outcome"] == "error"
    assert refused["left"] is None
    whole = report.build("maintenance", "r1", False, "now", "ctl", [refused])
    assert whole["status"] == "refused"
    assert whole["next"][0]["command"] == "ansible-playbook prechange.snapshots.maintenance --limit h1"


def test_what_is_left_on_the_platform_adds_up():
    reverted = report.host_record("h1", _facts(settle=SETTLED))
    kept = report.host_record("h2", {"__snapshot_run": {"hosts": {"h2": {"record": RECORD}}},
                                     "__revert_or_prune_run": {"hosts": {"h2": {"summary": {"action": "kept"}}}}})
    deleted = report.host_record("h3", {"__snapshot_run": {"hosts": {"h3": {"record": RECORD}}},
                                        "__revert_or_prune_run": {"hosts": {"h3": {"summary": {"action": "deleted"}}}}})
    pending = report.host_record("h4", {"__snapshot_run": {"hosts": {"h4": {"record": RECORD}}}})
    whole = report.build("maintenance", "r1", False, "now", "ctl", [reverted, kept, deleted, pending],
                         inventory=["/inv/hosts.yml"])
    assert whole["summary"]["left_on_platform"] == 3
    assert {(i["host"], i["phase"]) for i in whole["left_on_platform"]} == {
        ("h1", "reverted"), ("h2", "kept"), ("h4", "pending")}
    assert whole["status"] == "error"
    commands = {step["command"] for step in whole["next"]}
    assert ("ansible-playbook prechange.snapshots.revert -i /inv/hosts.yml -e prechange_run_id=r1 "
            "-e revert_action=delete --limit h1") in commands
    assert "ansible-playbook prechange.snapshots.revert -i /inv/hosts.yml -e prechange_run_id=r1 --limit h4" in commands
    text = report.markdown(whole)
    assert "left on the platform 3" in text and "h4 (VM web01): snapshot prechange-r1, pending" in text


def test_a_failed_change_names_its_task_rc_and_stderr():
    error = {"task": "Upgrade app", "msg": "non-zero return code", "rc": 3, "stderr": "E: broken package"}
    rec = report.host_record("h1", _facts(settle=SETTLED, __maintenance_change_failed=True,
                                          __maintenance_change_error=error))
    assert rec["change"]["changed"] is True
    msg = report.failure_message(rec, None)
    assert "the change failed: task 'Upgrade app': non-zero return code (rc=3): E: broken package" in msg
    assert "task 'Upgrade app': non-zero return code (rc=3): E: broken package" in report.markdown(
        report.build("maintenance", "r1", False, "now", "ctl", [rec]))


def test_a_failed_recheck_of_the_restored_host_is_named():
    rec = report.host_record("h1", _facts(settle=SETTLED, revert_or_prune_reverify_passed=False,
                                          revert_or_prune_reverify_failures=["port 22 on 127.0.0.1 is not open"]))
    assert "the restored host failed its checks: port 22 on 127.0.0.1 is not open" in report.failure_message(rec, None)
    assert "restored host FAILED its checks: port 22 on 127.0.0.1 is not open" in report.markdown(
        report.build("maintenance", "r1", False, "now", "ctl", [rec]))


def test_check_mode_predicts_without_a_verdict():
    predicted = dict(RECORD, predicted=True)
    settle = {"failed": False, "summary": {"action": "depends", "if_passed": "delete", "reason": "check mode"}}
    rec = report.host_record("h1", {"__snapshot_run": {"hosts": {"h1": {"record": predicted}}},
                                    "__revert_or_prune_run": {"hosts": {"h1": settle}},
                                    "verify_verdict": {"passed": False, "snapshot_id": "prechange-r1",
                                                       "failures": ["stale"]}}, check_mode=True)
    assert rec["outcome"] == "check" and rec["verify"]["passed"] is None and rec["verify"]["failures"] == []
    assert rec["left"] is None
    whole = report.build("maintenance", "r1", True, "now", "ctl", [rec])
    assert whole["status"] == "check"
    text = report.markdown(whole)
    assert "would revert if the checks fail, else delete" in text and "would be created" in text
    assert "not run (check mode)" in text
    assert whole["next"] == [{"what": "Run the window for real", "hosts": ["h1"],
                              "command": "ansible-playbook prechange.snapshots.maintenance --limit h1"}]


def test_a_batch_over_max_fail_percentage_stops_the_run():
    ok = report.host_record("h1", {"__snapshot_run": {"hosts": {"h1": {"record": RECORD}}},
                                   "__revert_or_prune_run": {"hosts": {"h1": {"summary": {"action": "deleted"}}}}})
    reverted = report.host_record("h2", {"__snapshot_run": {"hosts": {"h2": {"record": RECORD}}},
                                         "__revert_or_prune_run": {"hosts": {"h2": SETTLED}}})
    assert report.batch_stops([ok, reverted], ["h1", "h2"], 25)
    assert not report.batch_stops([ok, reverted], ["h1", "h2"], 50)
    assert not report.batch_stops([ok, reverted], ["h1", "h2"], 25, fail_reverted=False)
    assert report.batch_stops([reverted], ["h2"], 100)  # every host of the batch failed
    stopped = report.not_reached_record("h3", "stopped")
    whole = report.build("maintenance", "r1", False, "now", "ctl", [ok, reverted, stopped])
    assert whole["status"] == "stopped" and whole["summary"]["stopped"] == 1
    assert any(s["command"].endswith("-e prechange_run_id=r1 --limit h3") for s in whole["next"])
    assert report.run_status([ok, report.not_reached_record("h3", "waiting")]) == "running"


def test_status_line_is_one_parsable_line():
    rec = report.host_record("h1", _facts(settle=SETTLED))
    line = report.status_line(report.build("maintenance", "r1", False, "now", "ctl", [rec]), "/r/maintenance-r1")
    fields = dict(item.split("=", 1) for item in line.split())
    assert fields["PRECHANGE_STATUS"] == "reverted" and fields["reverted"] == "1" and fields["ok"] == "0"
    assert fields["report"] == "/r/maintenance-r1.json" and "\n" not in line


def test_timeline_picture_has_a_bar_per_stage():
    facts = _facts(settle=SETTLED, __verify_started="1000.0", verify_duration_seconds=5)
    facts["__snapshot_run"]["started"], facts["__snapshot_run"]["finished"] = "1970-01-01T00:16:30Z", 995.0
    facts["__revert_or_prune_run"]["started"], facts["__revert_or_prune_run"]["finished"] = 1006.0, 1010.0
    rec = report.host_record("h1", facts)
    assert rec["timeline"] == {"snapshot": [990.0, 995.0], "change": [995.0, 1000.0], "verify": [1000.0, 1005.0],
                               "revert_or_prune": [1006.0, 1010.0]}
    svg = report.timeline_svg(report.build("maintenance", "r1", False, "now", "ctl", [rec]))
    assert svg.count("<rect") == 4 + 4  # four bars, four legend boxes
    assert report.timeline_svg(report.build("maintenance", "r1", False, "now", "ctl",
                                            [report.not_reached_record("h2", "waiting")])) is None


def test_the_default_report_directory_is_where_the_job_keeps_files():
    assert report.default_report_dir({"PRECHANGE_REPORT_DIR": "/r", "AWX_ISOLATED_DATA_DIR": "/a"}, "/w") == "/r"
    assert report.default_report_dir({"AWX_ISOLATED_DATA_DIR": "/pdd/artifacts/7/"}, "/w") == \
        "/pdd/artifacts/7/prechange-reports"
    assert report.default_report_dir({}, "/w/") == "/w/prechange-reports"


def test_a_refused_host_has_no_change_or_verdict_bars():
    facts = {"__snapshot_run": {"hosts": {"h1": {"failed": True, "error": "PrecheckFailed", "msg": "no"}},
                                "started": 990.0, "finished": 995.0},
             "__revert_or_prune_run": {"hosts": {}, "started": 1006.0, "finished": 1010.0}}
    assert report.host_record("h1", facts)["timeline"] == {"snapshot": [990.0, 995.0]}


def test_a_run_killed_while_its_snapshots_are_made_names_each_snapshot_that_may_be_on_the_vm():
    request = {"name": "prechange-r7", "vm": "web01", "provider": "vmware"}
    facts = {"__snapshot_run": {"hosts": {"web01": report.in_flight(request, "r7")}, "started": 1.0, "finished": None}}
    record = report.host_record("web01", facts)
    assert record["outcome"] == "error"
    assert record["left"] == {"snapshot": "prechange-r7", "id": None, "phase": "pending", "expires": None,
                              "uncertain": True}
    built = report.build("maintenance", "r7", False, "now", "ctl", [record], running=True)
    assert built["summary"]["left_on_platform"] == 1
    commands = [step["command"] for step in built["next"]]
    assert any("prechange.snapshots.revert" in c and "prechange_run_id=r7" in c for c in commands)
    assert any("snapshot_takeover=true" in c for c in commands)
    assert "maybe: its create was sent" in report.markdown(built)


def test_a_create_that_failed_before_anything_was_sent_leaves_nothing_to_look_for():
    result = {"failed": True, "msg": "Failed to create ...: refused", "snapshot": "prechange-r7",
              "error": "PrecheckFailed"}
    facts = {"__snapshot_run": {"hosts": {"web01": result}}}
    assert report.host_record("web01", facts)["left"] is None


def test_a_vm_another_run_holds_is_refused_not_an_error():
    result = {"failed": True, "msg": "Failed to create ...: the VM is held by maintenance run r1",
              "error": "RunConflict"}
    facts = {"__snapshot_run": {"hosts": {"web01": result}}}
    assert report.host_record("web01", facts)["outcome"] == "refused"
