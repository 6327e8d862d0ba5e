# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A wrong playbook variable is refused before anything runs, with the argument spec's message.

Each playbook's first task validates its variables against its entry point of
roles/playbooks/meta/argument_specs.yml (what ``ansible-doc -t role prechange.snapshots.playbooks``
shows). No backend is needed: the refusal comes before any API call. That every variable a
playbook reads is documented there is tested in tests/unit/test_playbook_specs.py.
"""

from __future__ import annotations

import pytest

from conftest import run_playbook  # pylint: disable=import-error

CASES = [
    ("maintenance", {"maintenance_fail_reverted": "maybe"},
     "argument 'maintenance_fail_reverted' is of type str and we were unable to convert to bool"),
    ("snapshot", {"prechange_provider": "hyperv"},
     "value of prechange_provider must be one of: libvirt, proxmox, vmware, got: hyperv"),
    ("revert", {"revert_or_prune_run_id": "20261122T021500Z-4f2a", "revert_action": "undo"},
     "value of revert_action must be one of: revert, delete, keep, release, got: undo"),
    ("prune", {"prechange_vmware_port": "https"},
     "argument 'prechange_vmware_port' is of type str and we were unable to convert to int"),
]


@pytest.mark.parametrize("playbook, variables, message", CASES, ids=[c[0] for c in CASES])
def test_a_wrong_playbook_variable_is_refused_first(playbook, variables, message, tmp_path):
    result = run_playbook("prechange.snapshots.%s" % playbook, variables, env={"PRECHANGE_REPORT_DIR": str(tmp_path)})
    assert result.returncode != 0, result.stdout
    assert "Validation of arguments failed:" in result.stdout, result.stdout
    assert message in result.stdout, result.stdout
    assert "Validating arguments against arg spec '%s'" % playbook in result.stdout
    # The refusal is the play's first task: nothing else ran on the host.
    assert "ok=0" in result.stdout and "changed=0" in result.stdout, result.stdout


def test_right_variables_pass_the_validation(tmp_path):
    """Valid values pass; the run then stops at the workflow's own check (this inventory has no provider)."""
    result = run_playbook("prechange.snapshots.revert", {"revert_or_prune_run_id": "20261122T021500Z-4f2a",
                                                         "revert_action": "release", "prechange_vm": 101},
                          check=True, env={"PRECHANGE_REPORT_DIR": str(tmp_path)})
    assert '"argument_spec_name": "revert", "name": "playbooks"' not in result.stdout, result.stdout
    assert ("Failed to find snapshots of VM '101': the provider is ''. Set prechange_provider to one of libvirt, "
            "proxmox, vmware for host localhost") in result.stdout, result.stdout
    # The revert playbook's report says the host was refused (bad input, nothing changed).
    assert "localhost: refused: Failed to find snapshots of VM '101'" in result.stdout, result.stdout
