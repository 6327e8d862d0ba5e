# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The clone modules take a host's connection variables as the roles do (issue 13's leftover).

A task that names no connection option connects with the host's ``prechange_<provider>_*`` variables; the play's
``module_defaults`` still apply where the host has none; an explicit argument wins over both. Each clone is read
back from the platform (proxmoxer on fakepve, libvirt-python on the real libvirtd), not from the collection.
"""

from __future__ import annotations

import json
import sys
import uuid

from conftest import _pve_api, module_result, proxmox_backend, run_playbook  # pylint: disable=import-error


def _call(tmp_path, host_vars, module, args, module_defaults=None, tag="call"):
    """Run ``module`` with ``args`` for inventory host web (``host_vars``), delegated to localhost; its result."""
    work = tmp_path / tag
    work.mkdir()
    out = work / "result.json"
    inventory = {"all": {"hosts": {"web": dict({"ansible_connection": "local",
                                                "ansible_python_interpreter": sys.executable}, **host_vars)}}}
    (work / "inventory.json").write_text(json.dumps(inventory))
    play = [{"hosts": "web", "gather_facts": False, "tasks": [
        {"name": "The clone call", "prechange.snapshots.%s" % module: args, "delegate_to": "localhost",
         "register": "__result", "ignore_errors": True},
        {"ansible.builtin.copy": {"content": "{{ __result | to_json }}", "dest": str(out)},
         "delegate_to": "localhost"}]}]
    if module_defaults:
        play[0]["module_defaults"] = module_defaults
    (work / "play.yml").write_text(json.dumps(play))
    proc = run_playbook(str(work / "play.yml"), inventory=str(work / "inventory.json"))
    assert out.exists(), proc.stdout[-4000:]
    return json.loads(out.read_text())


def _pve_names(backend):
    return {r.get("name") for r in _pve_api(backend.conn).cluster.resources.get(type="vm")}


def test_proxmox_clone_with_host_variables_module_defaults_and_explicit_arguments(pve, tmp_path):
    backend = proxmox_backend(pve)
    snap = "hostvars%s" % uuid.uuid4().hex[:6]
    made = module_result("proxmox_snapshot", dict(backend.module_args, vm=100, name=snap, memory=False, expires="1d"),
                         tmp_path)
    assert not made.get("failed"), made
    names = ["pcstest-hv-%s-%s" % (tag, uuid.uuid4().hex[:6]) for tag in ("vars", "defaults", "explicit")]
    wrong = dict(backend.inventory_vars, prechange_proxmox_api_password="not-the-password")
    try:
        # 1. Only the host's variables: no connection argument in the task at all.
        only_vars = _call(tmp_path, backend.inventory_vars, "proxmox_clone",
                          {"vm": 100, "snapshot": snap, "name": names[0], "expires": "1d"}, tag="vars")
        assert only_vars.get("changed") and not only_vars.get("failed"), only_vars
        # 2. Only the play's module_defaults (the host has no connection variables).
        defaults = _call(tmp_path, {}, "proxmox_clone", {"vm": 100, "snapshot": snap, "name": names[1], "expires": "1d"},
                         module_defaults={"group/prechange.snapshots.proxmox": backend.module_args}, tag="defaults")
        assert defaults.get("changed") and not defaults.get("failed"), defaults
        # 3. A wrong password in the host's variables, the right one given explicitly: the argument wins.
        explicit = _call(tmp_path, wrong, "proxmox_clone",
                         {"vm": 100, "snapshot": snap, "name": names[2], "expires": "1d",
                          "api_password": backend.module_args["api_password"]}, tag="explicit")
        assert explicit.get("changed") and not explicit.get("failed"), explicit
        # ... and the wrong one alone is used, and refused (so the host's variable was read).
        refused = _call(tmp_path, wrong, "proxmox_clone", {"name": names[2], "state": "absent"}, tag="refused")
        assert refused.get("failed") and refused["msg"].startswith(
            "Failed to remove clone VM '%s' on proxmox: " % names[2]), refused
        assert set(names) <= _pve_names(backend)
        # 4. Removal with the host's variables only.
        for n, name in enumerate(names):
            gone = _call(tmp_path, backend.inventory_vars, "proxmox_clone", {"name": name, "state": "absent"},
                         tag="gone%d" % n)
            assert gone.get("changed"), gone
        assert not set(names) & _pve_names(backend)
    finally:
        for name in names:
            module_result("proxmox_clone", dict(backend.module_args, name=name, state="absent"), tmp_path)


def _libvirt_names(uri):
    import libvirt  # pylint: disable=import-outside-toplevel
    conn = libvirt.open(uri)
    try:
        return {d.name() for d in conn.listAllDomains(0)}
    finally:
        conn.close()


def test_libvirt_clone_host_variable_wins_over_module_defaults(libvirtd, libvirt_guest, tmp_path):
    """The host's prechange_libvirt_uri over the play's module_defaults (as the roles' snapshot call has it), an
    explicit uri over both; test:///default is libvirt's built-in test driver, which has no such VM."""
    guest = libvirt_guest("blank", start=False)
    snap = "hostvars"
    made = module_result("libvirt_snapshot", {"uri": libvirtd, "vm": guest.name, "name": snap}, tmp_path)
    assert not made.get("failed"), made
    elsewhere = {"group/prechange.snapshots.libvirt": {"uri": "test:///default"}}
    name = guest.name + "-hv"
    try:
        by_host = _call(tmp_path, {"prechange_libvirt_uri": libvirtd}, "libvirt_clone",
                        {"vm": guest.name, "snapshot": snap, "name": name, "expires": "1d"},
                        module_defaults=elsewhere, tag="host")
        assert by_host.get("changed") and not by_host.get("failed"), by_host
        assert name in _libvirt_names(libvirtd)
        # An explicit uri wins over the host's variable (here: the test driver, which has no such clone).
        explicit = _call(tmp_path, {"prechange_libvirt_uri": libvirtd}, "libvirt_clone",
                         {"name": name, "state": "absent", "uri": "test:///default"}, tag="explicit")
        assert explicit.get("changed") is False and not explicit.get("failed"), explicit
        assert name in _libvirt_names(libvirtd)
        # module_defaults alone still apply.
        gone = _call(tmp_path, {}, "libvirt_clone", {"name": name, "state": "absent"},
                     module_defaults={"group/prechange.snapshots.libvirt": {"uri": libvirtd}}, tag="defaults")
        assert gone.get("changed") and not gone.get("failed"), gone
        assert name not in _libvirt_names(libvirtd)
    finally:
        module_result("libvirt_clone", {"uri": libvirtd, "name": name, "state": "absent"}, tmp_path)


def test_proxmox_snapshot_modules_take_the_host_variables_too(pve, tmp_path):
    """The snapshot and info modules connect as the clone modules do: host variables, explicit arguments winning."""
    backend = proxmox_backend(pve)
    snap = "hostvars%s" % uuid.uuid4().hex[:6]
    wrong = dict(backend.inventory_vars, prechange_proxmox_api_password="not-the-password")
    made = _call(tmp_path, backend.inventory_vars, "proxmox_snapshot",
                 {"vm": 100, "name": snap, "memory": False, "expires": "1d"}, tag="snap")
    assert made.get("changed") and not made.get("failed"), made
    listed = _call(tmp_path, backend.inventory_vars, "proxmox_snapshot_info", {"vm": 100}, tag="info")
    assert snap in [s["name"] for s in listed["snapshots"]], listed
    refused = _call(tmp_path, wrong, "proxmox_snapshot_info", {"vm": 100}, tag="wrong")
    assert refused.get("failed") and "authentication to 127.0.0.1 failed" in refused["msg"], refused
    gone = _call(tmp_path, wrong, "proxmox_snapshot", {"vm": 100, "name": snap, "state": "absent",
                                                       "api_password": backend.module_args["api_password"]}, tag="gone")
    assert gone.get("changed"), gone
    # Read back through proxmoxer: the snapshot is gone.
    api = _pve_api(backend.conn)
    node = next(r["node"] for r in api.cluster.resources.get(type="vm") if r.get("vmid") == 100)
    assert snap not in [s["name"] for s in api.nodes(node).qemu(100).snapshot.get()]
