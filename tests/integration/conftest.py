# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Playbook-level integration tests: pytest starts the backends, ansible-playbook runs the targets.

A target is ``tests/integration/targets/<name>/`` in the usual ansible-test layout
(``aliases``, ``tasks/main.yml``); its tasks carry their own asserts. ``run_target`` runs it
as a role on localhost in a fresh ansible-playbook process, so every task is a new module
process against a backend that keeps state (real libvirtd, vcsim, fakepve).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TARGETS = os.path.join(HERE, "targets")
COLLECTIONS = os.path.join(REPO, "build", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "prechange", "snapshots")


def _ensure_collection_link():
    if not os.path.exists(LINK):
        os.makedirs(os.path.dirname(LINK), exist_ok=True)
        os.symlink(REPO, LINK)


def ansible_env(extra=None):
    """Environment for ansible-playbook: this checkout as the collection, quiet, deterministic."""
    _ensure_collection_link()
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
        "ANSIBLE_ROLES_PATH": TARGETS + os.pathsep + os.path.join(REPO, "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


def run_playbook(playbook, extra_vars=None, inventory=None, check=False, diff=False, env=None, timeout=1800,
                 verbosity=0):
    """Run ansible-playbook; return the CompletedProcess (stdout+stderr in .stdout)."""
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), playbook,
           "-e", "ansible_python_interpreter=%s" % sys.executable]
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    if inventory:
        cmd += ["-i", inventory]
    else:
        cmd += ["-i", "localhost,", "-c", "local"]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    return subprocess.run(cmd, env=ansible_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout, check=False)


def run_target(name, extra_vars=None, env=None):
    """Run targets/<name> as a role on localhost; fail the test with the output when it fails."""
    playbook = os.path.join(HERE, "run_target.yml")
    variables = {"target": name}
    variables.update(extra_vars or {})
    result = run_playbook(playbook, variables, env=env)
    if result.returncode != 0:
        pytest.fail("target %s failed (rc=%s):\n%s" % (name, result.returncode, result.stdout[-20000:]),
                    pytrace=False)
    return result


@pytest.fixture(scope="session")
def playbook_runner():
    return run_playbook


@pytest.fixture(scope="session")
def target_runner():
    return run_target
