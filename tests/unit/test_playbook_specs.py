# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbooks' variables are documented where ``ansible-doc`` shows them, and validated.

``roles/playbooks/meta/argument_specs.yml`` has one entry point per playbook (``ansible-doc -t role
prechange.snapshots.playbooks -e maintenance``). These tests keep that contract true:

* every playbook has its entry point and imports it as the first task of its first play (so Ansible
  validates the variables before anything else runs);
* every variable a playbook (or a tasks file it includes) reads is documented: in its entry point, in
  the argument spec of a role it runs, or as a documented output of such a role. A variable added to a
  playbook without documentation fails here;
* a variable documented both for the playbook and for a role has the same type, choices and default.

The refusal of a wrong value at run time is tested in tests/integration/test_playbook_variables.py.
"""

from __future__ import annotations

import glob
import os
import re

import pytest
import yaml
from jinja2 import Environment, meta

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOKS = sorted(glob.glob(os.path.join(REPO, "playbooks", "*.yml")))
SPEC = os.path.join(REPO, "roles", "playbooks", "meta", "argument_specs.yml")

# Keys whose string value is a bare Jinja expression rather than a template.
EXPRESSION_KEYS = {"when", "failed_when", "changed_when", "until"}
# Names Ansible or Jinja provide.
SPECIAL = {
    "hostvars", "groups", "group_names", "inventory_hostname", "inventory_hostname_short", "playbook_dir",
    "role_path", "omit", "lookup", "query", "q", "now", "undef", "range", "dict", "lipsum", "namespace",
    "ansible_failed_task", "ansible_failed_result", "ansible_check_mode", "ansible_play_batch",
    "ansible_play_hosts", "ansible_play_hosts_all", "ansible_facts", "ansible_loop", "item", "true", "false",
    "none", "True", "False", "None",
}
# Facts the roles publish (documented in their READMEs and argument spec descriptions) that a playbook
# reads after running the role.
ROLE_OUTPUTS = {
    "snapshot": {"snapshot_record", "snapshot_run_id", "snapshot_warnings"},
    "revert_or_prune": {"revert_or_prune_result", "revert_or_prune_summary", "revert_or_prune_record",
                        "revert_or_prune_reverify_passed", "revert_or_prune_reverify_failures",
                        "revert_or_prune_pruned"},
    "verify": {"verify_passed", "verify_verdict", "verify_failures", "verify_skipped", "verify_duration_seconds"},
    "patch": {"patch_changed", "patch_packages_changed", "patch_user_changes", "patch_reboot_required",
              "patch_rebooted", "patch_duration_seconds"},
    "guard": {"guard_change_failed", "guard_change_error"},
}


class _Any(dict):
    """Every filter and test name exists (Ansible's are not Jinja's): only the variable names matter."""

    def __contains__(self, key):
        return True

    def __missing__(self, key):
        return lambda *args, **kwargs: None

    def get(self, key, default=None):
        return self[key]


# Variables a playbook sets on its own tasks as labels, which no user sets and nothing reads as input.
LABELS = {"prechange_stage"}
JINJA = Environment()
JINJA.filters = _Any(JINJA.filters)
JINJA.tests = _Any(JINJA.tests)


def _load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _spec():
    return _load(SPEC)["argument_specs"]


def _role_specs(role):
    path = os.path.join(REPO, "roles", role, "meta", "argument_specs.yml")
    return _load(path)["argument_specs"] if os.path.exists(path) else {}


def _names(text, expression):
    source = "{{ %s }}" % text if expression else text
    return meta.find_undeclared_variables(JINJA.parse(source))


def _walk(node, key=None):
    """Every variable name a YAML tree reads in its templates and conditions."""
    found = set()
    if isinstance(node, dict):
        for k, v in node.items():
            found |= _walk(v, k)
    elif isinstance(node, list):
        for v in node:
            found |= _walk(v, key)
    elif isinstance(node, str):
        if key in EXPRESSION_KEYS:
            found |= _names(node, True)
        elif "{{" in node or "{%" in node:
            found |= _names(node, False)
    return found


def _set_by(node):
    """Variables the playbook itself defines (play vars, task vars, set_fact, register)."""
    found = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "vars" and isinstance(v, dict):
                found |= set(v)
            elif k in ("ansible.builtin.set_fact", "set_fact") and isinstance(v, dict):
                found |= set(v)
            elif k == "register" and isinstance(v, str):
                found.add(v)
            found |= _set_by(v)
    elif isinstance(node, list):
        for v in node:
            found |= _set_by(v)
    return found


def _files(playbook):
    """The playbook and the tasks files it includes by a literal path of its own."""
    files = [playbook]
    text = open(playbook, encoding="utf-8").read()
    for rel in re.findall(r"'(tasks/[\w.-]+\.yml)'", text):
        files.append(os.path.join(os.path.dirname(playbook), rel))
    return files


def _roles(texts):
    """The collection's roles a playbook runs (not the playbooks role: only the playbook's own entry counts)."""
    return sorted(set(re.findall(r"name: prechange\.snapshots\.(\w+)", "\n".join(texts))) & set(ROLE_OUTPUTS))


def test_every_playbook_has_an_entry_point_it_validates_first():
    spec = _spec()
    assert sorted(spec) == sorted(os.path.basename(p)[:-4] for p in PLAYBOOKS)
    for path in PLAYBOOKS:
        name = os.path.basename(path)[:-4]
        first = _load(path)[0]["tasks"][0]
        assert first.get("ansible.builtin.import_role") == {"name": "prechange.snapshots.playbooks",
                                                            "tasks_from": name}, (
            "%s: the first task of the first play must import the role prechange.snapshots.playbooks with "
            "tasks_from: %s (the validation of the playbook's variables)" % (path, name))
        assert os.path.exists(os.path.join(REPO, "roles", "playbooks", "tasks", name + ".yml"))


@pytest.mark.parametrize("path", PLAYBOOKS, ids=os.path.basename)
def test_every_variable_a_playbook_reads_is_documented(path):
    name = os.path.basename(path)[:-4]
    files = _files(path)
    trees = [_load(f) for f in files]
    texts = [open(f, encoding="utf-8").read() for f in files]
    read = set().union(*(_walk(t) for t in trees))
    defined = set().union(*(_set_by(t) for t in trees))
    documented = set(_spec()[name].get("options") or {})
    roles = _roles(texts)
    for role in roles:
        for entry in _role_specs(role).values():
            documented |= set(entry.get("options") or {})
        documented |= ROLE_OUTPUTS.get(role, set())
    # A variable the playbook sets itself (play vars, task vars, set_fact) can still be set by the user
    # (-e wins), so it is documented too unless it is internal (__*).
    missing = sorted(v for v in read | defined
                     if not v.startswith("__") and v not in SPECIAL | LABELS and v not in documented)
    assert not missing, (
        "%s reads variables that are documented nowhere ansible-doc shows them: %s. Add them to entry point "
        "'%s' of roles/playbooks/meta/argument_specs.yml (or to the spec of the role that reads them)"
        % (os.path.basename(path), ", ".join(missing), name))


def test_options_shared_with_a_role_agree():
    roles = {os.path.basename(os.path.dirname(os.path.dirname(p)))
             for p in glob.glob(os.path.join(REPO, "roles", "*", "meta", "argument_specs.yml"))} - {"playbooks"}
    role_options = {}
    for role in sorted(roles):
        for entry, spec in _role_specs(role).items():
            for option, doc in (spec.get("options") or {}).items():
                role_options.setdefault(option, []).append(("%s:%s" % (role, entry), doc))
    for entry, spec in _spec().items():
        for option, doc in (spec.get("options") or {}).items():
            for where, other in role_options.get(option, []):
                for key in ("type", "choices", "default", "elements"):
                    mine, theirs = doc.get(key), other.get(key)
                    if key == "choices" and mine and theirs:
                        mine, theirs = sorted(mine), sorted(theirs)
                    assert mine == theirs, "%s of option %s: playbooks:%s has %r, %s has %r" % (
                        key, option, entry, mine, where, theirs)


def test_the_inventory_variables_are_the_providers_connection_options():
    """The documented prechange_<provider>_<option> variables are options of that provider's module."""
    pytest.importorskip("ansible")
    from ansible_collections.prechange.snapshots.plugins.module_utils import _libvirt, _proxmox, _vmware

    options = {
        "libvirt": set(_libvirt.connection_argument_spec()) | set(_libvirt.snapshot_extra_spec()),
        "vmware": set(_vmware.connection_argument_spec()) | set(_vmware.snapshot_extra_spec()),
        "proxmox": set(_proxmox.connection_argument_spec()) | set(_proxmox.snapshot_extra_spec()),
    }
    for entry, spec in _spec().items():
        for option in spec.get("options") or {}:
            match = re.match(r"prechange_(libvirt|vmware|proxmox)_(\w+)$", option)
            if match:
                assert match.group(2) in options[match.group(1)], "%s:%s is not an option of %s_snapshot" % (
                    entry, option, match.group(1))
