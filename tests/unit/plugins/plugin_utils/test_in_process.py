# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""InProcessModule and the choice between running in the action plugin and shipping a module.

Argument validation here is ansible-core's own (ModuleArgumentSpecValidator), not a fake. The
choice tests stand in for Ansible's task, connection and play context with plain objects holding
the attributes the action plugin reads (task.async_val, connection.transport,
play_context.become); tests/integration/test_vmware_playbooks.py checks the same choice with
ansible-playbook itself.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule, env_fallback

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19: AnsibleModule reads its arguments from basic._ANSIBLE_ARGS

    @contextmanager
    def patch_module_args(args):
        saved = basic._ANSIBLE_ARGS  # pylint: disable=protected-access
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()  # pylint: disable=protected-access
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved  # pylint: disable=protected-access

from ansible_collections.prechange.snapshots.plugins.plugin_utils import _in_process
from ansible_collections.prechange.snapshots.plugins.plugin_utils._in_process import (
    InProcessModule,
    InProcessModuleAction,
    ModuleExit,
    same_python,
)

SPEC = dict(
    vm=dict(type="str"),
    vms=dict(type="list", elements="str"),
    password=dict(type="str", no_log=True, aliases=["pwd"], fallback=(env_fallback, ["PCS_TEST_PASSWORD"])),
    timeout=dict(type="int", default=600),
)


def new_module(args, check_mode=False, diff=False, **kwargs):
    return InProcessModule(SPEC, task_args=args, check_mode=check_mode, diff=diff, name="demo_snapshot",
                           supports_check_mode=True, **kwargs)


def exit_result(call):
    with pytest.raises(ModuleExit) as done:
        call()
    return done.value.result


def test_params_are_validated_and_converted_like_ansible_module():
    args = {"vm": "web01", "pwd": "s3cret", "timeout": "30"}
    module = new_module(args, check_mode=True, diff=True)
    with patch_module_args(args):
        reference = AnsibleModule(SPEC, supports_check_mode=True)
    assert module.params == reference.params
    assert module.params["password"] == "s3cret" and module.params["timeout"] == 30
    assert module.no_log_values == reference.no_log_values == {"s3cret"}
    assert module.check_mode is True and module._diff is True  # pylint: disable=protected-access


def test_unsupported_option_fails_with_ansible_modules_message():
    result = exit_result(lambda: new_module({"vm": "web01", "bogus": 1}))
    assert result["failed"] is True
    assert result["msg"].startswith("Unsupported parameters for (demo_snapshot) module: bogus.")
    assert "Supported parameters include" in result["msg"]


def test_rules_such_as_mutually_exclusive_are_enforced():
    result = exit_result(lambda: new_module({"vm": "a", "vms": ["b"]}, mutually_exclusive=[("vm", "vms")]))
    assert result["failed"] is True
    assert "mutually exclusive: vm|vms" in result["msg"]


def test_secrets_are_masked_everywhere_in_the_result(monkeypatch):
    monkeypatch.setenv("PCS_TEST_PASSWORD", "from-env-pw")
    module = new_module({"vm": "web01"})
    assert module.params["password"] == "from-env-pw"
    module.warn("login as from-env-pw failed once")
    result = exit_result(lambda: module.fail_json(msg="bad password from-env-pw", vm="web01"))
    text = repr(result)
    assert "from-env-pw" not in text
    assert result["invocation"]["module_args"]["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert result["warnings"] == ["login as ******** failed once"]
    assert result["vm"] == "web01"


def test_result_is_plain_json_like_a_modules_stdout():
    module = new_module({"vm": "web01"})
    result = exit_result(lambda: module.exit_json(changed=True, names=("a", "b")))
    assert result["names"] == ["a", "b"]
    assert result["changed"] is True
    assert "warnings" not in result


def test_task_environment_is_applied_and_restored(monkeypatch):
    monkeypatch.delenv("PCS_TEST_PASSWORD", raising=False)
    monkeypatch.setenv("PCS_TEST_KEEP", "before")
    with _in_process._environment({"PCS_TEST_PASSWORD": "pw", "PCS_TEST_KEEP": 7}):  # pylint: disable=protected-access
        assert os.environ["PCS_TEST_PASSWORD"] == "pw"
        assert os.environ["PCS_TEST_KEEP"] == "7"
    assert "PCS_TEST_PASSWORD" not in os.environ
    assert os.environ["PCS_TEST_KEEP"] == "before"


class FakeModuleFile:
    """A module file as the action plugin sees it: REQUIREMENTS and main(module_class=...)."""

    __name__ = "ansible_collections.prechange.snapshots.plugins.modules.demo_snapshot"
    REQUIREMENTS = [("demo-sdk", None)]


def action(transport="local", async_val=0, become=False, requirements=None, delegate_to=None):
    plugin = InProcessModuleAction.__new__(InProcessModuleAction)
    plugin.module = FakeModuleFile()
    if requirements is not None:
        plugin.module.REQUIREMENTS = requirements
    plugin._task = SimpleNamespace(async_val=async_val, delegate_to=delegate_to)  # pylint: disable=protected-access
    plugin._connection = SimpleNamespace(transport=transport)  # pylint: disable=protected-access
    plugin._play_context = SimpleNamespace(become=become)  # pylint: disable=protected-access
    plugin._templar = SimpleNamespace(template=lambda value: value)  # pylint: disable=protected-access
    return plugin


@pytest.mark.parametrize("plugin, task_vars, reason", [
    (action(), {}, None),
    (action(), {"prechange_snapshots_in_process": "yes"}, None),
    (action(), {"prechange_snapshots_in_process": False}, "prechange_snapshots_in_process is false"),
    (action(), {"prechange_snapshots_in_process": "no"}, "prechange_snapshots_in_process is false"),
    (action(transport="ssh"), {}, "the task runs over a ssh connection, not on the controller"),
    (action(async_val=60), {}, "async"),
    (action(become=True), {}, "become"),
    (action(requirements=[("demo-sdk", "ImportError: no demo")]), {}, "demo-sdk does not import on the controller"),
])
def test_runs_in_the_action_plugin_only_when_the_task_runs_on_the_controller(plugin, task_vars, reason, monkeypatch):
    monkeypatch.delenv("ANSIBLE_PYTHON_INTERPRETER", raising=False)
    assert plugin._why_not_in_process(task_vars) == reason  # pylint: disable=protected-access


@pytest.mark.parametrize("task_vars, delegate_to, runs_here", [
    ({"ansible_python_interpreter": "auto_silent"}, None, True),
    ({"ansible_python_interpreter": sys.executable}, None, True),
    ({"ansible_python_interpreter": "/nonexistent/bin/python3"}, None, False),
    # delegated: the delegated host's interpreter counts, not the inventory host's
    ({"ansible_python_interpreter": "/nonexistent/bin/python3",
      "ansible_delegated_vars": {"localhost": {"ansible_python_interpreter": sys.executable}}}, "localhost", True),
    ({"ansible_python_interpreter": sys.executable,
      "ansible_delegated_vars": {"localhost": {"ansible_python_interpreter": "/nonexistent/bin/python3"}}},
     "localhost", False),
])
def test_a_python_named_for_the_host_is_honoured(task_vars, delegate_to, runs_here, monkeypatch):
    monkeypatch.delenv("ANSIBLE_PYTHON_INTERPRETER", raising=False)
    reason = action(delegate_to=delegate_to)._why_not_in_process(task_vars)  # pylint: disable=protected-access
    if runs_here:
        assert reason is None
    else:
        assert reason == "the host's Python is /nonexistent/bin/python3, not the controller's %s" % sys.executable


def test_same_python_tells_a_virtualenv_from_its_base_interpreter(tmp_path):
    base = os.path.realpath(sys.executable)
    (tmp_path / "bin").mkdir()
    for name in ("python", "python3"):
        (tmp_path / "bin" / name).symlink_to(base)
    venv_python, venv_python3 = str(tmp_path / "bin" / "python"), str(tmp_path / "bin" / "python3")
    assert same_python(venv_python, venv_python3)
    assert same_python(venv_python3, venv_python)
    assert not same_python(base, venv_python)
    assert not same_python(venv_python, base)
    assert not same_python("python3", venv_python)
    assert not same_python(str(tmp_path / "bin" / "missing"), venv_python)
