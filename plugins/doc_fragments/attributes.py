# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Attribute declarations shared by the modules (action and async are the same for all six)."""

    DOCUMENTATION = r"""
options: {}
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on
      the controller.
    support: full
    details:
      - When the task runs on the controller (a local connection, as with C(delegate_to=localhost), without
        C(become) or C(async)), the action plugin runs the module code in the worker process Ansible has
        already started for the task, so the SDK is imported once per playbook run instead of once per host.
        Results, errors and the masking of secrets are the same as from a module process.
      - Otherwise (a remote host, C(become), C(async), an C(ansible_python_interpreter) other than the
        controller's own Python, an SDK that does not import on the controller, or the variable
        C(prechange_snapshots_in_process=false)) the module runs as a module process, as usual.
  async:
    description: Supports being used with the C(async) keyword.
    support: full
    details: An C(async) task runs as a module process.
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
"""

    ACTIONS = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: Reports exactly the C(changed) of a real run, runs the same prechecks, and changes nothing.
  diff_mode:
    support: full
    details: Returns the snapshot names of each VM before and after.
"""

    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: This action does not modify state.
  diff_mode:
    support: N/A
    details: This action does not modify state.
"""
