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


def test_any_variable_of_a_feature_turns_it_on():
    features = _rounds.check_features({"checks": ["verify_services", "verify_tasks_file"]})
    assert _rounds.batch_needs(features, {"h1": {}, "h2": {"verify_services": []}}) == {"checks": False}
    assert _rounds.batch_needs(features, {"h1": {}, "h2": {"verify_tasks_file": "checks.yml"}}) == {"checks": True}


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


def _play():
    with open(os.path.join(REPO, "playbooks", "maintenance.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)[0]


def _role_tasks(role, name):
    with open(os.path.join(REPO, "roles", role, "tasks", name + ".yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle) or []


INCLUDES = ("ansible.builtin.include_tasks", "include_tasks", "ansible.builtin.include_role", "include_role")


def test_only_includes_get_a_templated_run_once():
    """The strategy reads a templated run_once as true when it registers a result, sets facts or fails a host.

    So only an include (or an import of includes) may be gated with one, and without register.
    """
    gated = [t for t in _tasks(_play()["tasks"]) if isinstance(t.get("run_once"), str)]
    assert len(gated) == 4, [t["name"] for t in gated]
    for task in gated:
        assert "register" not in task, task["name"]
        if "ansible.builtin.import_role" in task:
            imported = task["ansible.builtin.import_role"]
            inner = list(_tasks(_role_tasks(imported["name"].split(".")[-1], imported["tasks_from"])))
        else:
            inner = [task]
        for each in inner:
            assert any(key in each for key in INCLUDES) and "register" not in each, (task["name"], each["name"])


def test_each_gate_reads_a_feature_the_playbooks_batch_steps_decide():
    play = _play()
    decided = {}
    for task in _tasks(play["tasks"]):
        args = task.get("prechange.snapshots.workflow") or {}
        if args.get("step") == "batch":
            assert task.get("run_once") is True and task.get("register"), task["name"]
            for feature in _rounds.check_features(args["features"]):
                decided["%s.needs.%s" % (task["register"], feature)] = task["name"]
    for task in _tasks(play["tasks"]):
        gate = task.get("run_once")
        if isinstance(gate, str) and ".needs." in gate:
            assert any(key in gate for key in decided), (task["name"], gate)
