#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxmox_clone
short_description: Make a Proxmox VE VM from a snapshot of another VM, or remove such a clone
version_added: 1.0.0
description:
  - Clones a QEMU VM from one of its snapshots (C(POST /nodes/{node}/qemu/{vmid}/clone) with C(snapname)), with the
    same options and results as the VMware and libvirt modules of this collection.
  - Proxmox VE links a clone only to a template's base volumes, and a template has no snapshots, so a clone
    from a snapshot is always a full copy; the result says so (RV(clone.linked) false, RV(clone.why)). The
    free space of the target storage is checked first against the disks' sizes.
  - Every network device of the clone gets C(link_down=1) before it is ever started, unless O(network) names the
    bridge to put every device on.
  - The ownership marker is kept in the VM's description. Containers are refused.
author:
  - prechange.snapshots contributors (@prechange)
options:
  node:
    description:
      - Target node of the clone. Default the source's node.
    type: str
  storage:
    description:
      - Target storage for the clone's disks. Default the source's storages.
    type: str
  newid:
    description:
      - vmid of the clone. Default the cluster's next free vmid.
    type: int
  pool:
    description:
      - Resource pool to add the clone to.
    type: str
extends_documentation_fragment:
  - prechange.snapshots.clone
  - prechange.snapshots.proxmox
  - prechange.snapshots.proxmox.ACTIONGROUP_PROXMOX
  - prechange.snapshots.attributes
  - prechange.snapshots.attributes.ACTIONS
seealso:
  - module: prechange.snapshots.proxmox_snapshot
"""

EXAMPLES = r"""
- name: Clone web01 from its pre-change snapshot, network cut off
  prechange.snapshots.proxmox_clone:
    vm: web01
    snapshot: before-patching
    name: web01-rehearsal
    power_on: true
    expires: 1d
  delegate_to: localhost

- name: Keep a full restore point in the default pool
  prechange.snapshots.proxmox_clone:
    vm: db01
    snapshot: before-migration
    name: db01-restore-20261122
    restore_point: true
    storage: local-lvm
    expires: 30d
  delegate_to: localhost

- name: Remove the clone (only a clone this collection made)
  prechange.snapshots.proxmox_clone:
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
      description: vmid.
      type: str
      sample: 100
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
      description: The clone's vmid; null in check mode when it would be made.
      type: str
      sample: 142
    linked:
      description: Whether the clone's disks are linked to a template's base volumes (false for a full copy).
      type: bool
      sample: false
    why:
      description: Why a linked clone or a full copy was made; null when nothing was made.
      type: str
      sample: "full copy: Proxmox VE links clones only to templates, and a snapshot of a VM is always copied"
    restore_point:
      description: Whether it is a full restore point.
      type: bool
      sample: false
    power_state:
      description: The clone's power state.
      type: str
      sample: stopped
    network:
      description: The bridge its network devices are on; null when every device has link_down=1.
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
          sample: "100"
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
  sample: proxmox
snapshot:
  description: The snapshot name as given, on failure.
  returned: failure
  type: str
  sample: before-patching
"""

from ansible_collections.prechange.snapshots.plugins.module_utils._clone import run_clone_module
from ansible_collections.prechange.snapshots.plugins.module_utils._proxmox import (
    PROXMOXER_IMPORT_ERROR,
    ProxmoxBackend,
    connection_argument_spec,
    connection_module_kwargs,
)

REQUIREMENTS = [("proxmoxer", PROXMOXER_IMPORT_ERROR)]


def main(module_class=None):
    placement = dict(node=dict(type="str"), storage=dict(type="str"), newid=dict(type="int"), pool=dict(type="str"))
    run_clone_module(ProxmoxBackend, connection_argument_spec(), placement, module_kwargs=connection_module_kwargs(),
                     requirements=REQUIREMENTS, module_class=module_class)


if __name__ == "__main__":
    main()
