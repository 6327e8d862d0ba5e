# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Requests the module glue refuses before any backend exists: each message names the VM and what to do.

The module runs with InProcessModule (the action plugin's stand-in for AnsibleModule, validated by
ansible-core's ModuleArgumentSpecValidator); the backend class records whether it was ever built, so a
refused request provably touched no hypervisor.
"""

from __future__ import annotations

import pytest

from ansible_collections.prechange.snapshots.plugins.module_utils._module import run_snapshot_module
from ansible_collections.prechange.snapshots.plugins.plugin_utils._in_process import InProcessModule, ModuleExit


class NeverBuiltBackend:
    provider = "testprov"
    built = 0

    def __init__(self, params, warn=None):
        NeverBuiltBackend.built += 1
        raise AssertionError("a refused request must not reach the backend")


def run(args):
    def module_class(argument_spec, **kwargs):
        return InProcessModule(argument_spec, task_args=args, check_mode=False, diff=False, name="testprov_snapshot",
                               **kwargs)

    NeverBuiltBackend.built = 0
    with pytest.raises(ModuleExit) as done:
        run_snapshot_module(NeverBuiltBackend, {}, module_class=module_class)
    assert NeverBuiltBackend.built == 0
    return done.value.result


@pytest.mark.parametrize("args, message", [
    ({"vm": "web01", "state": "absent"},
     "Failed to delete snapshots of VM 'web01' on testprov: state=absent needs 'name' or 'delete_all'. Name the "
     "snapshot to delete with 'name', or set 'delete_all' to owned, expired or all; nothing was changed."),
    ({"vm": "web01", "state": "reverted"},
     "Failed to revert snapshots of VM 'web01' on testprov: state=reverted needs 'name'. Name the snapshot with "
     "'name'; nothing was changed."),
    ({"vm": "web01", "name": "pre", "delete_all": "owned"},
     "Failed to create snapshot 'pre' of VM 'web01' on testprov: 'delete_all' only works with state=absent. Set "
     "state: absent, or remove 'delete_all'; nothing was changed."),
    ({"vm": "web01", "name": "pre", "state": "reverted", "new_name": "post"},
     "Failed to revert snapshot 'pre' of VM 'web01' on testprov: 'new_name' only works with state=present. Set "
     "state: present to rename, or remove 'new_name'; nothing was changed."),
    ({"vm": "web01", "name": "pre", "timeout": 0},
     "Failed to create snapshot 'pre' of VM 'web01' on testprov: 'timeout' must be a positive number of seconds. "
     "Set timeout to the seconds to wait, for example 600; nothing was changed."),
    ({"vm": "web01", "name": "pre", "lock_timeout": -1},
     "Failed to create snapshot 'pre' of VM 'web01' on testprov: 'lock_timeout' must be 0 or a positive number of "
     "seconds. Set lock_timeout to 0 to refuse a VM held by another job at once, or to the seconds to wait for it; "
     "nothing was changed."),
    ({"vms": ["web01", "web02"], "name": "pre", "concurrency": 0},
     "Failed to create snapshot 'pre' on testprov: 'concurrency' must be at least 1. Set concurrency to 1 or "
     "more; nothing was changed."),
])
def test_refused_requests_name_the_vm_and_what_to_do(args, message):
    result = run(args)
    assert result["failed"] is True
    assert result["msg"] == message
    assert result["error"] == "InvalidRequest"


def test_bad_expiry_says_which_forms_work():
    result = run({"vm": "web01", "name": "pre", "expires": "next tuesday"})
    assert result["msg"].startswith("Failed to create snapshot 'pre' of VM 'web01' on testprov: ")
    assert result["msg"].endswith("Use 'expires: 7d' or an ISO 8601 timestamp; nothing was changed.")


def test_an_expiry_in_the_past_is_refused_before_anything_is_made():
    result = run({"vm": "web01", "name": "pre", "expires": "2020-01-01T00:00:00Z"})
    assert result["failed"] is True and result["error"] == "InvalidRequest"
    assert "the expiry 2020-01-01T00:00:00Z is already in the past" in result["msg"]


def test_vm_and_vms_together_are_refused_by_the_argument_rules():
    result = run({"vm": "web01", "vms": ["web02"], "name": "pre"})
    assert result["failed"] is True
    assert result["msg"] == "parameters are mutually exclusive: vm|vms"
