#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vmware_snapshot
short_description: Create, delete, rename or revert to a snapshot of a VMware vSphere VM
version_added: 1.0.0
description:
  - Takes, deletes, renames or reverts to snapshots of vSphere VMs through vCenter or ESXi, with the same
    options and results as the libvirt and Proxmox modules of this collection.
  - VMs are found through the server's indexes (inventory path, UUID, managed object id), never by walking
    the inventory, and the properties of every VM of a task come from one property-collector query, so
    the cost of a task does not grow with the size of the inventory.
  - Batch mode (O(vms)) snapshots many VMs in one task and one API session, up to O(concurrency) at once,
    with one result per VM; one VM's failure does not stop the others.
  - Every vSphere task is waited for up to O(timeout); a failed task reports vSphere's own error text, a
    timeout names the task and the state it was last in.
  - O(memory) defaults to V(true) for a powered-on VM. O(quiesce) uses VMware Tools; vSphere silently
    ignores it when the VM is off or has no running tools, so RV(snapshot.quiesced) reports what was
    achieved, with a warning when it was not, or a failure with O(strict).
  - Every snapshot it creates carries the collection's ownership marker in its description.
author:
  - prechange.snapshots contributors (@prechange)
options:
  consolidate:
    description:
      - After a delete, vSphere may report that the VM's disks need consolidation (a delta disk could not
        be merged).
      - V(true) runs the consolidation task (waited for like the delete); V(false) only warns.
    type: bool
    default: false
extends_documentation_fragment:
  - prechange.snapshots.snapshot
  - prechange.snapshots.vmware
  - prechange.snapshots.vmware.ACTIONGROUP_VMWARE
  - prechange.snapshots.attributes
  - prechange.snapshots.attributes.ACTIONS
notes:
  - O(revert_power_state=snapshot) leaves the VM as vSphere leaves it, running after a snapshot with memory
    and powered off after a disk-only one. V(stopped) reverts without powering on. V(paused) leaves the VM
    suspended, since vSphere has no paused state.
  - vSphere allows several snapshots of one VM to share a name; this module then fails and lists them
    rather than guess.
  - A snapshot's description cannot be emptied through the vSphere API; asking for that fails.
  - O(new_name) renames with vSphere's RenameSnapshot; the snapshot keeps its id, place in the tree and
    ownership marker.
seealso:
  - module: prechange.snapshots.vmware_snapshot_info
  - module: community.vmware.vmware_guest_snapshot
    description: The community module this one replaces for maintenance workflows.
"""

EXAMPLES = r"""
- name: Snapshot a VM with its memory, expiring in a week
  prechange.snapshots.vmware_snapshot:
    hostname: vcenter.example.com
    username: ansible@vsphere.local
    password: "{{ vcenter_password }}"
    datacenter: DC1
    vm: web01
    name: before-patching
    description: Kernel update CHG0042
    ticket: CHG0042
    expires: 7d
  delegate_to: localhost

- name: Same, with the connection in module_defaults and the VM by instance UUID
  module_defaults:
    group/prechange.snapshots.vmware:
      hostname: vcenter.example.com
      username: ansible@vsphere.local
      password: "{{ vcenter_password }}"
  prechange.snapshots.vmware_snapshot:
    vm: 5029a4f1-66b2-4e1e-9c0e-2f3b4c5d6e7f
    name: before-patching
    quiesce: true
    memory: false
    strict: true
  delegate_to: localhost

- name: Revert and make sure the VM runs afterwards
  prechange.snapshots.vmware_snapshot:
    vm: web01
    name: before-patching
    state: reverted
    revert_power_state: running
  delegate_to: localhost

- name: Delete it with everything taken after it, consolidating the disks if vSphere asks
  prechange.snapshots.vmware_snapshot:
    vm: web01
    name: before-patching
    state: absent
    remove_children: true
    consolidate: true
  delegate_to: localhost

- name: Snapshot a whole play batch in one task
  prechange.snapshots.vmware_snapshot:
    vms: "{{ ansible_play_batch }}"
    name: "prechange-{{ run_id }}"
    run_id: "{{ run_id }}"
    concurrency: 10
  delegate_to: localhost
  run_once: true

- name: Delete every snapshot this collection made on the VM
  prechange.snapshots.vmware_snapshot:
    vm: web01
    state: absent
    delete_all: owned
  delegate_to: localhost

- name: Rename a snapshot and give it a new description
  prechange.snapshots.vmware_snapshot:
    vm: web01
    name: before-patching
    new_name: known-good-2026-11
    description: Known good after the November patches
  delegate_to: localhost
"""

RETURN = r"""
action:
  description: What was done (or would be done in check mode).
  returned: success, single VM
  type: str
  sample: created
  choices: [created, exists, updated, renamed, deleted, absent, reverted]
vm:
  description: The VM acted on. When the task failed, the VM as given (a string).
  returned: single VM (a string on failure)
  type: dict
  contains: &vm
    name:
      description: VM name.
      type: str
      sample: web01
    id:
      description: The VM's managed object id.
      type: str
      sample: vm-1234
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
      description: The snapshot's managed object id.
      type: str
      sample: snapshot-5678
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
      description: Whether the snapshot holds memory (or suspended) state.
      type: bool
      sample: true
    quiesced:
      description: Whether the guest file systems were quiesced, as vSphere reports it.
      type: bool
      sample: false
    owner:
      description: The ownership marker (run, creator, created, expires, ticket) when the collection made it, else
        null.
      type: dict
      sample: {"run": "20261122T021500Z-4f2a", "creator": "ops@bastion", "created": "2026-11-22T02:15:00Z",
               "expires": "2026-11-29T02:15:00Z", "ticket": "CHG0042"}
    power_state:
      description: The VM's power state recorded in the snapshot (running, stopped, suspended).
      type: str
      sample: running
    depth:
      description: Depth in the snapshot tree, 1 for a root snapshot.
      type: int
      sample: 1
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
  sample: vmware
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
      sample: "Failed to create snapshot 'before-patching' of VM 'web09' on vmware: ..."
    action:
      description: What was done to this VM (or would be done in check mode).
      returned: success of this VM
      type: str
      sample: created
      choices: [created, exists, updated, renamed, deleted, absent, reverted]
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
      sample: vmware
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

from ansible_collections.prechange.snapshots.plugins.module_utils._module import run_snapshot_module
from ansible_collections.prechange.snapshots.plugins.module_utils._vmware import (
    PYVMOMI_IMPORT_ERROR,
    VmwareBackend,
    connection_argument_spec,
    snapshot_extra_spec,
)

# What the module needs importable; the action plugin runs the module in its own process only
# when these import on the controller.
REQUIREMENTS = [("pyvmomi", PYVMOMI_IMPORT_ERROR)]


def main(module_class=None):
    run_snapshot_module(VmwareBackend, connection_argument_spec(), extra_spec=snapshot_extra_spec(),
                        requirements=REQUIREMENTS, module_class=module_class)


if __name__ == "__main__":
    main()
