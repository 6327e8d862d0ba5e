# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: window
type: stdout
short_description: A live view of a maintenance window, and a summary that says what to do next
version_added: 1.0.0
description:
  - A stdout callback for the maintenance playbooks of C(prechange.snapshots) (and any play whose tasks set
    the task variable C(prechange_stage)). It is the default output callback with a compact view of the window
    on top.
  - At each play start and serial batch it prints one line, C(batch n of m) and the hosts of the batch;
    when a stage (C(snapshot), C(change), C(verify), C(revert_or_prune), C(reverify), C(report)) starts, one line
    with the stage and its hosts; when the stage ends, one line per host with what happened (the snapshot
    made, the verdict, the revert or deletion), taken from the results of the collection's workflow steps.
  - When the maintenance window has a deadline (C(maintenance_window_end) or C(maintenance_window_minutes)), each
    of its gates (stage C(window)) prints one line with the time left and what it decided, and the hosts it
    deferred; the summary says when the window ends, the time left, the deferred hosts and each change set.
  - Tasks without a stage in such a play, and the ok, changed and skipped results of tasks within a stage,
    print nothing. A failure that the play handles (C(ignore_errors), a C(rescue) section) prints one line
    with the host and the message. A failure that ends a host prints the default callback's error block.
  - At the end it prints a condensed recap and a summary table from the run report (C(prechange.snapshots.workflow)
    C(step=report)); one row per host with its outcome, snapshot and action, the report's path, and the next
    commands the report names.
  - When the run stops before its end (Ctrl-C, SIGTERM, an error), it prints the run id and the command that
    resumes the hosts the report does not have yet.
  - Plays without any C(prechange_stage), warnings, deprecations, C(--diff) and every verbosity of C(-v) and
    above keep the default callback's output (at C(-v) and above, with the window's lines added).
  - Enable it with E(ANSIBLE_STDOUT_CALLBACK=prechange.snapshots.window), or C(stdout_callback) in the
    C([defaults]) section of C(ansible.cfg).
extends_documentation_fragment:
  - ansible.builtin.default_callback
  - ansible.builtin.result_format_callback
options:
  host_list_limit:
    description:
      - How many host names a batch or stage line lists before it says how many more there are.
    type: int
    default: 12
    env:
      - name: PRECHANGE_WINDOW_HOST_LIST_LIMIT
    ini:
      - section: callback_window
        key: host_list_limit
  show_time:
    description:
      - Print the controller's clock time on the batch and stage lines.
    type: bool
    default: true
    env:
      - name: PRECHANGE_WINDOW_SHOW_TIME
    ini:
      - section: callback_window
        key: show_time
requirements:
  - set as the stdout callback in the configuration
notes:
  - The stage of a task is the literal value of its variable C(prechange_stage), set with C(vars) on the task or
    on a block or include above it; templated values are ignored.
  - The summary shows only what the run report says; without a report (another playbook) there is no summary table.
"""

EXAMPLES = r"""
# On the command line:
#   ANSIBLE_STDOUT_CALLBACK=prechange.snapshots.window ansible-playbook prechange.snapshots.maintenance -i inventory
#
# Or in ansible.cfg:
#   [defaults]
#   stdout_callback = prechange.snapshots.window
#
# Your own play shows its stages in the window when its tasks set prechange_stage:
- name: My window
  hosts: app
  serial: 2
  tasks:
    - name: Upgrade the app
      ansible.builtin.command: /usr/local/bin/upgrade-app
      changed_when: true
      vars:
        prechange_stage: change
"""

import atexit
import os
import shlex
import signal
import sys
import time

from ansible import constants as C
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.callback.default import CallbackModule as DefaultCallback
from ansible.utils.helpers import pct_to_int

STAGE_VAR = "prechange_stage"
WORKFLOW_ACTIONS = frozenset(("prechange.snapshots.workflow",))
REPORT_STAGE = "report"
NOTE_WIDTH = 100
# What a failed --limit / -e pair of arguments looks like on the command line.
_LIMIT_FLAGS = ("-l", "--limit")
_EXTRA_FLAGS = ("-e", "--extra-vars")
_RESUME_KEYS = ("prechange_run_id=", "snapshot_takeover=")
_SECRET_WORDS = ("password", "secret", "token", "passwd")


def serial_batches(hosts, serial):
    """The play's serial batches, as ansible-playbook makes them (PlaybookExecutor._get_serialized_batches).

    ``hosts`` is the play's host list (any order), ``serial`` the play's post-validated ``serial`` list
    (numbers, numeric strings or percentages). Returns a list of host lists.
    """
    remaining = list(hosts)
    total = len(remaining)
    serial = list(serial or []) or [-1]
    batches, item = [], 0
    while remaining:
        size = pct_to_int(serial[item], total)
        if size <= 0:
            batches.append(remaining)
            break
        batches.append(remaining[:size])
        remaining = remaining[size:]
        item = min(item + 1, len(serial) - 1)
    return batches


def task_stage(task):
    """The literal ``prechange_stage`` of a task (its own vars, its blocks' and includes'), else None."""
    try:
        value = task.get_vars().get(STAGE_VAR)
    except Exception:  # pylint: disable=broad-except
        return None
    if isinstance(value, str) and value.strip() and "{{" not in value and "{%" not in value:
        return str(value).strip()
    return None


def _children(node):
    for name in ("block", "rescue", "always"):
        yield from getattr(node, name, None) or []


def play_is_staged(play):
    """Whether any task or block that the play loaded (static imports included) sets ``prechange_stage``."""
    pending = []
    for name in ("pre_tasks", "tasks", "post_tasks"):
        pending.extend(getattr(play, name, None) or [])
    for role in getattr(play, "roles", None) or []:
        try:
            pending.extend(role.get_task_blocks())
        except Exception:  # pylint: disable=broad-except
            continue
    seen = 0
    while pending and seen < 100000:
        seen += 1
        node = pending.pop()
        variables = getattr(node, "vars", None)
        if isinstance(variables, dict) and STAGE_VAR in variables:
            return True
        pending.extend(_children(node))
    return False


def is_rescued(task):
    """Whether a failure of ``task`` lands in the rescue section of a block around it."""
    node = task
    parent = getattr(node, "_parent", None)
    depth = 0
    while parent is not None and depth < 200:
        depth += 1
        if getattr(parent, "rescue", None) and any(
                getattr(child, "_uuid", None) == getattr(node, "_uuid", object()) for child in parent.block or []):
            return True
        node, parent = parent, getattr(parent, "_parent", None)
    return False


def first_line(text, width=NOTE_WIDTH):
    """The first line of a message, short."""
    text = " ".join((str(text or "").strip().splitlines() or [""])[0].split())
    return text if len(text) <= width else text[:width - 1] + "…"


def host_list(hosts, limit):
    hosts = list(hosts)
    if limit and len(hosts) > limit:
        return "%s … (+%d)" % (" ".join(hosts[:limit]), len(hosts) - limit)
    return " ".join(hosts)


def workflow_text(kind, mine):
    """What one host's result of a workflow ``run`` step says, in one line."""
    if not isinstance(mine, dict):
        return "no result", True
    if mine.get("failed"):
        return "failed: %s" % first_line(mine.get("msg") or "failed"), True
    if "deleted" in mine or "held" in mine:
        return "pruned: %d deleted, %d held" % (len(mine.get("deleted") or []), len(mine.get("held") or [])), False
    action = mine.get("action") or "done"
    name = (mine.get("snapshot") or {}).get("name")
    text = "%s '%s'" % (action, name) if name else action
    if mine.get("predicted"):
        text += " (predicted)"
    if action == "kept":
        expires = ((mine.get("snapshot") or {}).get("owner") or {}).get("expires")
        if expires:
            text += " until %s" % expires
    if mine.get("reason") and kind != "snapshot":
        text += " (%s)" % first_line(mine["reason"], 60)
    if mine.get("warnings"):
        text += " [%d warning%s]" % (len(mine["warnings"]), "" if len(mine["warnings"]) == 1 else "s")
    return text, False


def record_note(record):
    """The one note of a report record: its error, else the verdict's failures, else the change's, else why."""
    if record.get("error"):
        return record["error"]
    failures = (record.get("verify") or {}).get("failures") or []
    if failures:
        return "verify failed: " + "; ".join(str(f) for f in failures)
    change = record.get("change") or {}
    if change.get("failed"):
        error = change.get("error") or {}
        return "change failed: %s: %s" % (error.get("task", ""), error.get("msg", ""))
    if record.get("reverify_passed") is False:
        return "re-verify failed: " + "; ".join(str(f) for f in record.get("reverify_failures") or [])
    return record.get("reason") or ""


OUTCOME_COLORS = {"ok": C.COLOR_OK, "check": C.COLOR_OK, "reverted": C.COLOR_WARN, "refused": C.COLOR_ERROR,
                  "error": C.COLOR_ERROR, "deferred": C.COLOR_WARN}
# The report's outcomes, in its own order (module_utils/_report.py); hosts with waiting, stopped and not_reached
# were not reached; deferred ones were not started because of the window's deadline.
OUTCOME_ORDER = ("ok", "reverted", "refused", "error", "check", "waiting", "stopped", "not_reached", "deferred")
NOT_REACHED = ("waiting", "stopped", "not_reached")


def counts_text(counts):
    """The report's counts, the non-zero ones, in the report's order."""
    parts = ["%s %s" % (counts[k], k.replace("_", " ")) for k in OUTCOME_ORDER if counts.get(k)]
    left = counts.get("left_on_platform")
    if left:
        parts.append("%s snapshot%s left on the platform" % (left, "" if left == 1 else "s"))
    return ", ".join(parts) or "no hosts"


def report_files(path):
    """The report's files that are there (path is the report's path without an extension)."""
    found = [ext for ext in (".md", ".json", ".svg") if os.path.exists(path + ext)]
    return "%s%s%s" % (path, found[0] if found else ".md",
                       " (and %s)" % ", ".join(found[1:]) if len(found) > 1 else "")


def summary_lines(report, path):
    """The summary of a run report: [(text, color)], one row per host, then the report's path and next steps."""
    report = report or {}
    counts = report.get("summary") or {}
    title = "SUMMARY of run %s" % report.get("run_id", "?")
    if report.get("check_mode"):
        title += " (check mode: nothing was changed)"
    if counts:
        title += ": " + counts_text(counts)
    lines = [(title, C.COLOR_HIGHLIGHT)]
    if report.get("status"):
        lines.append(("status: %s" % report["status"], C.COLOR_HIGHLIGHT))
    rows = []
    for record in report.get("hosts") or []:
        snapshot = record.get("snapshot") or {}
        rows.append((record.get("host", "?"), record.get("outcome", "?"), snapshot.get("name") or "-",
                     record.get("action") or "-", first_line(record_note(record), 80)))
    named = {row[0] for row in rows}
    for host in report.get("not_reached") or []:
        if host not in named:
            rows.append((host, "not_reached", "-", "-", ""))
    header = ("host", "outcome", "snapshot", "action", "note")
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(4)]
    template = "  " + "  ".join("%%-%ds" % w for w in widths) + "  %s"
    lines.append(((template % header).rstrip(), None))
    for row in rows:
        lines.append(((template % row).rstrip(), OUTCOME_COLORS.get(row[1], C.COLOR_SKIP)))
    window = report.get("window") or {}
    if window.get("end"):
        deferred = [r.get("host") for r in report.get("hosts") or [] if r.get("outcome") == "deferred"]
        lines.append(("window: ends %s, %s left%s" % (window["end"], window.get("left") or "nothing",
                                                      "; deferred: %s" % host_list(deferred, 12) if deferred else ""),
                      C.COLOR_HIGHLIGHT))
    for item in report.get("sets") or []:
        lines.append(("set %s (%s): %s%s" % (item.get("set"), ", ".join(item.get("members") or []), item.get("outcome"),
                                             " - %s" % first_line(item["why"], 100) if item.get("why") else ""),
                      OUTCOME_COLORS.get(item.get("outcome"), C.COLOR_SKIP)))
    if path:
        lines.append(("report: %s" % report_files(path), C.COLOR_HIGHLIGHT))
    steps = [step for step in report.get("next") or [] if isinstance(step, dict) and step.get("command")]
    if steps:
        lines.append(("next:", C.COLOR_HIGHLIGHT))
        for step in steps:
            hosts = step.get("hosts") or []
            lines.append(("  - %s%s:" % (step.get("what") or "run", " (%s)" % host_list(hosts, 12) if hosts else ""),
                          C.COLOR_HIGHLIGHT))
            lines.append(("    %s" % step["command"], C.COLOR_HIGHLIGHT))
    return lines


def _secret(value):
    lowered = value.lower()
    return not value.startswith("@") and any(word in lowered for word in _SECRET_WORDS)


def resume_command(argv, run_id, limit=None):
    """This run's command line again, with the run id (and the lease taken over), for the given hosts."""
    args, out, index = list(argv[1:]), [os.path.basename(argv[0]) if argv else "ansible-playbook"], 0
    while index < len(args):
        arg = args[index]
        flag, value, used = arg, None, 1
        if arg in _EXTRA_FLAGS + _LIMIT_FLAGS and index + 1 < len(args):
            value, used = args[index + 1], 2
        elif arg.startswith("--extra-vars=") or arg.startswith("--limit="):
            flag, value = arg.split("=", 1)
        elif len(arg) > 2 and arg[:2] in ("-e", "-l") and not arg.startswith("--"):
            flag, value = arg[:2], arg[2:]
        index += used
        if value is None:
            out.append(arg)
            continue
        if flag in _LIMIT_FLAGS and limit:
            continue
        if flag in _EXTRA_FLAGS:
            if value.startswith(_RESUME_KEYS):
                continue
            if _secret(value):
                out += [flag, "<the same as in this run>"]
                continue
        out += [flag, value]
    out += ["-e", "prechange_run_id=%s" % run_id, "-e", "snapshot_takeover=true"]
    if limit:
        out += ["--limit", ",".join(limit)]
    return " ".join(arg if arg == "<the same as in this run>" else shlex.quote(arg) for arg in out)


def _result(result):
    data = getattr(result, "result", None)
    if not isinstance(data, dict):
        data = getattr(result, "_result", None)
    return data if isinstance(data, dict) else {}


def _task(result):
    return getattr(result, "task", None) or getattr(result, "_task")


def _host(result):
    host = getattr(result, "host", None) or getattr(result, "_host")
    return host.get_name()


def _is_workflow(task):
    action = getattr(task, "resolved_action", None) or task.action
    return action in WORKFLOW_ACTIONS or task.action in WORKFLOW_ACTIONS


class CallbackModule(DefaultCallback):
    """The default stdout callback, with a live view of the window and a summary at the end."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "prechange.snapshots.window"

    def __init__(self):
        super().__init__()
        self._pid = os.getpid()
        self._plays = {}  # play uuid -> {"staged", "sizes", "total", "hosts", "started"}
        self._staged = False  # the current play sets prechange_stage somewhere
        self._batch = []  # host names of the current batch
        self._batch_shown = False
        self._batch_number = (1, 1)
        self._width = 8
        self._stage = None
        self._stage_shown = False
        self._no_hosts_shown = False
        self._notes = {}  # host -> what the current stage did on it
        self._out = set()  # hosts of this batch that left the window (no snapshot, or failed for good)
        self._items_shown = set()  # (task uuid, host) whose failed loop items were printed
        self._stage_cache = {}  # task uuid -> stage
        self._rescue_cache = {}  # task uuid -> bool
        self._run_id = None
        self._report = None
        self._report_path = None
        self._play_hosts = []  # every host of the staged play, in order (for the resume command)
        self._finished = False
        self._stopped_shown = False
        self._hooked = False

    # --- helpers -----------------------------------------------------------------------------------

    def _quiet(self, stage):
        return self._display.verbosity < 1 and (stage is not None or self._staged)

    def _stage_of(self, task):
        uuid = getattr(task, "_uuid", None)
        if uuid not in self._stage_cache:
            self._stage_cache[uuid] = task_stage(task)
        return self._stage_cache[uuid]

    def _rescued(self, task):
        uuid = getattr(task, "_uuid", None)
        if uuid not in self._rescue_cache:
            self._rescue_cache[uuid] = is_rescued(task)
        return self._rescue_cache[uuid]

    def _say(self, text, color=None):
        self._display.display(text, color=color)

    def _clock(self):
        return " (%s)" % time.strftime("%H:%M:%S") if self.get_option("show_time") else ""

    def _host_line(self, host, stage, text, color=None):
        self._say("  %s  %s  %s" % (host.ljust(self._width), (stage or "-").ljust(15), text), color)

    def _note(self, host):
        return self._notes.setdefault(host, {"ran": False, "changed": False, "failed": None, "text": None,
                                             "bad": False})

    # --- batches and stages ----------------------------------------------------------------------------

    def v2_playbook_on_start(self, playbook):
        super().v2_playbook_on_start(playbook)
        self._hook_signals()

    def v2_playbook_on_play_start(self, play):
        self._close_stage()
        info = self._plays.get(play._uuid)
        if info is None:
            inventory = play.get_variable_manager()._inventory  # pylint: disable=protected-access
            hosts = [h.name for h in inventory.get_hosts(play.hosts, ignore_restrictions=True)]
            sizes = [len(batch) for batch in serial_batches(hosts, play.serial)]
            info = {"staged": play_is_staged(play), "sizes": sizes, "total": len(hosts), "hosts": hosts,
                    "started": 0}
            self._plays[play._uuid] = info
        info["started"] += 1
        inventory = play.get_variable_manager()._inventory  # pylint: disable=protected-access
        self._batch = [h.name for h in inventory.get_hosts(play.hosts)]
        self._batch_number = (info["started"], max(len(info["sizes"]), info["started"]))
        self._batch_shown = False
        self._no_hosts_shown = False
        self._out = set()
        self._staged = info["staged"]
        self._width = min(30, max([len(h) for h in self._batch] + [4]))
        if self._staged:
            self._play_hosts = info["hosts"]
        if self._quiet(None):
            self._play = play
            if info["started"] == 1:
                name = play.get_name().strip()
                check = " [CHECK MODE]" if play.check_mode and self.get_option("check_mode_markers") else ""
                self._say("PLAY [%s]%s: %d hosts in %d batch%s" % (
                    name, check, info["total"], len(info["sizes"]), "" if len(info["sizes"]) == 1 else "es"),
                    C.COLOR_HIGHLIGHT)
        else:
            super().v2_playbook_on_play_start(play)
        if self._staged:
            self._show_batch()

    def _show_batch(self):
        if not self._batch_shown:
            self._batch_shown = True
            number, count = self._batch_number
            hosts = host_list(self._batch, self.get_option("host_list_limit"))
            self._say("batch %d of %d: %s%s" % (number, count, hosts, self._clock()), C.COLOR_HIGHLIGHT)

    def _task_seen(self, task):
        """Bookkeeping of a task start: the stage it belongs to."""
        stage = self._stage_of(task)
        if stage != self._stage:
            self._close_stage()
            if stage is not None:
                self._open_stage(stage, bool(getattr(task, "when", None)))
        else:
            self._show_stage(ran_only=True)
        return stage

    def _open_stage(self, stage, conditional):
        self._stage = stage
        self._stage_shown = False
        self._notes = {}
        if not conditional:
            self._show_stage()

    def _show_stage(self, ran_only=False):
        """The stage's line, with the hosts in it.

        A stage whose first task runs on every host of the batch still in the window says so at once. One
        whose first task has a condition says it after that task, naming the hosts it ran on (and nothing
        when it ran on none).
        """
        if self._stage is None or self._stage_shown:
            return
        if ran_only:
            hosts = [h for h in self._batch if (self._notes.get(h) or {}).get("ran")]
            if not hosts:
                return
        else:
            hosts = [h for h in self._batch if h not in self._out]
        self._show_batch()
        self._stage_shown = True
        self._say("-- %s: %s%s" % (self._stage, host_list(hosts, self.get_option("host_list_limit")),
                                   self._clock()), C.COLOR_VERBOSE)

    def _close_stage(self):
        self._show_stage(ran_only=True)
        stage, self._stage = self._stage, None
        if stage is None or stage == REPORT_STAGE:
            self._notes = {}
            return
        for host in self._batch:
            note = self._notes.get(host)
            if not note or not note["ran"]:
                continue
            if note["text"] is not None:
                text, bad = note["text"], note["bad"]
            elif note["failed"] is not None:
                text, bad = note["failed"], True
            else:
                text, bad = ("changed" if note["changed"] else "ok"), False
            color = C.COLOR_ERROR if bad else (C.COLOR_CHANGED if note["changed"] or note["text"] else C.COLOR_OK)
            self._host_line(host, stage, text, color)
        self._notes = {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        stage = self._task_seen(task)
        if self._quiet(stage):
            self._remember_task(task, "TASK")
        else:
            super().v2_playbook_on_task_start(task, is_conditional)

    def v2_playbook_on_handler_task_start(self, task):
        stage = self._task_seen(task)
        if self._quiet(stage):
            self._remember_task(task, "RUNNING HANDLER")
        else:
            super().v2_playbook_on_handler_task_start(task)

    def _remember_task(self, task, prefix):
        """What the default callback keeps of a task start, so that a later error block has its banner."""
        self._task_type_cache[task._uuid] = prefix
        self._last_task_name = task.get_name().strip()

    # --- results -----------------------------------------------------------------------------------------

    def _record(self, result, status):
        """Bookkeeping of one result: the workflow's answers, the verdicts, what ran where."""
        task, host, data = _task(result), _host(result), _result(result)
        stage = self._stage_of(task)
        if _is_workflow(task):
            self._workflow(task, data)
        if stage is None or stage != self._stage:
            return stage
        note = self._note(host)
        # A run_once task answers for the whole batch, on the first host: it says nothing about which
        # hosts are in the stage, so it does not mark its host as the one that ran.
        if status != "skipped" and not getattr(task, "run_once", False):
            note["ran"] = True
        if data.get("changed"):
            note["changed"] = True
        if status in ("failed", "unreachable"):
            note["failed"] = status
            self._show_stage(ran_only=True)  # before the failure's line
        facts = data.get("ansible_facts") or {}
        if stage == "reverify" and "revert_or_prune_reverify_passed" in facts:
            self._verdict(note, facts.get("revert_or_prune_reverify_passed"),
                          facts.get("revert_or_prune_reverify_failures"))
        elif stage in ("verify", "reverify") and "verify_passed" in facts:
            self._verdict(note, facts.get("verify_passed"), facts.get("verify_failures"))
        return stage

    @staticmethod
    def _verdict(note, passed, failures):
        passed = boolean(passed, strict=False) if passed is not None else None
        if passed:
            note["text"], note["bad"] = "passed", False
        else:
            note["text"] = "failed: %s" % first_line("; ".join(str(f) for f in failures or []) or "no detail")
            note["bad"] = True

    def _workflow(self, task, data):
        step = task.args.get("step")
        if step == "start":
            run = (data.get("ansible_facts") or {}).get("prechange_run") or {}
            if run.get("run_id"):
                self._run_id = run["run_id"]
                self._hook_exit()
        elif step == "report":
            if isinstance(data.get("report"), dict):
                self._report, self._report_path = data["report"], data.get("path")
                self._run_id = self._report.get("run_id") or self._run_id
            counts = (data.get("report") or {}).get("summary") or {}
            if data.get("path") and counts and self._quiet(self._stage):
                self._say("  report written: %s.md (%s)" % (data["path"], counts_text(counts)), C.COLOR_HIGHLIGHT)
        elif step == "window" and data.get("active"):
            # The window's gates (module_utils/_window.py): the time left, and the hosts they deferred.
            deferred = [h for h in self._batch if ((data.get("hosts") or {}).get(h) or {}).get("deferred")]
            later = [h for h in self._batch if ((data.get("hosts") or {}).get(h) or {}).get("defer_delete")]
            self._out.update(deferred)
            text = "  window: %s" % first_line(data.get("msg") or "", 160)
            if deferred:
                text += "\n  window: deferred: %s" % host_list(deferred, self.get_option("host_list_limit"))
            if later:
                text += "\n  window: deletion deferred to the prune playbook: %s" % host_list(
                    later, self.get_option("host_list_limit"))
            if self._quiet(self._stage_of(task)):
                self._show_batch()
                self._say(text, C.COLOR_WARN if deferred or later else C.COLOR_VERBOSE)
        elif step == "run" and isinstance(data.get("hosts"), dict):
            kind = task.args.get("kind")
            if kind == "snapshot" and data.get("run_id"):
                self._run_id = data["run_id"]
                self._hook_exit()
            for host in self._batch:
                if host not in data["hosts"]:
                    continue
                mine = data["hosts"][host]
                text, bad = workflow_text(kind, mine)
                note = self._note(host)
                note.update(ran=True, text=text, bad=bad or note["bad"])
                if kind == "snapshot" and (bad or mine.get("action") == "checked"):
                    self._out.add(host)

    def _handled_line(self, result, data, item=None):
        task, host = _task(result), _host(result)
        stage = self._stage_of(task) or self._stage
        what = "failed" if stage == REPORT_STAGE else (task.name or task.get_name()).strip()
        if item is not None:
            what += " (item=%s)" % first_line(item, 40)
        self._host_line(host, stage, "%s: %s" % (what, first_line(data.get("msg") or "failed", 120)),
                        C.COLOR_ERROR if stage == REPORT_STAGE else C.COLOR_DEBUG)

    def v2_runner_on_ok(self, result):
        stage = self._record(result, "ok")
        if not self._quiet(stage):
            return super().v2_runner_on_ok(result)
        self._warnings_of(result)
        return None

    def v2_runner_on_failed(self, result, ignore_errors=False):
        stage = self._record(result, "failed")
        task, data, host = _task(result), _result(result), _host(result)
        handled = bool(ignore_errors) or self._rescued(task)
        if not handled:
            self._out.add(host)
        if not self._quiet(stage):
            return super().v2_runner_on_failed(result, ignore_errors)
        if handled or stage == REPORT_STAGE:
            self._warnings_of(result)
            if (getattr(task, "_uuid", None), host) not in self._items_shown:
                self._handled_line(result, data)
            return None
        return super().v2_runner_on_failed(result, ignore_errors)

    def v2_runner_on_unreachable(self, result):
        stage = self._record(result, "unreachable")
        task, data, host = _task(result), _result(result), _host(result)
        handled = bool(task.ignore_unreachable) or self._rescued(task)
        if not handled:
            self._out.add(host)
        if self._quiet(stage) and handled:
            self._warnings_of(result)
            self._handled_line(result, data)
            return None
        return super().v2_runner_on_unreachable(result)

    def v2_runner_on_skipped(self, result):
        stage = self._record(result, "skipped")
        if not self._quiet(stage):
            return super().v2_runner_on_skipped(result)
        return None

    def v2_runner_item_on_ok(self, result):
        if not self._quiet(self._stage_of(_task(result))):
            return super().v2_runner_item_on_ok(result)
        return None

    def v2_runner_item_on_skipped(self, result):
        if not self._quiet(self._stage_of(_task(result))):
            return super().v2_runner_item_on_skipped(result)
        return None

    def v2_runner_item_on_failed(self, result):
        task, data = _task(result), _result(result)
        stage = self._stage_of(task)
        handled = self._ignored(task) or self._rescued(task)
        if self._quiet(stage) and (handled or stage == REPORT_STAGE):
            self._warnings_of(result)
            self._items_shown.add((getattr(task, "_uuid", None), _host(result)))
            label = data.get(data.get("ansible_loop_var") or "item") if "_ansible_item_label" not in data \
                else data["_ansible_item_label"]
            self._handled_line(result, data, item=label)
            return None
        return super().v2_runner_item_on_failed(result)

    @staticmethod
    def _ignored(task):
        value = getattr(task, "ignore_errors", False)
        if isinstance(value, str) and "{{" in value:
            return False
        try:
            return boolean(value, strict=False)
        except TypeError:
            return False

    def v2_runner_retry(self, result):
        if not self._quiet(self._stage_of(_task(result))):
            return super().v2_runner_retry(result)
        return None

    def v2_playbook_on_include(self, included_file):
        if self._display.verbosity < 1 and self._staged:
            return None
        return super().v2_playbook_on_include(included_file)

    def v2_playbook_on_no_hosts_remaining(self):
        self._close_stage()
        if self._quiet(None):
            if not self._no_hosts_shown:
                self._no_hosts_shown = True
                self._say("NO MORE HOSTS LEFT in batch %d of %d" % self._batch_number, C.COLOR_ERROR)
            return None
        return super().v2_playbook_on_no_hosts_remaining()

    def _warnings_of(self, result):
        """Warnings and deprecations that the default callback prints with a result, kept when it is hidden
        (not the exception: a handled failure is one line)."""
        self._handle_warnings(_result(result))

    # --- the end -------------------------------------------------------------------------------------------

    def v2_playbook_on_stats(self, stats):
        self._close_stage()
        self._finished = True
        if not any(info["staged"] for info in self._plays.values()):
            return super().v2_playbook_on_stats(stats)
        if self._display.verbosity >= 1:
            super().v2_playbook_on_stats(stats)
        else:
            self._condensed_recap(stats)
        if self._report is not None:
            self._say("")
            for text, color in summary_lines(self._report, self._report_path):
                self._say(text, color)
        return None

    def _condensed_recap(self, stats):
        totals = {key: 0 for key in ("ok", "changed", "unreachable", "failures", "skipped", "rescued", "ignored")}
        flagged = {"failures": [], "unreachable": []}
        hosts = sorted(stats.processed.keys())
        for host in hosts:
            summary = stats.summarize(host)
            for key in totals:
                totals[key] += summary.get(key, 0)
            for key in flagged:
                if summary.get(key):
                    flagged[key].append(host)
        self._say("")
        self._say("PLAY RECAP: %d hosts: ok=%d changed=%d unreachable=%d failed=%d skipped=%d rescued=%d ignored=%d" % (
            len(hosts), totals["ok"], totals["changed"], totals["unreachable"], totals["failures"], totals["skipped"],
            totals["rescued"], totals["ignored"]), C.COLOR_HIGHLIGHT)
        for key, label in (("failures", "failed"), ("unreachable", "unreachable")):
            if flagged[key]:
                self._say("  %s: %s" % (label, " ".join(flagged[key])), C.COLOR_ERROR)

    # --- a run that stops before its end ------------------------------------------------------------------

    def _hook_exit(self):
        if not self._hooked:
            self._hooked = True
            atexit.register(self._stopped, "it was interrupted or stopped by an error")

    def _hook_signals(self):
        """Print the resume hint on SIGTERM too (ansible-playbook then kills itself, without atexit)."""
        try:
            previous = signal.getsignal(signal.SIGTERM)
        except (ValueError, AttributeError):
            return

        def on_sigterm(signum, frame):
            if os.getpid() == self._pid:
                self._stopped("it received SIGTERM")
            if callable(previous):
                previous(signum, frame)
            else:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        try:
            signal.signal(signal.SIGTERM, on_sigterm)
        except ValueError:  # not the main thread
            pass

    def _stopped(self, why):
        """The run id and the command that resumes a run that ended before its recap."""
        if self._finished or self._stopped_shown or os.getpid() != self._pid or not self._run_id:
            return
        self._stopped_shown = True
        report = self._report or {}
        later = set(report.get("not_reached") or [])
        reported = [r.get("host") for r in report.get("hosts") or []
                    if r.get("host") not in later and r.get("outcome") not in NOT_REACHED]
        remaining = [h for h in self._play_hosts if h not in reported] if reported else None
        lines = ["", "STOPPED: run %s did not reach its end (%s)." % (self._run_id, why)]
        if self._report_path:
            lines.append("  reported so far: %s (%s.md)" % (" ".join(reported) or "no host", self._report_path))
        if remaining == []:
            lines.append("  every host of the play is in the report; nothing is left to resume.")
        else:
            lines.append("  resume it (the snapshots of this run are adopted, the lease taken over):")
            lines.append("    %s" % resume_command(sys.argv, self._run_id, remaining))
        try:
            for line in lines:
                self._display.display(line, color=C.COLOR_WARN if line.startswith("STOPPED") else None)
            sys.stdout.flush()
        except Exception:  # pylint: disable=broad-except
            pass
