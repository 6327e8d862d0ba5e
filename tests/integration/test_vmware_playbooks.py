# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Playbook-level tests of vmware_snapshot and vmware_snapshot_info against vcsim.

govmomi's vCenter simulator (built from Debian's source with the project's fixes by
tests/backends/vcsim/build.sh) runs for the whole session; every ansible-playbook task is a separate
module process talking SOAP over HTTPS to it, as against a real vCenter. Faults and delays are armed
from the playbooks themselves (targets/vmware_snapshot/tasks/ctl.yml), right before the task they
concern.

    python -m pytest tests/integration/test_vmware_playbooks.py
"""

from __future__ import annotations

import os
import sys

import pytest

pytest.importorskip("pyVmomi")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "backends", "vcsim"))
from vcsim import vcsim  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import

CONTROL_LIBRARY = os.path.join(HERE, "targets", "vmware_snapshot", "library")


def connection_vars(sim):
    return {"vcsim_host": sim["hostname"], "vcsim_port": sim["port"], "vcsim_user": sim["username"],
            "vcsim_password": sim["password"]}


def control_env():
    return {"ANSIBLE_LIBRARY": CONTROL_LIBRARY}


@pytest.mark.parametrize("scenario", ["states", "tree", "memory", "errors", "batch", "lookup"])
def test_vmware_snapshot(vcsim, target_runner, scenario):  # pylint: disable=redefined-outer-name
    variables = connection_vars(vcsim)
    variables["vmware_scenarios"] = [scenario]
    result = target_runner("vmware_snapshot", variables, env=control_env())
    assert vcsim["password"] not in result.stdout


def test_vmware_snapshot_info(vcsim, target_runner):  # pylint: disable=redefined-outer-name
    target_runner("vmware_snapshot_info", connection_vars(vcsim), env=control_env())


def test_env_fallbacks_check_mode_and_diff_on_the_command_line(vcsim, playbook_runner, tmp_path):  # pylint: disable=redefined-outer-name
    """community.vmware's VMWARE_* variables work unchanged; --check --diff reports what the real run does."""
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - prechange.snapshots.vmware_snapshot:\n"
        "        vm: DC0_H0_VM2\n"
        "        name: cli-check\n"
        "      register: made\n"
        "    - prechange.snapshots.vmware_snapshot_info:\n"
        "        vm: DC0_H0_VM2\n"
        "        name_pattern: cli-check\n"
        "      register: seen\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"seen={{ seen.snapshots | length }}\"\n"
        "    - prechange.snapshots.vmware_snapshot:\n"
        "        vm: DC0_H0_VM2\n"
        "        name: cli-check\n"
        "        state: absent\n"
        "      when: cleanup | default(false) | bool\n")
    env = {"VMWARE_HOST": vcsim["hostname"], "VMWARE_PORT": str(vcsim["port"]), "VMWARE_USER": vcsim["username"],
           "VMWARE_PASSWORD": vcsim["password"], "VMWARE_VALIDATE_CERTS": "false"}
    checked = playbook_runner(str(play), check=True, diff=True, env=env)
    assert checked.returncode == 0, checked.stdout
    assert "changed=1" in checked.stdout
    assert "+ cli-check" in checked.stdout or "cli-check" in checked.stdout
    assert "seen=0" in checked.stdout
    real = playbook_runner(str(play), {"cleanup": True}, env=env)
    assert real.returncode == 0, real.stdout
    assert "seen=1" in real.stdout
    assert "changed=2" in real.stdout


PATHS_PLAY = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/prechange.snapshots.vmware:
      hostname: "{{ vcsim_host }}"
      port: "{{ vcsim_port }}"
      username: "{{ vcsim_user }}"
      password: "{{ vcsim_password }}"
      validate_certs: false
  vars:
    snap: &snap
      name: paths
      description: both ways
      run_id: paths-run
      creator: tester@ci
      ticket: CHG-7
  tasks:
    - name: In the action plugin
      prechange.snapshots.vmware_snapshot:
        <<: *snap
        vm: DC0_H0_VM3
      register: fast
    - name: As a module process
      prechange.snapshots.vmware_snapshot:
        <<: *snap
        vm: DC0_C0_RP0_VM3
      vars: {prechange_snapshots_in_process: false}
      register: slow
    - name: Unknown VM, in the action plugin
      prechange.snapshots.vmware_snapshot: {vm: no-such-vm, name: paths}
      register: fast_missing
      ignore_errors: true
    - name: Unknown VM, as a module process
      prechange.snapshots.vmware_snapshot: {vm: no-such-vm, name: paths}
      vars: {prechange_snapshots_in_process: false}
      register: slow_missing
      ignore_errors: true
    - name: Unsupported option, in the action plugin
      prechange.snapshots.vmware_snapshot: {vm: DC0_H0_VM3, name: paths, bogus: 1}
      register: fast_bad
      ignore_errors: true
    - name: Unsupported option, as a module process
      prechange.snapshots.vmware_snapshot: {vm: DC0_H0_VM3, name: paths, bogus: 1}
      vars: {prechange_snapshots_in_process: false}
      register: slow_bad
      ignore_errors: true
    - name: Credentials from the task's environment only (the VMWARE_* fallbacks), in the action plugin
      prechange.snapshots.vmware_snapshot_info:
        vm: DC0_H0_VM3
        name_pattern: paths
        hostname: "{{ omit }}"
        username: "{{ omit }}"
        password: "{{ omit }}"
      module_defaults: {}
      environment:
        VMWARE_HOST: "{{ vcsim_host }}"
        VMWARE_USER: "{{ vcsim_user }}"
        VMWARE_PASSWORD: "{{ vcsim_password }}"
        VMWARE_PORT: "{{ vcsim_port }}"
        VMWARE_VALIDATE_CERTS: "false"
      register: from_env
    - name: Async runs as a module process
      prechange.snapshots.vmware_snapshot: {vm: DC0_C0_RP0_VM3, name: paths, state: absent}
      async: 120
      poll: 1
      register: async_delete
    - name: The two ways give the same result
      ansible.builtin.assert:
        that:
          - fast is changed and slow is changed
          - fast.keys() | sort == slow.keys() | sort
          - fast.snapshot.keys() | sort == slow.snapshot.keys() | sort
          - fast.snapshot.description == slow.snapshot.description
          - fast.snapshot.owner.run == slow.snapshot.owner.run == 'paths-run'
          - fast.snapshot.owner.ticket == slow.snapshot.owner.ticket == 'CHG-7'
          - fast_missing is failed and slow_missing is failed
          - fast_missing.msg == slow_missing.msg
          - fast_missing.vm == slow_missing.vm == 'no-such-vm'
          - fast_bad is failed and slow_bad is failed
          - fast_bad.msg == slow_bad.msg
          - "'bogus' in fast_bad.msg"
          - from_env.snapshots | map(attribute='name') | list == ['paths']
          - async_delete is changed
    - name: Leave the simulator as it was
      prechange.snapshots.vmware_snapshot: {vm: DC0_H0_VM3, name: paths, state: absent}
"""


def test_action_plugin_and_module_process_agree(vcsim, playbook_runner, tmp_path):  # pylint: disable=redefined-outer-name
    """The action plugin runs the module code in Ansible's worker when the task runs on the controller,
    and ships a module process otherwise; results, errors and secrets masking are the same both ways."""
    play = tmp_path / "paths.yml"
    play.write_text(PATHS_PLAY)
    result = playbook_runner(str(play), connection_vars(vcsim), verbosity=3)
    assert result.returncode == 0, result.stdout[-20000:]
    # -vvv prints every result's invocation: the password is there, masked, for both ways
    assert vcsim["password"] not in result.stdout
    assert result.stdout.count('"password": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"') >= 8, result.stdout[-20000:]
    ran_here = result.stdout.count("prechange.snapshots.vmware_snapshot: running in the action plugin")
    ran_as_module = result.stdout.count("prechange.snapshots.vmware_snapshot: running the module (")
    assert (ran_here, ran_as_module) == (4, 4), result.stdout[-20000:]
    assert "running the module (async)" in result.stdout
    assert "vmware_snapshot_info: running in the action plugin" in result.stdout
