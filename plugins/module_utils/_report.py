# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The run report: one record per host, the run's status, what to do next, Markdown and a timeline.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

The report is for people, wrappers and AWX artifacts; nothing depends on it for safety. It is
built from each host's facts after the run (what the snapshot step, the change, the checks and
the verdict step left), so a host that failed at any stage is still reported, with the
provider's own message. Every host the play named has a record, reached or not.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from xml.sax.saxutils import escape

from ansible_collections.prechange.snapshots.plugins.module_utils._rehearsal import (
    markdown_rows as rehearsal_rows,
    report_outcome as rehearsal_outcome,
)

# A reached host's outcome.
# rehearsal_failed (issue 13): the change failed on the clone, so it never reached the real VM.
REACHED = ("ok", "reverted", "refused", "error", "check", "rehearsal_failed")
# A host the run never started on: in a later batch (while the run goes on), stopped by
# max_fail_percentage, or not reached for another reason (it failed before its snapshot request).
NOT_REACHED = ("waiting", "stopped", "not_reached")
# A host the window's deadline did not let start (module_utils/_window.py): not failed, run it later.
DEFERRED = "deferred"
OUTCOMES = REACHED + NOT_REACHED + (DEFERRED,)
# The run's status: the first of these that any host has (running: written before the run ended).
STATUS_ORDER = ("running", "stopped", "error", "refused", "reverted", "rehearsal_failed", "not_reached", DEFERRED,
                "check", "ok")
# Errors raised before anything changed on the VM, because the VM or the request cannot be served
# safely: the run refused the host (nothing to clean up).
REFUSALS = ("PrecheckFailed", "GuestBusy", "InvalidRequest", "VmNotFound", "AmbiguousVm", "AmbiguousSnapshot",
            "RunConflict", "ChangeSetRefused")
# The registered results of the roles' calls (one per batch, on every host of the batch).
CALL_RESULTS = ("__snapshot_run", "__revert_or_prune_run")
# The host facts a record is built from.
REPORT_FACTS = ("__snapshot_run", "__revert_or_prune_run", "snapshot_record", "revert_or_prune_summary",
                "revert_or_prune_record", "__maintenance_change_error", "__maintenance_change_failed",
                "__maintenance_error", "verify_verdict", "verify_skipped", "patch_changed", "patch_packages_changed",
                "patch_user_changes", "patch_rebooted", "patch_duration_seconds", "revert_or_prune_reverify_passed",
                "revert_or_prune_reverify_failures", "snapshot_warnings", "prechange_provider", "prechange_vm",
                "__verify_started", "verify_duration_seconds", "__prechange_settle_requested",
                "__maintenance_rehearsal")
STAGES = ("snapshot", "change", "verify", "revert_or_prune")
ACTION_WORDS = {"reverted": "reverted", "deleted": "deleted", "kept": "kept", "released": "released",
                "none": "none", "checked": "prechecks only"}


def _get(mapping, *path, default=None):
    for key in path:
        if not isinstance(mapping, dict) or key not in mapping:
            return default
        mapping = mapping[key]
    return default if mapping is None else mapping


def default_report_dir(environ, cwd):
    """Where a report goes when the user names no directory: where the job keeps its files.

    ``$PRECHANGE_REPORT_DIR``; else, under ansible-runner (what AWX / AAP run a job with), the job's
    artifact directory (``$AWX_ISOLATED_DATA_DIR``), kept with the job's other artifacts; else
    ``./prechange-reports``.
    """
    if environ.get("PRECHANGE_REPORT_DIR"):
        return environ["PRECHANGE_REPORT_DIR"]
    if environ.get("AWX_ISOLATED_DATA_DIR"):
        return "%s/prechange-reports" % environ["AWX_ISOLATED_DATA_DIR"].rstrip("/")
    return "%s/prechange-reports" % cwd.rstrip("/")


def _stamp(value):
    """A timestamp (ISO 8601 or epoch seconds) as epoch seconds, or None."""
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _timeline(facts, snap_call, settle_call, snapshot_made, settled):
    """Each stage's [start, end] in epoch seconds, where the facts tell it (and the host went through it)."""
    stages = {}
    snap_start, snap_end = _stamp(snap_call.get("started")), _stamp(snap_call.get("finished"))
    if snap_start and snap_end:
        stages["snapshot"] = [snap_start, snap_end]
    verify_start = _stamp(_get(facts, "__verify_started")) if snapshot_made else None
    verify_len = _get(facts, "verify_duration_seconds")
    settle_start, settle_end = _stamp(settle_call.get("started")), _stamp(settle_call.get("finished"))
    if snapshot_made and snap_end and (verify_start or (settled and settle_start)):
        stages["change"] = [snap_end, verify_start or settle_start]
    if verify_start:
        try:
            end = verify_start + float(verify_len)
        except (TypeError, ValueError):
            end = settle_start or verify_start
        stages["verify"] = [verify_start, max(end, verify_start)]
    if settled and settle_start and settle_end:
        stages["revert_or_prune"] = [settle_start, settle_end]
    return stages


def _outcome(error_text, error_kind, snapshot_failed, check_mode, action):
    if error_text:
        if snapshot_failed and error_kind in REFUSALS:
            return "refused"
        return "error"
    if check_mode:
        return "check"
    return "reverted" if action == "reverted" else "ok"


def host_record(host, facts, check_mode=False):
    """One reached host's record from its facts (``hostvars[host]``); see the README's report fields.

    ``facts["__snapshot_run"]`` / ``facts["__revert_or_prune_run"]`` are the calls' registered
    results: ``{"hosts": {host: result}, "started": ..., "finished": ...}``.
    """
    snap_call = _get(facts, "__snapshot_run", default={})
    settle_call = _get(facts, "__revert_or_prune_run", default={})
    snap_run = _get(snap_call, "hosts", host, default={})
    settle_run = _get(settle_call, "hosts", host, default={})
    record = _get(facts, "snapshot_record", default=None)
    if record is None and snap_run and not snap_run.get("failed"):
        record = snap_run.get("record")
    if record is None:
        # The revert playbook: the snapshot the lookup found.
        record = _get(facts, "revert_or_prune_record", default=None) or settle_run.get("record")
    summary = _get(facts, "revert_or_prune_summary", default=None)
    if summary is None and settle_run and not settle_run.get("failed"):
        summary = settle_run.get("summary")
    change_error = dict(_get(facts, "__maintenance_change_error", default={}))
    change_failed = bool(_get(facts, "__maintenance_change_failed", default=False))
    verdict = _get(facts, "verify_verdict", default={})
    error, error_kind = "", ""
    if snap_run.get("failed"):
        error, error_kind = "snapshot: %s" % snap_run.get("msg", ""), snap_run.get("error") or ""
    elif settle_run.get("failed"):
        error, error_kind = "revert or prune: %s" % settle_run.get("msg", ""), settle_run.get("error") or ""
    elif _get(facts, "__maintenance_error", default=""):
        error = str(facts["__maintenance_error"])
        # A request refused before any call (bad input) changed nothing.
        error_kind = "InvalidRequest" if not snap_run and not record else ""
    elif record and not record.get("checked_only") and not record.get("predicted") and summary is None:
        # Never report a host as done while its snapshot still waits for a verdict.
        error = ("no verdict was recorded: snapshot '%s' of run %s is still pending; revert to it or release it "
                 "with the revert playbook (-e prechange_run_id=%s)"
                 % (record.get("name"), record.get("run_id"), record.get("run_id")))
    action = (summary or {}).get("action") or ("checked" if (record or {}).get("checked_only") else "none")
    if error:
        action = "none"
    outcome = _outcome(error, error_kind, bool(snap_run.get("failed")) or (error_kind == "InvalidRequest"),
                       check_mode, action)
    owner = (record or {}).get("owner") or {}
    if snap_run.get("failed") and snap_run.get("may_have_completed") and snap_run.get("snapshot"):
        # The create was sent but its answer never came (lost, timed out, or the run was interrupted): the
        # pending snapshot may be on the VM. Say so, so that it is looked for rather than forgotten.
        left = {"snapshot": snap_run["snapshot"], "id": None, "phase": "pending", "expires": None, "uncertain": True}
    elif record and record.get("predicted"):
        left = None  # check mode: nothing was made
    elif action in ("reverted", "kept", "released") or (record and error and record.get("action") != "checked"):
        left = {"snapshot": record.get("name"), "id": record.get("id"),
                "phase": {"reverted": "reverted", "kept": "kept", "released": "released"}.get(action, "pending"),
                "expires": owner.get("expires")}
    else:
        left = None
    reverify = _get(facts, "revert_or_prune_reverify_passed", default=None)
    snapshot_warnings = list(_get(facts, "snapshot_warnings", default=[]) or snap_run.get("warnings") or [])
    verify_passed = verdict.get("passed") if verdict.get("snapshot_id") == (record or {}).get("id") else None
    if check_mode:
        verify_passed = None  # a dry run never gives a verdict about a change that did not happen
    rehearsal = _get(facts, "__maintenance_rehearsal", default=None) or None
    if not error and rehearsal_outcome(rehearsal):
        outcome = rehearsal_outcome(rehearsal)
    return {
        "host": host,
        "provider": (record or {}).get("provider") or facts.get("prechange_provider", ""),
        "vm": (record or {}).get("vm_name") or (record or {}).get("vm") or facts.get("prechange_vm") or host,
        "snapshot": record,
        "expires": owner.get("expires"),
        "ticket": owner.get("ticket"),
        "creator": owner.get("creator"),
        "change": {
            "failed": change_failed,
            "error": change_error if change_failed else {},
            # A change that failed after it started may have changed the host: say so. Your own change
            # tasks say what they changed in patch_user_changes; else it is not known (None).
            "changed": True if change_failed else (
                None if facts.get("patch_changed") is None and not _get(facts, "patch_user_changes", default=[])
                else bool(_get(facts, "patch_changed", default=False) or _get(facts, "patch_user_changes", default=[]))),
            "packages": list(_get(facts, "patch_packages_changed", default=[])),
            "changes": list(_get(facts, "patch_user_changes", default=[])),
            "rebooted": bool(_get(facts, "patch_rebooted", default=False)),
            "duration_seconds": _get(facts, "patch_duration_seconds", default=None),
        },
        "verify": {
            "passed": verify_passed,
            "failures": [] if check_mode else list(verdict.get("failures") or []),
            "skipped": list(_get(facts, "verify_skipped", default=[])),
        },
        "action": action,
        "if_passed": (summary or {}).get("if_passed"),
        "reason": (summary or {}).get("reason", ""),
        "reverify_passed": reverify,
        "reverify_failures": list(_get(facts, "revert_or_prune_reverify_failures", default=[])),
        "outcome": outcome,
        "error": error,
        "error_kind": error_kind,
        "left": left,
        "timeline": _timeline(facts, snap_call, settle_call, bool(record) and not snap_run.get("failed"),
                              bool(settle_run) and not settle_run.get("failed")),
        "warnings": snapshot_warnings + list((summary or {}).get("warnings") or []),
        "capacity": _capacity_of(record, summary),
        "rehearsal": rehearsal,
    }


def _capacity_of(record, summary):
    """Free space and growth of one host: measured at snapshot time (the record) and at the decision."""
    at_snapshot = (record or {}).get("capacity")
    grown = (summary or {}).get("growth")
    if not at_snapshot and not grown:
        return None
    return {"at_snapshot": at_snapshot, "growth": grown}


def in_flight(request, run_id):
    """A snapshot request's result while its call runs: what the report says if the run dies meanwhile."""
    name = request.get("name")
    return {"failed": True, "changed": False, "snapshot": name, "vm": request.get("vm"),
            "provider": request.get("provider"), "error": "Interrupted", "may_have_completed": True,
            "msg": "the run stopped while snapshot '%s' was being made: it may be on the VM, pending, with run %s's "
                   "marker" % (name, run_id)}


def not_reached_record(host, outcome, facts=None):
    """A host of the play that the run never started on."""
    facts = facts or {}
    why = {"waiting": "in a later batch of this run",
           "stopped": "the run stopped before its batch (max_fail_percentage, or every host of a batch failed)",
           "not_reached": "the run never reached it"}[outcome]
    return {"host": host, "provider": facts.get("prechange_provider", ""),
            "vm": facts.get("prechange_vm") or host, "snapshot": None, "expires": None, "ticket": None,
            "creator": None, "change": {"failed": False, "error": {}, "changed": False, "packages": [], "changes": [],
                                        "rebooted": False, "duration_seconds": None},
            "verify": {"passed": None, "failures": [], "skipped": []}, "action": "none", "if_passed": None,
            "reason": why, "reverify_passed": None, "reverify_failures": [], "outcome": outcome, "error": "",
            "error_kind": "", "left": None, "timeline": {}, "warnings": [], "rehearsal": None}


def batch_stops(records, batch, max_fail_percentage, fail_reverted=True):
    """Whether Ansible ends the play after this batch: its failed share over max_fail_percentage, or all failed.

    A host fails when its outcome is an error or a refusal, or a revert while reverted hosts fail.
    """
    batch = list(batch)
    if not batch:
        return False
    failing = {"error", "refused"} | ({"reverted"} if fail_reverted else set())
    failed = len([r for r in records if r["host"] in batch and r["outcome"] in failing])
    try:
        limit = float(max_fail_percentage)
    except (TypeError, ValueError):
        limit = 100.0
    return failed == len(batch) or failed / float(len(batch)) * 100.0 > limit


def run_status(records, running=False):
    outcomes = {r["outcome"] for r in records}
    if running or "waiting" in outcomes:
        return "running"
    for status in STATUS_ORDER[1:]:
        if status in outcomes:
            return status
    return "ok"


def _quote(text):
    text = str(text)
    return text if re.match(r"^[\w@%+=:,./-]+$", text) else "'%s'" % text.replace("'", "'\"'\"'")


def next_steps(kind, run_id, records, inventory=(), check_mode=False):
    """What to run next, as exact commands: [{"what": ..., "command": ..., "hosts": [...]}]."""
    inv = "".join(" -i %s" % _quote(source) for source in inventory or ())
    run = " -e prechange_run_id=%s" % _quote(run_id)

    def hosts_of(*outcomes, predicate=None):
        return [r["host"] for r in records if r["outcome"] in outcomes and (predicate is None or predicate(r))]

    def limit(hosts):
        return " --limit %s" % _quote(",".join(hosts))

    steps = []
    if check_mode:
        refused = hosts_of("refused", "error")
        if refused:
            steps.append({"what": "Fix what refused these hosts (see their errors), then run the dry run again",
                          "hosts": refused, "command": "ansible-playbook prechange.snapshots.maintenance%s --check%s"
                          % (inv, limit(refused))})
        ready = hosts_of("check")
        if ready:
            steps.append({"what": "Run the window for real", "hosts": ready,
                          "command": "ansible-playbook prechange.snapshots.maintenance%s%s" % (inv, limit(ready))})
        return steps
    reverted = hosts_of("reverted")
    if reverted:
        steps.append({"what": "The reverted hosts keep their snapshot; delete it once you no longer need it",
                      "hosts": reverted, "command": "ansible-playbook prechange.snapshots.revert%s%s -e revert_action=delete%s"
                      % (inv, run, limit(reverted))})
    pending = hosts_of("error", predicate=lambda r: (r["left"] or {}).get("phase") == "pending")
    if pending:
        steps.append({"what": "These hosts' snapshots wait for a verdict: revert to them (or accept the change with "
                              "-e revert_action=release)", "hosts": pending,
                      "command": "ansible-playbook prechange.snapshots.revert%s%s%s" % (inv, run, limit(pending))})
        if kind == "maintenance":
            # The interrupted run's lease is still live: the resumed run takes it over (same run id only).
            steps.append({"what": "Or, once this run no longer runs, resume it on them: the same snapshots are "
                                  "adopted, never made twice", "hosts": pending,
                          "command": "ansible-playbook prechange.snapshots.maintenance%s%s -e snapshot_takeover=true%s"
                          % (inv, run, limit(pending))})
    failed = hosts_of("refused", "error", predicate=lambda r: not r["left"])
    if failed and kind != "maintenance":
        steps.append({"what": "Fix the cause shown for these hosts, then run the %s again" % kind, "hosts": failed,
                      "command": "ansible-playbook prechange.snapshots.%s%s%s%s" % (kind, inv, run, limit(failed))})
    elif failed:
        steps.append({"what": "Nothing was kept for these hosts: fix the cause shown, then run them again",
                      "hosts": failed, "command": "ansible-playbook prechange.snapshots.maintenance%s%s"
                      % (inv, limit(failed))})
    deferred = hosts_of(DEFERRED)
    if deferred and kind == "maintenance":
        steps.append({"what": "Deferred by the window's deadline (nothing was changed on them): run them in a later "
                              "window", "hosts": deferred,
                      "command": "ansible-playbook prechange.snapshots.maintenance%s%s" % (inv, limit(deferred))})
    delete_deferred = hosts_of("ok", predicate=lambda r: bool((r.get("window") or {}).get("delete_deferred")))
    if delete_deferred:
        steps.append({"what": "Deleting these snapshots was deferred to keep the window: delete them after the window",
                      "hosts": delete_deferred, "command": "ansible-playbook prechange.snapshots.prune%s "
                      "-e revert_or_prune_prune_run_id=%s -e revert_or_prune_prune_select=owned%s"
                      % (inv, _quote(run_id), limit(delete_deferred))})
    later = hosts_of("stopped", "not_reached", "waiting")
    if later and kind == "maintenance":
        steps.append({"what": "If the run ended before these hosts (stopped or interrupted), resume it on them once "
                              "you know why",
                      "hosts": later, "command": "ansible-playbook prechange.snapshots.maintenance%s%s%s"
                      % (inv, run, limit(later))})
    kept = hosts_of("ok", predicate=lambda r: r["host"] not in delete_deferred and (
        (r["left"] or {}).get("phase") == "kept" or r["action"] == "kept"))
    if kept:
        steps.append({"what": "Kept snapshots: revert a host to its snapshot if a problem shows up later",
                      "hosts": kept, "command": "ansible-playbook prechange.snapshots.revert%s%s --limit HOST"
                      % (inv, run)})
        steps.append({"what": "Kept snapshots: delete this run's snapshots once the change is accepted",
                      "hosts": kept, "command": "ansible-playbook prechange.snapshots.prune%s "
                      "-e revert_or_prune_prune_run_id=%s -e revert_or_prune_prune_select=owned%s"
                      % (inv, _quote(run_id), limit(kept))})
    return steps


def build(kind, run_id, check_mode, written, controller, records, not_reached=(), running=False, inventory=(),
          window=None, sets=None):
    """The whole report: a record for every host, the counts (which add up), the status, the next steps.

    ``not_reached`` lists hosts without a record (counted as not reached); records of hosts not
    reached (waiting / stopped) may also be in ``records``.
    """
    records = list(records) + [not_reached_record(host, "not_reached") for host in not_reached]
    summary = {"hosts": len(records)}
    for outcome in OUTCOMES:
        summary[outcome] = len([r for r in records if r["outcome"] == outcome])
    for action in ("deleted", "kept", "released"):
        summary[action] = len([r for r in records if r["action"] == action])
    left = [dict(r["left"], host=r["host"], vm=r["vm"]) for r in records if r["left"]]
    summary["left_on_platform"] = len(left)
    status = run_status(records, running)
    return {"kind": kind, "run_id": run_id, "check_mode": check_mode, "status": status, "written": written,
            "controller": controller, "hosts": records,
            "not_reached": [r["host"] for r in records if r["outcome"] in NOT_REACHED],
            "left_on_platform": left, "summary": summary,
            "next": next_steps(kind, run_id, records, inventory, check_mode),
            # The window's deadline and the change sets (module_utils/_window.py, _changeset.py), when used.
            "window": window, "sets": list(sets or [])}


def status_line(report, path=None):
    """One machine-readable line: PRECHANGE_STATUS=<status> run=<id> <outcome>=<n>... report=<path>."""
    counts = " ".join("%s=%d" % (o, report["summary"].get(o, 0)) for o in OUTCOMES)
    return "PRECHANGE_STATUS=%s run=%s check_mode=%s %s left_on_platform=%d%s" % (
        report["status"], report["run_id"], str(bool(report["check_mode"])).lower(), counts,
        report["summary"].get("left_on_platform", 0), " report=%s.json" % path if path else "")


def _action_text(record):
    action = record["action"]
    if action == "depends":
        return "would revert if the checks fail, else %s" % (record.get("if_passed") or "delete")
    return ACTION_WORDS.get(action, action)


def failure_message(record, report_path, check_mode=False):
    """What the host's final task says when its outcome is not ok."""
    text = "%s: %s" % (record["host"], record["outcome"])
    if record["outcome"] == "reverted":
        text += " to snapshot %s" % (record["snapshot"] or {}).get("name")
        if record["reason"]:
            text += " (%s)" % record["reason"]
    if record["error"]:
        text += ": %s" % record["error"]
    if record["outcome"] == "rehearsal_failed":
        text += " (%s; the change never reached the VM)" % record["rehearsal"]["reason"]
    if record["change"]["failed"]:
        text += ": the change failed: %s" % change_text(record["change"]["error"])
    if record["verify"]["failures"]:
        text += ": checks failed: %s" % "; ".join(record["verify"]["failures"])
    if record["reverify_passed"] is False:
        text += ": the restored host failed its checks: %s" % "; ".join(record["reverify_failures"])
    if check_mode:
        text = "(check mode, nothing was changed) " + text
    if report_path:
        text += "\n(report: %s.md)" % report_path
    return text


def change_text(error):
    """A failed change in one line: the task, its message, its rc and stderr."""
    text = "task '%s': %s" % (error.get("task", ""), error.get("msg", ""))
    if error.get("rc") not in (None, "", "None"):
        text += " (rc=%s)" % error["rc"]
    if error.get("stderr"):
        text += ": %s" % error["stderr"]
    return text


def cell(text):
    """One Markdown table cell: newlines folded, pipes escaped, so the row stays one row."""
    return re.sub(r"\s*\n\s*", " ", str(text)).replace("|", "\\|")


def _snapshot_cell(h, check_mode):
    snap = h["snapshot"] or {}
    if not snap:
        return "—"
    text = "%s (%s)" % (snap.get("name"), "would be created" if check_mode and snap.get("predicted")
                        else snap.get("action") or "found by its marker")
    extra = [("expires %s" % h["expires"]) if h.get("expires") else "",
             ("ticket %s" % h["ticket"]) if h.get("ticket") else "",
             ("by %s" % h["creator"]) if h.get("creator") else ""]
    extra = [e for e in extra if e]
    return text + ("; " + ", ".join(extra) if extra else "")


def _change_cell(h, check_mode, kind="maintenance"):
    if kind != "maintenance":
        return "—"
    change = h["change"]
    what = ", ".join(change["packages"] + change["changes"])
    if change["failed"]:
        text = "FAILED%s: %s" % (" in check mode" if check_mode else "", change_text(change["error"]))
    elif h["outcome"] in NOT_REACHED + ("refused", "rehearsal_failed") or (h["error"] and not h["snapshot"]):
        text = "not run"
    elif check_mode:
        text = "would run" + (" (%s)" % what if what else "")
    elif change["changed"] is None:
        text = "ran (changes not listed: see patch_user_changes)"
    else:
        text = what or ("changed" if change["changed"] else "nothing")
    if change["rebooted"]:
        text += ", rebooted"
    return text


def _verdict_cell(h, check_mode, kind="maintenance"):
    if kind != "maintenance":
        return "—"  # the restored host's checks are in the action column
    if check_mode:
        return "not run (check mode)"
    if h["verify"]["passed"] is True:
        return "passed"
    if h["verify"]["failures"]:
        return "failed: " + "; ".join(h["verify"]["failures"])
    return "—" if h["verify"]["passed"] is None else "failed"


def _action_cell(h):
    action = _action_text(h)
    if h["action"] == "kept" and h.get("expires"):
        action += " until %s" % h["expires"]
    if h["reason"] and h["action"] in ("reverted", "kept", "none"):
        action += " (%s)" % h["reason"]
    if h["reverify_passed"] is not None:
        action += "; the restored host %s" % ("passed its checks" if h["reverify_passed"] else
                                              "FAILED its checks: " + "; ".join(h.get("reverify_failures") or []))
    if h["error"]:
        action += " (%s: %s)" % ("refused" if h["outcome"] == "refused" else "error", h["error"])
    return action


def _size(value):
    return "?" if value is None else "%.2f GiB" % (value / 1024.0 ** 3)


def _capacity_rows(h):
    at_snapshot = h["capacity"].get("at_snapshot") or {}
    grown = h["capacity"].get("growth") or {}
    storages = at_snapshot.get("storages") or [{}]
    names = ", ".join(str(s.get("storage")) for s in storages if s.get("storage")) or "?"
    free = [s.get("free_bytes") for s in storages if s.get("free_bytes") is not None]
    if grown.get("growth_bytes") is None:
        change = "not measured" if grown else "(no decision yet)"
    else:
        change = "+%s (%s)" % (_size(grown["growth_bytes"]), grown.get("measured"))
    limit = "-"
    if grown.get("over"):
        limit = "over: %s" % ("reverted" if grown.get("action") == "stop" else "alert")
    elif grown.get("over") is False:
        limit = "within"
    elif grown.get("message"):
        limit = grown["message"]
    return ["| %s |" % " | ".join(cell(c) for c in (
        h["host"], names, _size(min(free)) if free else "?",
        _size(grown.get("free_after_bytes")) if grown else "-", change, limit))]


def markdown(report, picture=None):
    s = report["summary"]
    check = report["check_mode"]
    lines = ["# %s run %s%s" % (report["kind"].capitalize(), report["run_id"],
                                " (check mode: nothing was changed)" if check else ""),
             "",
             "**Status: %s.** Written %s on %s." % (report["status"], report["written"], report["controller"]),
             "",
             "Hosts: %d — ok %d, reverted %d, refused %d, error %d%s%s%s; not reached %d (stopped %d, in a later batch %d)."
             % (s["hosts"], s["ok"], s["reverted"], s["refused"], s["error"],
                ", would run %d" % s["check"] if check else "",
                ", rehearsal failed %d" % s["rehearsal_failed"] if s.get("rehearsal_failed") else "",
                ", deferred by the window %d" % s[DEFERRED] if s.get(DEFERRED) else "",
                s["not_reached"] + s["stopped"] + s["waiting"], s["stopped"], s["waiting"]),
             "Snapshots: deleted %d, kept %d, released %d; left on the platform %d."
             % (s["deleted"], s["kept"], s["released"], s["left_on_platform"]),
             "",
             "| Host | Outcome | VM | Snapshot | Change | Checks | Action |",
             "|------|---------|----|----------|--------|--------|--------|"]
    for h in report["hosts"]:
        lines.append("| %s |" % " | ".join(cell(c) for c in (
            h["host"], h["outcome"], "%s:%s" % (h["provider"], h["vm"]) if h["provider"] else h["vm"],
            _snapshot_cell(h, check), _change_cell(h, check, report["kind"]), _verdict_cell(h, check, report["kind"]),
            _action_cell(h))))
    space = [h for h in report["hosts"] if h.get("capacity")]
    if space:
        lines += ["", "## Storage and growth", "",
                  "| Host | Storage | Free at snapshot | Free at decision | Growth | Limit |",
                  "|------|---------|------------------|------------------|--------|-------|"]
        for h in space:
            lines += _capacity_rows(h)
    rehearsals = rehearsal_rows(report["hosts"])
    if rehearsals:
        lines += ["", "## Rehearsals", "", "| Host | Clone | When | Rehearsal | Real VM |",
                  "|------|-------|------|-----------|---------|"]
        lines += ["| %s |" % " | ".join(cell(c) for c in row) for row in rehearsals]
    lines += _window_lines(report.get("window"), report["hosts"]) + _set_lines(report.get("sets"))
    if report["left_on_platform"]:
        lines += ["", "## Left on the platform", ""]
        lines += ["- %s (VM %s): snapshot %s, %s%s%s" % (
            item["host"], item["vm"], item["snapshot"], item["phase"],
            ", expires %s" % item["expires"] if item.get("expires") else "",
            " (maybe: its create was sent but no answer came back; the revert playbook or the next run finds it "
            "by its marker)" if item.get("uncertain") else "")
            for item in report["left_on_platform"]]
    if report["next"]:
        lines += ["", "## Next", ""]
        for step in report["next"]:
            lines += ["- %s (%s):" % (step["what"], ", ".join(step["hosts"])), "",
                      "  ```", "  %s" % step["command"], "  ```"]
    audit = (report.get("audit") or {}).get("entries") or []
    if audit:
        lines += ["", "## Audit (%s)" % report["audit"].get("log"), "",
                  "| When | Who | Action | Outcome | VM | Snapshot | Ticket |", "|---|---|---|---|---|---|---|"]
        lines += ["| %s |" % " | ".join(cell(c) for c in (
            e.get("time"), (e.get("who") or {}).get("awx_user") or (e.get("who") or {}).get("user"), e.get("action"),
            e.get("outcome") + (": " + e["msg"] if e.get("msg") else ""), e.get("vm"), e.get("snapshot"),
            e.get("ticket") or "")) for e in audit]
    if picture:
        lines += ["", "## Timeline", "", "![timeline of the window](%s)" % picture]
    return "\n".join(lines) + "\n"


def _window_lines(window, hosts):
    """The report's window section: its end, the time left when the report was written, the deferred hosts."""
    if not window:
        return []
    lines = ["", "## Window", "", "- Ends %s; %s left when this report was written." % (
        window.get("end"), window.get("left") or "nothing")]
    if window.get("basis"):
        lines.append("- Expected: %s." % window["basis"])
    deferred = [h for h in hosts if h["outcome"] == DEFERRED]
    if deferred:
        lines.append("- Deferred by the deadline (not failed, nothing changed): %s."
                     % ", ".join(h["host"] for h in deferred))
    later = [h["host"] for h in hosts if (h.get("window") or {}).get("delete_deferred")]
    if later:
        lines.append("- Deletion deferred to the prune playbook (the snapshot is kept until it expires): %s."
                     % ", ".join(later))
    return lines


def _set_lines(sets):
    """The report's change sets: one row per set, its members, its outcome and why."""
    if not sets:
        return []
    lines = ["", "## Change sets", "", "| Set | Members | Outcome | Why |", "|-----|---------|---------|-----|"]
    for item in sets:
        lines.append("| %s |" % " | ".join(cell(c) for c in (
            item["set"], ", ".join(item["members"]), item["outcome"], item.get("why") or "—")))
    return lines


STAGE_COLOURS = {"snapshot": "#4e79a7", "change": "#f28e2b", "verify": "#59a14f", "revert_or_prune": "#e15759"}


def timeline_svg(report):
    """A picture of the window: one row per host, one bar per stage (SVG), or None without times."""
    rows = [h for h in report["hosts"] if h.get("timeline")]
    spans = [t for h in rows for span in h["timeline"].values() for t in span]
    if not spans:
        return None
    start, end = min(spans), max(spans)
    width, label, row_h, top = 900, 160, 22, 40
    scale = (width - label - 20) / max(end - start, 1.0)
    height = top + row_h * len(rows) + 50
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">'
           % (width, height),
           '<text x="10" y="20" font-size="14">%s run %s: %s, %s to %s UTC</text>' % (
               escape(report["kind"].capitalize()), escape(str(report["run_id"])), escape(report["status"]),
               datetime.fromtimestamp(start, timezone.utc).strftime("%H:%M:%S"),
               datetime.fromtimestamp(end, timezone.utc).strftime("%H:%M:%S"))]
    for i, h in enumerate(rows):
        y = top + i * row_h
        out.append('<text x="10" y="%d">%s (%s)</text>' % (y + 15, escape(h["host"]), escape(h["outcome"])))
        for stage in STAGES:
            span = h["timeline"].get(stage)
            if not span:
                continue
            x = label + (span[0] - start) * scale
            w = max((span[1] - span[0]) * scale, 2)
            out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s %s: %.1fs</title></rect>'
                       % (x, y + 3, w, row_h - 6, STAGE_COLOURS[stage], escape(h["host"]), stage, span[1] - span[0]))
    y = top + row_h * len(rows) + 20
    x = label
    for stage in STAGES:
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>'
                   % (x, y, STAGE_COLOURS[stage], x + 16, y + 11, stage.replace("_", " ")))
        x += 140
    out.append('<text x="%d" y="%d">%.0f s in all</text>' % (x, y + 11, end - start))
    out.append("</svg>")
    return "\n".join(out) + "\n"
