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
  description: One entry per guest listed.
  returned: always
  type: list
  elements: dict
  contains:
    vm:
      description: The guest (name, id as the vmid, power_state).
      type: dict
    snapshots:
      description: The guest's snapshots that pass the filters, oldest first, with the same keys as the
        C(snapshot) result of M(prechange.snapshots.proxmox_snapshot).
      type: list
      elements: dict
    count:
      description: How many snapshots the guest has in all, before filtering.
      type: int
      sample: 2
    current:
      description: Name of the snapshot the current state descends from, or null.
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
  description: The guest, when O(vm) was given.
  returned: when O(vm) is given
  type: dict
snapshots:
  description: The guest's filtered snapshots, when O(vm) was given.
  returned: when O(vm) is given
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
