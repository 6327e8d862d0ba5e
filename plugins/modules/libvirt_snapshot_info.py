#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_snapshot_info
short_description: List the snapshots of libvirt/KVM domains as tree-aware records
version_added: 1.0.0
description:
  - Lists the snapshots of one domain, several, or every domain on the connection.
  - Each snapshot comes with its parent, children, whether it is current, its age and the collection's
    ownership marker when it carries one. Filters select by name pattern, age, ownership and run id.
author:
  - prechange.snapshots contributors (@prechange)
extends_documentation_fragment:
  - prechange.snapshots.snapshot.INFO
  - prechange.snapshots.libvirt
  - prechange.snapshots.libvirt.ACTIONGROUP_LIBVIRT
  - prechange.snapshots.attributes
  - prechange.snapshots.attributes.INFO_MODULE
seealso:
  - module: prechange.snapshots.libvirt_snapshot
"""

EXAMPLES = r"""
- name: All snapshots of one guest
  prechange.snapshots.libvirt_snapshot_info:
    vm: web01
  delegate_to: localhost
  register: web01_snapshots

- name: Our own expired snapshots on every guest of the host
  prechange.snapshots.libvirt_snapshot_info:
    uri: qemu+ssh://root@kvm1/system
    owned: true
    expired: true
  delegate_to: localhost
  run_once: true
  register: expired
"""

RETURN = r"""
vms:
  description: One entry per VM listed.
  returned: always
  type: list
  elements: dict
  contains:
    vm:
      description: The VM (name, id, power_state).
      type: dict
    snapshots:
      description: The VM's snapshots that pass the filters, oldest first, with the same keys as the
        C(snapshot) result of M(prechange.snapshots.libvirt_snapshot).
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

from ansible_collections.prechange.snapshots.plugins.module_utils._libvirt import (
    LIBVIRT_IMPORT_ERROR,
    LibvirtBackend,
    connection_argument_spec,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._module import run_info_module

# What the module needs importable; the action plugin runs the module in its own process only
# when these import on the controller.
REQUIREMENTS = [("libvirt-python", LIBVIRT_IMPORT_ERROR)]


def main(module_class=None):
    run_info_module(LibvirtBackend, connection_argument_spec(), requirements=REQUIREMENTS, module_class=module_class)


if __name__ == "__main__":
    main()
