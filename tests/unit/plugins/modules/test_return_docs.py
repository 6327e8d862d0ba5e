# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The three providers' RETURN documentation says the same thing for the same key.

A doc fragment cannot hold RETURN, and DOCUMENTATION/RETURN must be literal YAML, so the shared parts
are written out in every module; this keeps them in step. Whether the modules really return what
RETURN says is tests/integration/test_module_contract.py, against the real backends.
"""

from __future__ import annotations

import importlib

import pytest
import yaml

PROVIDERS = ("libvirt", "proxmox", "vmware")
MODULES = "ansible_collections.prechange.snapshots.plugins.modules."

# Keys whose meaning is the platform's own, so their description names it (ids, what 'current' means
# on Proxmox, what the platform records about memory, quiescing and power in a snapshot).
PROVIDER_WORDED = {
    "vm.name", "vm.id", "snapshot.id", "snapshot.created", "snapshot.current", "snapshot.memory",
    "snapshot.quiesced", "snapshot.power_state",
    # How a snapshot's size is measured differs by platform (issue 12).
    "snapshot.size_bytes", "snapshot.size_note",
}


def _docs(module):
    return yaml.safe_load(importlib.import_module(MODULES + module).RETURN)


def _flatten(docs, path=""):
    """{path: entry} with ``[]`` for list elements; the entry without its ``contains``."""
    flat = {}
    for key, doc in docs.items():
        where = path + key
        flat[where] = {k: v for k, v in doc.items() if k != "contains"}
        if "contains" in doc:
            flat.update(_flatten(doc["contains"], where + ("[]." if doc.get("type") == "list" else ".")))
    return flat


def _generic(path):
    """The path with the container it sits in removed: results[].vm.id and vms[].vm.id are vm.id."""
    for prefix in ("results[].", "vms[]."):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return path.replace("snapshots[].", "snapshot.")


@pytest.mark.parametrize("kind", ["snapshot", "snapshot_info"])
def test_a_shared_key_has_one_type_and_one_description(kind):
    flat = {p: _flatten(_docs("%s_%s" % (p, kind))) for p in PROVIDERS}
    shared = set.intersection(*(set(f) for f in flat.values()))
    assert {"vm.power_state", "error", "provider"} <= shared
    problems = []
    for path in sorted(shared):
        for field in ("type", "elements", "returned"):
            values = {p: flat[p][path].get(field) for p in PROVIDERS}
            if len(set(map(str, values.values()))) > 1:
                problems.append("%s %s differs: %s" % (path, field, values))
        if _generic(path) not in PROVIDER_WORDED:
            texts = {p: flat[p][path].get("description") for p in PROVIDERS}
            if len(set(map(str, texts.values()))) > 1:
                problems.append("%s description differs: %s" % (path, texts))
    assert problems == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_key_of_one_module_is_documented_alike_wherever_it_appears(provider):
    """snapshot, snapshots[] and results[].snapshot are the same record, and vm is the same VM."""
    flat = _flatten(_docs(provider + "_snapshot"))
    info = _flatten(_docs(provider + "_snapshot_info"))
    problems = []
    for path, doc in flat.items():
        for other in (p for p in list(flat) + list(info) if p != path and _generic(p) == _generic(path)):
            twin = flat.get(other) or info[other]
            fields = ["type", "elements"]
            # Containers (vm, snapshot, results[].vm) describe their own place; their keys are one record.
            if "." in _generic(path) and not (other in info and _generic(path) == "vm.power_state"):
                fields.append("description")  # power_state: 'when the task ended' here, 'as read' in a listing
            for field in fields:
                if doc.get(field) != twin.get(field):
                    problems.append("%s and %s differ in %s" % (path, other, field))
    assert problems == []


def test_power_state_means_after_the_task_everywhere():
    for provider in PROVIDERS:
        text = _flatten(_docs(provider + "_snapshot"))["vm.power_state"]["description"]
        assert "when the task ended" in text and "before" not in text
