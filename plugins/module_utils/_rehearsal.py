# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The rehearsal's decisions (issue 13): rehearse the change on a clone of the pre-change snapshot first.

The maintenance playbook and the guard role only call these (through ``prechange.snapshots.workflow``
``step: rehearse``, in their one task file playbooks/tasks/rehearse.yml) and publish what they return. Their
settings carry the caller's prefix (``maintenance_rehearse_*``, ``guard_rehearse_*``: ``SETTINGS``):

* ``plan``: before anything is cloned, the clone's name, its network and how the controller reaches
  it; a rehearsal that could not reach its clone is refused here, so nothing is cloned;
* ``outcome``: after the change and the checks ran on the clone, the rehearsal's verdict, whether the
  change may go on to the real VM, and whether the clone is kept (on failure, when asked).
"""

from __future__ import annotations

import re

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import InvalidRequest

__metaclass__ = type

# Whose settings a rehearsal uses: the maintenance playbook's or the guard role's (<prefix>_rehearse_*).
SETTINGS = ("maintenance", "guard")
# libvirt domain names, vSphere VM names and Proxmox VM names all accept these.
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


def clone_name(vm, run_id, pattern=""):
    """The clone's VM name: ``<vm>-rehearsal-<run id>`` unless the user gave a pattern (already templated)."""
    if pattern:
        return str(pattern)
    return _UNSAFE.sub("-", "%s-rehearsal-%s" % (vm, run_id)).strip("-")[:63]


def plan(host, vm, provider, snapshot, run_id, network=None, connection=None, pattern="", settings="maintenance"):
    """What to clone and how to reach the clone, or InvalidRequest when the rehearsal could not reach it.

    ``connection`` are the clone's inventory variables (e.g. ``{ansible_host: 10.0.2.15}``); the clone
    is reached with the real host's connection settings overlaid by these. A clone without a network
    (the default: every NIC cut off) can only be reached through a connection the user names.
    ``settings``: whose variables the messages name (``SETTINGS``).
    """
    if settings not in SETTINGS:
        raise InvalidRequest("the rehearsal's settings are '%s'" % (settings,), action="clone", vm=vm,
                             snapshot=snapshot, provider=provider,
                             hint="Use one of %s; nothing was cloned" % ", ".join(SETTINGS))
    if connection in ("", None):
        connection = {}
    if not isinstance(connection, dict):
        raise InvalidRequest("%s_rehearse_connection must be a dict of the clone's host variables, got %r"
                             % (settings, connection), action="clone", vm=vm, snapshot=snapshot, provider=provider,
                             hint="Give e.g. {ansible_host: 10.0.2.15, ansible_port: 22}; nothing was cloned")
    network = network or None
    if not connection and not network:
        raise InvalidRequest(
            "host %s cannot be rehearsed: its clone would have no network (%s_rehearse_network is empty) "
            "and %s_rehearse_connection says no other way to reach it" % (host, settings, settings),
            action="clone", vm=vm, snapshot=snapshot, provider=provider,
            hint="Set %s_rehearse_network to a network the controller reaches the clone on, and "
                 "%s_rehearse_connection to the clone's address; nothing was cloned" % (settings, settings))
    name = clone_name(vm, run_id, pattern)
    if name == vm:
        raise InvalidRequest("the clone's name '%s' is the VM's own name" % name, action="clone", vm=vm,
                             snapshot=snapshot, provider=provider, hint="Give %s_rehearse_clone_name another name; "
                             "nothing was cloned" % settings)
    return {"host": host, "clone": name, "inventory_name": "rehearsal-%s" % name, "network": network,
            "connection": dict(connection)}


def outcome(clone, change_failed=False, change_error=None, verdict=None, keep_failed=False, started=None,
            finished=None, clone_seconds=None, error=""):
    """The rehearsal's record: its verdict, whether the real change may go on, and what becomes of the clone.

    It passes only when the clone was made, the change did not fail on it and the checks passed on it.
    ``error`` is a failure of the rehearsal's own machinery (the clone could not be made or reached).
    """
    verdict = verdict if isinstance(verdict, dict) else {}
    failures = [str(f) for f in (verdict.get("failures") or [])]
    if error:
        passed, reason = False, "the rehearsal could not run: %s" % error
    elif change_failed:
        passed, reason = False, "the change failed on the clone"
    elif verdict.get("passed") is None:
        passed, reason = False, "the checks did not run on the clone"
    elif not _true(verdict.get("passed")):
        passed, reason = False, "the checks failed on the clone"
    else:
        passed, reason = True, "the change and the checks passed on the clone"
    keep = bool(keep_failed) and not passed
    if change_failed and not error:
        detail = ": ".join(str(v) for v in ((change_error or {}).get("task"), (change_error or {}).get("msg")) if v)
    else:
        detail = "; ".join(failures) if not error else ""
    return {
        # The verdict in one line, with what failed (the guard role fails the host with it).
        "summary": "%s%s" % (reason, " (%s)" % detail if detail else ""),
        "passed": passed,
        "go_on": passed,
        "reason": reason,
        "clone": clone,
        "clone_kept": keep,
        "change_error": dict(change_error or {}) if change_failed else {},
        "failures": failures,
        "error": str(error or ""),
        "started": started,
        "finished": finished,
        "clone_seconds": clone_seconds,
    }


def _true(value):
    return value is True or str(value).lower() in ("true", "yes", "1")


def report_outcome(rehearsal):
    """The host's outcome when its rehearsal failed (its real VM was not changed), else None."""
    if isinstance(rehearsal, dict) and rehearsal.get("passed") is False:
        return "rehearsal_failed"
    return None


def markdown_rows(hosts):
    """The report's rehearsal section: one row per host that was rehearsed."""
    rows = []
    for h in hosts:
        r = h.get("rehearsal")
        if not r:
            continue
        clone = r.get("clone") or {}
        verdict = "passed" if r.get("passed") else "FAILED: %s" % r.get("reason")
        if r.get("change_error"):
            verdict += " (%s)" % "; ".join("%s" % v for v in (r["change_error"].get("task"),
                                                              r["change_error"].get("msg")) if v)
        if r.get("failures"):
            verdict += " (%s)" % "; ".join(r["failures"])
        real = {"rehearsal_failed": "not changed (the change never reached it)"}.get(h["outcome"], h["outcome"])
        if h["outcome"] != "rehearsal_failed":
            real = "%s, checks %s" % (real, {True: "passed", False: "failed", None: "—"}[h["verify"]["passed"]])
        rows.append((h["host"], "%s%s" % (clone.get("name") or "—", " (kept for inspection)"
                                          if r.get("clone_kept") else " (removed)"),
                     "%s to %s%s" % (r.get("started") or "?", r.get("finished") or "?",
                                     ", clone made in %ss" % r["clone_seconds"] if r.get("clone_seconds") is not None
                                     else ""),
                     verdict, real))
    return rows


def step(args, host):
    """``prechange.snapshots.workflow`` ``step: rehearse``: ``rehearsal: plan`` or ``rehearsal: outcome``."""
    request = dict(args.get("request") or {})
    what = args.get("rehearsal")
    if what == "plan":
        try:
            return {"changed": False, "plan": plan(host, request.get("vm"), request.get("provider"),
                                                   request.get("snapshot"), request.get("run_id"),
                                                   request.get("network"), request.get("connection"),
                                                   request.get("clone_name") or "",
                                                   request.get("settings") or "maintenance")}
        except InvalidRequest as error:
            return {"failed": True, "msg": str(error), "error": "InvalidRequest"}
    if what == "outcome":
        return {"changed": False, "rehearsal": outcome(
            request.get("clone"), _true(request.get("change_failed")), request.get("change_error"),
            request.get("verdict"), _true(request.get("keep_failed")), request.get("started"),
            request.get("finished"), request.get("clone_seconds"), request.get("error") or "")}
    return {"failed": True, "msg": "workflow step rehearse: rehearsal must be plan, outcome or clone, got %r" % (what,)}
