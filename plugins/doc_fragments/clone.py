# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Options and return values shared by every <provider>_clone module."""

    DOCUMENTATION = r"""
options:
  vm:
    description:
      - The source VM, by name or by an id the provider understands, looked up as the snapshot modules do
        (an ambiguous name is refused).
      - Required with O(state=present). With O(state=absent), when given, only a clone of this VM is removed.
    type: str
  snapshot:
    description:
      - The source snapshot's name. Required with O(state=present).
      - With O(state=absent), when given, only a clone of this snapshot is removed.
    type: str
  name:
    description:
      - The clone's VM name.
      - When a VM of this name exists and is this collection's clone of the same VM and snapshot, nothing is
        done (C(changed=false)); any other VM of this name is refused and nothing is changed.
    type: str
    required: true
  state:
    description:
      - V(present) makes the clone; V(absent) stops and removes it, only when its ownership marker says this
        collection made it (and, when O(vm) or O(snapshot) are given, from them). A missing VM is no change.
    type: str
    choices: [present, absent]
    default: present
  full:
    description:
      - V(false) makes a linked clone where the platform can link to that snapshot, and a full copy otherwise.
        V(true) always makes a full, independent copy. The result's RV(clone.linked) and RV(clone.why) say
        which was made and why.
    type: bool
    default: false
  restore_point:
    description:
      - Make a full restore point, a full copy kept powered off and disconnected, marked as a
        restore point. It outlives the source's snapshots and is pruned with them when it expires.
      - Cannot be combined with O(power_on) or O(network).
    type: bool
    default: false
  power_on:
    description:
      - Start the clone once it is made.
    type: bool
    default: false
  network:
    description:
      - When omitted, every NIC of the clone is disconnected, so the clone can never answer for the source.
      - A network's name (a vSphere port group, a Proxmox bridge, a libvirt network) connects every NIC of the
        clone to that network.
    type: str
  run_id:
    description:
      - Run id written into the clone's ownership marker. Generated when omitted.
    type: str
  ticket:
    description:
      - Change ticket written into the clone's ownership marker.
    type: str
  expires:
    description:
      - When the clone may be pruned, written into its ownership marker. The prune step of the workflow removes
        expired clones and restore points of the play's VMs.
      - A duration from now (V(30m), V(12h), V(7d), V(2w)) or an ISO 8601 timestamp.
    type: str
  creator:
    description:
      - Creator written into the ownership marker. Defaults to C(user@controller-host).
    type: str
  timeout:
    description:
      - Seconds to wait for each hypervisor operation (the copy of the disks included).
    type: int
    default: 600
  lock_timeout:
    description:
      - Seconds to wait for another job that holds the source VM to let go of it, checked before anything is
        changed (in check mode too). V(0) refuses such a VM at once.
    type: int
    default: 0
notes:
  - Check mode runs the same lookups and prechecks (the snapshot, the name, the space for a full copy) and
    changes nothing. Diff mode shows the clone before and after.
  - The clone carries the ownership marker (source VM and its id, snapshot, run, creator, created, expires, ticket,
    kind C(clone) or C(restore_point)).
"""
