# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Before a snapshot is deleted: the user's veto, the retention policy, and the audit log.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

* ``veto_reason``: may this snapshot be deleted? The user's own tasks (a list of vetoed snapshots)
  and/or the user's command (run once per candidate, as sanoid's pre-pruning script) answer; a
  command that cannot run is a veto, never a deletion.
* ``retained``: which of a VM's finished snapshots a retention policy keeps (newest N, and
  hourly / daily / weekly / monthly tiers); a snapshot is kept if any rule keeps it.
* ``audit_entry`` / ``append_audit``: one JSON line per create, revert or delete, for people; the
  marker on the hypervisor stays the source of truth for safety.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
from dataclasses import dataclass

from ansible_collections.prechange.snapshots.plugins.module_utils._marker import PENDING, isoformat, parse_time, utcnow

VETO_OUTPUT_LIMIT = 500
RETENTION_TIERS = ("hourly", "daily", "weekly", "monthly")
RETENTION_PER = ("vm", "ticket")


# --- the veto -----------------------------------------------------------------------------------------


def candidate(vm_name, snap, provider):
    """What a veto is told about one snapshot that is about to be deleted."""
    owner = snap.owner or {}
    return {"vm": vm_name, "snapshot": snap.name, "snapshot_id": str(snap.id), "provider": provider,
            "run_id": owner.get("run"), "ticket": owner.get("ticket"), "created": owner.get("created"),
            "expires": owner.get("expires"), "phase": owner.get("phase"), "creator": owner.get("creator")}


def command_environment(cand, base=None):
    """The environment the veto command runs with: the controller's, plus the candidate's fields."""
    env = dict(os.environ if base is None else base)
    for key, name in (("vm", "VM"), ("snapshot", "SNAPSHOT"), ("snapshot_id", "SNAPSHOT_ID"), ("run_id", "RUN_ID"),
                      ("ticket", "TICKET"), ("created", "CREATED"), ("expires", "EXPIRES"),
                      ("provider", "PROVIDER"), ("phase", "PHASE")):
        env["PRECHANGE_" + name] = "" if cand.get(key) is None else str(cand[key])
    return env


def _argv(command):
    if isinstance(command, (list, tuple)):
        return [str(part) for part in command]
    return shlex.split(str(command))


def run_veto_command(command, cand, timeout=60, runner=subprocess.run):
    """Ask the user's command about one candidate: None when it may be deleted, else the veto's reason.

    The command gets the candidate as JSON on stdin and in ``PRECHANGE_*`` environment variables;
    exit 0 allows the deletion, any other exit vetoes it (its output is the reason). A command that
    cannot run (missing, not executable, timing out) vetoes too: no answer is never a yes.
    """
    argv = _argv(command)
    name = argv[0] if argv else ""
    if not argv:
        return "revert_or_prune_veto_command is empty, so it cannot answer; a veto that cannot run keeps the snapshot"
    try:
        proc = runner(argv, input=json.dumps(cand), capture_output=True, text=True, timeout=timeout,
                      env=command_environment(cand), check=False)
    except subprocess.TimeoutExpired:
        return "the veto command '%s' did not answer within %ss; a veto that cannot run keeps the snapshot" % (
            name, timeout)
    except FileNotFoundError:
        return "the veto command '%s' was not found; a veto that cannot run keeps the snapshot" % name
    except PermissionError:
        return "the veto command '%s' is not executable; a veto that cannot run keeps the snapshot" % name
    except OSError as error:
        return "the veto command '%s' could not run (%s); a veto that cannot run keeps the snapshot" % (
            name, error.strerror or error)
    if proc.returncode == 0:
        return None
    output = " ".join(((proc.stdout or "") + " " + (proc.stderr or "")).split())
    if len(output) > VETO_OUTPUT_LIMIT:
        output = output[:VETO_OUTPUT_LIMIT] + "..."
    how = ("killed by signal %d" % -proc.returncode) if proc.returncode < 0 else "exit %d" % proc.returncode
    return "vetoed by revert_or_prune_veto_command (%s): %s" % (how, output or "no reason given")


def _listed(vetoed, cand):
    """The reason a tasks file gave for vetoing ``cand`` (None: not vetoed).

    ``revert_or_prune_vetoed`` lists snapshot names or ids, or dicts ``{snapshot, vm, reason}``.
    """
    for entry in vetoed or []:
        if isinstance(entry, dict):
            which = str(entry.get("snapshot") or entry.get("snapshot_id") or entry.get("name") or "")
            if entry.get("vm") not in (None, "") and str(entry["vm"]) != str(cand["vm"]):
                continue
            reason = entry.get("reason")
        else:
            which, reason = str(entry), None
        if which and which in (cand["snapshot"], cand["snapshot_id"]):
            return reason or "listed in revert_or_prune_vetoed"
    return None


def veto_reason(cand, request, runner=subprocess.run):
    """None when ``cand`` may be deleted, else why not; the tasks' list is asked first, then the command.

    ``request`` carries the user's settings: ``veto_tasks_file`` with ``vetoed`` (what the tasks set) and
    ``reviewed`` (the candidate ids the tasks were shown), ``veto_command`` and ``veto_timeout``. A
    candidate the tasks were never shown (it became one after they ran) is not deleted either.
    """
    if request.get("veto_tasks_file"):
        listed = _listed(request.get("vetoed"), cand)
        if listed:
            return "vetoed by revert_or_prune_veto_tasks_file: %s" % listed
        reviewed = request.get("reviewed")
        if reviewed is not None and cand["snapshot_id"] not in {str(r) for r in reviewed}:
            return ("it was not among the candidates revert_or_prune_veto_tasks_file was shown (it became one after "
                    "the tasks ran); it is asked about again next time")
    if request.get("veto_command"):
        return run_veto_command(request["veto_command"], cand, float(request.get("veto_timeout") or 60), runner)
    return None


# --- retention ----------------------------------------------------------------------------------------


@dataclass
class Retention:
    """Restore points to keep per VM (or per VM and ticket): the newest ``last``, and one per period for
    the newest ``hourly`` hours, ``daily`` days, ``weekly`` ISO weeks and ``monthly`` months that have one."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    per: str = "vm"

    @property
    def active(self):
        return any((self.last, self.hourly, self.daily, self.weekly, self.monthly))


def _period(tier, moment):
    if tier == "hourly":
        return moment.strftime("%Y-%m-%dT%H")
    if tier == "daily":
        return moment.strftime("%Y-%m-%d")
    if tier == "weekly":
        year, week, _day = moment.isocalendar()
        return "%04d-W%02d" % (year, week)
    return moment.strftime("%Y-%m")


def restore_points(snapshots):
    """The snapshots a retention policy counts: ours, with a created time, and of a finished run."""
    points = []
    for snap in snapshots:
        owner = snap.owner or {}
        if not owner or owner.get("phase") == PENDING:
            continue  # not ours, or a run that has no verdict yet (live or interrupted)
        try:
            created = parse_time(owner.get("created"))
        except ValueError:
            continue
        if created is not None:
            points.append((created, snap))
    return points


def retained(snapshots, policy):
    """``{snapshot id: [rule, ...]}``: which of a VM's restore points the policy keeps, and by which rules."""
    kept = {}
    if not policy or not policy.active:
        return kept
    groups = {}
    for created, snap in restore_points(snapshots):
        key = (snap.owner or {}).get("ticket") or "" if policy.per == "ticket" else ""
        groups.setdefault(key, []).append((created, snap))
    for key, points in groups.items():
        points.sort(key=lambda p: (p[0], str(p[1].id)), reverse=True)  # newest first
        label = " of ticket %s" % key if policy.per == "ticket" and key else ""
        for index, (_created, snap) in enumerate(points[:policy.last]):
            kept.setdefault(str(snap.id), []).append("last %d%s (#%d)" % (policy.last, label, index + 1))
        for tier in RETENTION_TIERS:
            count = getattr(policy, tier)
            seen = []
            for created, snap in points:
                period = _period(tier, created)
                if period in seen:
                    continue
                if len(seen) >= count:
                    break
                seen.append(period)
                kept.setdefault(str(snap.id), []).append("%s %s%s" % (tier, period, label))
    return kept


# --- the audit log ------------------------------------------------------------------------------------


def audit_entry(action, outcome, who, vm=None, provider=None, snapshot=None, snapshot_id=None, run_id=None,
                ticket=None, msg=None, check_mode=False, now=None):
    """One line of the audit log. ``action``: create, revert or delete; ``outcome``: ok, vetoed or failed."""
    entry = {"time": isoformat(now or utcnow()), "action": action, "outcome": outcome,
             "who": dict(who or {}), "ticket": ticket, "run_id": run_id, "provider": provider, "vm": vm,
             "snapshot": snapshot, "snapshot_id": None if snapshot_id is None else str(snapshot_id)}
    if check_mode:
        entry["check_mode"] = True
    if msg:
        entry["msg"] = msg
    return entry


def append_audit(path, entries):
    """Append ``entries`` to the JSON-lines log at ``path`` (one locked write, so two runs never interleave)."""
    if not path or not entries:
        return
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    text = "".join(json.dumps(entry, sort_keys=False, default=str) + "\n" for entry in entries)
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.write(text)
            handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_audit(path, run_id=None):
    """The log's entries (of one run when ``run_id`` is given); a missing file or a bad line is skipped."""
    entries = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and (run_id is None or entry.get("run_id") == run_id):
                    entries.append(entry)
    except (OSError, TypeError):
        return []
    return entries


def _settle_action(kind, request, result):
    if kind == "lookup":
        return request.get("action") or "revert"
    action = request.get("action")
    if action and action != "auto":
        return action
    return {"reverted": "revert", "deleted": "delete"}.get(result.get("action"), result.get("action"))


def audit_entries(kind, result, request, who, run_id, now=None):
    """The audit log's lines for one host's result of one workflow call (snapshot, settle, lookup, prune)."""
    vm = result.get("vm") if isinstance(result.get("vm"), dict) else {"name": result.get("vm") or request.get("vm")}
    snap = result.get("snapshot") if isinstance(result.get("snapshot"), dict) else {}
    record = request.get("record") or {}
    owner = snap.get("owner") or record.get("owner") or {}
    base = dict(who=who, vm=vm.get("name"), provider=request.get("provider"), now=now)

    def one(action, outcome, name, snap_id, ticket, run, msg=None):
        return audit_entry(action, outcome, snapshot=name, snapshot_id=snap_id, ticket=ticket,
                           run_id=run or run_id, msg=msg, **base)

    if kind == "snapshot":
        if result.get("failed"):
            return [one("create", "failed", request.get("name"), None, request.get("ticket"), run_id, result.get("msg"))]
        if result.get("action") != "created":
            return []  # adopted or only checked: nothing was made
        return [one("create", "ok", snap.get("name"), snap.get("id"), owner.get("ticket"), owner.get("run"))]
    if kind in ("settle", "lookup"):
        name = snap.get("name") or record.get("name") or request.get("snapshot_name")
        run = owner.get("run") or record.get("run_id") or request.get("run_id")
        if result.get("failed"):
            action = result.get("action") or _settle_action(kind, request, {})
            if action in ("revert", "delete", "reverted", "deleted"):
                return [one({"reverted": "revert", "deleted": "delete"}.get(action, action), "failed", name,
                            record.get("id"), owner.get("ticket"), run, result.get("msg"))]
            return []
        if result.get("vetoed"):
            return [one("delete", "vetoed", name, snap.get("id"), owner.get("ticket"), run, result["vetoed"])]
        action = {"reverted": "revert", "deleted": "delete"}.get(result.get("action"))
        return [one(action, "ok", name, snap.get("id"), owner.get("ticket"), run)] if action else []
    if kind == "prune":
        if result.get("failed"):
            return [one("delete", "failed", result.get("snapshot"), None, None, None, result.get("msg"))]
        entries = []
        for gone in result.get("deleted") or []:
            mark = gone.get("owner") or {}
            entries.append(one("delete", "ok", gone.get("name"), gone.get("id"), mark.get("ticket"), mark.get("run")))
        for kept in result.get("vetoed") or []:
            entries.append(one("delete", "vetoed", kept.get("name"), kept.get("id"), kept.get("ticket"),
                               kept.get("run"), kept.get("reason")))
        for other in result.get("others") or []:
            entries += audit_entries("prune", dict(other, others=[]), {"provider": request.get("provider")}, who,
                                     run_id, now)
        return entries
    return []


def prune_summary(result, check_mode=False):
    """A prune result (``_workflow._prune_vm``, with the ``others`` of an endpoint sweep) as console lines:
    what was deleted (or would be, in check mode), kept by the retention policy, vetoed, or held by a live run."""
    lines = []
    for entry in [result] + list(result.get("others") or []):
        vm = (entry.get("vm") or {}).get("name") or "?"
        parts = []
        deleted = entry.get("deleted") or []
        if deleted:
            parts.append("%s %d: %s" % ("would delete" if check_mode else "deleted", len(deleted), ", ".join(
                "%s (%s)" % (s.get("name"), (s.get("owner") or {}).get("ticket") or "no ticket") for s in deleted)))
        retained_ = entry.get("retained") or []
        if retained_:
            parts.append("kept by the retention policy %d: %s" % (len(retained_), ", ".join(
                "%s (%s)" % (s.get("name"), ", ".join(s.get("rules") or [])) for s in retained_)))
        vetoed = entry.get("vetoed") or []
        if vetoed:
            parts.append("vetoed %d: %s" % (len(vetoed), "; ".join(
                "%s (%s)" % (s.get("name"), s.get("reason")) for s in vetoed)))
        held = entry.get("held") or []
        if held:
            parts.append("held by a live run %d: %s" % (len(held), ", ".join(
                "%s (run %s until %s)" % (s.get("name"), s.get("run"), s.get("lease")) for s in held)))
        lines.append("VM %s: %s" % (vm, "; ".join(parts) if parts else "nothing to prune"))
    return lines
