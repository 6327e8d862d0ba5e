# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """libvirt connection options."""

    DOCUMENTATION = r"""
options:
  uri:
    description:
      - libvirt connection URI, for example V(qemu:///system) or V(qemu+ssh://root@kvm1/system).
    type: str
    default: qemu:///system
requirements:
  - libvirt-python (built against the controller's libvirt client library)
"""

    ACTIONGROUP_LIBVIRT = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/prechange.snapshots.libvirt) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - prechange.snapshots.libvirt
notes:
  - The connection options need not be in the task. Those it does not give come from the inventory host's
    C(prechange_libvirt_<option>) variables (the same variables the roles read; also the C(ansible_libvirt_uri)
    of the community.libvirt inventory), then from the play's C(module_defaults)
    (C(group/prechange.snapshots.libvirt) or the module's own entry), then from the environment variables. An
    argument given in the task wins over all of them.
"""
