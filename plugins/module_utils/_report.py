# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The maintenance run report: one record per host, the outcome, and its Markdown form.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

The report is for people (and AWX artifacts); nothing depends on it for safety. It is built
from each host's facts after the run (what the snapshot step, the change, the checks and the
verdict step left), so a host that failed at any stage is still reported, with the provider's
own message.
"""

from __future__ import annotations

import re

OUTCOMES = ("ok", "reverted", "error")
# The registered results of the roles' calls (one per batch, on every host of the batch).
CALL_RESULTS = ("__snapshot_run", "__revert_or_prune_run")
# The host facts a record is built from.
REPORT_FACTS = ("__snapshot_run", "__revert_or_prune_run", "snapshot_record", "revert_or_prune_summary",
                "__maintenance_change_error", "__maintenance_change_failed", "__maintenance_error", "verify_verdict",
                "verify_skipped", "patch_changed", "patch_packages_changed", "patch_user_changes", "patch_rebooted",
                "patch_duration_seconds", "revert_or_prune_reverify_passed", "revert_or_prune_reverify_failures",
                "snapshot_warnings", "prechange_provider",
                "prechange_vm")


def _get(mapping, *path, default=None):
    for key in path:
        if not isinstance(mapping, dict) or key not in mapping:
            return default
        mapping = mapping[key]
    return default if mapping is None else mapping


def host_record(host, facts):
    """One host's record from its facts (``hostvars[host]``); see the README's report fields."""
    snap_run = _get(facts, "__snapshot_run", "hosts", host, default={})
    settle_run = _get(facts, "__revert_or_prune_run", "hosts", host, default={})
    record = _get(facts, "snapshot_record", default=None)
    if record is None and not snap_run.get("failed"):
        record = snap_run.get("record")
    summary = _get(facts, "revert_or_prune_summary", default=None)
    if summary is None and settle_run and not settle_run.get("failed"):
        summary = settle_run.get("summary")
    change_error = _get(facts, "__maintenance_change_error", default={})
    change_failed = bool(_get(facts, "__maintenance_change_failed", default=False))
    verdict = _get(facts, "verify_verdict", default={})
    error = ""
    if snap_run.get("failed"):
        error = "snapshot: %s" % snap_run.get("msg", "")
    elif settle_run.get("failed"):
        error = "revert or prune: %s" % settle_run.get("msg", "")
    elif _get(facts, "__maintenance_error", default=""):
        error = str(facts["__maintenance_error"])
    elif record and not record.get("checked_only") and not record.get("predicted") and summary is None:
        # Never report a host as done while its snapshot still waits for a verdict.
        error = ("no verdict was recorded: snapshot '%s' of run %s is still pending; revert to it or release it "
                 "with the revert playbook (-e revert_or_prune_run_id=%s)"
                 % (record.get("name"), record.get("run_id"), record.get("run_id")))
    action = (summary or {}).get("action") or "none"
    outcome = "error" if error else ("reverted" if action == "reverted" else "ok")
    reverify = _get(facts, "revert_or_prune_reverify_passed", default=None)
    return {
        "host": host,
        "provider": (record or {}).get("provider") or facts.get("prechange_provider", ""),
        "vm": (record or {}).get("vm_name") or (record or {}).get("vm") or facts.get("prechange_vm") or host,
        "snapshot": record,
        "change": {
            "failed": change_failed,
            "error": change_error if change_failed else {},
            "changed": bool(_get(facts, "patch_changed", default=False)) or change_failed,
            "packages": list(_get(facts, "patch_packages_changed", default=[])),
            "changes": list(_get(facts, "patch_user_changes", default=[])),
            "rebooted": bool(_get(facts, "patch_rebooted", default=False)),
            "duration_seconds": _get(facts, "patch_duration_seconds", default=None),
        },
        "verify": {
            "passed": verdict.get("passed") if verdict.get("snapshot_id") == (record or {}).get("id") else None,
            "failures": list(verdict.get("failures") or []),
            "skipped": list(_get(facts, "verify_skipped", default=[])),
        },
        "action": action if not error else "none",
        "reason": (summary or {}).get("reason", ""),
        "reverify_passed": reverify,
        "reverify_failures": list(_get(facts, "revert_or_prune_reverify_failures", default=[])),
        "outcome": outcome,
        "error": error,
        "warnings": list(_get(facts, "snapshot_warnings", default=[]) or snap_run.get("warnings") or []) + list((summary or {}).get("warnings") or []),
    }


def build(kind, run_id, check_mode, written, controller, records, not_reached):
    """The whole report: records of the hosts reached, the hosts not reached, and the counts."""
    summary = {"hosts": len(records)}
    for outcome in OUTCOMES:
        summary[outcome] = len([r for r in records if r["outcome"] == outcome])
    for action in ("deleted", "kept", "released"):
        summary[action] = len([r for r in records if r["action"] == action])
    summary["not_reached"] = len(not_reached)
    return {"kind": kind, "run_id": run_id, "check_mode": check_mode, "written": written,
            "controller": controller, "hosts": records, "not_reached": list(not_reached), "summary": summary}


def failure_message(record, report_path):
    """What the host's final task says when its outcome is not ok."""
    text = "%s: %s" % (record["host"], record["outcome"])
    if record["outcome"] == "reverted":
        text += " to snapshot %s" % (record["snapshot"] or {}).get("name")
        if record["reason"]:
            text += " (%s)" % record["reason"]
    if record["error"]:
        text += ": %s" % record["error"]
    if record["change"]["failed"]:
        text += ": %s: %s" % (record["change"]["error"].get("task", ""), record["change"]["error"].get("msg", ""))
    if record["verify"]["failures"]:
        text += ": verify failed: %s" % "; ".join(record["verify"]["failures"])
    if report_path:
        text += "\n(report: %s.md)" % report_path
    return text


def cell(text):
    """One Markdown table cell: newlines folded, pipes escaped, so the row stays one row."""
    return re.sub(r"\s*\n\s*", " ", str(text)).replace("|", "\\|")


def markdown(report):
    lines = ["# Maintenance run %s%s" % (report["run_id"],
                                         " (check mode: nothing was changed)" if report["check_mode"] else ""),
             "",
             "Written %s on %s." % (report["written"], report["controller"]),
             "Hosts: %(hosts)d — ok %(ok)d, reverted %(reverted)d, error %(error)d, not reached %(not_reached)d."
             % report["summary"],
             "",
             "| Host | VM | Snapshot | What changed | Verdict | Action | Change (s) |",
             "|------|----|----------|--------------|---------|--------|------------|"]
    for h in report["hosts"]:
        snap = h["snapshot"] or {}
        what = ", ".join(h["change"]["packages"] + h["change"]["changes"])
        if h["change"]["failed"]:
            changed = "FAILED: %s: %s" % (h["change"]["error"].get("task", ""), h["change"]["error"].get("msg", ""))
        else:
            changed = what or ("changed" if h["change"]["changed"] else "nothing")
        if h["change"]["rebooted"]:
            changed += ", rebooted"
        if h["verify"]["passed"] is True:
            verdict = "passed"
        elif h["verify"]["failures"]:
            verdict = "failed: " + "; ".join(h["verify"]["failures"])
        else:
            verdict = "—" if h["verify"]["passed"] is None else "failed"
        action = h["action"]
        if action == "kept" and (snap.get("owner") or {}).get("expires"):
            action += " until %s" % snap["owner"]["expires"]
        if h["reverify_passed"] is not None:
            action += ", re-verify %s" % ("passed" if h["reverify_passed"] else
                                          "failed: " + "; ".join(h.get("reverify_failures") or []))
        if h["reason"] and h["action"] in ("reverted", "kept"):
            action += " (%s)" % h["reason"]
        if h["error"]:
            action += " (error: %s)" % h["error"]
        duration = h["change"]["duration_seconds"]
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            cell(h["host"]), cell("%s:%s" % (h["provider"], h["vm"])),
            cell("%s (%s)" % (snap.get("name"), snap.get("action")) if snap else "—"), cell(changed), cell(verdict),
            cell(action), duration if duration is not None else "—"))
    if report["not_reached"]:
        lines += ["", "Not reached: %s" % ", ".join(report["not_reached"])]
    return "\n".join(lines) + "\n"
