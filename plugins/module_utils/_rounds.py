# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which optional per-host steps a serial batch needs: the maintenance playbook's feature gates.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

Every task that Ansible's strategy sends to a host costs a worker round on that host, even when its
``when`` skips it there. The maintenance playbook's optional steps (a rehearsal, the user's veto tasks, the
checks after a revert, failing the hosts that must fail) are per-host tasks. The workflow action's ``batch``
step decides once per serial batch, on the controller, whether any host of the batch needs each of them;
the playbook makes a step that no host needs ``run_once`` (one skipped result for the whole batch), and
leaves it a per-host task, exactly as before, when some host needs it.

A feature is named by the variable (or variables) that turn it on. It is on for the batch when any of its
hosts sets one of them (inventory, extra vars, facts) to a value that is not off. Only variables whose default
is off (false, empty) may be named: a host that does not set one has it off (role defaults and play vars are
not in a host's ``hostvars``).

Only includes may be gated so: Ansible's strategy takes a templated ``run_once`` as true when it registers a
result, sets facts or fails a host (it would copy one host's result to every host of the batch, or fail them
all); an include does none of that, and the tasks it includes do not inherit its ``run_once``.
"""

from __future__ import annotations

# Strings Ansible's ``bool`` filter reads as false, and the empty string (an unset file name).
OFF_STRINGS = frozenset(("", "false", "no", "off", "0", "n", "f"))


class Unreadable:  # pylint: disable=too-few-public-methods
    """A host's value that could not be read (a template that fails): taken as on, so the step stays per host."""


UNREADABLE = Unreadable()


def is_on(value):
    """Whether a feature's variable, as a host sets it, turns the feature on."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return value.strip().lower() not in OFF_STRINGS
    if isinstance(value, (list, tuple, dict, set)):
        return len(value) > 0
    if isinstance(value, (int, float)):
        return value != 0
    return True


def batch_needs(features, values):
    """{feature: bool}: whether any host of the batch turns the feature on.

    ``features``: {feature: [variable name, ...]} (as check_features returns it); ``values``: {host: {variable:
    value}} with only the variables the host sets (one it does not set is off for it).
    """
    return {name: any(is_on(mine[variable]) for mine in values.values() for variable in variables if variable in mine)
            for name, variables in features.items()}


def check_features(features):
    """The ``features`` argument, checked: {feature: [variable, ...]} from a variable name or a list. Raises ValueError."""
    if not isinstance(features, dict) or not features:
        raise ValueError("features must name each feature's variable, e.g. {rehearse: maintenance_rehearse}")
    out = {}
    for name, variables in features.items():
        variables = [variables] if isinstance(variables, str) else variables
        if not isinstance(variables, (list, tuple)) or not variables \
                or not all(isinstance(v, str) and v.strip() for v in variables):
            raise ValueError("feature '%s' names no variable (a variable name or a list of them)" % name)
        out[str(name)] = [v.strip() for v in variables]
    return out
