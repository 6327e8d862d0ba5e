# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A libvirt domain held by another job, on the real libvirtd + QEMU (tests/backends/libvirtd).

Two real jobs, both started through libvirt's own API and kept running until the test ends them:
- a pull-mode backup (virDomainBackupBegin with an NBD socket): a domain job of type unbounded,
  operation 'backup', that lasts until it is aborted; libvirt's snapshot call meanwhile waits 30 s
  for the domain's job lock and fails with VIR_ERR_OPERATION_TIMEOUT "cannot acquire state change lock";
- a shallow block copy: a block job that stays in the mirroring ("ready") state until aborted;
  libvirt refuses a snapshot meanwhile with "block copy still active".
Nothing of the provider is mocked; the domains are pcstest-locks-* and are removed afterwards.

    python -m pytest tests/integration/test_libvirt_busy.py
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid

import pytest

libvirt = pytest.importorskip("libvirt")

# pylint: disable=wrong-import-position
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The engine is driven directly here: the checkout as the collection (tests/run.sh makes this link).
sys.path.insert(0, os.path.join(os.path.dirname(TESTS), "build", "collections"))

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import GuestBusy  # noqa: E402
from ansible_collections.prechange.snapshots.plugins.module_utils._libvirt import LibvirtBackend  # noqa: E402
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import (  # noqa: E402
    CreateRequest,
    SnapshotParams,
    ensure,
)


@pytest.fixture
def busy_guest(libvirtd, libvirt_guests):
    """A running blank guest named pcstest-locks-*, destroyed (snapshots, files) at teardown."""
    name = "%slocks-%s" % (libvirt_guests.PREFIX, uuid.uuid4().hex[:8])
    guest = libvirt_guests.create("blank", name, start=True, uri=libvirtd)
    conn = libvirt.open(libvirtd)
    try:
        yield guest, conn.lookupByName(name)
    finally:
        conn.close()
        libvirt_guests.destroy(name, uri=libvirtd)


def start_backup(guest, dom):
    """A pull-mode backup job: it runs until abortJob()."""
    xml = ("<domainbackup mode='pull'><server transport='unix' socket='%s'/><disks>"
           "<disk name='vda' backup='yes' type='file'><scratch file='%s'/></disk></disks></domainbackup>"
           % (os.path.join(guest.dir, "nbd.sock"), os.path.join(guest.dir, "scratch.qcow2")))
    dom.backupBegin(xml, None, 0)
    assert dom.jobStats(0)["type"] == libvirt.VIR_DOMAIN_JOB_UNBOUNDED


def start_block_copy(guest, dom):
    """A shallow block copy of vda, left in the mirroring state until blockJobAbort()."""
    xml = "<disk type='file'><source file='%s'/><driver type='qcow2'/></disk>" % os.path.join(guest.dir, "copy.qcow2")
    dom.blockCopy("vda", xml, None,
                  libvirt.VIR_DOMAIN_BLOCK_COPY_SHALLOW | libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB)
    assert dom.blockJobInfo("vda", 0)["type"] == libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_COPY


def backend_for(uri, **params):
    base = {"uri": uri, "state": "present", "timeout": 600, "lock_timeout": 0}
    base.update(params)
    return LibvirtBackend(base)


def present(name, **kw):
    return SnapshotParams(state="present", name=name, timeout=600, **kw)


@pytest.mark.parametrize("check_mode", [False, True])
def test_backup_job_is_refused_by_the_precheck_not_after_the_timeout(libvirtd, busy_guest, check_mode):
    guest, dom = busy_guest
    start_backup(guest, dom)
    try:
        with backend_for(libvirtd) as backend:
            vm = backend.find_vm(guest.name)
            started = time.monotonic()
            with pytest.raises(GuestBusy) as err:
                ensure(backend, vm, present("pre"), check_mode=check_mode)
            # A behaviour check, not a speed claim: refused long before the 600 s timeout
            # (and before libvirt's own 30 s wait for its job lock).
            assert time.monotonic() - started < 25
    finally:
        dom.abortJob()
    assert err.value.message.startswith(
        "Failed to create snapshot 'pre' of VM '%s' on libvirt: the VM is busy with another job: libvirt job "
        "'backup' running" % guest.name)
    assert err.value.message.endswith(
        "Wait for it, or set lock_timeout to wait up to N seconds; nothing was changed.")
    assert dom.snapshotListNames(0) == []


def test_backup_job_that_ends_within_lock_timeout_is_waited_for(libvirtd, busy_guest):
    guest, dom = busy_guest
    start_backup(guest, dom)
    ender = threading.Timer(1.0, dom.abortJob)
    ender.start()
    try:
        with backend_for(libvirtd, lock_timeout=60) as backend:
            vm = backend.find_vm(guest.name)
            assert backend.busy(vm).startswith("libvirt job 'backup' running")
            outcome = ensure(backend, vm, present("after-backup", lock_timeout=60), check_mode=False)
    finally:
        ender.join()
    assert outcome.changed and outcome.snapshot.name == "after-backup"
    assert dom.snapshotListNames(0) == ["after-backup"]


def test_block_copy_is_reported_and_refused(libvirtd, busy_guest):
    guest, dom = busy_guest
    start_block_copy(guest, dom)
    try:
        with backend_for(libvirtd) as backend:
            vm = backend.find_vm(guest.name)
            assert backend.busy(vm) == "libvirt block job 'copy' on vda running"
            with pytest.raises(GuestBusy) as err:
                ensure(backend, vm, present("pre"), check_mode=False)
            assert err.value.details == {"busy": "libvirt block job 'copy' on vda running"}
            # Past the precheck (a copy that started just after it): libvirt's own refusal is the same error.
            request = CreateRequest(name="pre", description="", marker=None, memory=True, quiesce=False,
                                    strict=False, timeout=600)
            with pytest.raises(GuestBusy) as direct:
                backend.create(vm, request)
            assert "libvirt block job running (block copy still active" in direct.value.reason
    finally:
        dom.blockJobAbort("vda", 0)
    assert dom.snapshotListNames(0) == []
    with backend_for(libvirtd) as backend:
        assert backend.busy(backend.find_vm(guest.name)) is None


def test_job_lock_timeout_from_libvirt_becomes_guest_busy(libvirtd, busy_guest):
    """libvirt waits 30 s for the domain's job lock on its own, then fails; that is GuestBusy too."""
    guest, dom = busy_guest
    start_backup(guest, dom)
    try:
        with backend_for(libvirtd) as backend:
            vm = backend.find_vm(guest.name)
            request = CreateRequest(name="pre", description="", marker=None, memory=True, quiesce=False,
                                    strict=False, timeout=600)
            with pytest.raises(GuestBusy) as err:
                backend.create(vm, request)
    finally:
        dom.abortJob()
    assert "cannot acquire state change lock" in err.value.reason
    assert err.value.details["busy"].startswith("libvirt job lock held by another job")
    assert dom.snapshotListNames(0) == []
