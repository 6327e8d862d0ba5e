# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of change sets (issue 12, point 4): all-or-nothing snapshots, reverts together, split batches."""

from __future__ import annotations

from ansible_collections.prechange.snapshots.plugins.module_utils import _changeset as changeset
from ansible_collections.prechange.snapshots.plugins.module_utils import _report as report

SETS = {"web01": "shop", "app01": "shop", "db01": "shop", "solo": ""}
APP_FAILED = ("Failed to create snapshot 'prechange-r1' of VM 'app01' on proxmox: the VM is busy with another job: "
              "locked (backup). Wait for it, or set lock_timeout to wait up to N seconds; nothing was changed.")


def test_a_set_split_across_batches_is_refused_before_anything_is_made():
    play = ["web01", "app01", "solo", "db01"]
    refused = changeset.split_sets(SETS, play, batch_hosts={"web01", "app01"}, requested={"web01", "app01"})
    assert set(refused) == {"web01", "app01"}
    name, reason, hint = refused["web01"]
    assert name == "shop" and reason == (
        "set shop is split across serial batches: web01, app01 are in this batch, db01 is not (serial batches are "
        "cut in inventory order), and a set is snapshotted and reverted as a whole")
    assert "maintenance_serial" in hint and hint.endswith("nothing was changed")
    # The next batch refuses db01 for the same reason; a set in one batch is left alone.
    assert set(changeset.split_sets(SETS, play, {"solo", "db01"}, {"solo", "db01"})) == {"db01"}
    assert changeset.split_sets(SETS, play, set(play), set(play)) == {}


def test_a_member_without_a_request_makes_its_set_incomplete():
    refused = changeset.split_sets(SETS, ["web01", "app01", "db01"], {"web01", "app01", "db01"}, {"web01", "db01"})
    assert set(refused) == {"web01", "db01"} and "app01 made no snapshot request" in refused["web01"][1]


def test_a_failed_member_refuses_the_set_and_undoes_only_the_snapshots_this_run_made():
    results = {"web01": {"failed": False, "action": "created"}, "app01": {"failed": True, "msg": APP_FAILED},
               "db01": {"failed": False, "action": "adopted"}, "solo": {"failed": False, "action": "created"}}
    verdicts = changeset.incomplete_sets(SETS, results)
    assert set(verdicts) == {"web01", "db01"} and all(v["undo"] for v in verdicts.values())
    assert verdicts["web01"]["reason"] == ("set shop is all or nothing and app01's snapshot failed (the VM is busy "
                                           "with another job: locked (backup). Wait for it, or set lock_timeout to "
                                           "wait up to N seconds; nothing was changed)")
    assert verdicts["web01"]["hint"] == ("Fix app01, then run the set again; this VM's snapshot of this run was deleted "
                                         "again, nothing was changed")
    # Check mode made nothing, so there is nothing to undo.
    assert not any(v["undo"] for v in changeset.incomplete_sets(SETS, results, check_mode=True).values())
    assert changeset.incomplete_sets(SETS, {h: {"action": "created"} for h in SETS}) == {}


def test_a_failed_member_reverts_every_member_with_the_reason_naming_it():
    requests = {h: {"action": "auto"} for h in ("web01", "app01", "db01", "solo")}
    decisions = {"web01": "delete", "app01": "revert", "db01": "delete", "solo": "delete"}
    forced = changeset.set_reverts(SETS, requests, decisions)
    assert forced == {"web01": "set shop: app01's check failed", "db01": "set shop: app01's check failed"}
    requests["app01"]["change_failed"] = True
    assert changeset.set_reverts(SETS, requests, decisions)["web01"] == "set shop: app01's change failed"
    # A member that had its snapshot but made no verdict request (it failed on the way) counts as failed.
    del requests["app01"]
    forced = changeset.set_reverts(SETS, requests, decisions, batch_hosts=SETS, snapshotted={"app01"})
    assert forced["web01"] == "set shop: app01 failed before its verdict"
    assert changeset.set_reverts(SETS, requests, {h: "delete" for h in SETS}) == {}


def test_the_report_has_a_section_per_set():
    def rec(host, outcome, reason="", error="", provider="libvirt"):
        return dict(report.not_reached_record(host, "not_reached"), outcome=outcome, reason=reason, error=error,
                    change_set="shop", provider=provider)
    records = [rec("web01", "reverted", "set shop: app01's check failed"), rec("app01", "reverted", "the checks failed",
                                                                               provider="proxmox"),
               dict(report.not_reached_record("solo", "not_reached"), outcome="ok")]
    sets = changeset.set_summary(records)
    assert sets == [{"set": "shop", "members": ["web01", "app01"], "outcome": "reverted",
                     "why": "set shop: app01's check failed", "providers": ["libvirt", "proxmox"]}]
    text = report.markdown(report.build("maintenance", "r1", False, "now", "ctl", records, sets=sets))
    assert "## Change sets" in text and "| shop | web01, app01 | reverted | set shop: app01's check failed |" in text
