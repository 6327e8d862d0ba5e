#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vmware_clone
short_description: Make a vSphere VM from a snapshot of another VM, or remove such a clone
version_added: 1.0.0
description:
  - Clones a VM from one of its snapshots (C(CloneVM_Task) with the snapshot), with the same options and results
    as the libvirt and Proxmox modules of this collection.
  - By default a linked clone (C(diskMoveType=createNewChildDiskBacking)), child disks on the snapshot's disk
    state; O(full=true) or O(restore_point=true) makes a full, independent copy, checked first against the free
    space of the target datastore.
  - Every network adapter of the clone is disconnected (C(connected=false), C(startConnected=false)) before it is
    ever powered on, unless O(network) names the port group to connect every adapter to.
  - The ownership marker is kept in the VM's annotation (Notes).
author:
  - prechange.snapshots contributors (@prechange)
options:
  datastore:
    description:
      - Datastore for the clone's files. Default the source's datastore.
    type: str
  resource_pool:
    description:
      - Resource pool for the clone. Default the source's resource pool.
    type: str
notes:
  - O(folder) is where the source is looked up by name (as in M(prechange.snapshots.vmware_snapshot)) and, given as
    an inventory path, the folder the clone is placed in; by default the clone goes into the source's folder.
extends_documentation_fragment:
  - prechange.snapshots.clone
  - prechange.snapshots.vmware
  - prechange.snapshots.vmware.ACTIONGROUP_VMWARE
  - prechange.snapshots.attributes
  - prechange.snapshots.attributes.ACTIONS
seealso:
  - module: prechange.snapshots.vmware_snapshot
"""

EXAMPLES = r"""
- name: Clone web01 from its pre-change snapshot, network cut off
  prechange.snapshots.vmware_clone:
    vm: web01
    snapshot: before-patching
    name: web01-rehearsal
    power_on: true
    expires: 1d
  delegate_to: localhost

- name: Keep a full restore point in the default pool
  prechange.snapshots.vmware_clone:
    vm: db01
    snapshot: before-migration
    name: db01-restore-20261122
    restore_point: true
    datastore: datastore2
    expires: 30d
  delegate_to: localhost

- name: Remove the clone (only a clone this collection made)
  prechange.snapshots.vmware_clone:
    name: web01-rehearsal
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
vm:
  description: The source VM. Null when O(state=absent) found no clone and O(vm) was not given, or the source is gone.
    When the task failed, the VM as given (a string).
  returned: always (a string on failure)
  type: dict
  contains:
    name:
      description: VM name.
      type: str
      sample: web01
    id:
      description: Managed object id.
      type: str
      sample: vm-42
    power_state:
      description: The source's power state (running, paused, stopped, suspended or unknown).
      type: str
      sample: running
clone:
  description: The clone made, found, or removed (or that would be, in check mode); null when O(state=absent)
    found nothing.
  returned: success
  type: dict
  contains:
    name:
      description: The clone's VM name.
      type: str
      sample: web01-rehearsal
    id:
      description: The clone's managed object id; null in check mode when it would be made.
      type: str
      sample: vm-57
    linked:
      description: Whether the clone's disks are child disks of the snapshot's disks (false for a full copy).
      type: bool
      sample: false
    why:
      description: Why a linked clone or a full copy was made; null when nothing was made.
      type: str
      sample: "linked: a child disk on snapshot 'before-patching' (createNewChildDiskBacking)"
    restore_point:
      description: Whether it is a full restore point.
      type: bool
      sample: false
    power_state:
      description: The clone's power state.
      type: str
      sample: stopped
    network:
      description: The port group its adapters are connected to; null when every adapter is disconnected.
      type: str
      sample: null
    source:
      description: The source VM and snapshot, from the clone's marker (null values when it has none).
      type: dict
      contains:
        vm:
          description: The source VM's name.
          type: str
          sample: web01
        id:
          description: The source VM's id.
          type: str
          sample: "vm-42"
        snapshot:
          description: The snapshot the clone was made from.
          type: str
          sample: before-patching
    created:
      description: When the clone was made, UTC ISO 8601.
      type: str
      sample: "2026-11-22T02:15:00Z"
    owner:
      description: The parsed ownership marker (run, creator, created, expires, ticket, kind, source, source_id,
        snapshot); null for a VM this collection did not make.
      type: dict
      sample: {"run": "20261122T021500Z-4f2a", "kind": "clone", "source": "web01", "snapshot": "before-patching"}
diff:
  description: The clone before and after.
  returned: diff mode, success
  type: dict
  sample: {"before": {"clone": null}, "after": {"clone": {"name": "web01-rehearsal", "linked": false}}}
error:
  description: The kind of error, one of C(VmNotFound), C(AmbiguousVm), C(SnapshotNotFound), C(AmbiguousSnapshot),
    C(PrecheckFailed), C(GuestBusy), C(InvalidRequest), C(SnapshotTimeout), C(ProviderError), C(ConnectionFailed).
  returned: failure
  type: str
  sample: PrecheckFailed
provider:
  description: The provider that failed.
  returned: failure
  type: str
  sample: vmware
snapshot:
  description: The snapshot name as given, on failure.
  returned: failure
  type: str
  sample: before-patching
"""

from ansible_collections.prechange.snapshots.plugins.module_utils._clone import run_clone_module
from ansible_collections.prechange.snapshots.plugins.module_utils._vmware import (
    PYVMOMI_IMPORT_ERROR,
    VmwareBackend,
    connection_argument_spec,
    location_argument_spec,
)

REQUIREMENTS = [("pyvmomi", PYVMOMI_IMPORT_ERROR)]


def main(module_class=None):
    placement = location_argument_spec()
    placement.update(datastore=dict(type="str"), resource_pool=dict(type="str"))
    run_clone_module(VmwareBackend, connection_argument_spec(), placement, requirements=REQUIREMENTS,
                     module_class=module_class)


if __name__ == "__main__":
    main()
