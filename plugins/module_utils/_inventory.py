# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which VM, on which provider and endpoint, an inventory host is: the mapping rules.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

``resolve_target`` decides, from one host's variables, in this order (the first that applies):

1. What the user set explicitly always wins: ``prechange_provider`` / ``snapshot_provider``,
   ``prechange_vm`` / ``snapshot_vm`` and ``prechange_<provider>_<option>``.
2. What an inventory plugin recorded about the host:

   * community.proxmox.proxmox: ``proxmox_vmid`` (with ``proxmox_node`` and ``proxmox_vmtype``,
     any facts prefix) is the guest; provider ``proxmox``. A host of the plugin's ``proxmox_nodes``
     group without a vmid is a cluster node, never a guest: refused.
   * community.libvirt.libvirt: ``ansible_libvirt_uri`` is the endpoint (provider ``libvirt``,
     option ``uri``); the domain is the ``<uuid>`` of the plugin's ``xml_desc`` (else the host name).
   * community.vmware.vmware_vm_inventory: ``config.instanceUuid`` (unique per vCenter), else
     ``config.uuid``, is the VM; provider ``vmware``.
3. Otherwise the inventory hostname is the VM's name; when no VM has that name and the host's facts
   carry a usable ``ansible_product_uuid`` (the guest's own SMBIOS UUID), the VM whose UUID it is
   (``prechange_vm_match: product_uuid`` makes that the only rule, ``name`` turns it off).

SMBIOS UUIDs: a guest may read the first three fields of its UUID in the other byte order
(VMware VMs of older hardware versions, SMBIOS before 2.6), so both orders are accepted; when the
two orders name two different VMs, or two VMs share the UUID (clones), nothing is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import (
    AmbiguousVm,
    InvalidRequest,
    VmNotFound,
)

MATCH_CHOICES = ("auto", "name", "product_uuid")
_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_XML_UUID = re.compile(r"<uuid>\s*([0-9a-fA-F-]{32,36})\s*</uuid>")
PROXMOX_NODES_GROUP = "proxmox_nodes"


@dataclass
class Target:
    """Where a host's VM is: provider, VM reference, how to match it, connection options, and why."""

    provider: str
    vm: str
    match: str = "name"
    product_uuid: Optional[str] = None
    connection: dict = field(default_factory=dict)
    source: str = "the inventory hostname"


# --- SMBIOS UUIDs -------------------------------------------------------------------------------------


def normalize_uuid(text):
    """A UUID in lower case with dashes, or None when it is no usable UUID (missing, 'NA', all 0 or all F)."""
    if text is None:
        return None
    raw = str(text).strip().lower()
    if not _UUID.match(raw):
        return None
    raw = raw.replace("-", "")
    if raw in ("0" * 32, "f" * 32):
        return None
    return "%s-%s-%s-%s-%s" % (raw[:8], raw[8:12], raw[12:16], raw[16:20], raw[20:])


def swap_uuid(uuid):
    """The same UUID with its first three fields in the other byte order (SMBIOS before 2.6)."""
    parts = uuid.split("-")
    for index in range(3):
        field_bytes = [parts[index][i:i + 2] for i in range(0, len(parts[index]), 2)]
        parts[index] = "".join(reversed(field_bytes))
    return "-".join(parts)


def uuid_forms(uuid):
    """The UUID as the guest reads it, then its byte-swapped form (one entry when both are equal)."""
    uuid = normalize_uuid(uuid)
    if uuid is None:
        return []
    swapped = swap_uuid(uuid)
    return [uuid] if swapped == uuid else [uuid, swapped]


def match_product_uuid(host, uuid, candidates, endpoint):
    """The one VM whose SMBIOS UUID is the host's, in either byte order.

    ``candidates`` is ``[(smbios uuid of the VM, VmRecord), ...]`` for every VM of the endpoint.
    Raises VmNotFound when none matches and AmbiguousVm when more than one VM does.
    """
    forms = uuid_forms(uuid)
    if not forms:
        raise InvalidRequest("host %s reports no usable SMBIOS UUID (ansible_product_uuid is '%s')" % (host, uuid),
                             hint="Gather facts with become (the UUID is readable by root only), or name the VM "
                                  "with prechange_vm; nothing was changed")
    matches = {}
    for vm_uuid, record in candidates:
        normal = normalize_uuid(vm_uuid)
        if normal in forms:
            matches.setdefault(record.id, (normal, record))
    tried = "%s (also tried in the other byte order: %s)" % (forms[0], forms[1]) if len(forms) > 1 else forms[0]
    if not matches:
        raise VmNotFound("host %s reports the SMBIOS UUID %s, which no VM has %s"
                         % (host, tried, endpoint),
                         hint="Check that the host is a VM of this endpoint, or name its VM with prechange_vm; "
                              "nothing was changed",
                         details={"product_uuid": forms[0]})
    if len(matches) > 1:
        listing = ", ".join("'%s' (id %s, SMBIOS UUID %s)" % (r.name, r.id, u)
                            for u, r in sorted(matches.values(), key=lambda m: str(m[1].id)))
        raise AmbiguousVm("host %s reports the SMBIOS UUID %s, which %d VMs match %s: %s"
                          % (host, tried, len(matches), endpoint, listing),
                          hint="Name the host's VM with prechange_vm (a UUID, moid or vmid); nothing was changed",
                          details={"product_uuid": forms[0],
                                   "candidates": [{"name": r.name, "id": r.id, "product_uuid": u}
                                                  for u, r in matches.values()]})
    return next(iter(matches.values()))[1]


# --- what inventory plugins record ------------------------------------------------------------------------


def _text(value):
    return "" if value is None else str(value).strip()


def _proxmox_guest(variables):
    """``(vmid, prefix)`` of a community.proxmox guest: <prefix>vmid next to <prefix>node and <prefix>vmtype."""
    for key in sorted(variables):
        if not key.endswith("vmid"):
            continue
        prefix = key[:-len("vmid")]
        if (prefix + "node") in variables and (prefix + "vmtype") in variables and _text(variables[key]).isdigit():
            return _text(variables[key]), prefix
    return None, None


def _vmware_uuid(variables):
    """``(uuid, variable)`` of a community.vmware vmware_vm_inventory host: the instance UUID, else the BIOS UUID."""
    config = variables.get("config") if isinstance(variables.get("config"), dict) else {}
    for flat, nested in (("config.instanceUuid", ("instanceUuid", "instance_uuid")), ("config.uuid", ("uuid",))):
        for value in [variables.get(flat)] + [config.get(key) for key in nested]:
            if normalize_uuid(value):
                return normalize_uuid(value), flat
    return None, None


def _libvirt_uuid(variables):
    match = _XML_UUID.search(_text(variables.get("xml_desc")))
    return normalize_uuid(match.group(1)) if match else None


def infer_from_inventory(host, variables, refuse_nodes=True):
    """What an inventory plugin says this host is: a ``Target`` without product UUID, or None.

    Raises InvalidRequest for a Proxmox VE node, which is never a guest (unless ``refuse_nodes`` is
    false: the user named the VM explicitly).
    """
    vmid, prefix = _proxmox_guest(variables)
    groups = set(variables.get("group_names") or [])
    if vmid is None and PROXMOX_NODES_GROUP in groups and refuse_nodes:
        raise InvalidRequest(
            "host %s is a Proxmox VE node (inventory group %s, no proxmox_vmid), not a guest: it has no VM to "
            "snapshot" % (host, PROXMOX_NODES_GROUP),
            hint="Run the play on the guests only (hosts: proxmox_all_qemu:proxmox_all_lxc, or "
                 "-e maintenance_hosts='all:!proxmox_nodes'), or set exclude_nodes: true in the inventory "
                 "source; nothing was changed")
    if vmid is not None:
        return Target("proxmox", vmid, source="%svmid (community.proxmox inventory)" % prefix)
    uri = _text(variables.get("ansible_libvirt_uri"))
    if uri:
        uuid = _libvirt_uuid(variables)
        return Target("libvirt", uuid or host, connection={"uri": uri},
                      source="ansible_libvirt_uri and xml_desc (community.libvirt inventory)" if uuid
                      else "ansible_libvirt_uri (community.libvirt inventory) and the inventory hostname")
    uuid, name = _vmware_uuid(variables)
    if uuid:
        return Target("vmware", uuid, source="%s (community.vmware inventory)" % name)
    return None


def host_product_uuid(variables):
    """The SMBIOS UUID the host's own facts report (``ansible_facts.product_uuid``), as given."""
    facts = variables.get("ansible_facts") if isinstance(variables.get("ansible_facts"), dict) else {}
    value = facts.get("product_uuid")
    if value is None:
        value = variables.get("ansible_product_uuid")
    return _text(value) or None


def resolve_target(host, variables, provider="", vm="", match=""):
    """The host's ``Target`` under the rules in this module's docstring.

    ``provider`` and ``vm`` are what the user set (empty: not set); ``match`` is ``prechange_vm_match``.
    The provider is left empty when nothing names it (the caller refuses that with its own message).
    """
    match = _text(match) or "auto"
    if match not in MATCH_CHOICES:
        raise InvalidRequest("prechange_vm_match is '%s'" % match,
                             hint="Use auto, name or product_uuid; nothing was changed")
    provider, vm = _text(provider), _text(vm)
    inferred = infer_from_inventory(host, variables, refuse_nodes=not vm)
    if inferred is not None and provider and provider != inferred.provider:
        inferred = None  # the user named another provider: the plugin's data is about something else
    provider = provider or (inferred.provider if inferred else "")
    connection = dict(inferred.connection) if inferred else {}
    uuid = host_product_uuid(variables)
    if vm:
        return Target(provider, vm, "name", None, connection, "prechange_vm / the role's vm variable")
    if match == "product_uuid":
        if normalize_uuid(uuid) is None:
            raise InvalidRequest(
                "prechange_vm_match is product_uuid but host %s reports no usable SMBIOS UUID "
                "(ansible_product_uuid is '%s')" % (host, uuid or "not gathered"),
                hint="Gather facts first, with become (the UUID is readable by root only); nothing was changed")
        return Target(provider, host, "product_uuid", normalize_uuid(uuid), connection,
                      "the host's SMBIOS UUID (ansible_product_uuid)")
    if inferred is not None:
        return Target(provider, inferred.vm, "name", None, connection, inferred.source)
    if match == "auto" and normalize_uuid(uuid):
        return Target(provider, host, "auto", normalize_uuid(uuid), connection,
                      "the inventory hostname, else the host's SMBIOS UUID")
    return Target(provider, host, "name", None, connection)
