# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Options shared by every <provider>_snapshot module, and by every <provider>_snapshot_info module."""

    DOCUMENTATION = r"""
options:
  vm:
    description:
      - The VM to act on, by name or by an id the provider understands.
      - Mutually exclusive with O(vms).
    type: str
  vms:
    description:
      - Act on many VMs in one call (batch mode), each by name or id.
      - Up to O(concurrency) VMs are worked on at once; every VM gets its own line in RV(results), and one
        VM's failure does not stop the others. The task fails if any VM failed, after all were tried.
      - Mutually exclusive with O(vm).
    type: list
    elements: str
  name:
    description:
      - Name of the snapshot. Required unless O(state=absent) with O(delete_all).
      - Lookup walks the whole snapshot tree, sibling branches included. When two snapshots of one VM share
        the name, the task fails and lists them; it never guesses.
      - With O(delete_all), a glob pattern that narrows which snapshots are deleted.
    type: str
  description:
    description:
      - Free text kept in the snapshot's description.
      - The collection appends its ownership marker as the last line; your text above it is kept as is.
      - When the snapshot exists with another description, it is re-described where the platform allows it.
    type: str
  state:
    description:
      - V(present) creates the snapshot when no snapshot of that name exists (idempotent by name).
      - V(absent) deletes it; a missing snapshot is not an error.
      - V(reverted) reverts the VM to it. This always reports C(changed) and fails when the snapshot is
        missing or its name is ambiguous.
    type: str
    choices: [present, absent, reverted]
    default: present
  memory:
    description:
      - Save the VM's memory state, so a revert resumes the running guest without a reboot.
      - Default is to save memory when the VM is running and the snapshot type can hold it.
      - V(true) on a VM that is not running fails before anything is changed.
    type: bool
  quiesce:
    description:
      - Ask the guest tools / agent to flush and freeze file systems while the snapshot is taken.
      - RV(snapshot.quiesced) reports what was actually achieved.
    type: bool
    default: false
  strict:
    description:
      - Fail when O(quiesce) was asked for but the platform did not achieve it, instead of warning.
    type: bool
    default: false
  remove_children:
    description:
      - With O(state=absent), also delete every snapshot below this one.
      - When V(false), children are kept and re-parented to the deleted snapshot's parent.
    type: bool
    default: false
  revert_power_state:
    description:
      - Power state of the VM after O(state=reverted).
      - V(snapshot) leaves it as the snapshot recorded it (running for a memory snapshot).
      - V(running), V(paused) or V(stopped) force that state after the revert.
    type: str
    choices: [snapshot, running, paused, stopped]
    default: snapshot
  new_name:
    description:
      - With O(state=present), rename the snapshot O(name) to this name, where the platform allows it.
      - Idempotent, when O(name) no longer exists and O(new_name) does, nothing changes.
    type: str
  delete_all:
    description:
      - With O(state=absent), delete many snapshots of the VM at once.
      - V(owned) deletes every snapshot that carries this collection's ownership marker.
      - V(expired) deletes only our snapshots whose marker expiry has passed.
      - V(all) deletes every snapshot of the VM, including ones this collection did not make.
      - Snapshots without a marker that parses are never touched by V(owned) or V(expired).
    type: str
    choices: [owned, expired, all]
  run_id:
    description:
      - Run id written into the ownership marker of a new snapshot. Generated when omitted.
    type: str
  ticket:
    description:
      - Change ticket written into the ownership marker of a new snapshot.
    type: str
  expires:
    description:
      - When a new snapshot may be pruned, written into its ownership marker.
      - A duration from now (V(30m), V(12h), V(7d), V(2w)) or an ISO 8601 timestamp.
    type: str
  creator:
    description:
      - Creator written into the ownership marker. Defaults to C(user@controller-host).
    type: str
  timeout:
    description:
      - Seconds to wait for each hypervisor operation. A timeout error names the state the operation was
        last in.
    type: int
    default: 600
  lock_timeout:
    description:
      - Seconds to wait for another job that holds the VM to let go of it, checked before anything is changed
        (in check mode too) and again if such a job starts just as the change does.
      - Another job is a Proxmox VE config lock (V(backup), V(migrate), V(snapshot), ...), a vSphere task
        queued or running on the VM (or a C(TaskInProgress) fault), or a libvirt domain job or block job
        (backup, migration, dump, block copy or commit).
      - V(0) refuses such a VM at once, naming the lock, the task or the job; nothing is changed.
      - A positive value waits with backoff up to that many seconds for the VM to be free, then refuses the
        same way. In batch mode (O(vms)) each VM is waited for on its own.
    type: int
    default: 0
  concurrency:
    description:
      - How many VMs of O(vms) are worked on at once.
    type: int
    default: 10
  capacity_policy:
    description:
      - What happens before a create when a storage the VM's disks grow on has not enough free space for the
        snapshot (see O(capacity_growth), O(capacity_reserve_gb) and O(capacity_min_free_gb)).
      - V(fail) refuses the snapshot with the numbers, the storage and what to do; nothing is changed. Check mode
        predicts the refusal.
      - V(warn) creates it anyway with a warning. V(ignore) does not measure.
      - A storage whose free space the platform does not report is never refused; a warning says it was skipped.
    type: str
    choices: [fail, warn, ignore]
    default: fail
    version_added: 1.0.0
  capacity_growth:
    description:
      - The share of the provisioned size of the disks on a storage that the new snapshot may grow to there
        (V(0.1) is 10%). The VM's memory size is added on the storage that keeps the memory state, when
        memory is saved.
      - Ignored when O(capacity_reserve_gb) is set.
    type: float
    default: 0.1
    version_added: 1.0.0
  capacity_reserve_gb:
    description:
      - A fixed space in GiB the snapshot needs on each storage, instead of O(capacity_growth). V(0) uses the
        growth factor.
    type: float
    default: 0
    version_added: 1.0.0
  capacity_min_free_gb:
    description:
      - GiB that must stay free on each storage after the snapshot's need. V(0) keeps nothing back.
    type: float
    default: 0
    version_added: 1.0.0
notes:
  - Check mode reports exactly the C(changed) a real run would, runs the same prechecks, and changes nothing.
  - Diff mode returns the VM's snapshot names before and after.
"""

    INFO = r"""
options:
  vm:
    description:
      - The VM whose snapshots to list, by name or id. When neither O(vm) nor O(vms) is given, every VM on
        the endpoint is listed.
    type: str
  vms:
    description:
      - Several VMs whose snapshots to list.
    type: list
    elements: str
  name_pattern:
    description:
      - Only snapshots whose name matches this glob pattern (for example V(prechange-*)).
    type: str
  owned:
    description:
      - V(true) lists only snapshots with this collection's ownership marker; V(false) only the others.
    type: bool
  run_id:
    description:
      - Only snapshots whose ownership marker carries this run id.
    type: str
  older_than:
    description:
      - Only snapshots older than this duration (V(30m), V(12h), V(7d), V(2w)).
    type: str
  expired:
    description:
      - V(true) lists only our snapshots whose expiry has passed; V(false) only the others.
    type: bool
  timeout:
    description:
      - Seconds to wait for each API call (connect and answer). An API that does not answer in time is
        reported as C(no answer from <host> within <n>s), never waited for longer.
    type: int
    default: 600
    version_added: 1.0.0
"""
