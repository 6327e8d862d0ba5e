#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxmox_snapshot_info
short_description: List the snapshots of Proxmox VE VMs and containers as tree-aware records
version_added: 1.0.0
description:
  - Lists the snapshots of one guest, several, or every guest of the cluster (templates left out).
  - Guests are found with one C(/cluster/resources) query; QEMU VMs and LXC containers alike.
  - Each snapshot comes with its parent, children, whether it is current, its age, whether it holds RAM and
    the collection's ownership marker when it carries one. Filters select by name pattern, age, ownership
    and run id.
author:
  - prechange.snapshots contributors (@prechange)
extends_documentation_fragment:
  - prechange.snapshots.snapshot.INFO
  - prechange.snapshots.proxmox
  - prechange.snapshots.proxmox.ACTIONGROUP_PROXMOX
  - prechange.snapshots.attributes
  - prechange.snapshots.attributes.INFO_MODULE
seealso:
  - module: prechange.snapshots.proxmox_snapshot
"""

EXAMPLES = r"""
- name: All snapshots of one guest
  prechange.snapshots.proxmox_snapshot_info:
    api_host: pve1.example.com
    api_user: root@pam
    api_password: "{{ vault_pve_password }}"
    ca_path: /etc/pki/pve-root-ca.pem
    vm: web01
  delegate_to: localhost
  register: web01_snapshots

- name: Our own expired snapshots anywhere in the cluster
  prechange.snapshots.proxmox_snapshot_info:
    owned: true
    expired: true
  delegate_to: localhost
  run_once: true
  register: expired
"""

RETURN = r"""
vms:
  description: One entry per VM listed.
  returned: success
  type: list
  elements: dict
  contains:
    vm:
      description: The VM.
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
          description: The VM's power state as the task read it (running, paused, stopped, suspended or unknown).
          type: str
          sample: running
    snapshots:
      description: The VM's snapshots that pass the filters, oldest first.
      type: list
      elements: dict
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
        size_bytes:
          description:
            - Bytes the snapshot's data takes now, or null where it cannot be measured.
            - Always null on Proxmox VE, because no storage plugin reports the size of a snapshot's disk data. A
              qcow2's internal snapshots are inside the image file's allocation. LVM-thin snapshot volumes and ZFS
              snapshots are not listed with a size.
            - A snapshot with RAM has a state volume of its own, whose size is known. That is not the whole of
              the snapshot's data, so it is not given here.
            - RV(vms[].snapshots[].size_note) says what the API does give.
          type: int
          sample: null
        size_note:
          description:
            - What Proxmox VE reports about the snapshot's data.
            - Where its disk data shows. On directory, NFS and CIFS storages it is inside the disks'
              RV(vms[].disks[].used_bytes), the image files' allocation (internal qcow2 snapshots included), so
              the growth of a snapshot's data shows there. Other storage types give no per-volume use that counts
              snapshot data (RV(vms[].disks[].used_bytes) is null), and only the storage's free space shows it.
            - For a snapshot with RAM, its state volume (C(vm-<vmid>-state-<snapshot>)) with the size allocated
              for it (twice the memory plus 500 MiB). On file storages also the bytes it uses.
          type: str
          sample: "the Proxmox VE API reports no size for a snapshot's disk data; storage local-lvm (lvmthin) gives
            no per-volume use that counts it, only its free space shows it; its memory state is the volume
            local-lvm:vm-100-state-pre-patch of 4.5 GiB (4819255296 bytes allocated; its use is not reported on
            storage local-lvm (lvmthin))"
        depth:
          description: Depth in the snapshot tree, 1 for a root snapshot.
          type: int
          sample: 1
        snapstate:
          description: Present only for an incomplete snapshot (C(prepare) or C(delete)), as Proxmox reports it.
          type: str
          sample: delete
    count:
      description: How many snapshots the VM has in all, before filtering.
      type: int
      sample: 2
    current:
      description: Name of the current snapshot, or null.
      type: str
      sample: before-patching
    max_depth:
      description: Length of the longest snapshot chain.
      type: int
      sample: 2
    oldest_age_seconds:
      description: Age of the oldest snapshot in seconds, or null when there is none.
      type: int
      sample: 3600
    storage:
      description:
        - One entry per storage the VM's disks (and their snapshot data) grow on, with its free space.
      type: list
      elements: dict
      contains:
        storage:
          description: The datastore, Proxmox VE storage, libvirt pool or directory; null when not known.
          type: str
          sample: local-lvm
        free_bytes:
          description: Free bytes on it, or null when the platform does not say.
          type: int
          sample: 82629726208
        total_bytes:
          description: Its size in bytes, or null when the platform does not say.
          type: int
          sample: 270553174016
        disks:
          description: The VM's disks on it.
          type: list
          elements: str
          sample: [vda]
        provisioned_bytes:
          description: The provisioned size of those disks.
          type: int
          sample: 1073741824
        used_bytes:
          description: What those disks take on it now, or null when not known.
          type: int
          sample: 209993728
    disks:
      description: One entry per disk of the VM, with the storage its snapshot data grows on.
      type: list
      elements: dict
      contains:
        disk:
          description: The disk as the platform names it.
          type: str
          sample: vda
        storage:
          description: The storage the disk's snapshot data grows on; null when not known.
          type: str
          sample: default
        free_bytes:
          description: Free bytes on that storage, or null.
          type: int
          sample: 82629726208
        total_bytes:
          description: Size of that storage in bytes, or null.
          type: int
          sample: 270553174016
        provisioned_bytes:
          description: The disk's provisioned size, or null.
          type: int
          sample: 1073741824
        used_bytes:
          description: What the disk takes on the storage now, or null.
          type: int
          sample: 209993728
        note:
          description: What is not known about this disk, and why; null when all is known.
          type: str
          sample: null
    storage_note:
      description: Why no storage could be measured, or null.
      type: str
      sample: null
vm:
  description: The VM, when O(vm) was given. When the task failed, the VM as given (a string) or null.
  returned: when O(vm) is given, or on failure (a string)
  type: dict
  contains: *vm
snapshots:
  description: The VM's filtered snapshots, when O(vm) was given.
  returned: success, when O(vm) is given
  type: list
  elements: dict
  contains: *snapshot
error:
  description: The kind of error, one of C(VmNotFound), C(AmbiguousVm), C(SnapshotNotFound), C(AmbiguousSnapshot),
    C(PrecheckFailed), C(GuestBusy), C(InvalidRequest), C(SnapshotTimeout), C(ProviderError), C(ConnectionFailed).
  returned: failure
  type: str
  sample: SnapshotNotFound
provider:
  description: The provider that failed.
  returned: failure
  type: str
  sample: proxmox
candidates:
  description: What an ambiguous name matches, when the error is C(AmbiguousVm) or C(AmbiguousSnapshot).
  returned: failure, when a name is ambiguous
  type: list
  elements: dict
"""

from ansible_collections.prechange.snapshots.plugins.module_utils._module import run_info_module
from ansible_collections.prechange.snapshots.plugins.module_utils._proxmox import (
    PROXMOXER_IMPORT_ERROR,
    ProxmoxBackend,
    connection_argument_spec,
    connection_module_kwargs,
)

# What the module needs importable; the action plugin runs the module in its own process only
# when these import on the controller.
REQUIREMENTS = [("proxmoxer", PROXMOXER_IMPORT_ERROR)]


def main(module_class=None):
    run_info_module(ProxmoxBackend, connection_argument_spec(), module_kwargs=connection_module_kwargs(),
                    requirements=REQUIREMENTS, module_class=module_class)


if __name__ == "__main__":
    main()
