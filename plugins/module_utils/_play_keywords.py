# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Play keywords the collection's playbooks take from variables, and a value Ansible did not use.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

The maintenance playbook sets its play's ``hosts``, ``serial`` and ``max_fail_percentage`` from
``maintenance_hosts``, ``maintenance_serial`` and ``maintenance_max_fail_percentage``. Ansible fixes
those keywords when the play starts, from the play's and the extra variables only: a value set in the
inventory (group_vars, host_vars) is not seen then, and the play silently runs with the default (one
batch of every host, 25%). The tasks see the inventory's value, so the snapshot call compares the two
and refuses, before anything is made, a run whose batches are not the ones the user asked for.
"""

from __future__ import annotations

import json

# Play keyword -> the maintenance playbook's variable for it.
MAINTENANCE = {"hosts": "maintenance_hosts", "serial": "maintenance_serial",
               "max_fail_percentage": "maintenance_max_fail_percentage"}


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value]
    return [part.strip() for part in str(value).split(",")] if isinstance(value, str) else [str(value)]


def _same(keyword, used, wanted):
    if keyword == "max_fail_percentage":
        try:
            return float(used) == float(wanted)
        except (TypeError, ValueError):
            return str(used) == str(wanted)
    if keyword == "hosts":
        return ",".join(_as_list(used)) == ",".join(_as_list(wanted))
    return _as_list(used) == _as_list(wanted)


def _shown(value):
    if isinstance(value, (list, tuple)):
        # Ansible keeps a play's serial as a list, also when it was given as one number or percentage.
        return _shown(value[0]) if len(value) == 1 else "[%s]" % ", ".join(_shown(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def ignored(play_values, host_values, variables=None):
    """The keywords whose variable the play did not use, as ``(reason, hint)``, or None.

    ``play_values``: {keyword: the value the play runs with}; ``host_values``: {host: {variable: value}}
    as the tasks see them (only variables that are set); ``variables``: {keyword: variable}.
    """
    variables = variables or MAINTENANCE
    found = []
    for keyword, variable in variables.items():
        if keyword not in play_values:
            continue
        hosts = sorted(h for h, values in host_values.items()
                       if variable in values and not _same(keyword, play_values[keyword], values[variable]))
        if hosts:
            wanted = host_values[hosts[0]][variable]
            found.append((keyword, variable, wanted, hosts))
    if not found:
        return None

    def whom(hosts):
        if len(hosts) == len(host_values):
            return "every host"
        return ", ".join(hosts[:3]) + (" and %d more" % (len(hosts) - 3) if len(hosts) > 3 else "")

    parts = ["%s is %s for %s, but the play runs with %s %s" % (
        variable, _shown(wanted), whom(hosts), keyword, _shown(play_values[keyword]))
        for keyword, variable, wanted, hosts in found]
    reason = ("%s: Ansible fixes a play's hosts, serial and max_fail_percentage before it reads the inventory's "
              "variables, so a value set in the inventory (group_vars, host_vars) is not used"
              % "; ".join(parts))
    extra = {variable: wanted for _k, variable, wanted, _h in found}
    hint = ("Pass %s as %s, not in the inventory: -e '%s' (or -e @vars.yml); nothing was changed"
            % (", ".join(extra), "extra variables" if len(extra) > 1 else "an extra variable",
               json.dumps(extra, default=str)))
    return reason, hint
