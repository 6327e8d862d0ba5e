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
  returned: always
  type: list
  elements: dict
  contains:
    vm:
      description: The VM (name, id as managed object id, power_state).
      type: dict
    snapshots:
      description: The VM's snapshots that pass the filters, oldest first, with the same keys as the
        C(snapshot) result of M(prechange.snapshots.vmware_snapshot).
      type: list
      elements: dict
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
vm:
  description: The VM, when O(vm) was given.
  returned: when O(vm) is given
  type: dict
snapshots:
  description: The VM's filtered snapshots, when O(vm) was given.
  returned: when O(vm) is given
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
