# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Proxmox VE connection options (names and environment variables as in community.proxmox)."""

    DOCUMENTATION = r"""
options:
  api_host:
    description:
      - Host name or address of a Proxmox VE node (any node of the cluster).
      - You can use the E(PROXMOX_HOST) environment variable.
    type: str
    required: true
  api_port:
    description:
      - Port of the API. Proxmox VE listens on V(8006), which is used when this is not set.
      - You can use the E(PROXMOX_PORT) environment variable.
    type: int
  api_user:
    description:
      - User to authenticate as, with its realm, for example V(root@pam) or V(ansible@pve).
      - With an API token, the user that owns the token.
      - You can use the E(PROXMOX_USER) environment variable.
    type: str
    required: true
  api_password:
    description:
      - Password of O(api_user). One login ticket is fetched per task, however many guests it acts on.
      - Used when both a password and a token are given.
      - You can use the E(PROXMOX_PASSWORD) environment variable.
    type: str
  api_token_id:
    description:
      - Name of an API token of O(api_user) (the part after C(!) in C(user@realm!name)).
      - Requires O(api_token_secret).
      - You can use the E(PROXMOX_TOKEN_ID) environment variable.
    type: str
  api_token_secret:
    description:
      - Secret of the API token O(api_token_id).
      - You can use the E(PROXMOX_TOKEN_SECRET) environment variable.
    type: str
  validate_certs:
    description:
      - Verify the API's TLS certificate. Set O(ca_path) for a cluster with its own CA (the default PVE
        setup), rather than turning this off.
      - You can use the E(PROXMOX_VALIDATE_CERTS) environment variable.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA (or the self-signed certificate) to verify the API against, when
        O(validate_certs=true).
      - You can use the E(PROXMOX_CA_PATH) environment variable.
    type: path
  api_timeout:
    description:
      - Seconds to wait for one HTTP answer from the API (not for a task; see the C(timeout) option of the snapshot module for that).
      - You can use the E(PROXMOX_API_TIMEOUT) environment variable.
    type: int
    default: 30
requirements:
  - proxmoxer >= 2.0
  - requests
notes:
  - The API user or token needs C(VM.Audit) to find guests and C(VM.Snapshot) to change snapshots;
    C(VM.PowerMgmt) for a C(revert_power_state) other than C(snapshot); C(Datastore.Audit) lets the storage
    precheck see storage types (without it, that precheck is skipped with a warning).
"""

    ACTIONGROUP_PROXMOX = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/prechange.snapshots.proxmox) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - prechange.snapshots.proxmox
notes:
  - The connection options need not be in the task. Those it does not give come from the inventory host's
    C(prechange_proxmox_<option>) variables (the same variables the roles read), then from the play's
    C(module_defaults) (C(group/prechange.snapshots.proxmox) or the module's own entry), then from the environment
    variables. An argument given in the task wins over all of them.
"""
