# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """VMware vSphere connection options, and where to look for VMs by name."""

    DOCUMENTATION = r"""
options:
  hostname:
    description:
      - The vCenter Server or ESXi host to connect to.
      - If not set, the value of the E(VMWARE_HOST) environment variable is used.
      - Required, through the option or the environment variable.
    type: str
  username:
    description:
      - The user name to log in with.
      - If not set, the value of the E(VMWARE_USER) environment variable is used.
    type: str
    aliases: [user, admin]
  password:
    description:
      - The password of O(username). Never logged.
      - If not set, the value of the E(VMWARE_PASSWORD) environment variable is used.
    type: str
    aliases: [pass, pwd]
  port:
    description:
      - The HTTPS port of the vSphere API.
      - If not set, the value of the E(VMWARE_PORT) environment variable is used, else 443.
    type: int
    default: 443
  validate_certs:
    description:
      - Verify the server's TLS certificate against the controller's trusted CAs.
      - If not set, the value of the E(VMWARE_VALIDATE_CERTS) environment variable is used, else V(true).
      - Set V(false) only for lab systems with self-signed certificates.
    type: bool
    default: true
  proxy_host:
    description:
      - The host name or IP address of an HTTP proxy that relays every request to O(hostname) (HTTP
        CONNECT; TLS stays end to end, so O(validate_certs) still applies to the vSphere endpoint).
      - If not set, the value of the E(VMWARE_PROXY_HOST) environment variable is used, as in
        community.vmware and vmware.vmware.
    type: str
  proxy_port:
    description:
      - The port of the HTTP proxy in O(proxy_host), default V(80). Setting it without O(proxy_host) is an error.
      - If not set, the value of the E(VMWARE_PROXY_PORT) environment variable is used.
    type: int
  datacenter:
    description:
      - The datacenter to look for VMs in, by name or inventory path (V(DC1), V(Europe/DC1)).
      - When omitted, every datacenter is in scope.
      - This narrows the scope but does not qualify a name; a name that two folders of the datacenter
        share still fails and lists them.
    type: str
  folder:
    description:
      - The VM folder the VMs named in O(vm) or C(vms) are in.
      - A path with a V(vm) component after the first one names its datacenter (V(DC1/vm/linux),
        V(/DC1/vm)), as community.vmware takes it; any other path (V(linux/web)) is relative to the
        VM folder of O(datacenter), or of every datacenter.
      - vSphere keeps VM names unique per folder, so a name with a folder is qualified. With
        O(vm_lookup=auto) it is found by inventory path (V(<folder>/<name>)), one index lookup whose
        cost does not grow with the inventory; a VM not directly in the folder is searched for in its
        sub-folders, and a name found in more than one of them fails and lists them.
      - Use it, V(DC1/vm) included for a VM directly in the datacenter's VM folder, or a UUID or
        managed object id in O(vm), for the fastest lookup on large inventories.
    type: str
  vm_lookup:
    description:
      - How a VM given by name is found. UUIDs and managed object ids always use the server's index.
      - vSphere keeps VM names unique per folder only. A name given without O(folder) is never taken from
        the first place it is found; every VM of that name in scope is looked for, and a name that several
        VMs share fails with the candidates listed (inventory path and managed object id each), whatever
        this option says.
      - V(auto) looks the names given without O(folder) up in each VM folder and vApp in scope (one query
        for the folders, then one index call per name and folder), a cost that grows with the folders and
        not with the VMs. When that would take more than 128 calls (many names in a batch, or many
        folders), it reads the name of every VM in scope instead, in one property-collector query for all
        the names of the task. A name with O(folder) is one inventory-path lookup.
      - V(search) always reads the name of every VM in scope in one property-collector query. That query's
        cost grows with the inventory (mostly pyVmomi parsing the answer on the controller, about 0.05 s
        per 1000 VMs).
    type: str
    choices: [auto, search]
    default: auto
requirements:
  - pyvmomi >= 7.0 on the controller
notes:
  - O(vm) and each entry of C(vms) take a VM name, an instance or BIOS UUID (a BIOS UUID that several VMs
    share fails and lists them), or a managed object id (V(vm-1234)). A VM name that several VMs in scope
    share (in different folders) fails and lists them unless O(folder) qualifies it; see O(vm_lookup).
  - One API session is used per task, for every VM of the task.
"""

    ACTIONGROUP_VMWARE = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/prechange.snapshots.vmware) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - prechange.snapshots.vmware
notes:
  - The connection options need not be in the task. Those it does not give come from the inventory host's
    C(prechange_vmware_<option>) variables (the same variables the roles read), then from the play's
    C(module_defaults) (C(group/prechange.snapshots.vmware) or the module's own entry), then from the environment
    variables. An argument given in the task wins over all of them.
"""
