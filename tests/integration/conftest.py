# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Playbook-level integration tests: pytest starts the backends, ansible-playbook runs the targets.

A target is ``tests/integration/targets/<name>/`` in the usual ansible-test layout
(``aliases``, ``tasks/main.yml``); its tasks carry their own asserts. ``run_target`` runs it
as a role on localhost in a fresh ansible-playbook process, so every task is a new module
process against a backend that keeps state (real libvirtd, vcsim, fakepve).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TARGETS = os.path.join(HERE, "targets")
COLLECTIONS = os.path.join(REPO, "build", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "prechange", "snapshots")


def _ensure_collection_link():
    if not os.path.exists(LINK):
        os.makedirs(os.path.dirname(LINK), exist_ok=True)
        os.symlink(REPO, LINK)


def ansible_env(extra=None):
    """Environment for ansible-playbook: this checkout as the collection, quiet, deterministic."""
    _ensure_collection_link()
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
        "ANSIBLE_ROLES_PATH": TARGETS + os.pathsep + os.path.join(REPO, "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


def run_playbook(playbook, extra_vars=None, inventory=None, check=False, diff=False, env=None, timeout=1800,
                 verbosity=0):
    """Run ansible-playbook; return the CompletedProcess (stdout+stderr in .stdout)."""
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), playbook,
           "-e", "ansible_python_interpreter=%s" % sys.executable]
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    if inventory:
        cmd += ["-i", inventory]
    else:
        cmd += ["-i", "localhost,", "-c", "local"]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    return subprocess.run(cmd, env=ansible_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout, check=False)


def run_target(name, extra_vars=None, env=None):
    """Run targets/<name> as a role on localhost; fail the test with the output when it fails."""
    playbook = os.path.join(HERE, "run_target.yml")
    variables = {"target": name}
    variables.update(extra_vars or {})
    result = run_playbook(playbook, variables, env=env)
    if result.returncode != 0:
        pytest.fail("target %s failed (rc=%s):\n%s" % (name, result.returncode, result.stdout[-20000:]),
                    pytrace=False)
    return result


@pytest.fixture(scope="session")
def playbook_runner():
    return run_playbook


@pytest.fixture(scope="session")
def target_runner():
    return run_target


# --------------------------------------------------------------------------------------------------
# Workflow-level helpers (test_workflow_*.py): a user's own small inventory and change/check tasks,
# the collection's playbooks run as a user runs them, the modules' own messages, and every VM state
# read back from the hypervisor's API directly (libvirt-python, pyvmomi, proxmoxer), never through
# the collection. This file is also a small CLI for the users' change tasks:
#     python conftest.py snapshots|power|stop PROVIDER CONN_JSON VM [OUT_FILE]

import re  # noqa: E402  pylint: disable=wrong-import-position
import uuid  # noqa: E402  pylint: disable=wrong-import-position

# The simulators' fixtures, for the workflow tests (the older test modules import their own).
sys.path.insert(0, os.path.join(REPO, "tests", "backends", "fakepve"))
sys.path.insert(0, os.path.join(REPO, "tests", "backends", "vcsim"))
from pve import pve, pve_cluster  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
from vcsim import vcsim  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
import shlex  # noqa: E402  pylint: disable=wrong-import-position

PROVIDERS = ("libvirt", "vmware", "proxmox")

# Claims the roles made up in place of a module's error (issue 10, item 4): never true in these tests.
MISLEADING = (
    re.compile(r"already has a snapshot named"),
    re.compile(r"that this run \(.*\) did not make"),
    re.compile(r"\b0 snapshot\(s\)"),
    re.compile(r"has 0 snapshots?\b"),
)

_REASON_RE = re.compile(r"^Failed (?:to \w+ snapshots?|on \d+ of \d+ VMs).*? on (?:libvirt|vmware|proxmox): (.*)$", re.S)


def reason_of(msg):
    """The reason part of a module message (after "... on <provider>: "), the same in single and batch mode."""
    match = _REASON_RE.match(msg or "")
    assert match, "not a module error message in the collection's grammar: %r" % msg
    return match.group(1).strip()


def in_output(text, output):
    """``text`` appears in ansible-playbook's output, printed raw or JSON-escaped."""
    return text in output or json.dumps(text)[1:-1] in output


def misleading_claims(output):
    return [pattern.pattern for pattern in MISLEADING if pattern.search(output)]


def module_result(module, args, tmp_path, env=None, check=False):
    """Call prechange.snapshots.<module> directly on localhost with ``args``; return its result dict."""
    out = tmp_path / ("module-%s-%d.json" % (module, len(list(tmp_path.glob("module-*.json")))))
    play = tmp_path / "module-call.yml"
    play.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - prechange.snapshots.%s: %s\n"
        "      register: __result\n"
        "      ignore_errors: true\n"
        "    - ansible.builtin.copy: {content: '{{ __result | to_json }}', dest: %s}\n"
        "      check_mode: false\n" % (module, json.dumps(args), json.dumps(str(out))))
    proc = run_playbook(str(play), env=env, check=check)
    assert out.exists(), "the direct module call did not run:\n%s" % proc.stdout[-5000:]
    return json.loads(out.read_text())


def module_error(module, args, tmp_path, env=None):
    """The module's own failure message for ``args`` (the call must fail), and its reason part."""
    result = module_result(module, args, tmp_path, env=env)
    assert result.get("failed"), "the direct %s call did not fail, so there is no message to expect: %r" % (
        module, result)
    return result["msg"], reason_of(result["msg"])


class Workspace(object):
    """A user's own files: inventory, change tasks (write a marker; optionally probe or stop the VM) and
    check tasks (pass or fail)."""

    def __init__(self, tmp_path, provider, conn, hosts, host_vars=None, group_vars=None, check_passes=True,
                 change_probe=False, change_stops_vm=False):
        self.dir = tmp_path
        self.provider = provider
        self.conn = conn
        self.hosts = dict(hosts)  # inventory hostname -> VM
        self.state_dir = tmp_path / "state"
        self.report_dir = tmp_path / "reports"
        self.inventory = tmp_path / "inventory.yml"
        self.change = tmp_path / "change.yml"
        self.check = tmp_path / "check.yml"
        lines = ["- name: My change | write the marker",
                 "  ansible.builtin.copy: {dest: '%s/changed-{{ inventory_hostname }}', content: changed}" % tmp_path]
        probe = "%s %s {op} %s %s '{{{{ prechange_vm }}}}'" % (
            shlex.quote(sys.executable), shlex.quote(os.path.abspath(__file__)), provider,
            shlex.quote(json.dumps(conn)).replace("{", "{{").replace("}", "}}"))
        if change_probe:
            lines += ["- name: My change | record the VM's snapshots, read from the API",
                      "  ansible.builtin.command: >-",
                      "    %s '%s/during-{{ inventory_hostname }}.json'" % (probe.format(op="snapshots"), tmp_path),
                      "  changed_when: false"]
        if change_stops_vm:
            lines += ["- name: My change | break the VM (it goes down)",
                      "  ansible.builtin.command: >-",
                      "    %s" % probe.format(op="stop")]
        self.change.write_text("\n".join(lines) + "\n")
        if check_passes:
            self.check.write_text("- name: My check | passes\n  ansible.builtin.debug: {msg: all good}\n")
        else:
            self.check.write_text(
                "- name: My check | fails\n"
                "  ansible.builtin.set_fact:\n"
                "    verify_user_failures: \"{{ verify_user_failures + ['my check failed on purpose'] }}\"\n")
        variables = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "prechange_provider": provider,
            "prechange_state_dir": str(self.state_dir),
            "patch_tasks_file": str(self.change),
            "verify_tasks_file": str(self.check),
            "verify_no_failed_units": False,
        }
        self.base_vars = variables
        self.host_vars = host_vars or {}
        self.write_inventory(group_vars)

    def write_inventory(self, group_vars=None):
        """(Re)write the inventory: the workspace's own variables plus ``group_vars`` (None values dropped)."""
        variables = dict(self.base_vars)
        variables.update(group_vars or {})
        variables = {k: v for k, v in variables.items() if v is not None}
        inventory = {"all": {"hosts": {}, "vars": variables}}
        for host, vm in self.hosts.items():
            entry = {"prechange_vm": vm}
            entry.update(self.host_vars.get(host, {}))
            inventory["all"]["hosts"][host] = entry
        self.inventory.write_text(json.dumps(inventory, indent=2))

    def run(self, playbook, extra_vars=None, env=None, check=False):
        """ansible-playbook <playbook> -i <inventory>: a collection playbook (prechange.snapshots.X) or a file."""
        environment = {"PRECHANGE_REPORT_DIR": str(self.report_dir)}
        environment.update(env or {})
        return run_playbook(playbook, extra_vars, inventory=str(self.inventory), env=environment, check=check)

    def changed_hosts(self):
        return sorted(h for h in self.hosts if (self.dir / ("changed-" + h)).exists())

    def during(self, host):
        path = self.dir / ("during-%s.json" % host)
        return json.loads(path.read_text()) if path.exists() else None

    def snapshots(self):
        return {h: api_snapshots(self.provider, self.conn, vm) for h, vm in self.hosts.items()}

    def power(self):
        return {h: api_power(self.provider, self.conn, vm) for h, vm in self.hosts.items()}


# --- read back from the hypervisor's own API ----------------------------------------------------

def _pve_api(conn):
    from proxmoxer import ProxmoxAPI  # pylint: disable=import-outside-toplevel
    return ProxmoxAPI(conn["host"], port=int(conn["port"]), user=conn["user"], password=conn["password"],
                      verify_ssl=conn["cafile"], timeout=30)


def _pve_guest(api, vm):
    for res in api.cluster.resources.get(type="vm"):
        if str(res["vmid"]) == str(vm) or res.get("name") == str(vm):
            return getattr(api.nodes(res["node"]), res["type"])(res["vmid"])
    raise LookupError("no guest %s on the Proxmox API" % vm)


def _vsphere(conn):
    from pyVim.connect import SmartConnect  # pylint: disable=import-outside-toplevel
    return SmartConnect(host=conn["hostname"], port=int(conn["port"]), user=conn["username"],
                        pwd=conn["password"], disableSslCertValidation=True)


def _vsphere_vm(si, name):
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        found = [vm for vm in view.view if vm.name == name]
    finally:
        view.Destroy()
    if len(found) != 1:
        raise LookupError("%d VMs named %s on vSphere" % (len(found), name))
    return found[0]


def _vsphere_tree(vm):
    pending = list(vm.snapshot.rootSnapshotList) if vm.snapshot else []
    while pending:
        node = pending.pop(0)
        yield node
        pending.extend(node.childSnapshotList or [])


def api_snapshots(provider, conn, vm):
    """{snapshot name: {id, description}} of one VM, read from the hypervisor's API."""
    if provider == "proxmox":
        guest = _pve_guest(_pve_api(conn), vm)
        return {s["name"]: {"id": s["name"], "description": s.get("description", "")}
                for s in guest.snapshot.get() if s["name"] != "current"}
    if provider == "vmware":
        from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
        si = _vsphere(conn)
        try:
            return {n.name: {"id": n.snapshot._moId, "description": n.description}  # pylint: disable=protected-access
                    for n in _vsphere_tree(_vsphere_vm(si, vm))}
        finally:
            Disconnect(si)
    import libvirt  # pylint: disable=import-outside-toplevel
    lv = libvirt.open(conn["uri"])
    try:
        dom = lv.lookupByName(vm)
        import xml.etree.ElementTree as ET  # pylint: disable=import-outside-toplevel
        return {s.getName(): {"id": s.getName(),
                              "description": ET.fromstring(s.getXMLDesc()).findtext("description") or ""}
                for s in dom.listAllSnapshots()}
    finally:
        lv.close()


def api_power(provider, conn, vm):
    """running, stopped, paused or suspended, read from the hypervisor's API."""
    if provider == "proxmox":
        status = _pve_guest(_pve_api(conn), vm).status.current.get()
        if status.get("status") == "running" and status.get("qmpstatus") in ("paused", "prelaunch"):
            return "paused"
        return status["status"]
    if provider == "vmware":
        from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
        si = _vsphere(conn)
        try:
            state = str(_vsphere_vm(si, vm).runtime.powerState)
        finally:
            Disconnect(si)
        return {"poweredOn": "running", "poweredOff": "stopped", "suspended": "suspended"}[state]
    import libvirt  # pylint: disable=import-outside-toplevel
    lv = libvirt.open(conn["uri"])
    try:
        state = lv.lookupByName(vm).state()[0]
    finally:
        lv.close()
    return {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
            libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended"}.get(state, "stopped")


def api_set_power(provider, conn, vm, state):
    """Stop (hard) or start a VM through the hypervisor's API, and wait until it is so."""
    if provider == "proxmox":
        guest = _pve_guest(_pve_api(conn), vm)
        upid = (guest.status.stop if state == "stopped" else guest.status.start).post()
        node = upid.split(":")[1]
        api = _pve_api(conn)
        for _attempt in range(600):
            task = api.nodes(node).tasks(upid).status.get()
            if task["status"] == "stopped":
                break
            import time  # pylint: disable=import-outside-toplevel
            time.sleep(0.1)
    elif provider == "vmware":
        from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
        from pyVim.task import WaitForTask  # pylint: disable=import-outside-toplevel
        si = _vsphere(conn)
        try:
            machine = _vsphere_vm(si, vm)
            WaitForTask(machine.PowerOffVM_Task() if state == "stopped" else machine.PowerOnVM_Task(), si=si)
        finally:
            Disconnect(si)
    else:
        import libvirt  # pylint: disable=import-outside-toplevel
        lv = libvirt.open(conn["uri"])
        try:
            dom = lv.lookupByName(vm)
            if state == "stopped":
                dom.destroy()
            else:
                dom.create()
        finally:
            lv.close()
    assert api_power(provider, conn, vm) == state


def vsphere_remove_snapshots(conn, vm, names):
    """Clean-up: remove the named snapshots of a vcsim VM (the simulator lives for the whole session)."""
    from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
    from pyVim.task import WaitForTask  # pylint: disable=import-outside-toplevel
    si = _vsphere(conn)
    try:
        machine = _vsphere_vm(si, vm)
        for node in reversed(list(_vsphere_tree(machine))):
            if node.name in names:
                WaitForTask(node.snapshot.RemoveSnapshot_Task(removeChildren=False), si=si)
    finally:
        Disconnect(si)


class Backend(object):
    """One provider's test backend as a user's inventory sees it, plus what the API read-back needs."""

    def __init__(self, provider, conn, vms, inventory_vars, module_args, secrets=(), extra=None):
        self.extra = extra or {}
        self.provider = provider
        self.conn = conn
        self.vms = list(vms)
        self.inventory_vars = inventory_vars
        self.module_args = module_args
        self.secrets = [s for s in secrets if s]

    def hosts(self, count=2):
        return {"h%d" % (n + 1): vm for n, vm in enumerate(self.vms[:count])}


def proxmox_backend(cluster, vms=(100, 101)):
    conn = {"host": cluster.host, "port": cluster.port, "user": cluster.user, "password": cluster.password,
            "cafile": cluster.cafile}
    inventory = {"prechange_proxmox_api_host": cluster.host, "prechange_proxmox_api_port": cluster.port,
                 "prechange_proxmox_api_user": cluster.user, "prechange_proxmox_api_password": cluster.password,
                 "prechange_proxmox_ca_path": cluster.cafile}
    args = {"api_host": cluster.host, "api_port": cluster.port, "api_user": cluster.user,
            "api_password": cluster.password, "ca_path": cluster.cafile}
    return Backend("proxmox", conn, vms, inventory, args, (cluster.password, cluster.token_secret),
                   extra={"token_user": cluster.token_user, "token_id": cluster.token_name,
                          "token_secret": cluster.token_secret})


def vmware_backend(info, vms):
    conn = {"hostname": info["hostname"], "port": info["port"], "username": info["username"],
            "password": info["password"]}
    inventory = {"prechange_vmware_hostname": info["hostname"], "prechange_vmware_port": info["port"],
                 "prechange_vmware_username": info["username"], "prechange_vmware_password": info["password"],
                 "prechange_vmware_validate_certs": False}
    args = {"hostname": info["hostname"], "port": info["port"], "username": info["username"],
            "password": info["password"], "validate_certs": False}
    return Backend("vmware", conn, vms, inventory, args, (info["password"],))


def libvirt_backend(uri, vms):
    return Backend("libvirt", {"uri": uri}, vms, {"prechange_libvirt_uri": uri}, {"uri": uri})


def workflow_backend(provider, request, vmware_vms):
    """Two VMs of one provider for a workflow test: fakepve's 100 and 101, the named vcsim VMs, or two
    fresh libvirt guests (removed at teardown)."""
    if provider == "proxmox":
        return proxmox_backend(request.getfixturevalue("pve"))
    if provider == "vmware":
        return vmware_backend(request.getfixturevalue("vcsim"), vmware_vms)
    guest = request.getfixturevalue("errs_guest")
    return libvirt_backend(request.getfixturevalue("libvirtd"), [guest("blank"), guest("blank")])


def new_run_id(prefix="errs"):
    """A run id of our own (lower case, so the snapshot name is valid on Proxmox too)."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


class Findings(object):
    """Collect every failed expectation of a run, then fail once with all of them and the output's tail."""

    def __init__(self, what):
        self.what = what
        self.problems = []

    def expect(self, condition, problem):
        if not condition:
            self.problems.append(problem)
        return condition

    def done(self, output=""):
        if self.problems:
            pytest.fail("%s:\n  - %s\n\n--- output (tail) ---\n%s" % (
                self.what, "\n  - ".join(self.problems), output[-6000:]), pytrace=False)


def merged(base, overrides):
    """``base`` updated with ``overrides``; an override of None removes the key."""
    out = dict(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def free_port():
    """A loopback TCP port nobody listens on (bound, then closed again)."""
    import socket  # pylint: disable=import-outside-toplevel
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def errs_guest(libvirtd, libvirt_guests):
    """Factory of real libvirtd guests named pcstest-errs-<kind>-<random>, removed at teardown."""
    made = []

    def make(kind="blank", start=True):
        guest = libvirt_guests.create(kind, "pcstest-errs-%s-%s" % (kind, uuid.uuid4().hex[:8]), start=start,
                                      uri=libvirtd)
        made.append(guest.name)
        return guest.name

    yield make
    for name in reversed(made):
        libvirt_guests.destroy(name, uri=libvirtd)


def _cli(argv):
    op, provider, conn, vm = argv[:4]
    conn = json.loads(conn)
    if op == "snapshots":
        result = {"snapshots": api_snapshots(provider, conn, vm), "power": api_power(provider, conn, vm)}
    elif op == "power":
        result = {"power": api_power(provider, conn, vm)}
    elif op == "stop":
        api_set_power(provider, conn, vm, "stopped")
        result = {"power": "stopped"}
    else:
        raise SystemExit("unknown operation %s" % op)
    text = json.dumps(result)
    if len(argv) > 4:
        with open(argv[4], "w") as out:
            out.write(text)
    print(text)


if __name__ == "__main__":
    _cli(sys.argv[1:])
