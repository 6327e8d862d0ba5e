# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run this collection's modules inside their action plugin when the task runs on the controller.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

Why: the snapshot modules talk to a hypervisor API and run on the controller
(``delegate_to: localhost``, design.md). Run the usual way, every host's task starts a new
Python process that imports Ansible's module code and the SDK again; for VMware that import
(pyVmomi's type tables) costs more CPU than the vSphere calls themselves. When the task would run
on the controller anyway, the action plugin runs the very same module code (``main()`` with
``InProcessModule`` in place of AnsibleModule) in the worker process Ansible has already forked
for the task. The SDK is imported once per playbook run: the linear and free strategies load the
action plugin class, and with it the SDK, before they fork the workers.

Everything else runs the module the usual way: a task on another host (``delegate_to`` a remote
host, or a connection other than local), become, async, an SDK that does not import on the
controller, a Python interpreter named for the host (``ansible_python_interpreter``) that is not
the controller's own, or the host variable ``prechange_snapshots_in_process: false``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from contextlib import contextmanager

from ansible import constants as C
from ansible.module_utils.common.arg_spec import ModuleArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.common.text.converters import jsonify
from ansible.module_utils.errors import UnsupportedError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

IN_PROCESS_VAR = "prechange_snapshots_in_process"
DISCOVERY = frozenset(("", "auto", "auto_silent", "auto_legacy", "auto_legacy_silent"))

display = Display()


class ModuleExit(Exception):
    """Raised by InProcessModule.exit_json / fail_json: the module's result, ready to return."""

    def __init__(self, result):
        super().__init__(result.get("msg", ""))
        self.result = result


class InProcessModule:
    """The part of AnsibleModule that this collection's module code uses, fed from the task.

    Arguments are validated by ansible-core's own ModuleArgumentSpecValidator (types, defaults,
    aliases, environment fallbacks, mutually_exclusive and the other rules), and the result goes
    through the same JSON encoding and no_log masking that AnsibleModule applies, so a playbook
    sees the same result either way.
    """

    def __init__(self, argument_spec, supports_check_mode=False, mutually_exclusive=None, required_together=None,
                 required_one_of=None, required_if=None, required_by=None, *, task_args, check_mode, diff, name):
        self.argument_spec = argument_spec
        self.check_mode = bool(check_mode)
        self._diff = bool(diff)
        self._name = name
        self._warnings = []
        validator = ModuleArgumentSpecValidator(argument_spec, mutually_exclusive, required_together,
                                                required_one_of, required_if, required_by)
        validation = validator.validate(dict(task_args))
        self.params = validation.validated_parameters
        self.no_log_values = set(validation._no_log_values)  # pylint: disable=protected-access
        # AnsibleValidationErrorMultiple has no len(); AnsibleModule indexes it the same way.
        if validation.errors.errors:
            msg = validation.errors.msg
            if isinstance(validation.errors.errors[0], UnsupportedError):
                msg = "Unsupported parameters for (%s) module: %s" % (name, msg)
            self.fail_json(msg=msg)
        if self.check_mode and not supports_check_mode:
            self.exit_json(skipped=True, msg="remote module (%s) does not support check mode" % name)

    def warn(self, warning):
        self._warnings.append(str(warning))

    def exit_json(self, **result):
        raise ModuleExit(self._finish(result))

    def fail_json(self, msg, **result):
        result.update(failed=True, msg=msg)
        raise ModuleExit(self._finish(result))

    def _finish(self, result):
        result.setdefault("invocation", {"module_args": self.params})
        if self._warnings:
            result["warnings"] = list(self._warnings)
        # The same encoding a module's stdout gets: JSON types only, secrets masked.
        return json.loads(jsonify(remove_values(result, self.no_log_values)))


def same_python(path, executable=None):
    """Whether ``path`` runs the same Python environment as ``executable`` (the controller's).

    A virtualenv's bin/python and bin/python3 are symlinks to one binary in one directory: the
    same environment. The base interpreter they point at is the same binary in another directory,
    without the virtualenv's packages: not the same.
    """
    executable = executable or sys.executable
    if not path or not os.path.isabs(path) or not os.path.exists(path):
        return False
    same_dir = os.path.dirname(os.path.abspath(path)) == os.path.dirname(os.path.abspath(executable))
    return same_dir and os.path.realpath(path) == os.path.realpath(executable)


@contextmanager
def _environment(variables):
    """The task's ``environment:`` in os.environ while the module runs (fallbacks read it)."""
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update({key: str(value) for key, value in variables.items()})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class InProcessModuleAction(NormalAction):
    """Base of the collection's action plugins: ``module`` is the Python module of the module.

    Where the module cannot run here, ansible.builtin.normal (the parent class) ships it as usual.
    """

    module = None

    @property
    def _module_name(self):
        return self.module.__name__.rsplit(".", 1)[-1]

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        why_not = self._why_not_in_process(task_vars)
        if why_not:
            display.vvv("prechange.snapshots.%s: running the module (%s)" % (self._module_name, why_not))
            return super().run(tmp, task_vars)
        display.vvv("prechange.snapshots.%s: running in the action plugin on the controller" % self._module_name)
        # ActionBase.run: the checks every action makes (check mode and async support, no tmp).
        result = ActionBase.run(self, tmp, task_vars)
        return merge_hash(result, self._run_in_process())

    def _why_not_in_process(self, task_vars):
        """None when the module may run here, else the reason it may not."""
        wanted = self._templar.template(task_vars.get(IN_PROCESS_VAR, True))
        if not boolean(wanted, strict=False):
            return "%s is false" % IN_PROCESS_VAR
        if getattr(self._connection, "transport", None) != "local":
            return "the task runs over a %s connection, not on the controller" % self._connection.transport
        if self._task.async_val:
            return "async"
        if self._play_context.become:
            return "become"
        interpreter = self._named_interpreter(task_vars)
        if interpreter is not None and not same_python(interpreter):
            return "the host's Python is %s, not the controller's %s" % (interpreter, sys.executable)
        missing = [library for library, import_error in self.module.REQUIREMENTS if import_error]
        if missing:
            return "%s does not import on the controller" % ", ".join(missing)
        return None

    def _named_interpreter(self, task_vars):
        """The Python the module would run under, if the user named one (None: discovery)."""
        host_vars = task_vars
        if self._task.delegate_to:
            host_vars = (task_vars.get("ansible_delegated_vars") or {}).get(self._task.delegate_to, task_vars)
        configured = C.config.get_config_value("INTERPRETER_PYTHON", variables=host_vars)
        configured = str(self._templar.template(configured) or "").strip()
        return None if configured in DISCOVERY else configured

    def _run_in_process(self):
        environment = {}
        self._compute_environment_string(raw_environment_out=environment)
        return run_in_process(self.module, self._task.args, self._task.check_mode, self._task.diff,
                              self._task.action, environment)


def run_in_process(module, task_args, check_mode, diff, name, environment=None):
    """Run ``module``'s ``main()`` here with ``task_args`` (and ``environment`` in os.environ); its result."""
    module_name = module.__name__.rsplit(".", 1)[-1]
    modules = []

    def module_class(argument_spec, **kwargs):
        modules.append(InProcessModule(argument_spec, task_args=task_args, check_mode=check_mode, diff=diff,
                                       name=name, **kwargs))
        return modules[-1]

    with _environment(environment or {}):
        try:
            module.main(module_class=module_class)
        except ModuleExit as done:
            return done.result
        except Exception as error:  # pylint: disable=broad-except
            # A bug, not a hypervisor answer: report it like a module crash, secrets masked.
            no_log_values = modules[0].no_log_values if modules else set()
            return remove_values({
                "failed": True,
                "msg": "MODULE FAILURE: %s raised %s: %s" % (module_name, type(error).__name__, error),
                "exception": traceback.format_exc(),
            }, no_log_values)
    return {"failed": True, "msg": "MODULE FAILURE: %s returned without a result" % module_name}
