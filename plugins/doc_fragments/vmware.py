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
      - When omitted, every datacenter is tried; a VM name found in more than one fails and lists them.
    type: str
  folder:
    description:
      - The VM folder to look for VMs in.
      - A path with a V(vm) component after the first one names its datacenter (V(DC1/vm/linux),
        V(/DC1/vm)), as community.vmware takes it; any other path (V(linux/web)) is relative to the
        VM folder of O(datacenter), or of every datacenter.
    type: str
  vm_lookup:
    description:
      - How a VM given by name is found. UUIDs and managed object ids always use the server's index.
      - V(auto) looks the name up by inventory path (V(<datacenter>/vm/<folder>/<name>)), an index lookup
        whose cost does not grow with the inventory; only when that finds nothing does it search every
        folder in scope with one property-collector query.
      - V(search) always searches every folder in scope, so a name used by several VMs anywhere in scope
        always fails; slower on large inventories.
      - vSphere keeps names unique per folder only. With V(auto), a VM directly in a datacenter's VM folder
        wins over namesakes in sub-folders of that datacenter; use V(search), O(folder) or a UUID where
        that matters.
    type: str
    choices: [auto, search]
    default: auto
requirements:
  - pyvmomi >= 7.0 on the controller
notes:
  - O(vm) and each entry of O(vms) take a VM name, an instance or BIOS UUID (a BIOS UUID that several VMs
    share fails and lists them), or a managed object id (V(vm-1234)).
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
"""
