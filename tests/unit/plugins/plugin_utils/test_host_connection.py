# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which connection a clone module gets: explicit arguments, the host's variables, the play's module_defaults."""

from __future__ import annotations

import pytest

from ansible_collections.prechange.snapshots.plugins.plugin_utils._host_connection import module_args


@pytest.mark.parametrize("value", ["qemu:///system"])
def test_module_args_order(value):
    """Unit-level: explicit > host variable > module_defaults, and a module_defaults value is not taken for an
    explicit argument."""

    class Task:
        module_defaults = [{"group/prechange.snapshots.libvirt": {"uri": "test:///default", "timeout": 5}}]

    class Templar:
        @staticmethod
        def template(value):
            return value

    options = frozenset(["uri"])
    host = {"inventory_hostname": "web", "prechange_libvirt_uri": value}
    # ansible-core merged module_defaults into the task's arguments: the host's variable replaces that default.
    got = module_args(Task, Templar, host, "libvirt", "libvirt_clone",
                      {"uri": "test:///default", "timeout": 5, "name": "c"}, options)
    assert got == {"uri": value, "timeout": 5, "name": "c"}
    # An explicit argument wins.
    got = module_args(Task, Templar, host, "libvirt", "libvirt_clone", {"uri": "qemu:///session", "name": "c"},
                      options)
    assert got["uri"] == "qemu:///session"
    # Without a host variable, module_defaults apply; an inventory plugin's ansible_libvirt_uri counts as one.
    assert module_args(Task, Templar, {"inventory_hostname": "web"}, "libvirt", "libvirt_clone", {"name": "c"},
                       options)["uri"] == "test:///default"
    assert module_args(Task, Templar, {"inventory_hostname": "web", "ansible_libvirt_uri": value}, "libvirt",
                       "libvirt_clone", {"name": "c"}, options, explicit=True)["uri"] == value
