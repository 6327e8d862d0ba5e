# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""maintenance_rehearse (issue 13) through the real maintenance playbook on a real libvirtd guest.

The VM is a real QEMU guest (snapshot and clone are real); the host Ansible manages is the controller
itself (ansible_connection: local), and so is its rehearsal clone, reached through
maintenance_rehearse_connection. The clone's connection uses a Python wrapper that sets
PRECHANGE_ON=clone, so the change (a shell task) knows where it runs and appends it to changes.log;
with the file fail-on-clone present it fails on the clone only. What the real host saw is read from
changes.log, the clone's fate and the snapshot from libvirt (virsh), not from the collection.
"""

from __future__ import annotations

import glob
import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import (  # pylint: disable=import-error
    REPO,
    _pve_api,
    _vsphere,
    ansible_env,
    api_snapshots,
    proxmox_backend,
    vmware_backend,
)

CHANGE = """---
- name: The change (knows whether it runs on the clone)
  ansible.builtin.shell: |
    where="${PRECHANGE_ON:-real}"
    echo "$where" >> %(work)s/changes.log
    if [ "$where" = clone ] && [ -e %(work)s/fail-on-clone ]; then echo "broken on the clone" >&2; exit 3; fi
  changed_when: true
"""


def _virsh(uri, *argv):
    return subprocess.run(["virsh", "-q", "-c", uri] + list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False).stdout


def _clone_python(work):
    """The clone's Python: the controller's with PRECHANGE_ON=clone, so a task knows it runs on the clone."""
    wrapper = work / "clone-python"
    wrapper.write_text("#!/bin/sh\nPRECHANGE_ON=clone exec %s \"$@\"\n" % sys.executable)
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def _write_inventory(work, vm, provider_vars):
    """inventory.json: the one host web, on the controller, for ``vm`` with its provider's variables."""
    host = dict({"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "prechange_vm": vm},
                **provider_vars)
    (work / "inventory.json").write_text(json.dumps({"all": {"hosts": {"web": host}}}))


def _run(tmp_path, uri, vm, fail_on_clone, provider_vars=None):
    work = tmp_path
    (work / "changes.log").write_text("")
    if fail_on_clone:
        (work / "fail-on-clone").write_text("")
    (work / "change.yml").write_text(CHANGE % {"work": work})
    wrapper = _clone_python(work)
    _write_inventory(work, vm, provider_vars or {"prechange_provider": "libvirt", "prechange_libvirt_uri": uri})
    extra = {"maintenance_rehearse": True, "guard_change_tasks": str(work / "change.yml"),
             "maintenance_rehearse_connection": {"ansible_connection": "local",
                                                 "ansible_python_interpreter": str(wrapper)},
             "maintenance_report_dir": str(work / "reports"), "verify_no_failed_units": False}
    p = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                        os.path.join(REPO, "playbooks", "maintenance.yml"), "-i", str(work / "inventory.json"),
                        "-e", json.dumps(extra)], env=ansible_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=1200, check=False)
    reports = glob.glob(str(work / "reports" / "maintenance-*.json"))
    assert len(reports) == 1, p.stdout[-4000:]
    with open(reports[0]) as fh:
        report = json.load(fh)
    with open(reports[0][:-5] + ".md") as fh:
        md = fh.read()
    return p, report["hosts"][0], md, (work / "changes.log").read_text().split()


def test_a_failed_rehearsal_never_reaches_the_real_host(tmp_path, libvirtd, libvirt_guest):
    vm = libvirt_guest("blank", start=True).name
    p, host, md, changes = _run(tmp_path, libvirtd, vm, fail_on_clone=True)
    assert p.returncode == 2, p.stdout[-4000:]
    assert changes == ["clone"], p.stdout[-4000:]  # the change ran on the clone, never on the real host
    assert host["outcome"] == "rehearsal_failed"
    assert host["rehearsal"]["passed"] is False and host["rehearsal"]["reason"] == "the change failed on the clone"
    assert host["rehearsal"]["change_error"]["stderr"] == "broken on the clone"
    assert host["action"] == "deleted" and host["change"]["packages"] == []
    assert "the rehearsal failed on the clone, so the change never reached this VM" in host["reason"]
    clone = host["rehearsal"]["clone"]["name"]
    assert "| not changed (the change never reached it) |" in md and clone in md
    # Read back from libvirt: the clone is gone, no snapshot is left, the VM still runs.
    assert clone not in _virsh(libvirtd, "list", "--all", "--name").split()
    assert _virsh(libvirtd, "snapshot-list", vm, "--name").split() == []
    assert _virsh(libvirtd, "domstate", vm).strip() == "running"
    print("\n" + md)


def test_a_passed_rehearsal_lets_the_change_reach_the_real_host(tmp_path, libvirtd, libvirt_guest):
    vm = libvirt_guest("blank", start=True).name
    p, host, md, changes = _run(tmp_path, libvirtd, vm, fail_on_clone=False)
    assert p.returncode == 0, p.stdout[-4000:]
    assert changes == ["clone", "real"], p.stdout[-4000:]
    assert host["outcome"] == "ok" and host["rehearsal"]["passed"] is True
    assert host["rehearsal"]["clone"]["name"] not in _virsh(libvirtd, "list", "--all", "--name").split()
    assert "| passed | ok, checks passed |" in md


def _vm_names(backend):
    """Every VM name on the platform, read from its own API."""
    if backend.provider == "proxmox":
        return [r.get("name") for r in _pve_api(backend.conn).cluster.resources.get(type="vm")]
    from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    si = _vsphere(backend.conn)
    try:
        view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
        return [vm.name for vm in view.view]
    finally:
        Disconnect(si)


@pytest.mark.parametrize("provider", ["proxmox", "vmware"])
def test_a_failed_rehearsal_never_reaches_the_real_host_on_proxmox_and_vsphere(tmp_path, request, provider):
    if provider == "proxmox":
        backend, vm = proxmox_backend(request.getfixturevalue("pve")), "web01"
    else:
        backend, vm = vmware_backend(request.getfixturevalue("vcsim"), ["DC0_H0_VM1"]), "DC0_H0_VM1"
    before, snapshots_before = set(_vm_names(backend)), api_snapshots(provider, backend.conn, vm)
    p, host, md, changes = _run(tmp_path, None, vm, fail_on_clone=True,
                                provider_vars=dict(backend.inventory_vars, prechange_provider=provider))
    assert p.returncode == 2, p.stdout[-4000:]
    assert changes == ["clone"], p.stdout[-4000:]  # the change ran on the clone only
    assert host["outcome"] == "rehearsal_failed", p.stdout[-4000:]
    clone = host["rehearsal"]["clone"]["name"]
    assert clone and clone in md
    # Read back from the platform: the clone is gone, no VM was added, the real VM has only the snapshots it had.
    after = _vm_names(backend)
    assert clone not in after and set(after) == before
    assert api_snapshots(provider, backend.conn, vm) == snapshots_before


GUARD_PLAY = """
- name: My own change, guarded and rehearsed
  hosts: web
  gather_facts: false
  tasks:
    - name: Guard the change
      block:
        - name: The guard role
          ansible.builtin.include_role:
            name: prechange.snapshots.guard
      rescue:
        - name: Keep what the guard role said
          ansible.builtin.copy:
            content: "{{ {'rehearsal': guard_rehearsal | default(none), 'failed': guard_rehearsal_failed | default(none),
                          'msg': ansible_failed_result.msg | default(''), 'result': revert_or_prune_result | default('')}
                         | to_json }}"
            dest: %(work)s/guard.json
          delegate_to: localhost
"""

# The change edits the VM's own definition through libvirt (its title), as a user's API-driven change does: on
# prechange_vm, from the controller. During the rehearsal prechange_vm is the clone (and prechange_rehearsal is
# defined), so the real VM must keep its title when the rehearsal fails.
GUARD_CHANGE = """---
- name: The change (retitles its VM through libvirt, from the controller)
  ansible.builtin.command:
    argv: [virsh, -q, -c, "%(uri)s", desc, "{{ prechange_vm }}", --config, --title, --new-desc, changed-by-the-change]
  delegate_to: localhost
  changed_when: true

- name: Note where it ran
  ansible.builtin.shell: |
    echo "{{ 'clone' if prechange_rehearsal is defined and prechange_vm == prechange_rehearsal.clone else 'real' }}" \
      >> %(work)s/changes.log
  delegate_to: localhost
  changed_when: false
"""

GUARD_CHECKS = """---
- name: The service answers (not on the clone, where the change broke it)
  ansible.builtin.shell: |
    if [ "${PRECHANGE_ON:-real}" = clone ]; then echo "the service answers 500" >&2; exit 1; fi
  changed_when: false
"""


def _guard(tmp_path, libvirtd, vm, clone, checks=GUARD_CHECKS):
    work = tmp_path
    (work / "changes.log").write_text("")
    fill = {"work": work, "vm": vm, "clone": clone, "uri": libvirtd}
    (work / "change.yml").write_text(GUARD_CHANGE % fill)
    (work / "checks.yml").write_text(checks % fill)
    (work / "play.yml").write_text(GUARD_PLAY % fill)
    wrapper = _clone_python(work)
    _write_inventory(work, vm, {"prechange_provider": "libvirt", "prechange_libvirt_uri": libvirtd})
    extra = {"guard_rehearse": True, "guard_change_tasks": str(work / "change.yml"),
             "guard_check_tasks": str(work / "checks.yml"), "guard_rehearse_clone_name": clone,
             "guard_rehearse_connection": {"ansible_connection": "local", "ansible_python_interpreter": str(wrapper)},
             "verify_no_failed_units": False}
    p = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(work / "play.yml"),
                        "-i", str(work / "inventory.json"), "-e", json.dumps(extra)], env=ansible_env(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=1200,
                       check=False)
    said = json.loads((work / "guard.json").read_text()) if (work / "guard.json").exists() else None
    return p, said, (work / "changes.log").read_text().split()


def test_guard_role_rehearsal_whose_change_breaks_the_checks_leaves_the_real_vm_unchanged(tmp_path, libvirtd,
                                                                                          libvirt_guest):
    vm = libvirt_guest("blank", start=True).name
    clone = vm + "-rh"
    title_before = _virsh(libvirtd, "desc", vm, "--title", "--config").strip()
    p, said, changes = _guard(tmp_path, libvirtd, vm, clone)
    assert said is not None, p.stdout[-4000:]
    # The change ran on the clone only, and its checks failed there.
    assert changes == ["clone"], p.stdout[-4000:]
    assert said["failed"] is True and said["rehearsal"]["passed"] is False, said
    assert said["rehearsal"]["reason"] == "the checks failed on the clone", said
    assert said["result"] == "deleted", said
    assert said["msg"].startswith("web: rehearsal_failed on clone '%s': the checks failed on the clone (" % clone), said
    assert said["msg"].endswith("the change never reached the VM, and its snapshot '%s' was deleted"
                                % said["rehearsal"]["clone"]["source"]["snapshot"]), said
    # Read back from libvirt: the real VM is as it was (its title, running, no snapshot left); the clone is gone.
    assert _virsh(libvirtd, "desc", vm, "--title", "--config").strip() == title_before != "changed-by-the-change"
    assert _virsh(libvirtd, "domstate", vm).strip() == "running"
    assert _virsh(libvirtd, "snapshot-list", vm, "--name").split() == []
    assert clone not in _virsh(libvirtd, "list", "--all", "--name").split()


def test_guard_role_rehearsal_that_passes_lets_the_change_reach_the_real_vm(tmp_path, libvirtd, libvirt_guest):
    vm = libvirt_guest("blank", start=True).name
    clone = vm + "-rh"
    p, said, changes = _guard(tmp_path, libvirtd, vm, clone, checks="---\n- name: No checks of mine\n"
                                                                    "  ansible.builtin.meta: noop\n")
    assert p.returncode == 0 and said is None, p.stdout[-4000:]
    assert changes == ["clone", "real"], p.stdout[-4000:]
    # Read back from libvirt: the real VM has the change, the clone is gone, the snapshot was deleted.
    assert _virsh(libvirtd, "desc", vm, "--title", "--config").strip() == "changed-by-the-change"
    assert clone not in _virsh(libvirtd, "list", "--all", "--name").split()
    assert _virsh(libvirtd, "snapshot-list", vm, "--name").split() == []
