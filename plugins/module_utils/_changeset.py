# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Change sets: hosts that are snapshotted, changed and reverted together.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

A host joins a set with the host variable ``prechange_change_set`` (an application's web, app and
database VMs, on any mix of providers). The workflow action's ``run`` step sees every host of the
serial batch, so it applies the set rules across endpoints:

* ``split_sets``: before anything is made, a set whose members are not all in this batch (serial
  batches are cut in inventory order) or did not all make a request is refused as a whole.
* ``incomplete_sets``: after the snapshots, a set with a member whose snapshot failed or was refused is
  refused as a whole; the snapshots this run made for the other members are deleted again (``undo``).
* ``set_reverts``: before the verdict, when a member's change or checks failed, every member is reverted
  to this run's snapshot, with the reason naming that member.
* ``set_summary``: the report's per-set section.

These functions only decide; the action plugin carries the decisions out.
"""

from __future__ import annotations

import re

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import PrecheckFailed

# Actions of a snapshot result that mean a snapshot of this run is on the VM.
MADE = ("created", "adopted")


class ChangeSetRefused(PrecheckFailed):
    """Another member of the host's change set could not be snapshotted; nothing was changed."""


def set_name(value):
    """A host's set name, or '' (no set)."""
    if value is None:
        return ""
    return str(value).strip()


def members_of(sets):
    """{set: [hosts]} from {host: set name}, in the hosts' order, without hosts in no set."""
    found = {}
    for host, name in sets.items():
        name = set_name(name)
        if name:
            found.setdefault(name, []).append(host)
    return found


def short_reason(message):
    """The reason part of an engine message ('Failed to ... on <provider>: <reason>. <hint>.')."""
    text = str(message or "failed")
    match = re.search(r" on (?:vmware|libvirt|proxmox): (.*)$", text, re.S)
    return (match.group(1) if match else text).strip().rstrip(".")


def split_sets(sets, play_hosts, batch_hosts, requested):
    """Refusals for sets that cannot be snapshotted whole in this batch, before anything is made.

    ``sets``: {host: set} for every host of the play; ``play_hosts``: the play's hosts; ``batch_hosts``:
    this serial batch's hosts; ``requested``: the hosts of the batch that made a request for this call.
    Returns {host: (set, reason, hint)} for the requesting members of such sets.
    """
    refusals = {}
    in_play = [h for h in play_hosts if h in sets]
    for name, members in members_of({h: sets[h] for h in in_play}).items():
        here = [h for h in members if h in requested]
        if not here:
            continue
        elsewhere = [h for h in members if h not in batch_hosts]
        missing = [h for h in members if h in batch_hosts and h not in requested]
        if elsewhere:
            reason = ("set %s is split across serial batches: %s %s in this batch, %s %s not (serial batches are "
                      "cut in inventory order), and a set is snapshotted and reverted as a whole"
                      % (name, ", ".join(here), "is" if len(here) == 1 else "are", ", ".join(elsewhere),
                         "is" if len(elsewhere) == 1 else "are"))
            hint = ("List the set's hosts next to each other in the inventory and choose maintenance_serial so that "
                    "no batch boundary falls inside a set (serial may be a list, e.g. [3, 2]), or run the set on its "
                    "own with --limit; nothing was changed")
        elif missing:
            reason = ("set %s is incomplete in this batch: %s made no snapshot request (it failed or was skipped "
                      "before), and a set is snapshotted and reverted as a whole" % (name, ", ".join(missing)))
            hint = "Fix %s, then run the set again; nothing was changed" % ", ".join(missing)
        else:
            continue
        for host in here:
            refusals[host] = (name, reason, hint)
    return refusals


def incomplete_sets(sets, results, check_mode=False):
    """After the snapshots: the sets with a member that has no snapshot, and what to do for the others.

    ``results``: {host: snapshot result} of this batch. Returns {host: {"set", "reason", "hint", "undo"}}
    for every other member of such a set; ``undo`` is True when this run's snapshot of that member is on
    its VM and must be deleted again (never in check mode: nothing was made).
    """
    out = {}
    for name, members in members_of({h: sets.get(h) for h in results}).items():
        failed = [h for h in members if (results.get(h) or {}).get("failed")]
        if not failed:
            continue
        first = failed[0]
        reason = "set %s is all or nothing and %s's snapshot failed (%s)" % (
            name, first, short_reason(results[first].get("msg")))
        for host in members:
            if host in failed:
                continue
            undo = not check_mode and results[host].get("action") in MADE
            out[host] = {"set": name, "reason": reason, "undo": undo,
                         "hint": "Fix %s, then run the set again; %snothing was changed"
                                 % (first, "this VM's snapshot of this run was deleted again, " if undo else "")}
    return out


def _why(host, request, decision):
    if request.get("change_failed"):
        return "%s's change failed" % host
    if decision == "revert" and request.get("action") in (None, "", "auto"):
        return "%s's check failed" % host
    return "%s is reverted (revert_or_prune_action is %s)" % (host, request.get("action"))


def set_reverts(sets, requests, decisions, batch_hosts=(), snapshotted=()):
    """Before the verdict: {host: reason} for every member to revert because another member failed.

    ``decisions``: {host: decision} of the hosts' own settle requests (revert, delete, keep, release,
    depends). A member of the batch that had its snapshot (``snapshotted``) but made no verdict request
    (it failed on the way) counts as failed too.
    """
    forced = {}
    for name, members in members_of({h: sets.get(h) for h in set(requests) | set(batch_hosts)}).items():
        reverting = [h for h in members if h in requests and decisions.get(h) == "revert"]
        lost = [h for h in members if h not in requests and h in snapshotted]
        if reverting:
            why = "set %s: %s" % (name, _why(reverting[0], requests[reverting[0]], "revert"))
        elif lost:
            why = "set %s: %s failed before its verdict" % (name, lost[0])
        else:
            continue
        for host in members:
            if host in requests and decisions.get(host) != "revert":
                forced[host] = why
    return forced


SET_OUTCOME_ORDER = ("error", "refused", "reverted", "deferred", "stopped", "waiting", "not_reached", "check", "ok")


def set_summary(records):
    """The report's change sets: [{"set", "members", "outcome", "why"}], from the hosts' records."""
    out = []
    by_set = {}
    for record in records:
        name = set_name(record.get("change_set"))
        if name:
            by_set.setdefault(name, []).append(record)
    for name in sorted(by_set):
        members = by_set[name]
        outcomes = {r["outcome"] for r in members}
        outcome = next((o for o in SET_OUTCOME_ORDER if o in outcomes), "mixed")
        if len(outcomes) > 1 and outcomes - {"reverted", "error"} and "reverted" in outcomes:
            outcome = "mixed"
        why = ""
        prefix = "set %s" % name
        for record in members:
            for text in (record.get("reason") or "", record.get("error") or ""):
                if prefix in text:
                    why = text[text.index(prefix):]
                    break
            if why:
                break
        if not why:
            culprit = next((r for r in members if r["outcome"] == outcome), members[0])
            why = culprit.get("error") or culprit.get("reason") or ""
        out.append({"set": name, "members": [r["host"] for r in members], "outcome": outcome, "why": why,
                    "providers": sorted({r.get("provider") or "" for r in members} - {""})})
    return out
