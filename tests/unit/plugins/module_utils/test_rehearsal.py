# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the rehearsal's decisions (issue 13): which hosts go on, what the report says."""

from __future__ import annotations

import pytest

from ansible_collections.prechange.snapshots.plugins.module_utils import _rehearsal as rehearsal
from ansible_collections.prechange.snapshots.plugins.module_utils import _report as report
from ansible_collections.prechange.snapshots.plugins.module_utils import _workflow as workflow
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import InvalidRequest

RECORD = {"provider": "libvirt", "vm": "web01", "name": "prechange-r1", "id": "prechange-r1", "run_id": "r1"}
CLONE = {"name": "web01-rehearsal-r1", "linked": True}


def test_a_disconnected_clone_without_a_connection_is_refused_before_cloning():
    with pytest.raises(InvalidRequest) as err:
        rehearsal.plan("h1", "web01", "libvirt", "prechange-r1", "r1")
    text = str(err.value)
    assert text.startswith("Failed to clone snapshot 'prechange-r1' of VM 'web01' on libvirt: host h1 cannot be "
                           "rehearsed: its clone would have no network")
    assert "maintenance_rehearse_connection" in text and "nothing was cloned" in text


def test_a_plan_names_the_clone_and_keeps_the_connection():
    plan = rehearsal.plan("h1", "web01", "libvirt", "prechange-r1", "r1", network="iso",
                          connection={"ansible_host": "10.0.2.15", "ansible_port": 22})
    assert plan == {"host": "h1", "clone": "web01-rehearsal-r1", "inventory_name": "rehearsal-web01-rehearsal-r1",
                    "network": "iso", "connection": {"ansible_host": "10.0.2.15", "ansible_port": 22}}
    # A connection alone is enough (e.g. ansible_connection: local), the clone stays disconnected.
    assert rehearsal.plan("h1", "web01", "libvirt", "s", "r1", connection={"ansible_connection": "local"})["network"] \
        is None


def test_a_clone_never_takes_the_vms_own_name():
    with pytest.raises(InvalidRequest):
        rehearsal.plan("h1", "web01", "libvirt", "s", "r1", network="iso", connection={"ansible_host": "x"},
                       pattern="web01")


@pytest.mark.parametrize("kwargs,passed,reason", [
    ({"verdict": {"passed": True}}, True, "the change and the checks passed on the clone"),
    ({"verdict": {"passed": "True"}}, True, "the change and the checks passed on the clone"),
    ({"verdict": {"passed": False, "failures": ["HTTP 500"]}}, False, "the checks failed on the clone"),
    ({"change_failed": True, "change_error": {"task": "t"}, "verdict": {"passed": True}}, False,
     "the change failed on the clone"),
    ({"verdict": {"passed": None}}, False, "the checks did not run on the clone"),
    ({"error": "clone: no space", "verdict": {"passed": True}}, False, "the rehearsal could not run: clone: no space"),
])
def test_only_a_passed_rehearsal_lets_the_change_go_on(kwargs, passed, reason):
    out = rehearsal.outcome(CLONE, **kwargs)
    assert (out["passed"], out["go_on"], out["reason"]) == (passed, passed, reason)


def test_the_clone_is_kept_only_on_failure_when_asked():
    assert rehearsal.outcome(CLONE, verdict={"passed": False}, keep_failed=True)["clone_kept"] is True
    assert rehearsal.outcome(CLONE, verdict={"passed": False})["clone_kept"] is False
    assert rehearsal.outcome(CLONE, verdict={"passed": True}, keep_failed=True)["clone_kept"] is False


def test_a_failed_rehearsal_settles_the_snapshot_as_no_change_never_a_revert():
    request = {"record": RECORD, "rehearsal_failed": True, "on_success": "delete", "action": "auto"}
    decision, why, _passed = workflow.settle_decision(request)
    assert (decision, why) == ("delete", "the rehearsal failed on the clone, so the change never reached this VM")
    assert workflow.settle_decision(dict(request, on_success="keep"))[0] == "keep"
    # An action the user forced still wins.
    assert workflow.settle_decision(dict(request, action="keep"))[0] == "keep"


def _record(rehearsed, verdict=None, settle_action="deleted"):
    facts = {"__snapshot_run": {"hosts": {"h1": {"failed": False, "record": RECORD}}},
             "__revert_or_prune_run": {"hosts": {"h1": {"failed": False, "summary": {
                 "action": settle_action, "reason": "x"}}}},
             "__maintenance_rehearsal": rehearsed}
    if verdict is not None:
        facts["verify_verdict"] = {"passed": verdict, "snapshot_id": "prechange-r1", "run_id": "r1"}
    return report.host_record("h1", facts)


def test_the_report_shows_both_verdicts():
    failed = _record(rehearsal.outcome(CLONE, verdict={"passed": False, "failures": ["HTTP answered 500"]},
                                       started="t0", finished="t1", clone_seconds=4.2))
    assert failed["outcome"] == "rehearsal_failed"
    assert "never reached the VM" in report.failure_message(failed, None)
    passed = _record(rehearsal.outcome(CLONE, verdict={"passed": True}), verdict=True)
    assert passed["outcome"] == "ok"
    built = report.build("maintenance", "r1", False, "now", "ctl", [failed, dict(passed, host="h2")])
    assert built["summary"]["rehearsal_failed"] == 1 and built["status"] == "rehearsal_failed"
    md = report.markdown(built)
    assert "## Rehearsals" in md
    assert ("| h1 | web01-rehearsal-r1 (removed) | t0 to t1, clone made in 4.2s | FAILED: the checks failed on "
            "the clone (HTTP answered 500) | not changed (the change never reached it) |") in md
    assert "| h2 | web01-rehearsal-r1 (removed) | ? to ? | passed | ok, checks passed |" in md
    # The real host's change column says the change did not run.
    assert "| h1 | rehearsal_failed | libvirt:web01 | prechange-r1 (found by its marker) | not run |" in md


def test_a_host_without_rehearsal_has_no_rehearsal_section():
    md = report.markdown(report.build("maintenance", "r1", False, "now", "ctl", [_record(None, verdict=True)]))
    assert "Rehearsals" not in md


def test_the_step_refuses_or_plans():
    out = rehearsal.step({"rehearsal": "plan", "request": {"vm": "web01", "provider": "libvirt", "snapshot": "s",
                                                           "run_id": "r1"}}, "h1")
    assert out["failed"] and out["error"] == "InvalidRequest"
    out = rehearsal.step({"rehearsal": "outcome", "request": {"clone": CLONE, "change_failed": "True",
                                                              "verdict": {"passed": True}}}, "h1")
    assert out["rehearsal"]["go_on"] is False


def test_the_guard_roles_rehearsal_plan_names_guard_variables():
    out = rehearsal.step({"rehearsal": "plan", "request": {"vm": "web01", "provider": "libvirt", "snapshot": "s",
                                                           "run_id": "r1", "settings": "guard"}}, "h1")
    assert out["failed"] and "guard_rehearse_network is empty" in out["msg"] and "maintenance" not in out["msg"]
    assert "Set guard_rehearse_network" in out["msg"] and "guard_rehearse_connection" in out["msg"]
    out = rehearsal.step({"rehearsal": "plan", "request": {"vm": "web01", "provider": "libvirt", "snapshot": "s",
                                                           "run_id": "r1"}}, "h1")
    assert "maintenance_rehearse_network is empty" in out["msg"]
    with pytest.raises(InvalidRequest):
        rehearsal.plan("h1", "web01", "libvirt", "s", "r1", network="iso", settings="mine")


def test_the_summary_says_what_failed_on_the_clone():
    out = rehearsal.outcome(CLONE, change_failed=True, change_error={"task": "Upgrade", "msg": "exit 3"})
    assert out["summary"] == "the change failed on the clone (Upgrade: exit 3)"
    assert rehearsal.outcome(CLONE, verdict={"passed": False, "failures": ["HTTP 500", "disk"]})["summary"] == \
        "the checks failed on the clone (HTTP 500; disk)"
    assert rehearsal.outcome(CLONE, verdict={"passed": True})["summary"] == "the change and the checks passed on the clone"
