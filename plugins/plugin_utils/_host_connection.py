# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A host's connection options for this collection's modules, from its variables and the play's module_defaults.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

Which endpoint a host's VM is on is said once, in the inventory: ``prechange_<provider>_<option>`` host
variables (``prechange_libvirt_uri``, ``prechange_vmware_hostname``, ...), or what an inventory plugin records
(``ansible_libvirt_uri``). The workflow action (the roles' snapshot, settle and prune calls) and the clone
modules' action plugins both read them here, the same way:

    explicit task arguments  >  the host's connection variables  >  the play's module_defaults
    (group/prechange.snapshots.<provider> or the module's own entry)  >  the options' environment fallbacks.

ansible-core merges module_defaults into the task's arguments before an action plugin runs; an argument
whose value is the module_defaults' value is taken for that default, so a host variable may replace it.
"""

from __future__ import annotations

import importlib

from ansible.errors import AnsibleError

from ansible_collections.prechange.snapshots.plugins.module_utils._inventory import infer_from_inventory
from ansible_collections.prechange.snapshots.plugins.plugin_utils._in_process import InProcessModuleAction

# Host variables of inventory plugins that say which VM a host is (read by _inventory.resolve_target).
INVENTORY_VARS = frozenset(("ansible_libvirt_uri", "xml_desc", "config", "config.uuid", "config.instanceUuid",
                            "ansible_product_uuid", "group_names"))


def inventory_vars(task_vars, templar):
    """The host variables inventory plugins set that say which VM a host is (see _inventory.py), templated."""
    found = {}
    for name in task_vars:
        if name in INVENTORY_VARS or name.endswith(("vmid", "node", "vmtype")):
            try:
                found[name] = templar.template(task_vars[name])
            except AnsibleError:
                continue  # a user's own variable of that name that does not render is no plugin's
    facts = task_vars.get("ansible_facts")
    if isinstance(facts, dict) and facts.get("product_uuid") is not None:
        found["ansible_facts"] = {"product_uuid": templar.template(facts["product_uuid"])}
    return found


def connection_var_names(provider, task_vars):
    """``{option: variable name}`` of the host's ``prechange_<provider>_<option>`` variables."""
    prefix = "prechange_%s_" % provider
    return {name[len(prefix):]: name for name in task_vars if name.startswith(prefix)}


def connection_vars(provider, task_vars, templar, options):
    """The host's ``prechange_<provider>_<option>`` variables for ``options``, templated, as option names."""
    found = {}
    for option, name in connection_var_names(provider, task_vars).items():
        if option not in options:
            continue
        value = templar.template(task_vars[name])
        if value is not None:
            found[option] = value
    return found


def host_connection(host, provider, task_vars, templar, options):
    """The host's connection options: an inventory plugin's (``ansible_libvirt_uri``), overlaid by its
    ``prechange_<provider>_<option>`` variables."""
    inferred = infer_from_inventory(host, inventory_vars(task_vars, templar), refuse_nodes=False)
    connection = {k: v for k, v in inferred.connection.items() if k in options} \
        if inferred is not None and inferred.provider == provider else {}
    connection.update(connection_vars(provider, task_vars, templar, options))
    return connection


def module_defaults(task, templar, provider, module):
    """The play's module_defaults for ``provider``'s action group and for ``prechange.snapshots.<module>``, templated."""
    merged = {}
    for entry in task.module_defaults or []:
        merged.update(entry)
    args = {}
    for key in ("group/prechange.snapshots.%s" % provider, "prechange.snapshots.%s" % module):
        args.update(merged.get(key) or {})
    return templar.template(args) if args else {}


def module_args(task, templar, task_vars, provider, module, args, options, explicit=False):
    """A module's arguments for this host (see the module docstring for the order).

    ``args``: the task's arguments, module_defaults already merged in by ansible-core (``explicit=False``),
    or only what the caller gives itself (``explicit=True``: another action calling the module).
    ``options``: the provider's connection options (only those are read from host variables).
    """
    defaults = module_defaults(task, templar, provider, module)
    if explicit:
        given = dict(args)
    else:
        given = {key: value for key, value in args.items() if key not in defaults or defaults[key] != value}
    final = dict(defaults)
    final.update(host_connection(task_vars.get("inventory_hostname"), provider, task_vars, templar, options))
    final.update(given)
    return final


def connection_options(provider):
    """The names of ``provider``'s connection options (its modules' connection argument spec)."""
    utils = importlib.import_module("ansible_collections.prechange.snapshots.plugins.module_utils._%s" % provider)
    return frozenset(utils.connection_argument_spec())


class HostConnectionModuleAction(InProcessModuleAction):
    """An action plugin whose module takes the host's connection variables (``provider``'s), as the roles do.

    A task then needs no connection arguments where the inventory says where the host's VM is."""

    provider = None

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        self._task.args = module_args(self._task, self._templar, task_vars, self.provider, self._module_name,
                                      dict(self._task.args), connection_options(self.provider))
        return super().run(tmp, task_vars)
