# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the veto before pruning, the retention policy and the audit log (issue 12, points 5 and 6).

The veto command tests run real commands (a small script in tmp_path), so that "not found", "not
executable", a timeout and a non-zero exit are the operating system's own answers.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.prechange.snapshots.plugins.module_utils import _retention as rt
from ansible_collections.prechange.snapshots.plugins.module_utils import _workflow as wf
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import isoformat, make_marker
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import VmRecord

from test_snapshot import MUTATORS, FakeBackend  # pylint: disable=import-error

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=timezone.utc)
VM = VmRecord(name="web01", id="id-web01", power_state="running")


def _snap(name, created, phase="verified", ticket=None, expires=None, run=None):
    owner = make_marker(run=run or "run-" + name, created=created, phase=phase, ticket=ticket,
                        expires=expires if expires is not None else created + timedelta(days=1),
                        lease=NOW + timedelta(hours=1) if phase == "pending" else None, holder="h")
    return {"name": name, "id": name, "owner": owner, "memory": False, "current": False, "created": created}


def _script(tmp_path, body, name="veto.sh", mode=0o755):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(mode)
    return str(path)


CAND = {"vm": "web01", "snapshot": "prechange-r1", "snapshot_id": "42", "provider": "libvirt", "run_id": "r1",
        "ticket": "CHG1", "created": "2026-12-01T00:00:00Z", "expires": "2026-12-02T00:00:00Z", "phase": "verified",
        "creator": "ops@bastion"}


# --- the veto command ----------------------------------------------------------------------------------


def test_exit_zero_allows_and_the_candidate_arrives_on_stdin_and_in_the_environment(tmp_path):
    seen = tmp_path / "seen"
    command = _script(tmp_path, 'cat > %s; echo >> %s; env | grep ^PRECHANGE_ >> %s; exit 0' % (seen, seen, seen))
    assert rt.run_veto_command(command, CAND) is None
    text = seen.read_text()
    assert json.loads(text.splitlines()[0]) == CAND
    for line in ("PRECHANGE_VM=web01", "PRECHANGE_SNAPSHOT=prechange-r1", "PRECHANGE_RUN_ID=r1",
                 "PRECHANGE_TICKET=CHG1", "PRECHANGE_CREATED=2026-12-01T00:00:00Z",
                 "PRECHANGE_EXPIRES=2026-12-02T00:00:00Z", "PRECHANGE_PROVIDER=libvirt"):
        assert line in text.splitlines()


def test_a_non_zero_exit_vetoes_with_its_output_as_the_reason(tmp_path):
    command = _script(tmp_path, 'echo "audit hold on $PRECHANGE_TICKET"; exit 3')
    assert rt.run_veto_command([command], CAND) == "vetoed by revert_or_prune_veto_command (exit 3): audit hold on CHG1"


def test_a_command_that_cannot_run_is_a_veto_that_says_why(tmp_path):
    missing = str(tmp_path / "nowhere")
    assert rt.run_veto_command(missing, CAND) == (
        "the veto command '%s' was not found; a veto that cannot run keeps the snapshot" % missing)
    plain = _script(tmp_path, "exit 0", name="plain.sh", mode=0o644)
    assert rt.run_veto_command(plain, CAND) == (
        "the veto command '%s' is not executable; a veto that cannot run keeps the snapshot" % plain)
    slow = _script(tmp_path, "exec sleep 30", name="slow.sh")
    assert rt.run_veto_command(slow, CAND, timeout=0.5) == (
        "the veto command '%s' did not answer within 0.5s; a veto that cannot run keeps the snapshot" % slow)


def test_tasks_list_vetoes_by_name_id_or_dict_and_unseen_candidates_are_kept():
    base = {"veto_tasks_file": "veto.yml"}
    assert rt.veto_reason(CAND, dict(base, vetoed=["prechange-r1"])) == (
        "vetoed by revert_or_prune_veto_tasks_file: listed in revert_or_prune_vetoed")
    assert rt.veto_reason(CAND, dict(base, vetoed=[{"snapshot": "42", "reason": "legal hold"}])) == (
        "vetoed by revert_or_prune_veto_tasks_file: legal hold")
    assert rt.veto_reason(CAND, dict(base, vetoed=[{"snapshot": "42", "vm": "db01"}])) is None  # another VM's
    assert rt.veto_reason(CAND, dict(base, vetoed=[], reviewed=["42"])) is None
    assert "not among the candidates" in rt.veto_reason(CAND, dict(base, vetoed=[], reviewed=["41"]))
    assert rt.veto_reason(CAND, {}) is None


# --- the veto in the engine: the in-run delete and the prune -------------------------------------------


RECORD = {"name": "prechange-r1", "id": "prechange-r1", "run_id": "run-prechange-r1"}


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_vetoed_in_run_delete_keeps_the_snapshot_until_its_expiry(tmp_path, check_mode):
    backend = FakeBackend([_snap("prechange-r1", NOW - timedelta(hours=1), phase="pending")])
    request = {"vm": "web01", "record": RECORD, "action": "auto", "verify_passed": True, "on_success": "delete",
               "veto_command": _script(tmp_path, "echo backup not verified yet; exit 1")}
    result = wf.run_group(backend, [("h1", request)], "settle", check_mode=check_mode, now=NOW)["h1"]
    assert result["action"] == "kept" and result["vetoed"].endswith("(exit 1): backup not verified yet")
    assert result["reason"] == "the checks passed, but the deletion was vetoed"
    assert result["warnings"] == [
        "Snapshot 'prechange-r1' of VM 'web01' was not deleted: vetoed by revert_or_prune_veto_command (exit 1): "
        "backup not verified yet; it is kept until its expiry %s, when the prune playbook asks again"
        % isoformat(NOW + timedelta(hours=23))]
    assert [s.name for s in backend.snaps] == ["prechange-r1"]
    assert "delete" not in backend.calls
    if not check_mode:
        assert backend.snaps[0].owner["phase"] == "verified"  # kept after a passed change


def test_an_allowed_in_run_delete_deletes(tmp_path):
    backend = FakeBackend([_snap("prechange-r1", NOW - timedelta(hours=1), phase="pending")])
    request = {"vm": "web01", "record": RECORD, "action": "auto", "verify_passed": True, "on_success": "delete",
               "veto_command": _script(tmp_path, "exit 0")}
    result = wf.run_group(backend, [("h1", request)], "settle", check_mode=False, now=NOW)["h1"]
    assert result["action"] == "deleted" and not result.get("vetoed") and backend.snaps == []


def test_prune_skips_vetoed_candidates_and_deletes_the_rest(tmp_path):
    old = NOW - timedelta(days=3)
    backend = FakeBackend([_snap("a", old), _snap("b", old), _snap("c", old)])
    command = _script(tmp_path, '[ "$PRECHANGE_SNAPSHOT" = b ] && { echo keep b; exit 2; }; exit 0')
    request = {"vm": "web01", "select": "expired", "veto_command": command}
    result = wf.prune_group(backend, [("h1", request)], check_mode=False, now=NOW)["h1"]
    assert sorted(d["name"] for d in result["deleted"]) == ["a", "c"]
    assert [(v["name"], v["reason"]) for v in result["vetoed"]] == [
        ("b", "vetoed by revert_or_prune_veto_command (exit 2): keep b")]
    assert [s.name for s in backend.snaps] == ["b"]
    assert result["warnings"] == ["Snapshot 'b' of VM 'web01' was not pruned: vetoed by revert_or_prune_veto_command "
                                  "(exit 2): keep b; the prune playbook asks again next time"]


def test_prune_check_mode_shows_the_veto_and_changes_nothing(tmp_path):
    old = NOW - timedelta(days=3)
    backend = FakeBackend([_snap("a", old), _snap("b", old)])
    request = {"vm": "web01", "select": "expired", "veto_command": str(tmp_path / "missing")}
    result = wf.prune_group(backend, [("h1", request)], check_mode=True, now=NOW)["h1"]
    assert result["deleted"] == [] and sorted(v["name"] for v in result["vetoed"]) == ["a", "b"]
    assert all("was not found" in v["reason"] for v in result["vetoed"])
    assert [c for c in backend.calls if c in MUTATORS] == []


def test_prune_plan_lists_candidates_after_retention_and_asks_no_veto(tmp_path):
    backend = FakeBackend([_snap("a", NOW - timedelta(days=3)), _snap("b", NOW - timedelta(days=2))])
    request = {"vm": "web01", "select": "expired", "retention": {"last": 1},
               "veto_command": _script(tmp_path, "touch %s/asked; exit 1" % tmp_path)}
    result = wf.prune_group(backend, [("h1", request)], check_mode=False, now=NOW, plan=True)["h1"]
    assert [c["snapshot"] for c in result["candidates"]] == ["a"]
    assert not (tmp_path / "asked").exists() and len(backend.snaps) == 2


# --- retention -----------------------------------------------------------------------------------------


def _points(*specs):
    return FakeBackend([_snap(name, NOW - age, **kw) for name, age, kw in specs]).list_snapshots(VM)


def test_keep_last_counts_only_finished_snapshots_of_ours():
    snaps = _points(("p", timedelta(minutes=1), {"phase": "pending"}), ("n1", timedelta(hours=1), {}),
                    ("n2", timedelta(hours=2), {}), ("n3", timedelta(hours=3), {}))
    kept = rt.retained(snaps, rt.Retention(last=2))
    assert sorted(kept) == ["n1", "n2"] and kept["n1"] == ["last 2 (#1)"]


def test_tiers_keep_the_newest_of_each_period_and_any_rule_keeps():
    # Two a day for four days, at 09:00 and 18:00 UTC, the newest first.
    specs = []
    for day in range(4):
        for hour in (18, 9):
            moment = datetime(2026, 12, 4 - day, hour, 0, tzinfo=timezone.utc)
            specs.append(("d%d-%02d" % (4 - day, hour), NOW - moment, {}))
    snaps = _points(*specs)
    daily = rt.retained(snaps, rt.Retention(daily=3))
    assert sorted(daily) == ["d2-18", "d3-18", "d4-18"] and daily["d4-18"] == ["daily 2026-12-04"]
    both = rt.retained(snaps, rt.Retention(last=1, hourly=2, monthly=1))
    assert sorted(both) == ["d4-09", "d4-18"]  # the two newest hours are both on the 4th
    assert both["d4-18"] == ["last 1 (#1)", "hourly 2026-12-04T18", "monthly 2026-12"]
    weekly = rt.retained(snaps, rt.Retention(weekly=2))
    # 2026-12-04 is a Friday (ISO week 49); 2026-12-01..04 are all in week 49: one weekly point.
    assert sorted(weekly) == ["d4-18"] and weekly["d4-18"] == ["weekly 2026-W49"]


def test_keep_per_ticket_counts_each_ticket_apart():
    snaps = _points(("a1", timedelta(hours=1), {"ticket": "A"}), ("a2", timedelta(hours=2), {"ticket": "A"}),
                    ("b1", timedelta(hours=3), {"ticket": "B"}), ("none", timedelta(hours=4), {}))
    assert sorted(rt.retained(snaps, rt.Retention(last=1, per="ticket"))) == ["a1", "b1", "none"]
    assert sorted(rt.retained(snaps, rt.Retention(last=1))) == ["a1"]


def test_retention_keeps_expired_points_and_never_prunes_before_expiry():
    past, future = NOW - timedelta(hours=1), NOW + timedelta(days=1)
    backend = FakeBackend([_snap("new", NOW - timedelta(hours=2), expires=past),
                           _snap("mid", NOW - timedelta(hours=3), expires=past),
                           _snap("young", NOW - timedelta(hours=4), expires=future),
                           _snap("old", NOW - timedelta(hours=5), expires=past)])
    request = {"vm": "web01", "select": "expired", "retention": {"last": 1}}
    result = wf.prune_group(backend, [("h1", request)], check_mode=True, now=NOW)["h1"]
    assert sorted(d["name"] for d in result["deleted"]) == ["mid", "old"]  # 'young' has not expired
    assert [(r["name"], r["rules"]) for r in result["retained"]] == [("new", ["last 1 (#1)"])]
    owned = wf.prune_group(backend, [("h1", dict(request, select="owned"))], check_mode=False, now=NOW)["h1"]
    assert sorted(d["name"] for d in owned["deleted"]) == ["mid", "old", "young"]
    assert [s.name for s in backend.snaps] == ["new"]


# --- the audit log -------------------------------------------------------------------------------------


def test_audit_lines_are_appended_and_read_back_per_run(tmp_path):
    path = str(tmp_path / "sub" / "audit.jsonl")
    who = {"user": "ops@bastion", "awx_job_id": "77", "awx_user": "alice"}
    rt.append_audit(path, [rt.audit_entry("create", "ok", who, vm="web01", provider="libvirt", snapshot="s",
                                          snapshot_id=1, run_id="r1", ticket="CHG1", now=NOW)])
    rt.append_audit(path, [rt.audit_entry("delete", "vetoed", who, vm="web01", snapshot="s", run_id="r2",
                                          msg="legal hold", now=NOW)])
    lines = open(path, encoding="utf-8").read().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0]) == {"time": "2026-12-05T12:00:00Z", "action": "create", "outcome": "ok", "who": who,
                                    "ticket": "CHG1", "run_id": "r1", "provider": "libvirt", "vm": "web01",
                                    "snapshot": "s", "snapshot_id": "1"}
    assert [e["action"] for e in rt.read_audit(path, "r2")] == ["delete"]
    assert rt.read_audit(str(tmp_path / "none.jsonl")) == []


def test_audit_entries_of_each_kind_of_result():
    who = {"user": "u"}
    snap = {"name": "s", "id": "7", "owner": {"run": "r1", "ticket": "CHG1"}}
    made = rt.audit_entries("snapshot", {"action": "created", "vm": {"name": "web01"}, "snapshot": snap},
                            {"provider": "vmware"}, who, "r1", NOW)
    assert [(e["action"], e["outcome"], e["ticket"], e["vm"]) for e in made] == [("create", "ok", "CHG1", "web01")]
    assert rt.audit_entries("snapshot", {"action": "adopted", "snapshot": snap}, {}, who, "r1") == []
    failed = rt.audit_entries("snapshot", {"failed": True, "msg": "Failed to create ...", "vm": "web01"},
                              {"name": "s", "ticket": "CHG1"}, who, "r1")
    assert [(e["action"], e["outcome"], e["msg"]) for e in failed] == [("create", "failed", "Failed to create ...")]
    reverted = rt.audit_entries("settle", {"action": "reverted", "vm": {"name": "web01"}, "snapshot": snap},
                                {"record": {"name": "s"}}, who, "r1")
    assert [(e["action"], e["outcome"]) for e in reverted] == [("revert", "ok")]
    vetoed = rt.audit_entries("settle", {"action": "kept", "vetoed": "legal hold", "snapshot": snap}, {}, who, "r1")
    assert [(e["action"], e["outcome"], e["msg"]) for e in vetoed] == [("delete", "vetoed", "legal hold")]
    assert rt.audit_entries("settle", {"action": "kept", "snapshot": snap}, {}, who, "r1") == []
    pruned = rt.audit_entries("prune", {"vm": {"name": "web01"}, "deleted": [snap],
                                        "vetoed": [{"name": "t", "id": "8", "run": "r0", "reason": "hold"}],
                                        "others": [{"vm": {"name": "db01"}, "deleted": [snap]}]},
                              {"provider": "proxmox"}, who, None)
    assert [(e["vm"], e["snapshot"], e["outcome"], e["run_id"]) for e in pruned] == [
        ("web01", "s", "ok", "r1"), ("web01", "t", "vetoed", "r0"), ("db01", "s", "ok", "r1")]


def test_monthly_tier_reaches_back_to_the_newest_months_that_have_a_snapshot():
    snaps = _points(("a", timedelta(days=70), {}), ("b", timedelta(days=40), {}), ("c", timedelta(days=1), {}),
                    ("d", timedelta(days=2), {}))
    assert sorted(rt.retained(snaps, rt.Retention(monthly=2))) == ["b", "c"]


def test_the_prune_summary_says_per_vm_what_went_what_the_policy_kept_and_what_was_vetoed_or_held():
    result = {"vm": {"name": "web01"},
              "deleted": [{"name": "s1", "owner": {"ticket": "CHG-1"}}, {"name": "s2", "owner": {}}],
              "retained": [{"name": "s3", "rules": ["last 2 (#1)", "daily 2026-12-05"]}],
              "vetoed": [{"name": "s4", "reason": "vetoed by revert_or_prune_veto_command (exit 3): hold"}],
              "held": [{"name": "s5", "run": "r9", "lease": "2026-12-06T02:00:00Z"}],
              "others": [{"vm": {"name": "db01"}, "deleted": []}]}
    assert rt.prune_summary(result, check_mode=True) == [
        "VM web01: would delete 2: s1 (CHG-1), s2 (no ticket); kept by the retention policy 1: s3 (last 2 (#1), "
        "daily 2026-12-05); vetoed 1: s4 (vetoed by revert_or_prune_veto_command (exit 3): hold); held by a live run "
        "1: s5 (run r9 until 2026-12-06T02:00:00Z)",
        "VM db01: nothing to prune"]
    assert rt.prune_summary({"vm": {"name": "web01"}, "deleted": [{"name": "s1"}]})[0] == "VM web01: deleted 1: s1 (no ticket)"
