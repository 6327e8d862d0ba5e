#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_clone
short_description: Make a libvirt/KVM domain from a snapshot of another domain, or remove such a clone
version_added: 1.0.0
description:
  - Defines a new domain (new UUID, new MAC addresses) whose disks hold the state of a snapshot of the source
    domain, with the same options and results as the VMware and Proxmox modules of this collection.
  - From an external snapshot, the clone is linked by default, a new qcow2 overlay per disk on the file
    the snapshot froze (it no longer changes). From an internal snapshot, each disk is copied out of the qcow2
    (C(qemu-img convert -U -l snapshot.name=...)), a full copy. O(full=true) always copies.
  - The disks are written as C(<name>-<disk>.qcow2) into the storage pool O(pool) or beside the source's disk, by
    qemu-img where the module runs, so the task must run on the libvirt host (a remote O(uri) is refused).
  - Every interface gets C(<link state='down'/>) unless O(network) is given; network devices passed to QEMU
    directly through C(<qemu:commandline>) are dropped (with a warning naming them), as they would put the clone
    on the source's network. With O(network), every interface is put on that libvirt network; a domain
    without interfaces gets one virtio interface.
  - The clone is the domain as it was at the snapshot, with the definition the snapshot stored (memory, vCPUs,
    devices, and only the disks it had then; a disk it had then that is no longer attached is refused). A
    snapshot that stores no definition falls back to the domain's current one, and RV(clone.why) and a warning
    say so.
  - Serial and console log files go beside the clone's disks; a pflash NVRAM is made fresh from its template.
  - The ownership marker is kept in the domain's C(<metadata>).
author:
  - prechange.snapshots contributors (@prechange)
options:
  pool:
    description:
      - libvirt storage pool (directory-backed) to write the clone's disks into. Default beside the source's
        first disk.
    type: str
extends_documentation_fragment:
  - prechange.snapshots.clone
  - prechange.snapshots.libvirt
  - prechange.snapshots.libvirt.ACTIONGROUP_LIBVIRT
  - prechange.snapshots.attributes
  - prechange.snapshots.attributes.ACTIONS
seealso:
  - module: prechange.snapshots.libvirt_snapshot
"""

EXAMPLES = r"""
- name: Clone web01 from its pre-change snapshot, network cut off
  prechange.snapshots.libvirt_clone:
    vm: web01
    snapshot: before-patching
    name: web01-rehearsal
    power_on: true
    expires: 1d
  delegate_to: localhost

- name: Keep a full restore point in the default pool
  prechange.snapshots.libvirt_clone:
    vm: db01
    snapshot: before-migration
    name: db01-restore-20261122
    restore_point: true
    pool: default
    expires: 30d
  delegate_to: localhost

- name: Remove the clone (only a clone this collection made)
  prechange.snapshots.libvirt_clone:
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
      description: Domain name.
      type: str
      sample: web01
    id:
      description: Domain UUID.
      type: str
      sample: 6695eb01-f6a4-8304-79aa-97f2502e193f
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
      description: The clone's domain name.
      type: str
      sample: web01-rehearsal
    id:
      description: The clone's domain UUID; null in check mode when it would be made.
      type: str
      sample: 0c1d0e58-5e0b-4d6a-9d43-46d2b1b0f3d2
    linked:
      description: Whether the clone's disks are overlays on the source's frozen disk state (false for a full
        copy).
      type: bool
      sample: false
    why:
      description: Why a linked clone or a full copy was made; null when nothing was made.
      type: str
      sample: "full copy: the internal snapshot lives inside the disk file the VM still writes to, so nothing
        can be linked to it; its configuration (memory, vCPUs, devices) as stored in the snapshot"
    restore_point:
      description: Whether it is a full restore point.
      type: bool
      sample: false
    power_state:
      description: The clone's power state.
      type: str
      sample: stopped
    network:
      description: The network its interfaces are on; null when every interface is disconnected.
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
          sample: "6695eb01-f6a4-8304-79aa-97f2502e193f"
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
  sample: libvirt
snapshot:
  description: The snapshot name as given, on failure.
  returned: failure
  type: str
  sample: before-patching
"""

from ansible_collections.prechange.snapshots.plugins.module_utils._clone import run_clone_module
from ansible_collections.prechange.snapshots.plugins.module_utils._libvirt import (
    LIBVIRT_IMPORT_ERROR,
    LibvirtBackend,
    connection_argument_spec,
)

REQUIREMENTS = [("libvirt-python", LIBVIRT_IMPORT_ERROR)]


def main(module_class=None):
    run_clone_module(LibvirtBackend, connection_argument_spec(), dict(pool=dict(type="str")),
                     requirements=REQUIREMENTS, module_class=module_class)


if __name__ == "__main__":
    main()
