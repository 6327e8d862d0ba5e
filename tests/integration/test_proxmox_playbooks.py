# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Playbook-level tests of proxmox_snapshot and proxmox_snapshot_info against fakepve.

The fake cluster (fakepve==0.5.0 plus the project's realism layer, tests/backends/fakepve) runs in this
pytest process for the whole session and is reset to guests.json before each scenario; every
ansible-playbook task is a separate module process talking HTTPS to it, as against a real cluster.
Faults are armed from the playbooks themselves (tasks/fault.yml), right before the task they concern.

    python -m pytest tests/integration/test_proxmox_playbooks.py
"""

from __future__ import annotations

import os
import sys

import pytest

pytest.importorskip("fakepve")
pytest.importorskip("proxmoxer")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "backends", "fakepve"))
from pve import pve, pve_cluster  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position


def connection_vars(cluster):
    return {
        "pve_host": cluster.host, "pve_port": cluster.port, "pve_user": cluster.user,
        "pve_password": cluster.password, "pve_token_user": cluster.token_user, "pve_token_id": cluster.token_name,
        "pve_token_secret": cluster.token_secret, "pve_ca_path": cluster.cafile,
    }


@pytest.mark.parametrize("scenario", ["qemu", "lxc_token", "errors", "locks", "batch"])
def test_proxmox_snapshot(pve, target_runner, scenario):
    variables = connection_vars(pve)
    variables["proxmox_scenarios"] = [scenario]
    result = target_runner("proxmox_snapshot", variables)
    # Secrets never reach the output, whatever the verbosity of the failure messages.
    assert pve.password not in result.stdout
    assert pve.token_secret not in result.stdout


def test_proxmox_snapshot_info(pve, target_runner):
    target_runner("proxmox_snapshot_info", connection_vars(pve))


def test_check_mode_and_diff_flags_on_the_command_line(pve, playbook_runner, tmp_path):
    """--check --diff for a whole play: same changed as the real run that follows, nothing mutated."""
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - prechange.snapshots.proxmox_snapshot:\n"
        "        api_host: '{{ pve_host }}'\n"
        "        api_port: '{{ pve_port }}'\n"
        "        api_user: '{{ pve_token_user }}'\n"
        "        api_token_id: '{{ pve_token_id }}'\n"
        "        api_token_secret: '{{ pve_token_secret }}'\n"
        "        ca_path: '{{ pve_ca_path }}'\n"
        "        vm: db01\n"
        "        name: cli-check\n")
    checked = playbook_runner(str(play), connection_vars(pve), check=True, diff=True)
    assert checked.returncode == 0, checked.stdout
    assert "changed=1" in checked.stdout
    assert "+ cli-check" in checked.stdout or "cli-check" in checked.stdout
    assert "cli-check" not in pve.guest(102).snapshots
    real = playbook_runner(str(play), connection_vars(pve))
    assert real.returncode == 0, real.stdout
    assert "changed=1" in real.stdout
    assert "cli-check" in pve.guest(102).snapshots
