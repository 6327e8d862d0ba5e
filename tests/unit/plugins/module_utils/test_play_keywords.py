# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the play keywords a value in the inventory comes too late for (hosts, serial, max_fail_percentage)."""

from __future__ import annotations

import pytest

from ansible_collections.prechange.snapshots.plugins.module_utils import _play_keywords as kw

PLAY = {"hosts": ["all"], "serial": ["100%"], "max_fail_percentage": 25.0}


@pytest.mark.parametrize("values", [
    {},  # nothing set for the hosts: the defaults are what the play runs with
    {"maintenance_serial": "100%", "maintenance_max_fail_percentage": "25", "maintenance_hosts": "all"},
    {"maintenance_max_fail_percentage": 25},
])
def test_values_the_play_uses_pass(values):
    assert kw.ignored(PLAY, {"h1": values, "h2": values}) is None


def test_a_list_serial_and_a_pattern_given_as_extra_variables_pass():
    play = {"hosts": ["web,db"], "serial": [3, "50%"], "max_fail_percentage": 10.0}
    seen = {"h1": {"maintenance_hosts": "web,db", "maintenance_serial": [3, "50%"],
                   "maintenance_max_fail_percentage": "10"}}
    assert kw.ignored(play, seen) is None


def test_a_serial_from_the_inventory_is_named_with_the_extra_variable_to_pass():
    reason, hint = kw.ignored(PLAY, {"h1": {"maintenance_serial": [4, 1]}, "h2": {"maintenance_serial": [4, 1]}})
    assert reason == ("maintenance_serial is [4, 1] for every host, but the play runs with serial 100%: Ansible fixes "
                      "a play's hosts, serial and max_fail_percentage before it reads the inventory's variables, so a "
                      "value set in the inventory (group_vars, host_vars) is not used")
    assert hint == ("Pass maintenance_serial as an extra variable, not in the inventory: "
                    "-e '{\"maintenance_serial\": [4, 1]}' (or -e @vars.yml); nothing was changed")


def test_only_the_hosts_whose_value_differs_are_named():
    seen = {"h%d" % i: {"maintenance_max_fail_percentage": 0 if i < 5 else 25} for i in range(1, 7)}
    reason, hint = kw.ignored(PLAY, seen)
    assert reason.startswith("maintenance_max_fail_percentage is 0 for h1, h2, h3 and 1 more, but the play runs with "
                             "max_fail_percentage 25: ")
    assert "extra variable," in hint
