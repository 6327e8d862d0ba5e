#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_snapshot
short_description: Create, delete or revert to a snapshot of a libvirt/KVM domain
version_added: 1.0.0
description:
  - Takes, deletes or reverts to snapshots of libvirt domains, with the same options and results as
    the VMware and Proxmox modules of this collection.
  - Internal snapshots (the default) keep memory state for running guests and are disk-only for shut-off
    guests. O(location=external) makes disk-only external snapshots, optionally quiesced through the QEMU
    guest agent.
  - Before anything is changed, it refuses what libvirt would refuse half way or what could not be reverted
    later, each with a message naming the VM, the snapshot and what to do. Raw disks with internal
    snapshots; quiesce without a guest agent; revert to an external snapshot on libvirt older than 9.9;
    trees that mix internal and external snapshots; UEFI (pflash) guests with internal snapshots.
  - Every snapshot it creates carries the collection's ownership marker in its description.
author:
  - prechange.snapshots contributors (@prechange)
options:
  location:
    description:
      - V(internal) stores the snapshot inside the qcow2 disks (and memory, when running).
      - V(external) makes a disk-only snapshot into new overlay files; on libvirt older than 9.9 such a
        snapshot cannot be reverted to, which the module refuses up front.
    type: str
    choices: [internal, external]
    default: internal
extends_documentation_fragment:
  - prechange.snapshots.snapshot
  - prechange.snapshots.libvirt
  - prechange.snapshots.libvirt.ACTIONGROUP_LIBVIRT
  - prechange.snapshots.attributes
  - prechange.snapshots.attributes.ACTIONS
seealso:
  - module: prechange.snapshots.libvirt_snapshot_info
"""

EXAMPLES = r"""
- name: Snapshot a running guest with its memory, expiring in a week
  prechange.snapshots.libvirt_snapshot:
    vm: web01
    name: before-patching
    description: Kernel update CHG0042
    ticket: CHG0042
    expires: 7d
  delegate_to: localhost

- name: Revert to it and leave the guest running
  prechange.snapshots.libvirt_snapshot:
    uri: qemu+ssh://root@kvm1/system
    vm: web01
    name: before-patching
    state: reverted
    revert_power_state: running
  delegate_to: localhost

- name: Delete it, keeping any later snapshots (re-parented)
  prechange.snapshots.libvirt_snapshot:
    vm: web01
    name: before-patching
    state: absent
  delegate_to: localhost

- name: Quiesced external disk-only snapshot (needs qemu-guest-agent in the guest)
  prechange.snapshots.libvirt_snapshot:
    vm: db01
    name: before-migration
    location: external
    quiesce: true
  delegate_to: localhost

- name: Snapshot many domains in one call
  prechange.snapshots.libvirt_snapshot:
    vms: [web01, web02, db01]
    name: prechange-20261122
    concurrency: 5
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
action:
  description: What was done (or would be done in check mode).
  returned: success, single VM
  type: str
  sample: created
  choices: [created, exists, updated, deleted, absent, reverted]
vm:
  description: The VM acted on. When the task failed, the VM as given (a string).
  returned: single VM (a string on failure)
  type: dict
  contains: &vm
    name:
      description: Domain name.
      type: str
      sample: web01
    id:
      description: Domain UUID.
      type: str
      sample: 6695eb01-f6a4-8304-79aa-97f2502e193f
    power_state:
      description: The VM's power state when the task ended, read from the platform (running, paused, stopped,
        suspended or unknown). After a revert, the state the revert left (see O(revert_power_state)); create and
        delete leave it as it was. In check mode nothing changes, so it is the current state.
      type: str
      sample: running
snapshot:
  description: The snapshot created, found, re-described, renamed, deleted or reverted to; null when O(state=absent)
    found nothing or O(delete_all) was used. When the task failed, the snapshot name as given (a string) or null.
  returned: single VM (a string on failure)
  type: dict
  contains: &snapshot
    name:
      description: Snapshot name.
      type: str
      sample: before-patching
    id:
      description: Snapshot id (for libvirt, the name).
      type: str
      sample: before-patching
    description:
      description: The user's description, without the ownership marker.
      type: str
      sample: Kernel update CHG0042
    created:
      description: Creation time, UTC ISO 8601.
      type: str
      sample: "2026-11-22T02:15:00Z"
    age_seconds:
      description: Age in seconds at the time of the task.
      type: int
      sample: 42
    parent:
      description: Name of the parent snapshot, null for a root snapshot.
      type: str
      sample: null
    children:
      description: Names of the direct children.
      type: list
      elements: str
      sample: []
    current:
      description: Whether this is the VM's current snapshot.
      type: bool
      sample: true
    memory:
      description: Whether the snapshot holds memory state.
      type: bool
      sample: true
    quiesced:
      description: Whether the file systems were quiesced, as actually achieved; null where unknown.
      type: bool
      sample: null
    owner:
      description: The ownership marker (run, creator, created, expires, ticket) when the collection made it, else
        null.
      type: dict
      sample: {"run": "20261122T021500Z-4f2a", "creator": "ops@bastion", "created": "2026-11-22T02:15:00Z",
               "expires": "2026-11-29T02:15:00Z", "ticket": "CHG0042"}
    power_state:
      description: The VM's power state recorded in the snapshot.
      type: str
      sample: running
    depth:
      description: Depth in the snapshot tree, 1 for a root snapshot.
      type: int
      sample: 1
    location:
      description: V(internal) or V(external).
      type: str
      sample: internal
    libvirt_state:
      description: The snapshot state as libvirt reports it (running, shutoff, disk-snapshot, ...).
      type: str
      sample: running
snapshots:
  description: Every snapshot deleted (or to be deleted in check mode) with O(delete_all).
  returned: success, when O(delete_all) deleted something
  type: list
  elements: dict
  contains: *snapshot
diff:
  description: Snapshot names before and after.
  returned: diff mode, success
  type: dict
  sample: {"before": {"snapshots": []}, "after": {"snapshots": ["before-patching"]}}
error:
  description: The kind of error, one of C(VmNotFound), C(AmbiguousVm), C(SnapshotNotFound), C(AmbiguousSnapshot),
    C(PrecheckFailed), C(GuestBusy), C(InvalidRequest), C(SnapshotTimeout), C(ProviderError), C(ConnectionFailed).
  returned: failure, single VM
  type: str
  sample: SnapshotNotFound
provider:
  description: The provider that failed.
  returned: failure, single VM
  type: str
  sample: libvirt
busy:
  description: What holds the VM (a lock, a task or a job), when another job kept it busy.
  returned: failure, when the error is C(GuestBusy)
  type: str
  sample: locked (backup)
capacity:
  description:
    - Per storage behind the VM's disks, what the capacity precheck measured and needed, when it refused the snapshot
      for lack of free space.
  returned: failure, when the capacity precheck refused the snapshot
  type: list
  elements: dict
  contains:
    storage:
      description: "The storage (datastore, Proxmox VE storage, libvirt pool or directory)."
      type: str
    free_bytes:
      description: "Its free bytes."
      type: int
    total_bytes:
      description: "Its size in bytes."
      type: int
    disks:
      description: "The VM's disks on it."
      type: list
      elements: str
    provisioned_bytes:
      description: "The provisioned size of those disks."
      type: int
    used_bytes:
      description: "What those disks take on it now; null when not known."
      type: int
    memory_bytes:
      description: "The memory state that would be saved there."
      type: int
    needed_bytes:
      description: "What the snapshot may need there."
      type: int
    keep_free_bytes:
      description: "What must stay free there (O(capacity_min_free_gb))."
      type: int
    enough:
      description: "Whether it has room; null when its free space is not known."
      type: bool
    notes:
      description: "What is not known about it."
      type: list
      elements: str
candidates:
  description: What an ambiguous name matches, when the error is C(AmbiguousVm) or C(AmbiguousSnapshot).
  returned: failure, when a name is ambiguous
  type: list
  elements: dict
results:
  description: One entry per VM of O(vms), in the same order, with the keys of a single-VM result.
  returned: batch mode (O(vms))
  type: list
  elements: dict
  contains:
    item:
      description: The entry of O(vms) this result is for.
      type: str
      sample: web01
    failed:
      description: Whether this VM failed.
      type: bool
      sample: false
    changed:
      description: Whether this VM changed (or would change in check mode).
      type: bool
      sample: true
    msg:
      description: Why this VM failed, in the same words as a single-VM failure.
      returned: failure of this VM
      type: str
      sample: "Failed to create snapshot 'before-patching' of VM 'web09' on libvirt: ..."
    action:
      description: What was done to this VM (or would be done in check mode).
      returned: success of this VM
      type: str
      sample: created
      choices: [created, exists, updated, deleted, absent, reverted]
    vm:
      description: The VM acted on. When this VM failed, the entry of O(vms) (a string).
      returned: always (a string on failure of this VM)
      type: dict
      contains: *vm
    snapshot:
      description: As the single-VM RV(snapshot). When this VM failed, the snapshot name as given (a string) or null.
      returned: always (a string on failure of this VM)
      type: dict
      contains: *snapshot
    snapshots:
      description: As the single-VM RV(snapshots).
      returned: success of this VM, when O(delete_all) deleted something
      type: list
      elements: dict
      contains: *snapshot
    diff:
      description: Snapshot names before and after.
      returned: diff mode, success of this VM
      type: dict
      sample: {"before": {"snapshots": []}, "after": {"snapshots": ["before-patching"]}}
    error:
      description: The kind of error, one of C(VmNotFound), C(AmbiguousVm), C(SnapshotNotFound), C(AmbiguousSnapshot),
        C(PrecheckFailed), C(GuestBusy), C(InvalidRequest), C(SnapshotTimeout), C(ProviderError), C(ConnectionFailed).
      returned: failure of this VM
      type: str
      sample: SnapshotNotFound
    provider:
      description: The provider that failed.
      returned: failure of this VM
      type: str
      sample: libvirt
    busy:
      description: What holds the VM (a lock, a task or a job), when another job kept it busy.
      returned: failure, when the error is C(GuestBusy)
      type: str
      sample: locked (backup)
    candidates:
      description: What an ambiguous name matches, when the error is C(AmbiguousVm) or C(AmbiguousSnapshot).
      returned: failure, when a name is ambiguous
      type: list
      elements: dict
failed_vms:
  description: The entries of O(vms) that failed.
  returned: batch mode (O(vms))
  type: list
  elements: str
  sample: []
"""

from ansible_collections.prechange.snapshots.plugins.module_utils._libvirt import (
    LIBVIRT_IMPORT_ERROR,
    LibvirtBackend,
    connection_argument_spec,
    snapshot_extra_spec,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._module import run_snapshot_module

# What the module needs importable; the action plugin runs the module in its own process only
# when these import on the controller.
REQUIREMENTS = [("libvirt-python", LIBVIRT_IMPORT_ERROR)]


def main(module_class=None):
    run_snapshot_module(LibvirtBackend, connection_argument_spec(), extra_spec=snapshot_extra_spec(),
                        requirements=REQUIREMENTS, module_class=module_class)


if __name__ == "__main__":
    main()
