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
