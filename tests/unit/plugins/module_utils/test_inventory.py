# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the host -> VM mapping rules (module_utils/_inventory.py) and the engine's lookup by SMBIOS UUID.

The host variables are the ones the three inventory plugins really set (read from community.libvirt 2.0.0,
community.vmware 5.10.0 and community.proxmox 1.4.0); the plugins themselves run against the real
backends in tests/integration/test_inventory_plugins.py.
"""

from __future__ import annotations

import pytest

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import (
    AmbiguousVm,
    InvalidRequest,
    VmNotFound,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._inventory import (
    match_product_uuid,
    normalize_uuid,
    resolve_target,
    swap_uuid,
    uuid_forms,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import VmRecord
from ansible_collections.prechange.snapshots.plugins.module_utils._workflow import resolve_vms

U = "4223a5ff-1d2c-5b3e-8f00-0123456789ab"
U_SWAPPED = "ffa52342-2c1d-3e5b-8f00-0123456789ab"
LIBVIRT_XML = "<domain type='qemu'><name>web01</name><uuid>%s</uuid><memory>131072</memory></domain>" % U


# --- UUIDs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "NA", "Not Settable", "00000000-0000-0000-0000-000000000000",
                                  "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "4223a5ff-1d2c"])
def test_unusable_uuids(text):
    assert normalize_uuid(text) is None
    assert uuid_forms(text) == []


def test_uuid_normalized_and_swapped():
    assert normalize_uuid(U.upper()) == U
    assert normalize_uuid(U.replace("-", "")) == U
    assert swap_uuid(U) == U_SWAPPED
    assert swap_uuid(U_SWAPPED) == U
    assert uuid_forms(U.upper()) == [U, U_SWAPPED]


def test_palindromic_uuid_has_one_form():
    same = "11111111-2222-3333-4444-555555555555"
    assert uuid_forms(same) == [same]


def vm(name, vm_id):
    return VmRecord(name=name, id=vm_id, power_state="running")


def test_match_either_byte_order():
    web = vm("web01", "vm-1")
    candidates = [(U_SWAPPED.upper(), web), ("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", vm("db01", "vm-2"))]
    assert match_product_uuid("web01.example.com", U, candidates, "on vc") is web
    assert match_product_uuid("web01.example.com", U_SWAPPED, candidates, "on vc") is web


def test_swapped_form_of_another_vm_is_ambiguous():
    candidates = [(U, vm("web01", "vm-1")), (U_SWAPPED, vm("web02", "vm-2"))]
    with pytest.raises(AmbiguousVm) as info:
        match_product_uuid("web01.example.com", U, candidates, "on vc")
    text = info.value.reason
    assert "host web01.example.com" in text and U in text and U_SWAPPED in text
    assert "'web01' (id vm-1" in text and "'web02' (id vm-2" in text
    assert {c["id"] for c in info.value.details["candidates"]} == {"vm-1", "vm-2"}


def test_clones_sharing_a_uuid_are_ambiguous():
    candidates = [(U, vm("web01", "vm-1")), (U, vm("web01-clone", "vm-7"))]
    with pytest.raises(AmbiguousVm, match="2 VMs match on vc"):
        match_product_uuid("web01", U, candidates, "on vc")


def test_no_match_names_host_uuid_and_endpoint():
    with pytest.raises(VmNotFound) as info:
        match_product_uuid("web01", U, [("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", vm("db01", "1"))], "at qemu:///x")
    assert "host web01 reports the SMBIOS UUID %s" % U in info.value.reason
    assert U_SWAPPED in info.value.reason and "at qemu:///x" in info.value.reason


def test_unusable_host_uuid_refused():
    with pytest.raises(InvalidRequest, match="no usable SMBIOS UUID"):
        match_product_uuid("web01", "NA", [(U, vm("web01", "1"))], "on vc")


# --- inventory plugin variables ----------------------------------------------------------------------


def test_libvirt_plugin_host():
    variables = {"ansible_libvirt_uri": "qemu:///system", "xml_desc": LIBVIRT_XML,
                 "ansible_connection": "community.libvirt.libvirt_qemu"}
    target = resolve_target("web01", variables)
    assert (target.provider, target.vm, target.match) == ("libvirt", U, "name")
    assert target.connection == {"uri": "qemu:///system"}


def test_libvirt_plugin_host_without_xml_uses_the_hostname():
    target = resolve_target(U, {"ansible_libvirt_uri": "qemu+ssh://kvm1/system"})
    assert (target.provider, target.vm, target.connection) == ("libvirt", U, {"uri": "qemu+ssh://kvm1/system"})


def test_libvirt_uri_kept_when_the_vm_is_explicit():
    target = resolve_target("web01", {"ansible_libvirt_uri": "qemu:///system", "xml_desc": LIBVIRT_XML},
                            provider="libvirt", vm="other")
    assert (target.vm, target.connection) == ("other", {"uri": "qemu:///system"})


def test_vmware_plugin_host_nested_and_flat():
    nested = {"config": {"name": "web01", "uuid": U, "instanceUuid": "50237f0c-aaaa-bbbb-cccc-0123456789ab"},
              "config.uuid": U, "config.instanceUuid": "50237f0c-aaaa-bbbb-cccc-0123456789ab"}
    target = resolve_target("web01_" + U, nested)
    assert (target.provider, target.vm) == ("vmware", "50237f0c-aaaa-bbbb-cccc-0123456789ab")
    assert resolve_target("web01_" + U, {"config.uuid": U.upper()}).vm == U
    snake = {"config": {"instance_uuid": "50237f0c-aaaa-bbbb-cccc-0123456789ab"}}
    assert resolve_target("x", snake).vm == "50237f0c-aaaa-bbbb-cccc-0123456789ab"


def test_proxmox_plugin_guest_any_prefix():
    target = resolve_target("web01", {"proxmox_vmid": 100, "proxmox_node": "pve1", "proxmox_vmtype": "qemu"})
    assert (target.provider, target.vm, target.match) == ("proxmox", "100", "name")
    custom = resolve_target("web01", {"pve_vmid": "101", "pve_node": "pve2", "pve_vmtype": "lxc"})
    assert (custom.provider, custom.vm) == ("proxmox", "101")


def test_proxmox_node_refused_even_with_a_provider():
    variables = {"group_names": ["proxmox_nodes"], "ansible_host": "10.0.0.1"}
    with pytest.raises(InvalidRequest) as info:
        resolve_target("pve1", variables, provider="proxmox")
    assert "host pve1 is a Proxmox VE node" in info.value.reason
    assert "proxmox_all_qemu" in info.value.hint and "exclude_nodes" in info.value.hint


def test_proxmox_node_with_an_explicit_vm_is_the_users_choice():
    target = resolve_target("pve1", {"group_names": ["proxmox_nodes"]}, provider="proxmox", vm="101")
    assert (target.provider, target.vm) == ("proxmox", "101")


# --- precedence ---------------------------------------------------------------------------------------


def test_explicit_vm_and_provider_win():
    variables = {"proxmox_vmid": 100, "proxmox_node": "pve1", "proxmox_vmtype": "qemu",
                 "ansible_facts": {"product_uuid": U}}
    target = resolve_target("web01", variables, provider="proxmox", vm="db01")
    assert (target.vm, target.match, target.product_uuid) == ("db01", "name", None)


def test_explicit_other_provider_ignores_the_plugin_data():
    target = resolve_target("web01", {"ansible_libvirt_uri": "qemu:///system", "xml_desc": LIBVIRT_XML},
                            provider="vmware")
    assert (target.provider, target.vm, target.connection) == ("vmware", "web01", {})


def test_plugin_data_beats_the_product_uuid():
    variables = {"proxmox_vmid": 100, "proxmox_node": "pve1", "proxmox_vmtype": "qemu", "ansible_product_uuid": U}
    target = resolve_target("web01", variables)
    assert (target.vm, target.match, target.product_uuid) == ("100", "name", None)


def test_default_is_the_hostname_then_the_product_uuid():
    target = resolve_target("web01", {"ansible_facts": {"product_uuid": U.upper()}}, provider="libvirt")
    assert (target.provider, target.vm, target.match, target.product_uuid) == ("libvirt", "web01", "auto", U)
    assert resolve_target("web01", {"ansible_product_uuid": U}, provider="libvirt").product_uuid == U


def test_without_facts_the_hostname_only():
    for facts in ({}, {"ansible_product_uuid": "NA"}):
        target = resolve_target("web01", facts, provider="libvirt")
        assert (target.vm, target.match, target.product_uuid) == ("web01", "name", None)


def test_match_name_turns_the_uuid_off():
    target = resolve_target("web01", {"ansible_product_uuid": U}, provider="libvirt", match="name")
    assert (target.match, target.product_uuid) == ("name", None)


def test_match_product_uuid_requires_the_fact():
    target = resolve_target("web01", {"ansible_product_uuid": U}, provider="vmware", match="product_uuid")
    assert (target.match, target.product_uuid) == ("product_uuid", U)
    with pytest.raises(InvalidRequest, match="reports no usable SMBIOS UUID .ansible_product_uuid is 'NA'"):
        resolve_target("web01", {"ansible_product_uuid": "NA"}, provider="vmware", match="product_uuid")
    with pytest.raises(InvalidRequest, match="prechange_vm_match is 'uuid'"):
        resolve_target("web01", {}, provider="vmware", match="uuid")


def test_nothing_names_a_provider():
    assert resolve_target("web01", {}).provider == ""


# --- the engine's lookup: names first, the SMBIOS UUID once per endpoint ---------------------------------


class UuidBackend(object):
    """Only the two lookup methods the engine calls, counting the UUID queries."""

    provider = "fake"

    def __init__(self, vms):
        self.vms = vms  # [(name, id, smbios uuid)]
        self.uuid_queries = 0

    def endpoint(self):
        return "on the fake endpoint"

    def find_vms(self, refs):
        out = {}
        for ref in refs:
            hits = [vm(n, i) for n, i, _u in self.vms if ref in (n, i)]
            out[ref] = hits[0] if hits else VmNotFound("no VM named %s" % ref)
        return out

    def product_uuid_candidates(self):
        self.uuid_queries += 1
        return [(u, vm(n, i)) for n, i, u in self.vms]


def test_resolve_vms_name_first_uuid_fallback_once():
    backend = UuidBackend([("web01", "1", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"), ("app-vm", "2", U_SWAPPED),
                           ("db-vm", "3", "12345678-9abc-def0-1234-56789abcdef0")])
    items = [("web01", {"vm": "web01", "vm_match": "auto", "product_uuid": U}),  # the name wins
             ("app.example.com", {"vm": "app.example.com", "vm_match": "auto", "product_uuid": U}),
             ("db.example.com", {"vm": "db.example.com", "vm_match": "product_uuid",
                                 "product_uuid": "12345678-9abc-def0-1234-56789abcdef0"}),
             ("gone", {"vm": "gone", "vm_match": "auto", "product_uuid": "99999999-9abc-def0-1234-56789abcdef0"}),
             ("nofacts", {"vm": "nofacts", "vm_match": "name"})]
    found = resolve_vms(backend, items)
    assert found["web01"].id == "1" and "matched_by" not in found["web01"].extra
    assert found["app.example.com"].id == "2" and found["app.example.com"].extra["matched_by"] == "product_uuid"
    assert found["db.example.com"].id == "3"
    assert isinstance(found["gone"], VmNotFound)
    assert found["gone"].reason.startswith("no VM is named 'gone', and host gone reports the SMBIOS UUID")
    assert isinstance(found["nofacts"], VmNotFound)
    assert backend.uuid_queries == 1


def test_resolve_vms_asks_no_uuid_when_names_match():
    backend = UuidBackend([("web01", "1", U)])
    found = resolve_vms(backend, [("web01", {"vm": "web01", "vm_match": "auto", "product_uuid": U})])
    assert found["web01"].id == "1" and backend.uuid_queries == 0
