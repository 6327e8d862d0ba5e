# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which optional per-host steps a serial batch needs (module_utils/_rounds.py), and the playbook's use of it."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.prechange.snapshots.plugins.module_utils import _rounds

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


@pytest.mark.parametrize("value", [None, False, "", "  ", "false", "No", "off", "0", "n", "F", 0, 0.0, [], {}, ()])
def test_off_values(value):
    assert not _rounds.is_on(value)


@pytest.mark.parametrize("value", [True, "true", "yes", "/srv/veto.yml", 1, ["nginx"], {"port": 22},
                                   _rounds.UNREADABLE])
def test_on_values(value):
    assert _rounds.is_on(value)


def test_a_feature_one_host_turns_on_is_on_for_the_batch():
    features = _rounds.check_features({"rehearse": "maintenance_rehearse", "veto": "revert_or_prune_veto_tasks_file"})
    values = {"h1": {}, "h2": {"maintenance_rehearse": False}, "h3": {"maintenance_rehearse": "yes"}}
    assert _rounds.batch_needs(features, values) == {"rehearse": True, "veto": False}


def test_no_host_sets_it_and_no_default_is_off():
    features = _rounds.check_features({"veto": "revert_or_prune_veto_tasks_file"})
    assert _rounds.batch_needs(features, {"h1": {}, "h2": {}}) == {"veto": False}
    assert _rounds.batch_needs(features, {}) == {"veto": False}


def test_a_default_counts_for_the_hosts_that_do_not_set_the_variable():
    features = _rounds.check_features({"reachable": "verify_reachable"})
    defaults = {"verify_reachable": True}
    assert _rounds.batch_needs(features, {"h1": {"verify_reachable": False}, "h2": {"verify_reachable": "no"}},
                               defaults) == {"reachable": False}
    # One host that keeps the default (true) needs the step.
    assert _rounds.batch_needs(features, {"h1": {"verify_reachable": False}, "h2": {}}, defaults) == {"reachable": True}


def test_any_variable_of_a_feature_turns_it_on():
    features = _rounds.check_features({"checks": ["verify_services", "verify_tasks_file", "verify_no_failed_units"]})
    defaults = {"verify_no_failed_units": True}
    off = {"verify_no_failed_units": False}
    assert _rounds.batch_needs(features, {"h1": dict(off), "h2": dict(off, verify_services=[])},
                               defaults) == {"checks": False}
    assert _rounds.batch_needs(features, {"h1": dict(off), "h2": dict(off, verify_tasks_file="checks.yml")},
                               defaults) == {"checks": True}


def test_an_unreadable_value_keeps_the_step_per_host():
    features = _rounds.check_features({"veto": "revert_or_prune_veto_tasks_file"})
    assert _rounds.batch_needs(features, {"h1": {"revert_or_prune_veto_tasks_file": _rounds.UNREADABLE}}) == {
        "veto": True}


@pytest.mark.parametrize("features", [None, {}, [], {"veto": ""}, {"veto": 3}, {"checks": []}, {"checks": ["a", ""]}])
def test_features_must_name_variables(features):
    with pytest.raises(ValueError):
        _rounds.check_features(features)


def _tasks(nodes):
    for node in nodes or []:
        yield node
        for key in ("block", "rescue", "always"):
            yield from _tasks(node.get(key))


def _batch_steps():
    with open(os.path.join(REPO, "playbooks", "maintenance.yml"), encoding="utf-8") as handle:
        play = yaml.safe_load(handle)[0]
    return [t for t in _tasks(play["tasks"]) if (t.get("prechange.snapshots.workflow") or {}).get("step") == "batch"]


def _role_defaults():
    defaults = {}
    for role in ("verify", "revert_or_prune", "snapshot"):
        with open(os.path.join(REPO, "roles", role, "defaults", "main.yml"), encoding="utf-8") as handle:
            defaults.update(yaml.safe_load(handle) or {})
    return defaults


def test_the_playbooks_batch_steps_know_every_default_that_is_on():
    """A variable whose role default turns its step on must be given as a default, with the role's value.

    Else a host that keeps the role's default would be taken as off, and its step would not run.
    """
    steps = _batch_steps()
    assert len(steps) == 3
    roles = _role_defaults()
    for task in steps:
        args = task["prechange.snapshots.workflow"]
        given = args.get("defaults") or {}
        for variables in _rounds.check_features(args["features"]).values():
            for variable in variables:
                if variable in roles and _rounds.is_on(roles[variable]):
                    assert given.get(variable) == roles[variable], (task["name"], variable)
                else:
                    assert variable not in given or given[variable] == roles.get(variable), (task["name"], variable)
