# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Any inventory (issue 11, point 3): the hosts of the three inventory plugins, and hosts found by their SMBIOS UUID.

The inventory plugins run for real (community.libvirt 2.0.0, community.vmware 5.10.0, community.proxmox
1.4.0, unpacked by tests/integration/inventory/collections.sh) against the real libvirtd, vcsim and fakepve.
Their hosts go through the snapshot and revert_or_prune roles with the mapping the playbooks' README
documents (none for the VM: the collection reads the plugins' own host variables), and the right VM's
snapshot is read back from the hypervisor's API. Proxmox VE nodes, which the proxmox plugin adds as hosts,
are refused with a clear message and no guest is touched for them, even a guest that bears a node's name.

The SMBIOS UUID rule (a host whose name matches no VM, found by its ``ansible_product_uuid``) runs on the
three backends: found in either byte order, a missing UUID refused, and an ambiguous one (the byte-swapped
form of one VM's UUID is another VM's UUID) refused with the candidates.

    flock /tmp/prechange-libvirt.lock python -m pytest tests/integration/test_inventory_plugins.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET

import pytest

from conftest import (  # pylint: disable=import-error
    ansible_env,
    api_snapshots,
    COLLECTIONS,
    new_run_id,
    REPO,
    run_playbook,
    _vsphere,
    vsphere_remove_snapshots,
    _vsphere_vm,
)

MARKER = re.compile(r"\[prechange\.snapshots v1 [^\]]*\]")

PLAY = """
- name: Snapshot, then revert (host in revert_hosts) or keep, with the roles
  hosts: "{{ play_hosts_pattern }}"
  gather_facts: false
  module_defaults:
    group/prechange.snapshots.libvirt:
      uri: "test:///default"
  tasks:
    - name: Snapshot
      ansible.builtin.include_role:
        name: prechange.snapshots.snapshot
    - name: Revert or keep
      ansible.builtin.include_role:
        name: prechange.snapshots.revert_or_prune
      vars:
        revert_or_prune_action: "{{ 'revert' if inventory_hostname in revert_hosts | default([]) else 'keep' }}"
        revert_or_prune_wait_for_host: false
"""


@pytest.fixture(scope="session")
def plugin_collections():
    """The collections path holding the three inventory plugins (downloaded once, pinned, cached)."""
    script = os.path.join(REPO, "tests", "integration", "inventory", "collections.sh")
    proc = subprocess.run(["bash", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=dict(os.environ, PYTHON=sys.executable), check=False)
    if proc.returncode != 0:
        pytest.fail("could not install the inventory plugins' collections:\n%s" % proc.stderr, pytrace=False)
    return COLLECTIONS + os.pathsep + proc.stdout.strip().splitlines()[-1]


def env_for(paths, extra=None):
    env = {"ANSIBLE_COLLECTIONS_PATH": paths, "ANSIBLE_INVENTORY_ENABLED":
           "community.libvirt.libvirt,community.vmware.vmware_vm_inventory,community.proxmox.proxmox,yaml,ini,auto"}
    env.update(extra or {})
    return env


def inventory_list(source, env):
    """What ansible-inventory makes of the source: {"hostvars": ..., "groups": {group: [hosts]}}."""
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-inventory"), "-i", str(source), "--list"]
    proc = subprocess.run(cmd, env=ansible_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    groups = {name: value.get("hosts", []) for name, value in data.items() if name != "_meta"}
    return data["_meta"]["hostvars"], groups


def markers(provider, conn, vm):
    """{snapshot name: marker dict} read from the hypervisor's own API."""
    found = {}
    for name, info in api_snapshots(provider, conn, vm).items():
        line = (MARKER.findall(info.get("description") or "") or [""])[-1]
        found[name] = dict(pair.split("=", 1) for pair in line.strip("[]").split()[2:]) if line else {}
    return found


def phase(provider, conn, vm, name, output):
    """The run phase in the marker of snapshot ``name`` of ``vm``, read from the API (the test fails if none)."""
    found = markers(provider, conn, vm)
    assert name in found, "VM %s has no snapshot %s (it has %s):\n%s" % (vm, name, sorted(found), output[-8000:])
    return found[name].get("phase")


def play(tmp_path):
    path = tmp_path / "play.yml"
    path.write_text(PLAY)
    return str(path)


def host_failure(output, host):
    """The failure message ansible-playbook printed for a host (its JSON-escaped msg)."""
    match = re.search(r"fatal: \[%s\]: FAILED! => (\{.*\})\s*$" % re.escape(host), output, re.M)
    assert match, "host %s did not fail:\n%s" % (host, output[-6000:])
    return json.loads(match.group(1))["msg"]


def readme_example(first_line):
    """The playbooks' README yaml block that starts with ``first_line`` (the documented inventory source)."""
    text = open(os.path.join(REPO, "playbooks", "README.md"), encoding="utf-8").read()
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError("no yaml block starting with %r in playbooks/README.md" % first_line)


def swapped(value):
    parts = value.split("-")
    for index in range(3):
        parts[index] = "".join(reversed([parts[index][i:i + 2] for i in range(0, len(parts[index]), 2)]))
    return "-".join(parts)


# --- community.libvirt.libvirt on the real libvirtd ---------------------------------------------------------


def test_libvirt_plugin_hosts(tmp_path, libvirtd, libvirt_guest, plugin_collections):
    running, stopped = libvirt_guest("blank", start=True), libvirt_guest("blank", start=False)
    source = tmp_path / "kvm.libvirt.yml"
    # The README's example as printed (its uri is the test daemon's), plus a group of this test's guests.
    example = readme_example("# kvm.libvirt.yml")
    assert "uri: %s\n" % libvirtd in example
    source.write_text(example + "groups:\n  maintenance_test: inventory_hostname in %s\n"
                      % json.dumps([running.name, stopped.name]))
    env = env_for(plugin_collections)
    hostvars, groups = inventory_list(source, env)
    assert sorted(groups["maintenance_test"]) == sorted([running.name, stopped.name])
    assert hostvars[running.name]["ansible_libvirt_uri"] == libvirtd
    assert "prechange_provider" not in hostvars[running.name]  # nothing composed: the collection infers it
    run_id = new_run_id("inv")
    # The play's module_defaults name another libvirt (test:///default, which has none of these domains):
    # only the plugin's ansible_libvirt_uri gets the snapshots to the right daemon.
    result = run_playbook(play(tmp_path), {"play_hosts_pattern": "maintenance_test", "prechange_run_id": run_id,
                                           "revert_hosts": [running.name]},
                          inventory=str(source), env=env)
    assert result.returncode == 0, result.stdout[-8000:]
    name = "prechange-" + run_id
    conn = {"uri": libvirtd}
    assert phase("libvirt", conn, running.name, name, result.stdout) == "reverted"
    assert phase("libvirt", conn, stopped.name, name, result.stdout) == "kept"
    assert "reverted" in result.stdout


def test_libvirt_product_uuid(tmp_path, libvirtd, libvirt_guest):
    import libvirt  # pylint: disable=import-outside-toplevel
    target, other = libvirt_guest("blank", start=False), libvirt_guest("blank", start=False)
    conn = libvirt.open(libvirtd)
    twin_name = other.name + "-twin"
    try:
        dom = conn.lookupByName(target.name)
        target_uuid = dom.UUIDString()
        other_uuid = conn.lookupByName(other.name).UUIDString()
        # A domain whose UUID is the byte-swapped form of the other guest's (no disk: never started).
        xml = ET.fromstring(conn.lookupByName(other.name).XMLDesc(0))
        xml.find("name").text = twin_name
        xml.find("uuid").text = swapped(other_uuid)
        devices = xml.find("devices")
        for disk in devices.findall("disk"):
            devices.remove(disk)
        conn.defineXML(ET.tostring(xml, encoding="unicode"))
        missing = str(uuid.uuid4())
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(json.dumps({"all": {
            "vars": {"prechange_provider": "libvirt", "prechange_libvirt_uri": libvirtd,
                     "ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "hosts": {
                # Facts as the guest reports them: upper case, as dmidecode prints them.
                "app-by-uuid.example.com": {"ansible_product_uuid": target_uuid.upper()},
                "gone.example.com": {"ansible_product_uuid": missing},
                "twin.example.com": {"ansible_product_uuid": other_uuid},
            }}}))
        run_id = new_run_id("inv")
        result = run_playbook(play(tmp_path), {"play_hosts_pattern": "all", "prechange_run_id": run_id,
                                               "revert_hosts": ["app-by-uuid.example.com"]},
                              inventory=str(inventory), env={"ANSIBLE_COLLECTIONS_PATH": COLLECTIONS})
        name = "prechange-" + run_id
        assert phase("libvirt", {"uri": libvirtd}, target.name, name, result.stdout) == "reverted"
        gone = host_failure(result.stdout, "gone.example.com")
        assert "no VM is named 'gone.example.com', and host gone.example.com reports the SMBIOS UUID %s" % missing \
            in gone and "at %s" % libvirtd in gone
        twin = host_failure(result.stdout, "twin.example.com")
        assert "which 2 VMs match" in twin and other.name in twin and twin_name in twin and other_uuid in twin
        assert name not in api_snapshots("libvirt", {"uri": libvirtd}, other.name)
        assert result.returncode != 0
    finally:
        try:
            conn.lookupByName(twin_name).undefine()
        finally:
            conn.close()


# --- community.vmware.vmware_vm_inventory on vcsim ----------------------------------------------------------

VMWARE_PLUGIN_VMS = ["DC0_H0_VM0", "DC0_H0_VM1"]


def vmware_env(info, paths):
    # The plugin and the collection read the same VMWARE_* variables: one place for the connection.
    return env_for(paths, {"VMWARE_HOST": info["hostname"], "VMWARE_PORT": str(info["port"]),
                           "VMWARE_USER": info["username"], "VMWARE_PASSWORD": info["password"],
                           "VMWARE_VALIDATE_CERTS": "false"})


def vm_uuids(info, names):
    from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
    si = _vsphere(info)
    try:
        return {name: _vsphere_vm(si, name).config.uuid for name in names}
    finally:
        Disconnect(si)


def set_vm_uuid(info, name, value):
    """vSphere lets a VM's BIOS UUID be set (ReconfigVM spec.uuid); vcsim applies it to config.uuid."""
    from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
    from pyVim.task import WaitForTask  # pylint: disable=import-outside-toplevel
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    si = _vsphere(info)
    try:
        WaitForTask(_vsphere_vm(si, name).ReconfigVM_Task(spec=vim.vm.ConfigSpec(uuid=value)), si=si)
    finally:
        Disconnect(si)


def test_vmware_plugin_hosts(tmp_path, vcsim, plugin_collections):
    source = tmp_path / "vcenter.vmware.yml"
    # The README's example, with vcsim's datacenter, plus a filter to this test's VMs.
    example = readme_example("# vcenter.vmware.yml")
    assert "'DC1'" in example
    source.write_text(example.replace("'DC1'", "'DC0'") + "filters:\n  - config.name in %s\n"
                      % json.dumps(VMWARE_PLUGIN_VMS))
    env = vmware_env(vcsim, plugin_collections)
    hostvars, _groups = inventory_list(source, env)
    uuids = vm_uuids(vcsim, VMWARE_PLUGIN_VMS)
    # The plugin's default host names are "<name>_<BIOS UUID>": no VM has such a name.
    hosts = {"%s_%s" % (name, uuids[name]): name for name in VMWARE_PLUGIN_VMS}
    assert sorted(hostvars) == sorted(hosts)
    run_id = new_run_id("inv")
    name = "prechange-" + run_id
    first, second = sorted(hosts)
    conn = {"hostname": vcsim["hostname"], "port": vcsim["port"], "username": vcsim["username"],
            "password": vcsim["password"]}
    try:
        result = run_playbook(play(tmp_path), {"play_hosts_pattern": "all", "prechange_run_id": run_id,
                                               "revert_hosts": [first]}, inventory=str(source), env=env)
        assert result.returncode == 0, result.stdout[-8000:]
        assert phase("vmware", conn, hosts[first], name, result.stdout) == "reverted"
        assert phase("vmware", conn, hosts[second], name, result.stdout) == "kept"
    finally:
        for vm in VMWARE_PLUGIN_VMS:
            vsphere_remove_snapshots(conn, vm, [name])


def test_vmware_product_uuid(tmp_path, vcsim):
    names = ["DC0_H0_VM2", "DC0_H0_VM3", "DC0_C0_RP0_VM0"]
    before = vm_uuids(vcsim, names)
    found, twin_a, twin_b = names
    conn = {"hostname": vcsim["hostname"], "port": vcsim["port"], "username": vcsim["username"],
            "password": vcsim["password"]}
    run_id = new_run_id("inv")
    name = "prechange-" + run_id
    try:
        # twin_b's BIOS UUID is the byte-swapped form of twin_a's: a guest reporting twin_a's is ambiguous.
        set_vm_uuid(vcsim, twin_b, swapped(before[twin_a]))
        missing = str(uuid.uuid4())
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(json.dumps({"all": {
            "vars": {"prechange_provider": "vmware", "prechange_vmware_hostname": vcsim["hostname"],
                     "prechange_vmware_port": vcsim["port"], "prechange_vmware_username": vcsim["username"],
                     "prechange_vmware_password": vcsim["password"], "prechange_vmware_validate_certs": False,
                     "ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "hosts": {
                # A Linux guest of an older hardware version reads its UUID byte-swapped.
                "app-by-uuid.example.com": {"ansible_product_uuid": swapped(before[found]).upper()},
                "gone.example.com": {"ansible_product_uuid": missing},
                "twin.example.com": {"ansible_product_uuid": before[twin_a]},
            }}}))
        result = run_playbook(play(tmp_path), {"play_hosts_pattern": "all", "prechange_run_id": run_id},
                              inventory=str(inventory), env={"ANSIBLE_COLLECTIONS_PATH": COLLECTIONS})
        assert phase("vmware", conn, found, name, result.stdout) == "kept"
        gone = host_failure(result.stdout, "gone.example.com")
        assert "host gone.example.com reports the SMBIOS UUID %s" % missing in gone
        assert "on %s" % vcsim["hostname"] in gone
        twin = host_failure(result.stdout, "twin.example.com")
        assert "which 2 VMs match" in twin and twin_a in twin and twin_b in twin
        for vm in (twin_a, twin_b):
            assert name not in api_snapshots("vmware", conn, vm)
    finally:
        set_vm_uuid(vcsim, twin_b, before[twin_b])
        for vm in names:
            vsphere_remove_snapshots(conn, vm, [name])


# --- community.proxmox.proxmox on fakepve -------------------------------------------------------------------


def proxmox_env(pve, paths):
    # The plugin and the collection read the same PROXMOX_* variables (the plugin wants a URL). The plugin
    # verifies the certificate with requests' CA bundle: fakepve's own CA.
    return env_for(paths, {"PROXMOX_URL": "https://%s:%s" % (pve.host, pve.port), "PROXMOX_HOST": pve.host,
                           "PROXMOX_PORT": str(pve.port), "PROXMOX_USER": pve.user,
                           "PROXMOX_PASSWORD": pve.password, "PROXMOX_CA_PATH": pve.cafile,
                           "REQUESTS_CA_BUNDLE": pve.cafile})


def test_proxmox_plugin_hosts_and_nodes(tmp_path, pve, plugin_collections):
    # A guest that bears a node's name: taking node host pve3 for a VM by its name would snapshot it.
    pve.guest(102).config["name"] = "pve3"
    source = tmp_path / "cluster.proxmox.yml"
    text = (
        "plugin: community.proxmox.proxmox\n"
        "want_facts: true\n"
        # The playbooks' README example: the connection composed from literals (the password comes from
        # PROXMOX_PASSWORD). prechange_provider is optional (proxmox_vmid says it), but the plugin composes
        # it onto the node hosts too: a node must be refused all the same.
        "compose:\n"
        "  prechange_provider: \"'proxmox'\"\n"
        "  prechange_proxmox_api_host: \"'%s'\"\n"
        "  prechange_proxmox_api_port: \"%s\"\n"
        "  prechange_proxmox_api_user: \"'%s'\"\n"
        "  prechange_proxmox_ca_path: \"'%s'\"\n"
        "filters:\n"
        "  - proxmox_vmid in [100, 101, 200]\n" % (pve.host, pve.port, pve.user, pve.cafile))
    source.write_text(text)
    env = proxmox_env(pve, plugin_collections)
    for key in ("PROXMOX_HOST", "PROXMOX_PORT", "PROXMOX_CA_PATH"):
        env[key] = "wrong-if-used"  # the composed variables must win over the environment
    hostvars, groups = inventory_list(source, env)
    assert sorted(groups["proxmox_nodes"]) == ["pve1", "pve2", "pve3"]
    assert sorted(set(sum(groups.values(), []))) == ["ct-dns", "pve1", "pve2", "pve3", "web01", "web02"]
    assert hostvars["web01"]["proxmox_vmid"] == 100
    assert "prechange_provider" in hostvars["pve3"]  # composed onto the node too
    run_id = new_run_id("inv")
    name = "prechange-" + run_id
    # hosts: all, as an operator runs the maintenance playbook: the nodes are in it.
    result = run_playbook(play(tmp_path), {"play_hosts_pattern": "all", "prechange_run_id": run_id,
                                           "revert_hosts": ["web01"]}, inventory=str(source), env=env)
    conn = {"host": pve.host, "port": pve.port, "user": pve.user, "password": pve.password, "cafile": pve.cafile}
    assert phase("proxmox", conn, 100, name, result.stdout) == "reverted"
    assert phase("proxmox", conn, 101, name, result.stdout) == "kept"
    assert phase("proxmox", conn, 200, name, result.stdout) == "kept"
    for node in ("pve1", "pve2", "pve3"):
        message = host_failure(result.stdout, node)
        assert "host %s is a Proxmox VE node (inventory group proxmox_nodes, no proxmox_vmid), not a guest" % node \
            in message and "proxmox_all_qemu" in message
    assert name not in api_snapshots("proxmox", conn, 102)
    # Targeting the documented groups leaves the nodes out; so does exclude_nodes with hosts: all.
    again = run_playbook(play(tmp_path), {"play_hosts_pattern": "proxmox_all_qemu:proxmox_all_lxc",
                                          "prechange_run_id": new_run_id("inv")}, inventory=str(source), env=env)
    assert again.returncode == 0, again.stdout[-8000:]
    source.write_text(text + "exclude_nodes: true\n")
    third = run_playbook(play(tmp_path), {"play_hosts_pattern": "all", "prechange_run_id": new_run_id("inv")},
                         inventory=str(source), env=env)
    assert third.returncode == 0 and "pve1" not in third.stdout, third.stdout[-8000:]


def test_proxmox_product_uuid(tmp_path, pve):
    def smbios(vmid, value):
        pve.guest(vmid).config["smbios1"] = "uuid=%s" % value

    target_uuid, twin_uuid, missing = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    smbios(102, target_uuid)
    smbios(100, twin_uuid)
    smbios(101, swapped(twin_uuid))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {
        "vars": {"prechange_provider": "proxmox", "prechange_proxmox_api_host": pve.host,
                 "prechange_proxmox_api_port": pve.port, "prechange_proxmox_api_user": pve.user,
                 "prechange_proxmox_api_password": pve.password, "prechange_proxmox_ca_path": pve.cafile,
                 "ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "hosts": {
            "db.example.com": {"ansible_product_uuid": target_uuid.upper()},
            "gone.example.com": {"ansible_product_uuid": missing},
            "twin.example.com": {"ansible_product_uuid": twin_uuid},
            # prechange_vm_match: name: the host is the VM of its name, whatever UUID its facts report.
            "web01": {"ansible_product_uuid": target_uuid, "prechange_vm_match": "name"},
        }}}))
    run_id = new_run_id("inv")
    name = "prechange-" + run_id
    result = run_playbook(play(tmp_path), {"play_hosts_pattern": "all", "prechange_run_id": run_id,
                                           "revert_hosts": ["db.example.com"]},
                          inventory=str(inventory), env={"ANSIBLE_COLLECTIONS_PATH": COLLECTIONS})
    conn = {"host": pve.host, "port": pve.port, "user": pve.user, "password": pve.password, "cafile": pve.cafile}
    assert phase("proxmox", conn, 102, name, result.stdout) == "reverted"
    # The host named web01 with prechange_vm_match: name is VM web01 (100), whatever its UUID says.
    assert phase("proxmox", conn, 100, name, result.stdout) == "kept"
    gone = host_failure(result.stdout, "gone.example.com")
    assert "host gone.example.com reports the SMBIOS UUID %s" % missing in gone
    twin = host_failure(result.stdout, "twin.example.com")
    assert "which 2 VMs match" in twin and "'web01' (id 100" in twin and "'web02' (id 101" in twin
    assert name not in api_snapshots("proxmox", conn, 101)


def test_proxmox_readme_example(tmp_path, pve, plugin_collections):
    """The README's proxmox source (API token, exclude_nodes, the connection composed), with hosts: all."""
    example = readme_example("# cluster.proxmox.yml")
    for printed, real in (("pve1.example.com:8006", "%s:%s" % (pve.host, pve.port)),
                          ("'pve1.example.com'", "'%s'" % pve.host), ("ansible@pve", pve.token_user),
                          ("token_id: snapshots", "token_id: %s" % pve.token_name),
                          ("'snapshots'", "'%s'" % pve.token_name)):
        assert printed in example
        example = example.replace(printed, real)
    source = tmp_path / "cluster.proxmox.yml"
    source.write_text(example + "filters:\n  - proxmox_vmid in [100, 101]\n")
    env = env_for(plugin_collections, {"PROXMOX_TOKEN_SECRET": pve.token_secret, "PROXMOX_PORT": str(pve.port),
                                       "PROXMOX_CA_PATH": pve.cafile, "REQUESTS_CA_BUNDLE": pve.cafile})
    run_id = new_run_id("inv")
    name = "prechange-" + run_id
    result = run_playbook(play(tmp_path), {"play_hosts_pattern": "all", "prechange_run_id": run_id,
                                           "revert_hosts": ["web02"]}, inventory=str(source), env=env)
    assert result.returncode == 0, result.stdout[-8000:]
    conn = {"host": pve.host, "port": pve.port, "user": pve.user, "password": pve.password, "cafile": pve.cafile}
    assert phase("proxmox", conn, 100, name, result.stdout) == "kept"
    assert phase("proxmox", conn, 101, name, result.stdout) == "reverted"
