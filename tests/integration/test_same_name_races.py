# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two creates of one snapshot name on one VM at the same moment end with exactly one snapshot.

Each side has its own API session, as two ansible-playbook processes would. A barrier after each
side's first listing makes the race certain: both sides have seen no snapshot of that name before
either creates. Everything else is the real provider against the real backend (vcsim, fakepve, the
real libvirtd); the count of snapshots of the name is read back from the hypervisor's API.

vSphere accepts two snapshots of one name, so the engine settles it after creating (the snapshot made
first stays; the later creator deletes its own). libvirt and Proxmox refuse the second name themselves.

    python -m pytest tests/integration/test_same_name_races.py
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from conftest import _pve_api, _pve_guest, _vsphere, _vsphere_tree, _vsphere_vm  # pylint: disable=import-error

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(TESTS), "build", "collections"))
# pylint: disable=wrong-import-position
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import SnapshotError  # noqa: E402
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import (  # noqa: E402
    SnapshotParams,
    ensure,
)
from ansible_collections.prechange.snapshots.plugins.module_utils import _workflow as wf  # noqa: E402

PROVIDERS = ("vmware", "proxmox", "libvirt")
VSPHERE_VM = "DC0_C0_RP0_VM1"


def _backend_class(provider):
    # pylint: disable=import-outside-toplevel
    if provider == "vmware":
        pytest.importorskip("pyVmomi")
        from ansible_collections.prechange.snapshots.plugins.module_utils._vmware import VmwareBackend
        return VmwareBackend
    if provider == "proxmox":
        pytest.importorskip("proxmoxer")
        from ansible_collections.prechange.snapshots.plugins.module_utils._proxmox import ProxmoxBackend
        return ProxmoxBackend
    pytest.importorskip("libvirt")
    from ansible_collections.prechange.snapshots.plugins.module_utils._libvirt import LibvirtBackend
    return LibvirtBackend


@pytest.fixture(params=PROVIDERS)
def side(request):
    """``(make_backend(barrier), vm, names_on_platform)`` for one provider."""
    provider = request.param
    cls = _backend_class(provider)
    base = {"state": "present", "timeout": 120, "lock_timeout": 0}
    if provider == "vmware":
        sim = request.getfixturevalue("vcsim")
        base.update(hostname=sim["hostname"], port=sim["port"], username=sim["username"],
                    password=sim["password"], validate_certs=False)
        vm = VSPHERE_VM

        def names():
            si = _vsphere({"hostname": sim["hostname"], "port": sim["port"], "username": sim["username"],
                           "password": sim["password"]})
            return [node.name for node in _vsphere_tree(_vsphere_vm(si, vm))]
    elif provider == "proxmox":
        cluster = request.getfixturevalue("pve")
        base.update(api_host=cluster.host, api_port=cluster.port, api_user=cluster.user,
                    api_password=cluster.password, ca_path=cluster.cafile, validate_certs=True, force=False)
        vm = "web02"
        conn = {"host": cluster.host, "port": cluster.port, "user": cluster.user, "password": cluster.password,
                "cafile": cluster.cafile}

        def names():
            return [s["name"] for s in _pve_guest(_pve_api(conn), vm).snapshot.get() if s["name"] != "current"]
    else:
        uri = request.getfixturevalue("libvirtd")
        vm = request.getfixturevalue("errs_guest")("blank")
        base.update(uri=uri)

        def names():
            import libvirt  # pylint: disable=import-outside-toplevel
            conn = libvirt.open(uri)
            try:
                return [s.getName() for s in conn.lookupByName(vm).listAllSnapshots()]
            finally:
                conn.close()

    class Paused(cls):
        """The provider, stopping at a barrier after its first listing (the moment both sides saw none)."""

        barrier = None
        _listed = False

        def list_snapshots(self, vm):
            found = super().list_snapshots(vm)
            if self.barrier is not None and not self._listed:
                self._listed = True
                self.barrier.wait(timeout=60)
            return found

    def make(barrier):
        backend = Paused(dict(base))
        backend.barrier = barrier
        return backend

    yield provider, make, vm, names
    if provider == "vmware":
        with cls(dict(base)) as backend:
            record = backend.find_vm(vm)
            for snap in sorted(backend.list_snapshots(record), key=lambda s: -s.depth):
                if snap.name.startswith("race-"):
                    backend.delete(record, snap, False, 60)


def _race(make, action):
    """Run ``action(backend)`` on two sides at once; return each side's result or SnapshotError."""
    barrier = threading.Barrier(2)

    def one(_index):
        with make(barrier) as backend:
            try:
                return action(backend)
            except SnapshotError as error:
                return error

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, range(2)))


def test_two_creates_of_one_name_leave_one_snapshot(side):
    provider, make, vm, names = side
    name = "race-%s" % uuid.uuid4().hex[:8]

    def create(backend):
        return ensure(backend, backend.find_vm(vm), SnapshotParams(state="present", name=name, timeout=120), False)

    results = _race(make, create)
    assert names().count(name) == 1
    created = [r for r in results if not isinstance(r, SnapshotError) and r.action == "created"]
    assert len(created) == 1, results
    other = next(r for r in results if r is not created[0])
    if provider == "vmware":
        # The later creator deleted its own and reports the one that stayed.
        assert (other.action, other.changed, other.snapshot.id) == ("exists", False, created[0].snapshot.id)
    else:
        # The platform refused the second name; its own words reach the user.
        assert isinstance(other, SnapshotError) and "Failed to create snapshot '%s'" % name in other.message


def test_two_runs_with_one_run_id_leave_one_snapshot_and_the_other_run_is_told_why(side):
    provider, make, vm, names = side
    run_id = "race-%s" % uuid.uuid4().hex[:8]
    holders = iter(("holder-a", "holder-b"))
    lock = threading.Lock()

    def begin(backend):
        with lock:
            holder = next(holders)
        # The other run's create may still hold the guest (Proxmox locks it while snapshotting): wait for it.
        request = wf.BeginRequest(name=run_id, run_id=run_id, holder=holder, lease=timedelta(hours=1),
                                  timeout=120, lock_timeout=30)
        return wf.begin(backend, backend.find_vm(vm), request, check_mode=False)

    results = _race(make, begin)
    assert names().count(run_id) == 1, (provider, results)
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, wf.RunConflict)]
    assert len(won) == 1 and len(lost) == 1, results
    assert won[0]["action"] == "created"
    assert "same run" in lost[0].message, lost[0].message
    assert "nothing was changed" in lost[0].message or "the VM was not changed" in lost[0].message
