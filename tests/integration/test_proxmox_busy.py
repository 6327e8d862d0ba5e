# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Proxmox guest held by another job, through the engine and ProxmoxBackend against fakepve over HTTPS.

The locks are fakepve's own (a config lock set by its fault hook, and its vzdump task holding the 'backup'
lock); nothing of the provider is mocked. The playbook-level side is tasks/locks.yml of the
proxmox_snapshot target.

    python -m pytest tests/integration/test_proxmox_busy.py
"""

from __future__ import annotations

import os
import sys
import time

import pytest

pytest.importorskip("fakepve")
pytest.importorskip("proxmoxer")

# pylint: disable=wrong-import-position
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TESTS, "backends", "fakepve"))
from pve import pve, pve_cluster  # noqa: E402,F401  pylint: disable=unused-import

# The engine is driven directly here: the checkout as the collection (tests/run.sh makes this link).
sys.path.insert(0, os.path.join(os.path.dirname(TESTS), "build", "collections"))

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import GuestBusy  # noqa: E402
from ansible_collections.prechange.snapshots.plugins.module_utils._proxmox import ProxmoxBackend  # noqa: E402
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import (  # noqa: E402
    SnapshotParams,
    ensure,
)


def backend_for(cluster, **params):
    base = {"api_host": cluster.host, "api_port": cluster.port, "api_user": cluster.user,
            "api_password": cluster.password, "ca_path": cluster.cafile, "validate_certs": True,
            "force": False, "state": "present", "timeout": 600, "lock_timeout": 0}
    base.update(params)
    return ProxmoxBackend(base)


@pytest.mark.parametrize("check_mode", [False, True])
def test_backup_lock_is_refused_by_the_precheck_not_after_the_timeout(pve, check_mode):
    pve.pve.snapshot_lock(101, "backup")
    with backend_for(pve, name="while-locked") as backend:
        vm = backend.find_vm("web02")
        started = time.monotonic()
        with pytest.raises(GuestBusy) as err:
            ensure(backend, vm, SnapshotParams(state="present", name="while-locked", timeout=600, lock_timeout=0),
                   check_mode=check_mode)
        # A behaviour check, not a speed claim: refused long before the 600 s module timeout.
        assert time.monotonic() - started < 60
    assert err.value.message == (
        "Failed to create snapshot 'while-locked' of VM 'web02' on proxmox: the VM is busy with another job: "
        "locked (backup). Wait for it, or set lock_timeout to wait up to N seconds; nothing was changed.")
    assert err.value.details == {"busy": "locked (backup)"}
    assert "while-locked" not in pve.guest(101).snapshots
    assert not [r for r in pve.pve.requests if "snapshot" in str(r) and "POST" in str(r)]


def test_a_backup_task_that_ends_within_lock_timeout_is_waited_for(pve):
    # fakepve's vzdump task holds the 'backup' lock for 50 PVE seconds: 1 s at the fixture's time scale 0.02.
    upid = pve.run(pve.pve.backup(100, secs=50))
    with backend_for(pve, name="after-backup", lock_timeout=30) as backend:
        vm = backend.find_vm("web01")
        assert backend.busy(vm) == "locked (backup)"
        outcome = ensure(backend, vm, SnapshotParams(state="present", name="after-backup", timeout=600,
                                                     lock_timeout=30), check_mode=False)
    assert outcome.changed and outcome.snapshot.name == "after-backup"
    assert "after-backup" in pve.guest(100).snapshots
    assert pve.pve.tasks[upid]["status"] == "stopped"


def test_a_lock_held_through_lock_timeout_is_refused_after_that_bound(pve):
    pve.pve.snapshot_lock(108, "migrate")
    with backend_for(pve, state="absent", name="side", lock_timeout=1) as backend:
        vm = backend.find_vm("app01")
        started = time.monotonic()
        with pytest.raises(GuestBusy) as err:
            ensure(backend, vm, SnapshotParams(state="absent", name="side", timeout=600, lock_timeout=1),
                   check_mode=False)
        waited = time.monotonic() - started
    assert 1 <= waited < 60
    assert "Failed to delete snapshot 'side' of VM 'app01' on proxmox: the VM is still busy with another job " \
           "after waiting 1s: locked (migrate)" in err.value.message
    assert "side" in pve.guest(108).snapshots
