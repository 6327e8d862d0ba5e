#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxmox_snapshot
short_description: Create, delete or roll back to a snapshot of a Proxmox VE VM or container
version_added: 1.0.0
description:
  - Takes, deletes or rolls back to snapshots of Proxmox VE QEMU VMs and LXC containers, with the same
    options and results as the VMware and libvirt modules of this collection.
  - O(vm) is a vmid or a guest name. The guest's kind (QEMU or LXC) and node are found with one
    C(/cluster/resources) query, also for many guests in batch mode. A name that several guests share
    fails and lists them.
  - Every Proxmox task (UPID) is waited for, up to O(timeout). A failed task reports the text of its own
    log.
  - A guest whose configuration is locked by another job (C(backup), C(migrate), C(snapshot), C(clone)...)
    is refused before anything is changed, naming the lock, or waited for up to O(lock_timeout). When
    Proxmox answers that the guest is locked just as the task starts, the task is retried with backoff
    within the same O(lock_timeout). A C(snapshot-delete) lock left by an earlier failed delete is reported
    with how to clear it (see O(force)).
  - Before anything is changed, it refuses what Proxmox would refuse half way, with the reason. Snapshot
    names Proxmox does not accept (2-40 characters, a letter first, then letters, digits, C(-) or C(_);
    C(current), and C(pending) for VMs or C(vzdump) for containers, are reserved). Memory state for
    containers. Disks on storage without snapshot support (raw images on directory or NFS storage, thick
    LVM, iSCSI). Containers with bind or device mount points. Rollback on ZFS past newer snapshots.
  - O(memory) saves the VM's RAM (Proxmox C(vmstate)); it defaults to V(true) for a running QEMU VM and
    is not available for containers. Rolling back to a snapshot with RAM leaves the VM running, as Proxmox
    does; without RAM the guest is stopped unless O(revert_power_state) says otherwise.
  - Proxmox snapshots cannot be renamed; their description can be changed.
  - Every snapshot it creates carries the collection's ownership marker in its description.
author:
  - prechange.snapshots contributors (@prechange)
options:
  force:
    description:
      - With O(state=absent), delete the snapshot's configuration entry even when removing the disk
        snapshots fails (Proxmox's C(force)).
      - When an earlier delete of this same snapshot failed and left the guest locked C(snapshot-delete)
        (the snapshot is marked C(delete)), first clear that lock as C(qm unlock) / C(pct unlock) does.
        That needs O(api_user=root@pam); other locks are never cleared.
      - Only for snapshots whose storage side you have checked; the default never forces.
    type: bool
    default: false
extends_documentation_fragment:
  - prechange.snapshots.snapshot
  - prechange.snapshots.proxmox
  - prechange.snapshots.proxmox.ACTIONGROUP_PROXMOX
  - prechange.snapshots.attributes
  - prechange.snapshots.attributes.ACTIONS
notes:
  - O(quiesce) has no Proxmox counterpart (with the QEMU guest agent enabled, Proxmox freezes the guest's
    file systems itself). Asking for it warns and reports RV(snapshot.quiesced=false); with O(strict) it
    fails before anything is changed.
  - O(revert_power_state=paused) is for QEMU VMs only.
seealso:
  - module: prechange.snapshots.proxmox_snapshot_info
"""

EXAMPLES = r"""
- name: Snapshot a guest (by name) with its RAM, expiring in a week
  prechange.snapshots.proxmox_snapshot:
    api_host: pve1.example.com
    api_user: ansible@pve
    api_token_id: snapshots
    api_token_secret: "{{ vault_pve_token }}"
    ca_path: /etc/pki/pve-root-ca.pem
    vm: web01
    name: before-patching
    ticket: CHG0042
    expires: 7d
  delegate_to: localhost

- name: Roll back and leave the guest running
  prechange.snapshots.proxmox_snapshot:
    vm: 101
    name: before-patching
    state: reverted
    revert_power_state: running
  delegate_to: localhost

- name: Delete it; a later snapshot is re-parented
  prechange.snapshots.proxmox_snapshot:
    vm: web01
    name: before-patching
    state: absent
  delegate_to: localhost

- name: Snapshot a whole play batch with one call and one login
  prechange.snapshots.proxmox_snapshot:
    vms: "{{ ansible_play_batch }}"
    name: prechange-{{ run_id }}
    concurrency: 10
  delegate_to: localhost
  run_once: true

- name: Connection settings once, for every task of the play
  hosts: app
  module_defaults:
    group/prechange.snapshots.proxmox:
      api_host: pve1.example.com
      api_user: ansible@pve
      api_token_id: snapshots
      api_token_secret: "{{ vault_pve_token }}"
  tasks:
    - prechange.snapshots.proxmox_snapshot:
        vm: "{{ inventory_hostname }}"
        name: before-patching
      delegate_to: localhost
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
      description: Guest name (the hostname for a container).
      type: str
      sample: web01
    id:
      description: The vmid.
      type: str
      sample: "100"
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
      description: Snapshot id (for Proxmox, the name).
      type: str
      sample: before-patching
    description:
      description: The user's description, without the ownership marker.
      type: str
      sample: Kernel update CHG0042
    created:
      description: Creation time (Proxmox C(snaptime)), UTC ISO 8601.
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
      description: Whether the guest's current state descends from this snapshot directly.
      type: bool
      sample: true
    memory:
      description: Whether the snapshot holds RAM (C(vmstate)).
      type: bool
      sample: true
    quiesced:
      description: V(false) when the task asked for quiescing (Proxmox has no such switch), otherwise null.
      type: bool
      sample: null
    owner:
      description: The ownership marker (run, creator, created, expires, ticket) when the collection made it, else
        null.
      type: dict
      sample: {"run": "20261122T021500Z-4f2a", "creator": "ops@bastion", "created": "2026-11-22T02:15:00Z",
               "expires": "2026-11-29T02:15:00Z", "ticket": "CHG0042"}
    power_state:
      description: V(running) for a snapshot with RAM, otherwise null (Proxmox does not record it).
      type: str
      sample: running
    depth:
      description: Depth in the snapshot tree, 1 for a root snapshot.
      type: int
      sample: 1
    snapstate:
      description: Present only for an incomplete snapshot (C(prepare) or C(delete)), as Proxmox reports it.
      type: str
      sample: delete
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
  sample: proxmox
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
lock:
  description: The guest's lock, when Proxmox refused the task because another job took the guest just as it
    started.
  returned: failure, when the guest was locked
  type: str
  sample: backup
upid:
  description: The Proxmox task (UPID) that failed, or that held the guest.
  returned: failure, when a Proxmox task failed or held the guest
  type: str
  sample: "UPID:pve1:0000A1B2:0001C3D4:6560A1B2:qmsnapshot:100:root@pam:"
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
      sample: "Failed to create snapshot 'before-patching' of VM 'web09' on proxmox: ..."
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
      sample: proxmox
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
    lock:
      description: The guest's lock, when Proxmox refused the task because another job took the guest just as it
        started.
      returned: failure, when the guest was locked
      type: str
      sample: backup
    upid:
      description: The Proxmox task (UPID) that failed, or that held the guest.
      returned: failure, when a Proxmox task failed or held the guest
      type: str
      sample: "UPID:pve1:0000A1B2:0001C3D4:6560A1B2:qmsnapshot:100:root@pam:"
failed_vms:
  description: The entries of O(vms) that failed.
  returned: batch mode (O(vms))
  type: list
  elements: str
  sample: []
"""

from ansible_collections.prechange.snapshots.plugins.module_utils._module import run_snapshot_module
from ansible_collections.prechange.snapshots.plugins.module_utils._proxmox import (
    PROXMOXER_IMPORT_ERROR,
    ProxmoxBackend,
    connection_argument_spec,
    connection_module_kwargs,
    snapshot_extra_spec,
)

# What the module needs importable; the action plugin runs the module in its own process only
# when these import on the controller.
REQUIREMENTS = [("proxmoxer", PROXMOXER_IMPORT_ERROR)]


def main(module_class=None):
    run_snapshot_module(ProxmoxBackend, connection_argument_spec(), extra_spec=snapshot_extra_spec(),
                        module_kwargs=connection_module_kwargs(),
                        requirements=REQUIREMENTS, module_class=module_class)


if __name__ == "__main__":
    main()
