# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The window callback's pure parts: serial batches, the summary table, the resume command."""

from __future__ import annotations

import shlex
from types import SimpleNamespace

import pytest

from ansible.executor.playbook_executor import PlaybookExecutor

from ansible_collections.prechange.snapshots.plugins.callback.window import (
    host_list,
    resume_command,
    serial_batches,
    summary_lines,
    workflow_text,
)

SERIALS = [[], [1], [2], ["2"], [3], ["50%"], ["30%"], ["100%"], ["1%"], [0], [1, 2], [1, "50%"], [1, 2, 3],
           ["10%", "40%", "100%"], [5]]


def ansible_batches(hosts, serial):
    """What ansible-playbook itself makes of the same hosts and serial."""
    inventory = SimpleNamespace(get_hosts=lambda pattern, order=None: list(hosts))
    executor = SimpleNamespace(_inventory=inventory)
    play = SimpleNamespace(hosts="all", order=None, serial=list(serial))
    return PlaybookExecutor._get_serialized_batches(executor, play)  # pylint: disable=protected-access


@pytest.mark.parametrize("serial", SERIALS, ids=[repr(s) for s in SERIALS])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 10, 200])
def test_serial_batches_are_ansibles_own(serial, count):
    hosts = ["h%d" % n for n in range(count)]
    assert serial_batches(hosts, serial) == ansible_batches(hosts, serial)


def test_four_hosts_in_batches_of_two():
    assert serial_batches(["a", "b", "c", "d"], ["2"]) == [["a", "b"], ["c", "d"]]
    assert serial_batches(["a", "b", "c", "d"], ["100%"]) == [["a", "b", "c", "d"]]
    assert serial_batches([], ["2"]) == []


def test_host_list_says_how_many_more():
    assert host_list(["a", "b", "c"], 2) == "a b … (+1)"
    assert host_list(["a", "b"], 2) == "a b"


REPORT = {
    "run_id": "20261130T010026Z-1e73", "check_mode": False, "status": "reverted",
    "hosts": [
        {"host": "web01", "outcome": "ok", "snapshot": {"name": "prechange-x"}, "action": "deleted",
         "reason": "the checks passed", "error": "", "verify": {"failures": []}, "change": {"failed": False}},
        {"host": "app01", "outcome": "reverted", "snapshot": {"name": "prechange-x"}, "action": "reverted",
         "reason": "the checks failed", "error": "", "verify": {"failures": ["port 8080 is not open"]},
         "change": {"failed": False}},
        {"host": "db01", "outcome": "error", "snapshot": None, "action": "none",
         "error": "snapshot: Failed to create snapshot 'prechange-x' of VM 'db01' on proxmox: locked (backup)",
         "verify": {"failures": []}, "change": {"failed": False}},
        {"host": "web08", "outcome": "stopped", "snapshot": None, "action": "none", "error": "",
         "verify": {"failures": []}, "change": {"failed": False}},
    ],
    "not_reached": ["web08", "web09"],
    "summary": {"hosts": 5, "ok": 1, "reverted": 1, "refused": 0, "error": 1, "stopped": 1, "not_reached": 1,
                "left_on_platform": 1},
    "next": [{"what": "look at the reverted host", "hosts": ["app01"],
              "command": "ansible-playbook app.yml --limit app01"},
             {"what": "retry the host in error", "hosts": ["db01"],
              "command": "ansible-playbook prechange.snapshots.maintenance --limit db01"}],
}


def test_summary_has_a_row_per_host_the_report_path_and_the_next_commands():
    lines = [text for text, _color in summary_lines(REPORT, "/r/maintenance-x")]
    assert lines[0] == ("SUMMARY of run 20261130T010026Z-1e73: 1 ok, 1 reverted, 1 error, 1 stopped, 1 not reached, "
                        "1 snapshot left on the platform")
    assert "status: reverted" in lines
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("  ") and not line.startswith("   ")}
    assert rows["web01"][:4] == ["web01", "ok", "prechange-x", "deleted"]
    assert rows["app01"][:4] == ["app01", "reverted", "prechange-x", "reverted"]
    assert "verify failed: port 8080 is not open" in " ".join(rows["app01"])
    assert rows["db01"][:4] == ["db01", "error", "-", "none"]
    assert rows["web08"][:2] == ["web08", "stopped"] and rows["web09"][:2] == ["web09", "not_reached"]
    assert len([line for line in lines if line.startswith("  web08")]) == 1  # a record and in not_reached: one row
    assert "report: /r/maintenance-x.md" in lines
    assert lines.index("next:") > lines.index("report: /r/maintenance-x.md")
    assert lines[lines.index("next:") + 1:] == [
        "  - look at the reverted host (app01):", "    ansible-playbook app.yml --limit app01",
        "  - retry the host in error (db01):", "    ansible-playbook prechange.snapshots.maintenance --limit db01"]


def test_summary_says_nothing_the_report_does_not():
    report = dict(REPORT)
    for key in ("status", "next"):
        report.pop(key)
    lines = [text for text, _color in summary_lines(report, None)]
    assert not any(line.startswith(("status:", "next:", "report:")) for line in lines)
    assert "check mode" not in lines[0]
    assert "(check mode: nothing was changed)" in summary_lines(dict(report, check_mode=True), None)[0][0]


def test_workflow_text_of_each_step():
    assert workflow_text("snapshot", {"action": "created", "snapshot": {"name": "s"}}) == ("created 's'", False)
    text, bad = workflow_text("snapshot", {"failed": True, "msg": "Failed to create snapshot 's': locked\nhint"})
    assert (text, bad) == ("failed: Failed to create snapshot 's': locked", True)
    text, bad = workflow_text("settle", {"action": "kept", "snapshot": {"name": "s", "owner": {"expires": "E"}},
                                         "reason": "asked to keep"})
    assert text == "kept 's' until E (asked to keep)" and not bad


def test_resume_command_keeps_the_run_and_sets_the_run_id():
    argv = ["/venv/bin/ansible-playbook", "prechange.snapshots.maintenance", "-i", "inv.yml", "-e",
            "maintenance_serial=2", "-e", "prechange_run_id=old", "--limit", "web*", "-e",
            "vault_password=hunter2", "--extra-vars=@vars.yml"]
    command = resume_command(argv, "20261130T010026Z-1e73")
    assert command.startswith("ansible-playbook prechange.snapshots.maintenance -i inv.yml -e maintenance_serial=2 ")
    assert "prechange_run_id=old" not in command and "hunter2" not in command
    assert "-e <the same as in this run>" in command and "--extra-vars @vars.yml" in command
    assert command.endswith("-e prechange_run_id=20261130T010026Z-1e73 -e snapshot_takeover=true")
    assert "--limit 'web*'" in command

    limited = resume_command(argv, "r1", ["web03", "web04"])
    assert "web*" not in limited and limited.endswith("--limit web03,web04")
    assert shlex.split(resume_command(["ansible-playbook", "p.yml", "-e", '{"a": "b c"}'], "r1"))[3] == '{"a": "b c"}'
