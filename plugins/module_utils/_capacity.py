# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Storage capacity before a snapshot, and the growth of a snapshot while a change runs.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

Providers only measure: ``SnapshotBackend.capacity(vm)`` says, per disk, on which storage its
snapshot data will grow and that storage's free and total bytes, plus the disk's provisioned
and used bytes (``DiskUsage``), and how big the VM's memory is (``Capacity``). Every decision is
here:

* ``assess()``: per storage, the space a new snapshot may need (a growth factor of the
  provisioned size of the disks on it, plus the memory state when it is saved there, or a fixed
  reserve) against what is free, keeping ``min_free_gb`` free; ``check()`` turns that into a
  refusal or a warning by ``CapacityPolicy.action``. Unknown free space is a note, never a refusal.
* ``growth()``: between two measurements (at snapshot time, at the decision), how much the
  snapshot data grew and how much free space went, against a threshold in bytes or in percent
  of the free space at snapshot time; says whether to stop the change or only alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import InvalidRequest, PrecheckFailed

GIB = 1024 ** 3
CAPACITY_ACTIONS = ("fail", "warn", "ignore")
GROWTH_ACTIONS = ("stop", "alert")


@dataclass
class DiskUsage:
    """One disk of a VM and the storage its snapshot data grows on; None where the platform does not say."""

    disk: str  # the disk as the platform names it: vda, scsi0, Hard disk 1
    storage: Optional[str]  # datastore, Proxmox storage, libvirt pool or directory
    free_bytes: Optional[int] = None
    total_bytes: Optional[int] = None
    provisioned_bytes: Optional[int] = None  # the disk's size as the guest sees it
    used_bytes: Optional[int] = None  # what it takes on the storage now (snapshots included where known)
    note: Optional[str] = None  # what is not known, and why

    def to_result(self):
        return {"disk": self.disk, "storage": self.storage, "free_bytes": self.free_bytes,
                "total_bytes": self.total_bytes, "provisioned_bytes": self.provisioned_bytes,
                "used_bytes": self.used_bytes, "note": self.note}


@dataclass
class Capacity:
    """What a provider measured of one VM: its disks, and its memory size and where a memory state goes."""

    disks: list = field(default_factory=list)  # DiskUsage
    memory_bytes: Optional[int] = None
    memory_storage: Optional[str] = None  # where a saved memory state is written; None: with the first disk
    note: Optional[str] = None  # why nothing could be measured, when ``disks`` is empty


@dataclass
class CapacityPolicy:
    """How much space a new snapshot needs, and what happens when it is not there."""

    action: str = "fail"  # fail, warn, ignore
    growth: float = 0.1  # share of the disks' provisioned size a snapshot may grow to
    reserve_gb: float = 0  # when > 0: a fixed need per storage instead of the growth factor
    min_free_gb: float = 0  # what must stay free on the storage after the need

    def validate(self):
        if self.action not in CAPACITY_ACTIONS:
            raise InvalidRequest("capacity_policy is '%s'" % self.action,
                                 hint="Use fail, warn or ignore; nothing was changed")
        for name, value in (("capacity_growth", self.growth), ("capacity_reserve_gb", self.reserve_gb),
                            ("capacity_min_free_gb", self.min_free_gb)):
            if value is None or value < 0:
                raise InvalidRequest("%s must be 0 or a positive number (it is %s)" % (name, value),
                                     hint="Set %s to 0 or more; nothing was changed" % name)
        return self


def gib(value):
    if abs(value) < GIB:
        return "%.0f MiB" % (value / float(1024 ** 2))
    return "%.1f GiB" % (value / float(GIB))


def _percent(value):
    return "%.0f%%" % (value * 100) if value * 100 >= 1 else "%g%%" % (value * 100)


def storages(capacity, memory=False):
    """The VM's storages, one dict each: free and total bytes, its disks and their sizes, the memory state
    it would hold. In the order the disks come."""
    rows = {}
    for disk in capacity.disks:
        key = disk.storage or "(unknown storage of %s)" % disk.disk
        row = rows.setdefault(key, {"storage": disk.storage, "free_bytes": disk.free_bytes,
                                    "total_bytes": disk.total_bytes, "disks": [], "provisioned_bytes": 0,
                                    "used_bytes": 0, "memory_bytes": 0, "notes": []})
        row["disks"].append(disk.disk)
        row["provisioned_bytes"] += disk.provisioned_bytes or 0
        if disk.used_bytes is None or row["used_bytes"] is None:
            row["used_bytes"] = None
        else:
            row["used_bytes"] += disk.used_bytes
        if row["free_bytes"] is None and disk.free_bytes is not None:
            row["free_bytes"], row["total_bytes"] = disk.free_bytes, disk.total_bytes
        if disk.note and disk.note not in row["notes"]:
            row["notes"].append(disk.note)
    if memory and capacity.memory_bytes and rows:
        target = capacity.memory_storage if capacity.memory_storage in rows else next(iter(rows))
        rows[target]["memory_bytes"] = capacity.memory_bytes
    return list(rows.values())


@dataclass
class Assessment:
    """``assess``'s answer: per storage the need and the verdict, what breaks the policy, what was not known."""

    rows: list = field(default_factory=list)
    violations: list = field(default_factory=list)  # texts, one per storage short of space
    notes: list = field(default_factory=list)  # checks that could not run, and why


def assess(capacity, policy, memory=False):
    """Whether each storage of the VM holds the new snapshot's growth and still keeps ``min_free_gb`` free."""
    result = Assessment()
    if not capacity.disks:
        result.notes.append("the capacity check was skipped: %s" % (capacity.note or "the provider reports no disks"))
        return result
    for row in storages(capacity, memory):
        name = row["storage"] or "unknown"
        if policy.reserve_gb:
            need = int(policy.reserve_gb * GIB)
            why = "the fixed reserve capacity_reserve_gb"
        else:
            need = int(policy.growth * row["provisioned_bytes"]) + row["memory_bytes"]
            why = "%s of the %s of disk%s %s" % (_percent(policy.growth), gib(row["provisioned_bytes"]),
                                                 "s" if len(row["disks"]) > 1 else "", ", ".join(row["disks"]))
            if row["memory_bytes"]:
                why += " plus %s of memory state" % gib(row["memory_bytes"])
        keep = int(policy.min_free_gb * GIB)
        row.update(needed_bytes=need, keep_free_bytes=keep)
        result.rows.append(row)
        if row["storage"] is None or row["free_bytes"] is None:
            row["enough"] = None
            result.notes.append("the free space of storage '%s' (disk%s %s) is not known%s; the capacity check "
                                "skipped it" % (name, "s" if len(row["disks"]) > 1 else "", ", ".join(row["disks"]),
                                                ": %s" % "; ".join(row["notes"]) if row["notes"] else ""))
            continue
        row["enough"] = row["free_bytes"] - need >= keep
        if not row["enough"]:
            text = "storage '%s' has %s free of %s; the snapshot may need %s there (%s)" % (
                name, gib(row["free_bytes"]), gib(row["total_bytes"] or 0), gib(need), why)
            if keep:
                text += " and %s must stay free (capacity_min_free_gb)" % gib(keep)
            result.violations.append(text)
    return result


def check(capacity, policy, memory=False):
    """The capacity decision before a create: raises ``PrecheckFailed`` (policy fail), or returns the warnings
    to give (policy warn, and the checks that could not run)."""
    if policy is None or policy.action == "ignore":
        return []
    found = assess(capacity, policy, memory)
    if found.violations and policy.action == "fail":
        raise PrecheckFailed(
            "not enough free space for the snapshot: %s" % "; ".join(found.violations),
            hint="Free space on that storage (delete old snapshots or files), move the disks, or lower "
                 "capacity_growth, or set capacity_policy to warn to create it anyway; nothing was changed",
            details={"capacity": found.rows})
    return ["not enough free space for the snapshot, creating it anyway (capacity_policy=warn): %s" % v
            for v in found.violations] + found.notes


# --- growth between snapshot time and the decision ------------------------------------------------


@dataclass
class GrowthLimit:
    """How much a snapshot may grow while the change runs: bytes, or percent of the free space at snapshot time."""

    max_bytes: Optional[int] = None
    max_percent: Optional[float] = None
    action: str = "alert"  # stop: revert the change; alert: a warning in the report

    @property
    def set(self):
        return bool(self.max_bytes) or bool(self.max_percent)

    def validate(self):
        if self.action not in GROWTH_ACTIONS:
            raise InvalidRequest("the growth action is '%s'" % self.action, hint="Use stop or alert")
        for value in (self.max_bytes, self.max_percent):
            if value is not None and value < 0:
                raise InvalidRequest("a growth limit must be 0 or more (it is %s)" % value,
                                     hint="Set it to 0 (no limit) or more")
        return self


def measure(capacity, sizes=None):
    """One measurement of a VM for the report: the snapshot's size (when the provider measures it) or the
    disks' allocation, and the free space per storage."""
    rows = storages(capacity)
    used = [r["used_bytes"] for r in rows]
    return {
        "snapshot_bytes": sizes,
        "allocated_bytes": None if not rows or None in used else sum(used),
        "storages": [{"storage": r["storage"], "free_bytes": r["free_bytes"], "total_bytes": r["total_bytes"]}
                     for r in rows],
    }


def measure_vm(backend, vm, snapshot_id=None):
    """``measure`` through a backend (read-only): the VM's storages and the snapshot's size. A measurement
    that fails is recorded as such (``note``); it never fails the step that asked for it."""
    try:
        snaps = []
        if snapshot_id is not None:
            snaps = [s for s in backend.list_snapshots(vm) if str(s.id) == str(snapshot_id)]
        # refresh: these two numbers are compared (growth), so they must be the platform's current ones.
        capacity, sizes, note = backend.measure_storage(vm, snaps, refresh=True)
        size = next(iter(sizes.values()), (None, None))[0]
        result = measure(capacity, size)
        if note:
            result["note"] = note
    except Exception as error:  # pylint: disable=broad-except
        # Only a report's numbers: no reading of them may stop the snapshot or the decision.
        return {"snapshot_bytes": None, "allocated_bytes": None, "storages": [], "note": str(error)}
    return result


def growth_limit(raw):
    """A settle request's ``growth_limit`` dict (max_gb, max_percent, action) as a ``GrowthLimit``, or None."""
    raw = raw or {}
    max_gb = float(raw.get("max_gb") or 0)
    limit = GrowthLimit(max_bytes=int(max_gb * GIB) or None, max_percent=float(raw.get("max_percent") or 0) or None,
                        action=raw.get("action") or "alert")
    return limit.validate() if limit.set else None


def _size_of(measurement):
    """The number growth is taken from: the snapshot's own size, else the disks' allocation."""
    if measurement.get("snapshot_bytes") is not None:
        return measurement["snapshot_bytes"], "snapshot"
    return measurement.get("allocated_bytes"), "allocation"


def _free(measurement):
    free = [s["free_bytes"] for s in measurement.get("storages") or () if s.get("free_bytes") is not None]
    return min(free) if free else None


def growth(before, after, limit):
    """The growth of one host's snapshot between two measurements, and whether it breaks ``limit``.

    Returns a dict: ``growth_bytes`` (None when either side is unknown), ``measured`` (snapshot or
    allocation), ``free_before_bytes`` / ``free_after_bytes`` (the tightest storage), ``over``
    (True/False/None), ``action`` (stop, alert or None) and ``message``.
    """
    size_before, how = _size_of(before or {})
    size_after, how_after = _size_of(after or {})
    if how != how_after:
        # Compare like with like: the allocation is known on both sides when the snapshot size is not.
        size_before, size_after, how = before.get("allocated_bytes"), after.get("allocated_bytes"), "allocation"
    grown = None if size_before is None or size_after is None else size_after - size_before
    free_before, free_after = _free(before or {}), _free(after or {})
    result = {"growth_bytes": grown, "measured": how, "size_before_bytes": size_before,
              "size_after_bytes": size_after, "free_before_bytes": free_before, "free_after_bytes": free_after,
              "over": None, "action": None, "message": None}
    if limit is None or not limit.set:
        return result
    if grown is None:
        result["message"] = "the snapshot's growth could not be measured; the growth limit was not checked"
        return result
    limits = []
    if limit.max_bytes:
        limits.append((limit.max_bytes, gib(limit.max_bytes)))
    if limit.max_percent and free_before is not None:
        allowed = int(free_before * limit.max_percent / 100.0)
        limits.append((allowed, "%g%% of the %s free at snapshot time" % (limit.max_percent, gib(free_before))))
    elif limit.max_percent:
        result["message"] = "the free space at snapshot time is not known; the percent growth limit was not checked"
    broken = [text for allowed, text in limits if grown > allowed]
    result["over"] = bool(broken)
    if broken:
        result["action"] = limit.action
        result["message"] = "the snapshot grew by %s during the change (%s %s -> %s), over the limit of %s" % (
            gib(grown), how, gib(size_before), gib(size_after), " and ".join(broken))
    return result
