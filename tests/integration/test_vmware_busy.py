# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A vSphere VM with another task in progress, through the engine and VmwareBackend against vcsim.

The other task is a real simulator task kept running with the vcsim.taskDelay hook (see
tests/backends/vcsim/README.md): it shows in the VM's recentTask as running, and a second snapshot task
on the VM meanwhile fails with TaskInProgress, as on vCenter. Nothing of the provider is mocked.

    python -m pytest tests/integration/test_vmware_busy.py
"""

from __future__ import annotations

import os
import sys
import time

import pytest

pytest.importorskip("pyVmomi")

# pylint: disable=wrong-import-position,redefined-outer-name
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TESTS, "backends", "vcsim"))
from vcsim import set_task_hook, vcsim  # noqa: E402,F401  pylint: disable=unused-import

# The engine is driven directly here: the checkout as the collection (tests/run.sh makes this link).
sys.path.insert(0, os.path.join(os.path.dirname(TESTS), "build", "collections"))
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import GuestBusy  # noqa: E402
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import (  # noqa: E402
    CreateRequest,
    SnapshotParams,
    ensure,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._vmware import VmwareBackend  # noqa: E402

VM = "DC0_H0_VM1"
# How long the other job's snapshot task runs: long enough to be seen running, short enough to wait for.
OTHER_TASK_MS = 2000


def backend_for(sim, **params):
    base = {"hostname": sim["hostname"], "port": sim["port"], "username": sim["username"],
            "password": sim["password"], "validate_certs": False, "state": "present", "timeout": 600,
            "lock_timeout": 0}
    base.update(params)
    return VmwareBackend(base)


@pytest.fixture
def other_job(vcsim):
    """start() begins another client's CreateSnapshot task on VM, left running for OTHER_TASK_MS."""
    backend = backend_for(vcsim)
    vm = backend.find_vm(VM)
    started = []

    def start():
        set_task_hook(backend.si, vm.handle, "CreateSnapshot", delay_ms=OTHER_TASK_MS)
        task = vm.handle.CreateSnapshot_Task(name="other-job", description="", memory=False, quiesce=False)
        set_task_hook(backend.si, vm.handle, "CreateSnapshot", delay_ms=0)
        assert task.info.state == "running"
        started.append(task)
        return task

    yield start
    for task in started:
        deadline = time.monotonic() + 60
        while task.info.state in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
    set_task_hook(backend.si, vm.handle, "CreateSnapshot", delay_ms=0)
    task = vm.handle.RemoveAllSnapshots_Task()
    while task.info.state in ("queued", "running"):
        time.sleep(0.05)
    backend.close()


@pytest.mark.parametrize("check_mode", [False, True])
def test_running_task_is_refused_by_the_precheck_naming_it(vcsim, other_job, check_mode):
    task = other_job()
    with backend_for(vcsim) as backend:
        vm = backend.find_vm(VM)
        started = time.monotonic()
        with pytest.raises(GuestBusy) as err:
            ensure(backend, vm, SnapshotParams(state="present", name="pre", timeout=600), check_mode=check_mode)
        # A behaviour check, not a speed claim: refused long before the 600 s timeout.
        assert time.monotonic() - started < 60
    assert err.value.message == (
        "Failed to create snapshot 'pre' of VM '%s' on vmware: the VM is busy with another job: task "
        "'CreateSnapshot' (%s) running on the VM. Wait for it, or set lock_timeout to wait up to N seconds; "
        "nothing was changed." % (VM, task._moId))  # pylint: disable=protected-access


def test_running_task_that_ends_within_lock_timeout_is_waited_for(vcsim, other_job):
    other_job()
    with backend_for(vcsim, lock_timeout=60) as backend:
        vm = backend.find_vm(VM)
        assert backend.busy(vm) is not None
        outcome = ensure(backend, vm, SnapshotParams(state="present", name="pre", timeout=600, lock_timeout=60),
                         check_mode=False)
        assert backend.busy(vm) is None
    assert outcome.changed and outcome.snapshot.name == "pre"
    assert outcome.snapshot.parent == "other-job"


@pytest.mark.parametrize("lock_timeout", [0, 60])
def test_task_in_progress_fault_on_create_is_guest_busy_or_retried(vcsim, other_job, lock_timeout):
    """Past the precheck (the other task started just after it): vSphere's TaskInProgress fault."""
    with backend_for(vcsim, lock_timeout=lock_timeout) as backend:
        vm = backend.find_vm(VM)
        assert backend.busy(vm) is None
        task = other_job()
        request = CreateRequest(name="pre", description="", marker=None, memory=False, quiesce=False, strict=False,
                                timeout=600)
        if lock_timeout:
            created = backend.create(vm, request)
            assert created.name == "pre"
            return
        with pytest.raises(GuestBusy) as err:
            backend.create(vm, request)
    assert err.value.reason == (
        "the VM is busy with another job: another task (%s) in progress on the VM: Another task is already in "
        "progress." % task._moId)  # pylint: disable=protected-access
    assert err.value.vm == VM and err.value.provider == "vmware"
