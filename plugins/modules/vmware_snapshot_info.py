#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vmware_snapshot_info
short_description: List the snapshots of VMware vSphere VMs as tree-aware records
version_added: 1.0.0
description:
  - Lists the snapshots of one VM, several, or every VM under a datacenter, folder or cluster (or the whole
    vCenter), reading every VM's snapshot tree in one property-collector query.
  - Each snapshot comes with its parent, children, whether it is current, its age, its depth in the chain
    and the collection's ownership marker when it carries one. Filters select by name pattern, age,
    ownership and run id; each VM also reports its snapshot count, longest chain and oldest snapshot's age.
author:
  - prechange.snapshots contributors (@prechange)
options:
  cluster:
    description:
      - List every VM of this cluster (or standalone host's compute resource), by name or inventory path
        (V(DC1/host/Cluster1)). A bare name is looked up in O(datacenter), or in every datacenter.
      - Used when neither O(vm) nor O(vms) is given. Otherwise O(folder), O(datacenter) or, with none of
        them, the whole vCenter is listed.
    type: str
extends_documentation_fragment:
  - prechange.snapshots.snapshot.INFO
  - prechange.snapshots.vmware
  - prechange.snapshots.vmware.ACTIONGROUP_VMWARE
  - prechange.snapshots.attributes
  - prechange.snapshots.attributes.INFO_MODULE
seealso:
  - module: prechange.snapshots.vmware_snapshot
"""

EXAMPLES = r"""
- name: All snapshots of one VM
  prechange.snapshots.vmware_snapshot_info:
    hostname: vcenter.example.com
    username: ansible@vsphere.local
    password: "{{ vcenter_password }}"
    vm: web01
  delegate_to: localhost
  register: web01_snapshots

- name: Our own expired snapshots on every VM of a cluster, in one query
  prechange.snapshots.vmware_snapshot_info:
    datacenter: DC1
    cluster: Cluster1
    owned: true
    expired: true
  delegate_to: localhost
  run_once: true
  register: expired

- name: Snapshots older than a week anywhere under a folder
  prechange.snapshots.vmware_snapshot_info:
    folder: DC1/vm/linux
    older_than: 7d
  delegate_to: localhost
  run_once: true
  register: old
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
          description: VM name.
          type: str
          sample: web01
        id:
          description: The VM's managed object id.
          type: str
          sample: vm-1234
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
        size_bytes:
          description:
            - Bytes the snapshot's data takes now, or null where it cannot be measured.
            - The size of the snapshot's files in the VM's file layout (layoutEx), its delta disks, its state and memory files.
            - As of vSphere's last refresh of the VM's storage (vSphere refreshes layoutEx now and then, and after
              snapshot tasks); this module does not ask for a refresh. The maintenance playbook's growth measurement does
              (C(RefreshStorageInfo)).
          type: int
          sample: 209993728
        size_note:
          description: How RV(vms[].snapshots[].size_bytes) was measured, or why it is null.
          type: str
          sample: "allocation of the overlay file(s) /var/lib/libvirt/images/web01.before: the writes since the snapshot"
        depth:
          description: Depth in the snapshot tree, 1 for a root snapshot.
          type: int
          sample: 1
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
  sample: vmware
candidates:
  description: What an ambiguous name matches, when the error is C(AmbiguousVm) or C(AmbiguousSnapshot).
  returned: failure, when a name is ambiguous
  type: list
  elements: dict
"""

from ansible_collections.prechange.snapshots.plugins.module_utils._module import run_info_module
from ansible_collections.prechange.snapshots.plugins.module_utils._vmware import (
    PYVMOMI_IMPORT_ERROR,
    VmwareBackend,
    connection_argument_spec,
    info_extra_spec,
)

# What the module needs importable; the action plugin runs the module in its own process only
# when these import on the controller.
REQUIREMENTS = [("pyvmomi", PYVMOMI_IMPORT_ERROR)]


def main(module_class=None):
    run_info_module(VmwareBackend, connection_argument_spec(), extra_spec=info_extra_spec(),
                    requirements=REQUIREMENTS, module_class=module_class)


if __name__ == "__main__":
    main()
