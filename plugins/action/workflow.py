# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of prechange.snapshots.workflow: the roles' one call per endpoint, on the controller.

Three steps make one workflow call:

* ``request`` (every host): checks the host's role inputs, decides which VM on which endpoint the
  host is (explicit variables, else its inventory plugin's variables, else its name or its SMBIOS
  UUID: ``module_utils/_inventory.py``) and collects its connection variables
  (``prechange_<provider>_<option>``), in the host's own variable context; publishes them as a
  fact for the next step.
* ``run`` (``run_once``): groups the play batch's requests by endpoint, opens one API session per
  endpoint (connection variables over the play's ``module_defaults`` groups over the modules'
  environment variables, exactly as the modules resolve them) and acts on every VM concurrently
  through the engine (``module_utils/_workflow.py``). It returns one result per host.
* ``publish`` (every host): turns the host's own result into the role's documented facts, or
  fails the host with the engine's message, unchanged.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import secrets
import socket
import sys
import time
import traceback

from ansible import constants as C
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.prechange.snapshots.plugins.module_utils._capacity import CAPACITY_ACTIONS, GROWTH_ACTIONS
from ansible_collections.prechange.snapshots.plugins.module_utils import _changeset, _play_keywords, _rounds, _window
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import InvalidRequest, SnapshotError
from ansible_collections.prechange.snapshots.plugins.module_utils._inventory import resolve_target
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import (
    isoformat,
    parse_duration,
    resolve_expiry,
    utcnow,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._report import (
    CALL_RESULTS,
    REPORT_FACTS,
    batch_stops,
    build as build_report,
    default_report_dir,
    failure_message,
    host_record,
    in_flight,
    markdown as report_markdown,
    not_reached_record,
    status_line as report_status_line,
    timeline_svg,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._retention import (
    RETENTION_PER,
    RETENTION_TIERS,
    append_audit,
    audit_entries,
    prune_summary,
    read_audit,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._rehearsal import step as rehearse_step
from ansible_collections.prechange.snapshots.plugins.module_utils._module import (
    default_creator,
    new_run_id,
    snapshot_argument_spec,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._workflow import (
    ADOPT_CHOICES,
    DECISIONS,
    KINDS,
    POLICY_ACTIONS,
    check_expiry,
    failure,
    group_requests,
    parse_lease,
    prune_group,
    run_group,
    settle_decision,
    verb_for,
)
from ansible_collections.prechange.snapshots.plugins.plugin_utils._host_connection import (
    connection_options,
    connection_var_names,
    connection_vars,
    inventory_vars,
    module_args,
    module_defaults,
)
from ansible_collections.prechange.snapshots.plugins.plugin_utils._in_process import _environment, run_in_process

display = Display()

# provider -> (module_utils file, backend class, import error name)
PROVIDERS = {
    "libvirt": ("_libvirt", "LibvirtBackend", "LIBVIRT_IMPORT_ERROR", "libvirt-python"),
    "proxmox": ("_proxmox", "ProxmoxBackend", "PROXMOXER_IMPORT_ERROR", "proxmoxer"),
    "vmware": ("_vmware", "VmwareBackend", "PYVMOMI_IMPORT_ERROR", "pyvmomi"),
}
# The verb of a request's errors (before the call knows what it will do).
REQUEST_VERBS = {"snapshot": "create", "settle": "revert or delete", "lookup": "find", "prune": "prune"}
POWER_STATES = ("recorded", "snapshot", "running", "paused", "stopped")
FACT = "__prechange_%s_request"


def provider_module(provider):
    name = PROVIDERS[provider][0]
    return importlib.import_module("ansible_collections.prechange.snapshots.plugins.module_utils." + name)


# Import every provider (and so its SDK, where installed) when Ansible loads this plugin: the strategy
# loads it in the parent process before it forks a worker per host and task, so the workers inherit
# the imports instead of importing pyVmomi again for every host (a module that does not import is
# reported by the provider itself when a host needs it).
for _provider in PROVIDERS:
    provider_module(_provider)


def provider_spec(provider):
    """The options a provider's snapshot module accepts (and their env fallbacks), and its rules."""
    module = provider_module(provider)
    spec = snapshot_argument_spec()
    spec.update(module.connection_argument_spec())
    if hasattr(module, "snapshot_extra_spec"):
        spec.update(module.snapshot_extra_spec())
    kwargs = module.connection_module_kwargs() if hasattr(module, "connection_module_kwargs") else {}
    return spec, kwargs


def _vm_name(result):
    """A result's VM name: a dict on success, the name itself on failure."""
    vm = result.get("vm")
    return vm.get("name") if isinstance(vm, dict) else vm


def _bad(host, what, hint):
    return InvalidRequest(what, hint=hint + "; nothing was changed")


def _hosts_values(hostvars, hosts, names):
    """``{host: {name: value}}`` of the variables among ``names`` that each host sets (inventory, extra vars,
    facts), as its own tasks see them; one whose template fails is ``_rounds.UNREADABLE``."""
    values = {}
    for host in hosts:
        facts = hostvars.get(host) or {}
        mine = {}
        for name in names:
            try:
                if name in facts:
                    mine[name] = facts[name]
            except Exception:  # pylint: disable=broad-except
                mine[name] = _rounds.UNREADABLE
        values[host] = mine
    return values


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("step", "kind", "request", "hosts", "run_id", "holder", "results", "report_dir", "batch",
                             "rehearsal", "max_fail_percentage", "fail_reverted", "plan", "at", "window", "features"))
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        step, kind = self._task.args.get("step"), self._task.args.get("kind")
        if step in ("start", "report", "window", "batch"):
            result.update(getattr(self, "_" + step)(task_vars))
            return result
        if step == "rehearse" and self._task.args.get("rehearsal") == "clone":
            result.update(self._rehearse_clone(task_vars))
            return result
        if step == "rehearse":
            result.update(rehearse_step(self._task.args, task_vars.get("inventory_hostname")))
            return result
        if kind not in KINDS or step not in ("request", "run", "publish"):
            raise AnsibleActionFail("workflow: step must be start, window, request, run or publish and kind one of %s"
                                    % ", ".join(KINDS))
        try:
            result.update(getattr(self, "_" + step)(kind, task_vars))
        except (AnsibleActionFail, SnapshotError):
            raise
        except Exception as error:  # pylint: disable=broad-except
            # A bug, not a hypervisor answer: report it like a module crash, with the traceback for -vvv.
            return {"failed": True, "msg": "workflow %s %s raised %s: %s" % (step, kind, type(error).__name__, error),
                    "exception": traceback.format_exc()}
        return result

    # --- start: one run id and one lease holder for the whole ansible-playbook run -----------------------

    def _start(self, task_vars):
        """Kept as facts of localhost, so every serial batch of the play shares them.

        Without a run id from the user, an AWX / AAP workflow job (which a sliced job is, too) gives
        every node and slice the same id, from the workflow job's id; else a new id is made.
        """
        wanted = self._task.args.get("run_id") or None
        localhost = (task_vars.get("hostvars") or {}).get("localhost") or {}
        known = (localhost.get("ansible_facts") or {}).get("prechange_run") or {}
        if known.get("run_id") and (wanted is None or wanted == known["run_id"]):
            return {"changed": False, "run_id": known["run_id"], "ansible_facts": {"prechange_run": known}}
        workflow_job = task_vars.get("awx_workflow_job_id") or task_vars.get("tower_workflow_job_id")
        run = {"run_id": wanted or ("awx-wf-%s" % workflow_job if workflow_job else new_run_id()),
               "holder": "%s:%s:%s" % (default_creator(), os.getppid(), secrets.token_hex(3)),
               # The window's duration (maintenance_window_minutes) counts from here.
               "started": isoformat(utcnow())}
        display.display("prechange run %s (if it is interrupted, resume it with -e prechange_run_id=%s "
                        "-e snapshot_takeover=true once it no longer runs)" % (run["run_id"], run["run_id"]))
        return {"changed": False, "run_id": run["run_id"], "ansible_facts": {"prechange_run": run}}

    # --- batch: which optional per-host steps this serial batch needs (module_utils/_rounds.py) ----------

    def _batch(self, task_vars):
        """Run once per serial batch: {feature: whether any host of the batch turns it on}, as ``needs``.

        Reads each host's own value of each feature's variable (inventory, extra vars, facts), so a feature
        that only some hosts turn on is on for the batch.
        """
        try:
            features = _rounds.check_features(self._task.args.get("features"))
        except ValueError as error:
            raise AnsibleActionFail("workflow: step batch: %s" % error)
        values = _hosts_values(task_vars.get("hostvars") or {}, task_vars.get("ansible_play_batch") or [],
                               {v for variables in features.values() for v in variables})
        needs = _rounds.batch_needs(features, values)
        return {"changed": False, "needs": needs,
                "msg": "this batch needs: %s" % (", ".join(sorted(k for k, on in needs.items() if on)) or "none")}

    # --- window: the window's deadline (module_utils/_window.py decides) ---------------------------------

    def _window(self, task_vars):
        """One gate of the window for the whole serial batch (run once, facts delegated to localhost).

        ``at``: ``batch`` (may the batch start), ``change`` (may its changes start), ``settle`` (may the
        passed hosts' snapshots be deleted now) or ``end`` (the batch ended: learn its durations). The
        state (the batches so far) is the ``prechange_window`` fact of localhost, shared by every batch.
        Returns ``hosts``: {host: {"deferred" or "defer_delete": bool, "message": ...}}.
        """
        args = self._task.args
        at = args.get("at")
        if at not in ("batch", "change", "settle", "end"):
            raise AnsibleActionFail("workflow: step window needs at: batch, change, settle or end")
        settings = dict(args.get("window") or {})
        localhost = ((task_vars.get("hostvars") or {}).get("localhost") or {}).get("ansible_facts") or {}
        run = localhost.get("prechange_run") or {}
        state = copy.deepcopy(localhost.get("prechange_window") or {})
        batch = list(args.get("hosts") or task_vars.get("ansible_play_batch") or [])
        now = utcnow()
        started = _window.parse_time_or_none(run.get("started") or state.get("started")) or now
        try:
            first_batch, first_revert, large_gb = _window.check_settings(
                settings.get("batch_minutes", _window.FIRST_BATCH_MINUTES),
                settings.get("revert_minutes", _window.FIRST_REVERT_MINUTES),
                settings.get("large_delta_gb", _window.LARGE_DELTA_GB))
            end = _window.deadline(settings.get("end"), settings.get("minutes"), started)
        except ValueError as error:
            return {"failed": True, "msg": "The maintenance window is not usable: %s. Set maintenance_window_end to "
                                           "an ISO 8601 time with its offset or a local time (23:00), or "
                                           "maintenance_window_minutes; nothing was changed." % error}
        if end is None:
            return {"changed": False, "active": False, "hosts": {h: {"deferred": False, "defer_delete": False}
                                                                 for h in batch}, "msg": ""}
        state.update(started=isoformat(started), end=end.isoformat())
        batches = state.setdefault("batches", [])
        est = _window.estimates(batches, first_batch, first_revert)
        stamp = time.time()
        hosts, gate = {}, None
        if at == "batch":
            gate = _window.batch_gate(end, now, est)
            batches.append({"hosts": batch, "started": stamp, "deferred": not gate.go})
            hosts = {h: {"deferred": not gate.go, "message": gate.message} for h in batch}
        elif at == "change":
            current = batches[-1] if batches else {}
            began = current.get("started")
            gate = _window.change_gate(end, now, est, _window.from_epoch(began) if began else None)
            if current:
                current["change_started"] = stamp
                current["change_deferred"] = not gate.go
            hosts = {h: {"deferred": not gate.go, "message": gate.message} for h in batch}
        elif at == "settle":
            for host in batch:
                gate = _window.delete_gate(end, now, est)
                # The delta's size is measured by the verdict's call, which defers a large one itself.
                hosts[host] = {"defer_delete": not gate.go, "message": gate.message, "large_delta_gb": large_gb}
        else:
            current = batches[-1] if batches else {}
            settle_call = task_vars.get("__revert_or_prune_run") or {}
            if current and not current.get("finished"):
                current["finished"] = stamp
                current["settle_started"] = settle_call.get("started")
                current["reverted"] = any((r or {}).get("action") == "reverted"
                                          for r in (settle_call.get("hosts") or {}).values())
            left = (end - now).total_seconds()
            gate = _window.Gate(left > 0, left, 0.0, "%s left in the window (ends %s)"
                                % (_window.text_duration(left), end.isoformat()))
        state["basis"] = _window.estimates(batches, first_batch, first_revert).basis
        out = {"changed": False, "active": True, "at": at, "hosts": hosts, "end": end.isoformat(),
               "left_seconds": round((end - now).total_seconds(), 1), "estimates": {
                   "batch_seconds": round(est.batch, 1), "change_seconds": round(est.change, 1),
                   "revert_seconds": round(est.revert, 1), "basis": est.basis},
               "msg": gate.message if gate else "", "ansible_facts": {"prechange_window": state}}
        if gate is not None:
            out["gate"] = gate.as_dict()
        return out

    # --- report: the run report, from every host's facts -----------------------------------------------

    def _report_path(self, kind, run_id, directory):
        """The report's path without its extension; no directory (None): no report; empty: the default place."""
        if directory is None:
            return None
        directory = directory or default_report_dir(os.environ, os.getcwd())
        return os.path.join(directory, "%s-%s%s" % (kind, run_id, "-check" if self._task.check_mode else ""))

    def _report(self, task_vars):
        """Write the run report (JSON, Markdown, SVG timeline) when a directory is given; say each host's outcome."""
        args = self._task.args
        kind = args.get("kind") or "maintenance"
        hostvars = task_vars.get("hostvars") or {}
        hosts = args.get("hosts") or task_vars.get("ansible_play_hosts_all") or []
        # A rehearsal's clone (issue 13) is a temporary inventory host of the play, never a host of the run.
        hosts = [host for host in hosts if not (hostvars.get(host) or {}).get("prechange_rehearsal_of")]
        batch = set(args.get("batch") or task_vars.get("ansible_play_batch") or hosts)
        run_id = args.get("run_id") or "none"
        check_mode = bool(self._task.check_mode)
        path = self._report_path(kind, run_id, args.get("report_dir"))
        # This batch's call results are registered on every host of the batch: read them once, here,
        # rather than through each host's hostvars (which would template the whole result per host).
        calls = {name: (task_vars.get(name) or {}) for name in CALL_RESULTS}
        earlier = self._earlier_records(path)
        request_fact = FACT % ("snapshot" if kind == "maintenance" else "lookup")
        records, later = [], []
        gate_calls = {stage: task_vars.get(name) or {} for stage, name in _window.GATE_RESULTS.items()}
        for host in hosts:
            if host in batch:
                facts = hostvars.get(host) or {}
                if not isinstance(facts.get(request_fact), dict) and not facts.get("__maintenance_error"):
                    record = not_reached_record(host, "not_reached", self._host_names(facts))
                else:
                    record = host_record(host, self._record_facts(host, facts, calls), check_mode)
                gates = {stage: ((call.get("hosts") or {}).get(host) or {}) for stage, call in gate_calls.items()}
                deferred = ((((calls.get("__revert_or_prune_run") or {}).get("hosts") or {}).get(host) or {})
                            .get("summary") or {}).get("delete_deferred")
                if deferred:  # the verdict's call kept a large delta (measured there) for after the window
                    gates["settle"] = {"defer_delete": True, "message": deferred}
                records.append(_window.host_window(record, gates))
            elif host in earlier and earlier[host]["outcome"] not in ("waiting", "stopped"):
                records.append(earlier[host])
            else:
                later.append(host)
        stops = batch_stops(records, batch, args.get("max_fail_percentage"),
                            boolean(args.get("fail_reverted", True), strict=False))
        records += [not_reached_record(host, "stopped" if stops else "waiting") for host in later]
        # Hosts of this run that this play does not name (a resume with --limit) keep their records.
        records += [record for host, record in earlier.items() if host not in hosts]
        sets = self._change_sets(task_vars, [r["host"] for r in records], {})
        for record in records:
            if record["host"] in sets:
                record["change_set"] = sets[record["host"]]
        report = build_report(kind, run_id, check_mode, isoformat(utcnow()), socket.gethostname(), records,
                              inventory=task_vars.get("ansible_inventory_sources") or (),
                              window=self._window_summary(task_vars), sets=_changeset.set_summary(records))
        # What this run created, reverted and deleted (and what a veto kept), as the audit log recorded it.
        audit_path = self._audit_path(task_vars)
        report["audit"] = {"log": audit_path, "entries": read_audit(audit_path, run_id) if audit_path else []}
        self._write_report(report, path)
        failing = {"error", "refused", "rehearsal_failed"}
        if boolean(args.get("fail_reverted", True), strict=False):
            failing.add("reverted")
        outcomes = {r["host"]: {"outcome": r["outcome"],
                                "fail": r["outcome"] in failing or r["reverify_passed"] is False,
                                "msg": failure_message(r, path, check_mode)} for r in records if r["host"] in batch}
        lines = [report_status_line(report, path), self._counts(report)]
        lines.append("Report: %s" % ("%s.md (and .json, .svg)" % path if path else "not written (no report directory)"))
        lines += ["Next: %s (%s):\n  %s" % (step["what"], ", ".join(step["hosts"]), step["command"])
                  for step in report["next"]]
        # What the verdict steps warned about (a disk-only revert, a policy warning), once, per host.
        warnings = ["%s: %s" % (r["host"], w) for r in records if r["host"] in batch for w in r["warnings"]]
        artifact = {"kind": kind, "run_id": run_id, "status": report["status"], "check_mode": check_mode,
                    "summary": report["summary"], "report": "%s.json" % path if path else None,
                    "hosts": {r["host"]: {"outcome": r["outcome"], "vm": r["vm"], "action": r["action"],
                                          "snapshot": (r["snapshot"] or {}).get("name"), "error": r["error"]}
                              for r in records},
                    "next": report["next"]}
        return {"changed": False, "msg": "\n".join(lines), "summary_lines": lines, "report": report,
                "status": report["status"], "hosts": outcomes, "path": path, "warnings": warnings,
                # The hosts of the batch the playbook fails (its fail task is per host only when there is one).
                "failing": sorted(h for h, o in outcomes.items() if o["fail"]),
                # set_stats: AWX keeps these as the job's artifacts and hands them to the next workflow node.
                "ansible_stats": {"data": {"prechange_run_id": run_id, "prechange_status": report["status"],
                                           "prechange_report": artifact},
                                  "per_host": False, "aggregate": False}}

    @staticmethod
    def _window_summary(task_vars):
        """The report's window: its end and the time left now, from the run's prechange_window fact."""
        localhost = ((task_vars.get("hostvars") or {}).get("localhost") or {}).get("ansible_facts") or {}
        state = localhost.get("prechange_window") or {}
        end = _window.parse_time_or_none(state.get("end"))
        if end is None:
            return None
        left = (end - utcnow()).total_seconds()
        return {"end": state["end"], "left_seconds": round(left, 1),
                "left": _window.text_duration(left) if left > 0 else None,
                "batches": len(state.get("batches") or []), "basis": state.get("basis") or ""}

    @staticmethod
    def _counts(report):
        s = report["summary"]
        text = "%d hosts: %d ok, %d reverted, %d refused, %d error" % (
            s["hosts"], s["ok"], s["reverted"], s["refused"], s["error"])
        if s.get("deferred"):
            text += ", %d deferred by the window's deadline" % s["deferred"]
        if report["check_mode"]:
            text += ", %d would run (check mode: nothing was changed)" % s["check"]
        text += ", %d not reached (%d stopped, %d in later batches); %d snapshots left on the platform" % (
            s["not_reached"] + s["stopped"] + s["waiting"], s["stopped"], s["waiting"], s["left_on_platform"])
        return text

    @staticmethod
    def _host_names(facts):
        return {key: facts.get(key) for key in ("prechange_provider", "prechange_vm")}

    @staticmethod
    def _record_facts(host, facts, calls):
        values = {key: facts.get(key) for key in REPORT_FACTS if key not in CALL_RESULTS}
        for name in CALL_RESULTS:
            call = calls[name]
            mine = (call.get("hosts") or {}).get(host)
            if mine is None:
                call = facts.get(name) or {}
                mine = (call.get("hosts") or {}).get(host)
            values[name] = {"hosts": {host: mine} if mine is not None else {},
                            "started": call.get("started"), "finished": call.get("finished")}
        return values

    @staticmethod
    def _write_report(report, path):
        if not path:
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        picture = timeline_svg(report)
        if picture:
            with open(path + ".svg", "w", encoding="utf-8") as handle:
                handle.write(picture)
        with open(path + ".json", "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2, sort_keys=False, default=str)
            handle.write("\n")
        with open(path + ".md", "w", encoding="utf-8") as handle:
            handle.write(report_markdown(report, os.path.basename(path) + ".svg" if picture else None))

    @staticmethod
    def _earlier_records(path):
        """Records of the hosts that earlier serial batches of this run wrote to the report."""
        try:
            with open(path + ".json", encoding="utf-8") as handle:
                return {record["host"]: record for record in json.load(handle).get("hosts", [])}
        except (TypeError, OSError, ValueError, KeyError, AttributeError):
            return {}

    def _interim_report(self, task_vars, run_id, results, started, finished):
        """Right after the snapshots: what this batch made, so an interrupted run leaves a report of it."""
        path = self._report_path("maintenance", run_id, self._task.args.get("report_dir"))
        if not path:
            return
        hosts = task_vars.get("ansible_play_hosts_all") or []
        earlier = self._earlier_records(path)
        call = {"hosts": results, "started": started, "finished": finished}
        records = []
        for host in hosts:
            if host in results:
                records.append(host_record(host, {"__snapshot_run": call}, bool(self._task.check_mode)))
            elif host in earlier and earlier[host]["outcome"] not in ("waiting", "stopped"):
                records.append(earlier[host])
            else:
                records.append(not_reached_record(host, "waiting"))
        records += [record for host, record in earlier.items() if host not in hosts]
        report = build_report("maintenance", run_id, bool(self._task.check_mode), isoformat(utcnow()),
                              socket.gethostname(), records, running=True,
                              inventory=task_vars.get("ansible_inventory_sources") or ())
        report["note"] = ("Written right after this batch's snapshots. If no ansible-playbook of run %s is still "
                          "running, the run was interrupted: the hosts marked error hold a pending snapshot; "
                          "resume with -e prechange_run_id=%s, or revert / release them with the revert playbook."
                          % (run_id, run_id))
        try:
            self._write_report(report, path)
        except OSError as error:
            display.warning("could not write the interim run report %s: %s" % (path, error))

    # --- request: one host's inputs, checked in its own variable context -------------------------------

    def _request(self, kind, task_vars):
        raw = dict(self._task.args.get("request") or {})
        host = task_vars.get("inventory_hostname")
        try:
            request = self._check_request(kind, raw, host, task_vars)
        except SnapshotError as error:
            record = raw.get("record") if isinstance(raw.get("record"), dict) else {}
            error.bind(action=REQUEST_VERBS[kind], vm=str(raw.get("vm") or record.get("vm") or host),
                       snapshot=raw.get("name") or record.get("name") or None)
            return {"failed": True, "msg": error.message}
        request["round"] = self._round()
        # The serial batch it belongs to (a later batch runs the same tasks, so the same round).
        request["batch"] = list(task_vars.get("ansible_play_batch") or [])
        facts = {FACT % kind: request}
        if kind == "settle":
            # What the user's veto tasks are shown: this run's snapshot, when the verdict will delete it.
            facts["revert_or_prune_veto_candidates"] = self._settle_candidates(request)
        # The request holds connection secrets: keep them out of the task's displayed result.
        return {"changed": False, "ansible_facts": facts, "_ansible_no_log": True}

    def _settle_candidates(self, request):
        record = request["record"]
        if settle_decision(request, bool(self._task.check_mode))[0] != "delete" or record.get("predicted"):
            return []
        owner = record.get("owner") or {}
        return [{"vm": record.get("vm_name") or record.get("vm"), "snapshot": record.get("name"),
                 "snapshot_id": str(record.get("id")), "provider": record.get("provider"),
                 "run_id": owner.get("run") or record.get("run_id"), "ticket": owner.get("ticket"),
                 "created": owner.get("created") or record.get("created"), "expires": owner.get("expires"),
                 "phase": owner.get("phase"), "creator": owner.get("creator")}]

    def _round(self):
        """Which call a step belongs to, the same for its request and run steps and no other call's.

        The request and run tasks of one call share the outermost block above them up to the nearest
        dynamic include (include_role / include_tasks): a play-level block, or the blocks one include
        made. Static imports (import_role, import_tasks) stay inside it. Another include of the role,
        another top-level task of the play, or another loop item is another call, so a request that an
        earlier call left in a host's facts is never taken for this call's.
        """
        dynamic = tuple(C._ACTION_INCLUDE_TASKS) + tuple(C._ACTION_INCLUDE_ROLE)  # pylint: disable=protected-access
        node, root = self._task._parent, None  # pylint: disable=protected-access
        while node is not None:
            if getattr(node, "action", None) in dynamic:
                break
            if type(node).__name__ == "Block":
                root = node
            node = getattr(node, "_parent", None)
        return getattr(root, "_uuid", None)

    def _check_request(self, kind, raw, host, task_vars):
        provider = raw.get("provider")
        inferred = {}
        if kind == "settle":
            # The record says which provider and VM: check it first, for the clearest message.
            probe = dict(raw)
            self._check_settle(probe, host)
            provider, raw["vm"] = probe["provider"], probe["vm"]
            # The same endpoint as the snapshot step (e.g. the libvirt inventory plugin's ansible_libvirt_uri).
            inferred = resolve_target(host, self._inventory_vars(task_vars), provider, raw["vm"]).connection
        else:
            # Which VM the host is: explicit variables, else what its inventory plugin or its facts say.
            target = resolve_target(host, self._inventory_vars(task_vars), provider or "", raw.get("vm") or "",
                                    self._templar.template(task_vars.get("prechange_vm_match") or ""))
            provider, raw["vm"], inferred = target.provider, target.vm, target.connection
            raw.update(vm_match=target.match, product_uuid=target.product_uuid, vm_source=target.source)
        if provider not in PROVIDERS:
            raise _bad(host, "the provider is '%s'" % (provider or ""),
                       "Set prechange_provider to one of %s for host %s (or use an inventory plugin whose host "
                       "variables name it, see the playbooks' README)" % (", ".join(sorted(PROVIDERS)), host))
        vm = str(raw.get("vm") or "").strip()
        if not vm and kind != "prune":
            raise _bad(host, "no VM is named", "Set prechange_vm (default: the inventory hostname)")
        connection = dict(inferred)
        connection.update(self._connection_vars(provider, task_vars))  # prechange_<provider>_<option> wins
        request = dict(raw, provider=provider, vm=vm, connection=connection)
        getattr(self, "_check_" + kind)(request, host)
        return request

    def _inventory_vars(self, task_vars):
        """The host variables inventory plugins set that say which VM a host is (see _inventory.py), templated."""
        return inventory_vars(task_vars, self._templar)

    def _connection_vars(self, provider, task_vars):
        """``prechange_<provider>_<option>`` variables, templated, as module option names."""
        spec, _kwargs = provider_spec(provider)
        for option, name in sorted(connection_var_names(provider, task_vars).items()):
            if option not in spec:
                raise InvalidRequest("unknown connection variable %s" % name,
                                     hint="Use prechange_%s_<option> with an option of prechange.snapshots.%s_snapshot"
                                          " (%s)" % (provider, provider, ", ".join(sorted(spec))))
        return connection_vars(provider, task_vars, self._templar, spec)

    @staticmethod
    def _check_snapshot(request, host):
        name = str(request.get("name") or "")
        if not name or "/" in name or "\n" in name:
            raise _bad(host, "the snapshot name template rendered '%s', which is not a usable snapshot name" % name,
                       "Set snapshot_name to a non-empty name without '/' or newlines")
        request["name"] = name
        request["creator"] = request.get("creator") or default_creator()
        try:
            expires = resolve_expiry(request.get("expires") or None)
            check_expiry(expires)
        except ValueError as error:
            raise _bad(host, "snapshot_expires: %s" % error, "Use a duration like 7d or a future ISO 8601 timestamp")
        except InvalidRequest as error:
            raise _bad(host, "snapshot_expires: %s" % error.reason, error.hint.split(";")[0])
        request["expires"] = isoformat(expires)
        request["lease_seconds"] = parse_lease(request.get("lease") or "2h").total_seconds()
        policy = dict(request.get("policy") or {})
        if policy.get("action", "fail") not in POLICY_ACTIONS:
            raise _bad(host, "snapshot_policy_action is '%s'" % policy.get("action"), "Use fail or warn")
        max_age = policy.get("max_age")
        if max_age:
            try:
                policy["max_age_seconds"] = parse_duration(max_age).total_seconds()
            except ValueError as error:
                raise _bad(host, "snapshot_policy_max_age: %s" % error, "Use a duration like 12h, 7d or 2w")
        for key in ("max_count", "max_depth", "min_free_gb"):
            try:
                policy[key] = float(policy.get(key) or 0) if key == "min_free_gb" else int(policy.get(key) or 0)
            except (TypeError, ValueError):
                raise _bad(host, "snapshot_policy_%s is '%s'" % (key, policy.get(key)), "Use a number (0: no limit)")
        request["policy"] = policy
        ActionModule._check_capacity(request, host)
        if request.get("adopt", "run") not in ADOPT_CHOICES:
            raise _bad(host, "snapshot_adopt is '%s'" % request.get("adopt"), "Use run or ticket")
        if request.get("memory") in ("", "None"):
            request["memory"] = None
        for key in ("quiesce", "strict", "takeover", "check_only"):
            request[key] = boolean(request.get(key) or False, strict=False)
        if request.get("memory") is not None:
            request["memory"] = boolean(request["memory"], strict=False)
        for key in ("timeout", "concurrency"):
            try:
                if int(request.get(key) or 1) < 1:
                    raise ValueError
            except (TypeError, ValueError):
                raise _bad(host, "snapshot_%s is '%s'" % (key, request.get(key)), "Use a positive number")
        ActionModule._check_lock_timeout(request, host, "snapshot")

    @staticmethod
    def _check_capacity(request, host):
        capacity = dict(request.get("capacity") or {})
        if capacity.get("action", "fail") not in CAPACITY_ACTIONS:
            raise _bad(host, "snapshot_capacity_policy is '%s'" % capacity.get("action"), "Use fail, warn or ignore")
        for key, default in (("growth", 0.1), ("reserve_gb", 0)):
            try:
                capacity[key] = float(default if capacity.get(key) in (None, "") else capacity[key])
                if capacity[key] < 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise _bad(host, "snapshot_capacity_%s is '%s'" % (key, capacity.get(key)), "Use 0 or a positive number")
        request["capacity"] = capacity

    @staticmethod
    def _check_lock_timeout(request, host, role):
        try:
            request["lock_timeout"] = float(request.get("lock_timeout") or 0)
            if request["lock_timeout"] < 0:
                raise ValueError
        except (TypeError, ValueError):
            raise _bad(host, "%s_lock_timeout is '%s'" % (role, request.get("lock_timeout")),
                       "Use the seconds to wait for another job on the VM (0: refuse at once)")

    @staticmethod
    def _check_settle(request, host):
        record = request.get("record")
        if not isinstance(record, dict) or not all(record.get(k) for k in ("provider", "vm", "name", "run_id")):
            raise _bad(host, "there is no complete snapshot record for host %s (got %s); without it nothing is "
                             "reverted or deleted" % (host, record),
                       "Run the snapshot role first, or use the revert playbook with revert_or_prune_run_id")
        request["provider"], request["vm"] = record["provider"], str(record["vm"])
        ActionModule._check_choices(request, host)
        limit = dict(request.get("growth_limit") or {})
        if limit.get("action", "alert") not in GROWTH_ACTIONS:
            raise _bad(host, "revert_or_prune_growth_action is '%s'" % limit.get("action"), "Use stop or alert")
        for key in ("max_gb", "max_percent"):
            try:
                limit[key] = float(limit.get(key) or 0)
                if limit[key] < 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise _bad(host, "revert_or_prune_growth_limit_%s is '%s'" % (key[4:], limit.get(key)),
                           "Use 0 (no limit) or a positive number")
        request["growth_limit"] = limit
        ActionModule._check_veto(request, host)

    @staticmethod
    def _check_veto(request, host):
        command = request.get("veto_command")
        if command in (None, "", []):
            request["veto_command"] = None
        elif not isinstance(command, (str, list)) or (isinstance(command, list) and not all(
                isinstance(part, (str, int, float)) for part in command)):
            raise _bad(host, "revert_or_prune_veto_command is '%s'" % (command,),
                       "Give a command line (a string) or a list of arguments")
        try:
            request["veto_timeout"] = float(request.get("veto_timeout") or 60)
            if request["veto_timeout"] <= 0:
                raise ValueError
        except (TypeError, ValueError):
            raise _bad(host, "revert_or_prune_veto_timeout is '%s'" % request.get("veto_timeout"),
                       "Use the seconds the veto command may take per snapshot")
        request["veto_tasks_file"] = str(request.get("veto_tasks_file") or "")

    @staticmethod
    def _check_choices(request, host):
        if request.get("action", "auto") not in ("auto",) + DECISIONS:
            raise _bad(host, "revert_or_prune_action is '%s'" % request.get("action"),
                       "Use auto, %s" % ", ".join(DECISIONS))
        if request.get("on_success", "delete") not in ("delete", "keep"):
            raise _bad(host, "revert_or_prune_on_success is '%s'" % request.get("on_success"), "Use delete or keep")
        if request.get("power_state", "recorded") not in POWER_STATES:
            raise _bad(host, "revert_or_prune_power_state is '%s'" % request.get("power_state"),
                       "Use %s" % ", ".join(POWER_STATES))
        if request.get("verify_passed") in ("", "None"):
            request["verify_passed"] = None
        if request.get("verify_passed") is not None:
            request["verify_passed"] = boolean(request["verify_passed"], strict=False)
        request["change_failed"] = boolean(request.get("change_failed") or False, strict=False)
        request["rehearsal_failed"] = boolean(request.get("rehearsal_failed") or False, strict=False)
        ActionModule._check_lock_timeout(request, host, "revert_or_prune")

    @staticmethod
    def _check_lookup(request, host):
        if not (request.get("run_id") or request.get("snapshot_name")):
            raise _bad(host, "no snapshot is named", "Set revert_or_prune_run_id and/or revert_or_prune_snapshot_name")
        if request.get("action") in (None, "", "auto"):
            request["action"] = "revert"
        ActionModule._check_choices(request, host)

    @staticmethod
    def _check_prune(request, host):
        if request.get("select", "expired") not in ("expired", "owned"):
            raise _bad(host, "revert_or_prune_prune_select is '%s'" % request.get("select"), "Use expired or owned")
        if request.get("scope", "hosts") not in ("hosts", "endpoint"):
            raise _bad(host, "revert_or_prune_prune_scope is '%s'" % request.get("scope"), "Use hosts or endpoint")
        if not request.get("vm"):
            raise _bad(host, "no VM is named", "Set prechange_vm (default: the inventory hostname)")
        ActionModule._check_lock_timeout(request, host, "revert_or_prune")
        ActionModule._check_veto(request, host)
        retention = dict(request.get("retention") or {})
        for key in ("last",) + RETENTION_TIERS:
            try:
                retention[key] = int(retention.get(key) or 0)
                if retention[key] < 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise _bad(host, "revert_or_prune_keep_%s is '%s'" % (key, retention.get(key)),
                           "Use a count (0: no such rule)")
        if (retention.get("per") or "vm") not in RETENTION_PER:
            raise _bad(host, "revert_or_prune_keep_per is '%s'" % retention.get("per"), "Use vm or ticket")
        retention["per"] = retention.get("per") or "vm"
        request["retention"] = retention

    # --- run: one API session per endpoint, every VM at once -----------------------------------------------

    def _run(self, kind, task_vars):
        hostvars = task_vars.get("hostvars") or {}
        # Every host of the play that made a request for this very call: a host that failed in a
        # block and now runs its 'always' is not in ansible_play_batch, yet its snapshot must be settled.
        hosts = self._task.args.get("hosts") or task_vars.get("ansible_play_hosts_all") or []
        this_round = self._round()
        run_id = self._task.args.get("run_id") or (new_run_id() if kind == "snapshot" else None)
        holder = self._task.args.get("holder") or "%s:%s:%s" % (default_creator(), os.getppid(), secrets.token_hex(3))
        check_mode = bool(self._task.check_mode)
        requests, results = {}, {}
        alive = set(task_vars.get("ansible_play_batch") or [])
        for host in hosts:
            request = (hostvars.get(host) or {}).get(FACT % kind)
            if isinstance(request, dict) and request.get("round") == this_round and not request.get("consumed") \
                    and self._this_batch(host, request, alive):
                requests[host] = self._with_veto_answers(kind, request, hostvars.get(host) or {})
        if kind == "snapshot" and requests and task_vars.get("__maintenance_play_keywords"):
            results.update(self._ignored_keywords(requests, hostvars))
        environment = {}
        self._compute_environment_string(raw_environment_out=environment)
        no_log_values = set()
        started = round(time.time(), 3)  # epoch seconds: the report's timeline
        if kind == "snapshot" and requests and not check_mode:
            # Before anything is asked of the platform: should the run be killed while the snapshots are being
            # made, its report still names each host's snapshot that may now be on the VM.
            self._interim_report(task_vars, run_id, {host: in_flight(request, run_id) for host, request in requests.items()},
                                 started, None)
        if kind == "settle":
            self._window_settle(requests, task_vars, check_mode)
        sets = self._change_sets(task_vars, hosts, requests)
        if sets and kind in ("snapshot", "settle"):
            results.update(self._sets_before(kind, sets, requests, task_vars, check_mode))
        with _environment(environment):
            for provider, connection, items in group_requests(requests):
                results.update(self._run_group(provider, connection, items, kind, check_mode, run_id, holder,
                                               no_log_values))
            if sets and kind == "snapshot":
                results.update(self._sets_after_snapshot(sets, requests, results, check_mode, run_id, holder,
                                                         no_log_values))
        if not check_mode and not self._task.args.get("plan"):
            self._audit(kind, requests, results, run_id, task_vars)
        for host, result in results.items():
            result["failed"] = bool(result.get("failed"))
            if not result["failed"] and host in requests:
                result.update(self._outputs(kind, result, requests[host], run_id))
        finished = round(time.time(), 3)
        if self._task.args.get("plan"):
            # Only the candidates, for the user's veto tasks: the requests stay for the real call.
            return {"changed": False, "hosts": remove_values(results, no_log_values), "plan": True}
        out = {
            "changed": any(r.get("changed") for r in results.values()),
            "hosts": remove_values(results, no_log_values),
            "run_id": run_id,
            "holder": holder,
            "started": started,
            "finished": finished,
            # The hosts whose snapshot was reverted: the playbook's checks after a revert are per host only
            # when there is one (module_utils/_rounds.py).
            "reverted": sorted(h for h, r in results.items() if r.get("action") == "reverted"),
            # Every host of the batch: its request is used up (and its connection secrets leave its facts),
            # so a later serial batch, which runs the same tasks, never acts on it again.
            "ansible_facts": dict({FACT % kind: {"consumed": True, "round": this_round}},
                                  **({"prechange_run": {"run_id": run_id, "holder": holder}} if kind == "snapshot"
                                     else {})),
        }
        if kind == "snapshot" and results:
            self._interim_report(task_vars, run_id, out["hosts"], started, finished)
        return out

    def _ignored_keywords(self, requests, hostvars):
        """Refuse every host, before anything is made, when the play does not run with the hosts, serial or
        max_fail_percentage its variables ask for (set in the inventory, too late for the play: _play_keywords)."""
        play = self._task.get_play()
        used = {keyword: getattr(play, keyword, None) for keyword in _play_keywords.MAINTENANCE}
        # A value that does not render cannot be compared; the host's own tasks fail on it anyway.
        seen = {host: {name: value for name, value in values.items() if value is not _rounds.UNREADABLE}
                for host, values in _hosts_values(hostvars, requests, _play_keywords.MAINTENANCE.values()).items()}
        found = _play_keywords.ignored(used, seen)
        if not found:
            return {}
        reason, hint = found
        refused = {}
        for host in list(requests):
            request = requests.pop(host)
            refused[host] = failure(InvalidRequest(reason, hint=hint), "create", request["vm"], request.get("name"),
                                    request.get("provider"))
        return refused

    def _with_veto_answers(self, kind, request, facts):
        """A request with what the user's veto tasks answered since it was made (and what they were shown)."""
        if kind not in ("settle", "prune") or not request.get("veto_tasks_file") or self._task.args.get("plan"):
            return request
        request = dict(request)
        vetoed = self._templar.template(facts.get("revert_or_prune_vetoed") or [])
        request["vetoed"] = vetoed if isinstance(vetoed, list) else [vetoed]
        if kind == "prune":
            shown = self._templar.template(facts.get("revert_or_prune_veto_candidates") or [])
            request["reviewed"] = [str(c.get("snapshot_id")) for c in shown if isinstance(c, dict)]
        return request

    def _audit_path(self, task_vars):
        """prechange_audit_log, else prechange-audit.jsonl in the report directory; false: no log."""
        path = self._templar.template(task_vars.get("prechange_audit_log", ""))
        if path in (False, None) or str(path).lower() in ("false", "no", "off", "none"):
            return None
        if path:
            return str(path)
        directory = self._templar.template(task_vars.get("maintenance_report_dir") or "") or \
            default_report_dir(os.environ, os.getcwd())
        return os.path.join(directory, "prechange-audit.jsonl")

    def _who(self, task_vars):
        """Who acted: the controller user, and the AWX / AAP job and user when the job runs there."""
        who = {"user": default_creator()}
        job = task_vars.get("awx_job_id") or task_vars.get("tower_job_id") or os.environ.get("JOB_ID")
        user = task_vars.get("awx_user_name") or task_vars.get("tower_user_name")
        if job:
            who["awx_job_id"] = str(job)
        if user:
            who["awx_user"] = str(user)
        return who

    def _audit(self, kind, requests, results, run_id, task_vars):
        """Every create, revert and delete of this call, as one append to the audit log."""
        path = self._audit_path(task_vars)
        if not path:
            return
        who, entries = self._who(task_vars), []
        for host, result in results.items():
            request = requests.get(host) or {}
            entries += audit_entries(kind, result, request, who, run_id)
        try:
            append_audit(path, entries)
        except OSError as error:
            display.warning("could not write the audit log %s: %s" % (path, error))

    @staticmethod
    def _window_settle(requests, task_vars, check_mode):
        """What the maintenance playbook's window steps decided, applied to this batch's verdict requests.

        A host whose change the deadline did not let start has its snapshot deleted again (nothing was
        changed); a passed host whose deletion is deferred keeps its snapshot until it expires.
        """
        change = (task_vars.get(_window.GATE_RESULTS["change"]) or {}).get("hosts") or {}
        settle = (task_vars.get(_window.GATE_RESULTS["settle"]) or {}).get("hosts") or {}
        for host, request in requests.items():
            gate = settle.get(host) or {}
            if (change.get(host) or {}).get("deferred"):
                request.update(action="delete", because=change[host].get("message"))
            elif request.get("on_success", "delete") != "delete":
                continue
            elif gate.get("defer_delete"):
                try:
                    decision = settle_decision(request, check_mode)[0]
                except (KeyError, TypeError):
                    continue
                if decision in ("delete", "depends"):
                    request.update(on_success="keep", because=gate.get("message") if decision == "delete" else None)
            elif gate.get("large_delta_gb"):
                # Only the verdict's call measures the delta (module_utils/_workflow.py): it keeps a large one.
                request["defer_delete_over_gb"] = gate["large_delta_gb"]

    def _change_sets(self, task_vars, hosts, requests):
        """{host: change set} of the play's hosts that are in one (prechange_change_set), else {}."""
        hostvars = task_vars.get("hostvars") or {}
        found = {}
        for host in hosts:
            if host in requests:
                name = requests[host].get("change_set")
            else:
                try:
                    name = self._templar.template((hostvars.get(host) or {}).get("prechange_change_set"))
                except AnsibleError:
                    name = None
            name = _changeset.set_name(name)
            if name:
                found[host] = name
        return found

    @staticmethod
    def _sets_before(kind, sets, requests, task_vars, check_mode):
        """Sets before the calls: refuse split sets (snapshot), or revert every member of a failed set (settle).

        Refused hosts leave ``requests`` and get their result here; forced reverts change the requests.
        """
        batch = set(requests)
        for request in requests.values():
            batch.update(request.get("batch") or ())
        if kind == "snapshot":
            play = task_vars.get("ansible_play_hosts_all") or list(sets)
            refused = {}
            for host, (name, reason, hint) in _changeset.split_sets(sets, play, batch, set(requests)).items():
                request = requests.pop(host)
                refused[host] = failure(_changeset.ChangeSetRefused(reason, hint=hint), "create", request["vm"],
                                        request.get("name"), request.get("provider"))
                refused[host]["change_set"] = name
            return refused
        snapshot_call = (task_vars.get("__snapshot_run") or {}).get("hosts") or {}
        snapshotted = {h for h, r in snapshot_call.items()
                       if isinstance(r, dict) and not r.get("failed") and r.get("action") in _changeset.MADE}
        decisions = {}
        for host, request in requests.items():
            try:
                decisions[host] = settle_decision(request, check_mode)[0]
            except (KeyError, TypeError):
                decisions[host] = None
        for host, why in _changeset.set_reverts(sets, requests, decisions, batch, snapshotted).items():
            requests[host]["action"] = "revert"
            requests[host]["because"] = why
        return {}

    def _sets_after_snapshot(self, sets, requests, results, check_mode, run_id, holder, no_log_values):
        """All or nothing: a set with a member whose snapshot failed is refused, its other snapshots deleted."""
        verdicts = _changeset.incomplete_sets(sets, {h: results.get(h) or {} for h in requests}, check_mode)
        undo = {}
        for host, verdict in verdicts.items():
            if verdict["undo"]:
                request = requests[host]
                record = self._outputs("snapshot", results[host], request, run_id)["record"]
                undo[host] = {"record": record, "action": "delete", "power_state": "recorded",
                              "timeout": request.get("timeout"), "lock_timeout": request.get("lock_timeout") or 0,
                              "provider": request["provider"], "vm": record["vm"],
                              "connection": request["connection"]}
        deleted = {}
        for provider, connection, items in group_requests(undo):
            deleted.update(self._run_group(provider, connection, items, "settle", False, run_id, holder,
                                           no_log_values))
        out = {}
        for host, verdict in verdicts.items():
            request = requests[host]
            gone = deleted.get(host)
            if gone is not None and gone.get("failed"):
                error = SnapshotError(
                    "%s, but deleting this VM's snapshot of this run again failed: %s"
                    % (verdict["reason"], _changeset.short_reason(gone.get("msg"))),
                    hint="Delete it with the revert playbook (-e prechange_run_id=%s -e revert_action=delete); the VM "
                         "was not changed" % run_id)
                out[host] = failure(error, "create", request["vm"], request.get("name"), request.get("provider"))
                out[host].update(may_have_completed=True, snapshot=request.get("name"))
            else:
                out[host] = failure(_changeset.ChangeSetRefused(verdict["reason"], hint=verdict["hint"]), "create",
                                    request["vm"], request.get("name"), request.get("provider"))
            out[host]["change_set"] = verdict["set"]
        return out

    @staticmethod
    def _this_batch(host, request, alive):
        """Whether a request was made in the serial batch now running.

        ``alive`` is the batch's hosts that have not failed. Batches do not share hosts, so a request of
        this batch names (among the hosts alive when it was made) a host still alive, or is its own
        host's. When every host of the batch has failed (they run their ``always``), nothing tells the
        batches apart and the consumed mark alone keeps earlier batches' requests out.
        """
        if not alive:
            return True
        return host in alive or bool(alive & set(request.get("batch") or ()))

    def _run_group(self, provider, connection, items, kind, check_mode, run_id, holder, no_log_values):
        hosts = [host for host, _request in items]

        def everyone_fails(error):
            # One error for the whole endpoint (a refused login, an unreachable API): each host's copy
            # names its own action, VM and snapshot, as the module would.
            return {host: failure(copy.copy(error), verb_for(kind, request), request["vm"],
                                  request.get("name") or (request.get("record") or {}).get("name") or request.get("snapshot_name"),
                                  provider) for host, request in items}

        module = provider_module(provider)
        import_error = getattr(module, PROVIDERS[provider][2])
        if import_error:
            return {host: {"failed": True, "changed": False,
                           "msg": "Failed to import the required Python library (%s) on the controller's Python %s. "
                                  "Install it there (the roles' API calls run on the controller)."
                                  % (PROVIDERS[provider][3], sys.executable), "exception": import_error}
                    for host in hosts}
        spec, kwargs = provider_spec(provider)
        args = dict(self._module_defaults(provider))
        args.update(connection)
        validation = ArgumentSpecValidator(spec, **kwargs).validate(args)
        no_log_values.update(validation._no_log_values)  # pylint: disable=protected-access
        if validation.errors.errors:
            return everyone_fails(InvalidRequest(validation.errors.msg,
                                                 hint="Check the prechange_%s_* variables or the play's "
                                                      "module_defaults for group/prechange.snapshots.%s"
                                                      % (provider, provider)))
        params = validation.validated_parameters
        backend_class = getattr(module, PROVIDERS[provider][1])
        warnings = []
        try:
            with backend_class(params, warn=warnings.append) as backend:
                if kind == "prune":
                    found = prune_group(backend, items, check_mode, plan=bool(self._task.args.get("plan")))
                else:
                    found = run_group(backend, items, kind, check_mode, run_id=run_id, holder=holder)
        except SnapshotError as error:
            return everyone_fails(error)
        # The engine warns through one callback per session: a warning naming a VM goes to its host,
        # any other to every host of the endpoint.
        names = {host: {"'%s'" % request.get("vm"), "'%s'" % _vm_name(found.get(host) or {})}
                 for host, request in items}
        for warning in warnings:
            owners = [host for host in hosts if any(name in warning for name in names[host])] or hosts
            for host in owners:
                found.setdefault(host, {}).setdefault("warnings", []).append(warning)
        return found

    @staticmethod
    def _outputs(kind, mine, request, run_id):
        """The documented outputs of a host's result: ``record`` (snapshot) or ``summary`` (the others)."""
        snap = mine.get("snapshot") or {}
        owner = snap.get("owner") or {}
        vm = mine.get("vm") or {}
        if kind == "snapshot":
            return {"record": {
                "provider": request.get("provider"), "vm": mine.get("vm_ref") or request.get("vm"),
                "vm_name": vm.get("name"),
                "vm_id": vm.get("id"), "power_state": mine.get("power_state"), "name": snap.get("name"),
                "id": snap.get("id"), "created": snap.get("created"), "memory": snap.get("memory"),
                "owner": owner or None, "run_id": owner.get("run") or run_id, "play_run_id": run_id,
                "action": mine.get("action"), "adopted": mine.get("action") == "adopted",
                "predicted": bool(mine.get("predicted")), "checked_only": mine.get("action") == "checked",
                "capacity": mine.get("capacity")}}
        if kind in ("settle", "lookup"):
            outputs = {"summary": {
                "action": mine.get("action"), "reason": mine.get("reason"), "snapshot": snap.get("name"),
                "snapshot_id": snap.get("id"), "vm": vm.get("name") or request.get("vm"),
                "provider": request.get("provider"), "power_state": mine.get("power_state"),
                "expires": owner.get("expires"), "if_passed": mine.get("if_passed"),
                "warnings": list(mine.get("warnings") or []), "growth": mine.get("growth"),
                "delete_deferred": mine.get("delete_deferred")}}
            if mine.get("record"):
                outputs["record"] = dict(mine["record"], provider=request.get("provider"), vm=request.get("vm"))
            return outputs
        return {}

    def _module_defaults(self, provider):
        """The play's module_defaults for this provider's group and snapshot module, templated."""
        return module_defaults(self._task, self._templar, provider, "%s_snapshot" % provider)

    # --- rehearse / clone: the rehearsal's clone, made or removed by the provider's clone module ------------

    def _rehearse_clone(self, task_vars):
        """``<provider>_clone`` with ``request`` (its options and ``provider``), for any provider.

        The module's connection comes from the host's variables and the play's module_defaults exactly as
        when the module is called itself (plugin_utils/_host_connection.py); it runs here, on the controller.
        """
        request = dict(self._task.args.get("request") or {})
        provider = request.pop("provider", None)
        if provider not in PROVIDERS:
            return {"failed": True, "msg": "workflow: step rehearse, rehearsal clone needs request.provider, one of %s"
                                           % ", ".join(sorted(PROVIDERS))}
        name = "%s_clone" % provider
        module = importlib.import_module("ansible_collections.prechange.snapshots.plugins.modules." + name)
        args = module_args(self._task, self._templar, task_vars, provider, name,
                           {k: v for k, v in request.items() if v is not None}, connection_options(provider),
                           explicit=True)
        environment = {}
        self._compute_environment_string(raw_environment_out=environment)
        return run_in_process(module, args, self._task.check_mode, self._task.diff, "prechange.snapshots." + name,
                              environment)

    # --- publish: one host's facts, or its failure -----------------------------------------------------------

    def _publish(self, kind, task_vars):
        host = task_vars.get("inventory_hostname")
        everything = self._task.args.get("results") or {}
        mine = (everything.get("hosts") or {}).get(host)
        if not isinstance(mine, dict):
            return {"failed": True, "msg": "workflow: the %s call returned no result for host %s%s"
                    % (kind, host, ": " + everything["msg"] if everything.get("msg") else "")}
        out = {"changed": bool(mine.get("changed"))}
        if mine.get("warnings"):
            out["warnings"] = list(mine["warnings"])
        if mine.get("failed"):
            out.update({k: v for k, v in mine.items() if k not in ("changed", "warnings")})
            out["failed"] = True
            return out
        out["ansible_facts"] = getattr(self, "_facts_" + kind)(mine, everything)
        return out

    @staticmethod
    def _facts_snapshot(mine, everything):
        return {"snapshot_record": mine["record"], "snapshot_run_id": everything.get("run_id"),
                "snapshot_warnings": list(mine.get("warnings") or [])}

    @staticmethod
    def _facts_settle(mine, everything):
        facts = {"revert_or_prune_result": mine.get("action"), "revert_or_prune_summary": mine["summary"]}
        if mine.get("record"):
            facts["revert_or_prune_record"] = mine["record"]
        return facts

    _facts_lookup = _facts_settle

    def _facts_prune(self, mine, everything):
        if self._task.args.get("plan") or everything.get("plan"):
            shown = list(mine.get("candidates") or [])
            for other in mine.get("others") or []:
                shown += other.get("candidates") or []
            return {"revert_or_prune_veto_candidates": shown}
        return self._pruned_facts(mine, bool(self._task.check_mode))

    @staticmethod
    def _pruned_facts(mine, check_mode=False):
        return {"revert_or_prune_pruned": {"deleted": mine.get("deleted") or [], "held": mine.get("held") or [],
                                           "vetoed": mine.get("vetoed") or [], "retained": mine.get("retained") or [],
                                           "others": mine.get("others") or [],
                                           "summary": prune_summary(mine, check_mode)}}
