# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt provider on libvirt's own test driver (in-process, no daemon, real libvirt code).

Each test opens test:///<fixture> and so gets a private copy of the node. The test driver
is more permissive than QEMU (backends.md): it accepts internal snapshots of raw disks and
reverts shut-off snapshots without starting the domain. So prechecks are proven here by
the *absence* of any change, and the QEMU-specific behaviour by the integration tests on a
real libvirtd.
"""

from __future__ import annotations

import os

import pytest

libvirt = pytest.importorskip("libvirt")

# pylint: disable=wrong-import-position
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import (  # noqa: E402
    ConnectionFailed,
    GuestBusy,
    PrecheckFailed,
    SnapshotNotFound,
    VmNotFound,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._libvirt import LibvirtBackend  # noqa: E402
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import make_marker  # noqa: E402
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import (  # noqa: E402
    SnapshotParams,
    ensure,
    ensure_many,
)

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "libvirt_test_node.xml")


@pytest.fixture
def backend():
    warnings = []
    with LibvirtBackend({"uri": "test://" + FIXTURE}, warn=warnings.append) as b:
        b.warnings = warnings
        yield b


def present(name, **kw):
    kw.setdefault("marker", make_marker(run="run-1", ticket="CHG1"))
    return SnapshotParams(state="present", name=name, **kw)


def snapshot_names(backend, vm):
    return sorted(s.name for s in backend.list_snapshots(backend.find_vm(vm)))


def test_create_is_idempotent_and_carries_the_marker(backend):
    vm = backend.find_vm("web01")
    first = ensure(backend, vm, present("pre", description="before patching"), check_mode=False)
    second = ensure(backend, vm, present("pre", description="before patching"), check_mode=False)
    assert (first.changed, second.changed) == (True, False)
    snap = second.snapshot
    assert snap.memory is True and snap.current is True and snap.extra["location"] == "internal"
    assert snap.description == "before patching"
    assert snap.owner["run"] == "run-1" and snap.owner["ticket"] == "CHG1"
    raw = vm.handle.snapshotLookupByName("pre").getXMLDesc(0)
    assert "[prechange.snapshots v1 run=run-1" in raw


def test_vm_by_uuid(backend):
    assert backend.find_vm("11111111-2222-3333-4444-555555555502").name == "db01"


def test_missing_vm(backend):
    with pytest.raises(VmNotFound) as info:
        backend.find_vm("nope")
    assert "no domain with this name or UUID exists at test://" in str(info.value)


def test_bad_uri_is_a_clear_connection_error():
    with pytest.raises(ConnectionFailed, match="cannot connect to test:///nonexistent/file.xml"):
        LibvirtBackend({"uri": "test:///nonexistent/file.xml"})


def test_shut_off_guest_gets_disk_only_snapshot(backend):
    vm = backend.find_vm("db01")
    outcome = ensure(backend, vm, present("pre"), check_mode=False)
    assert outcome.snapshot.memory is False and outcome.snapshot.power_state == "stopped"


def test_memory_on_shut_off_guest_refused(backend):
    vm = backend.find_vm("db01")
    with pytest.raises(PrecheckFailed) as info:
        ensure(backend, vm, present("pre", memory=True), check_mode=False)
    assert str(info.value) == (
        "Failed to create snapshot 'pre' of VM 'db01' on libvirt: memory state was requested but the VM is "
        "stopped. Start the VM or set memory to false for a disk-only snapshot.")
    assert snapshot_names(backend, "db01") == []


@pytest.mark.parametrize("vm,params,message", [
    ("rawdisk", {}, "disk vda (/var/lib/libvirt/images/rawdisk.img) is a raw image and internal snapshots need "
                    "qcow2. Use location: external, or convert the disk to qcow2; nothing was changed."),
    ("uefi", {}, "the VM boots UEFI firmware from pflash"),
    ("web01", {"quiesce": True}, "libvirt quiesces only disk-only external snapshots"),
    ("web01", {"memory": False}, "QEMU cannot take a disk-only internal snapshot of a running VM"),
    ("web01", {"quiesce": True, "options": {"location": "external"}},
     "quiesce needs the QEMU guest agent and the VM has no org.qemu.guest_agent.0 channel"),
    ("tree", {"options": {"location": "external"}}, "the VM already has internal snapshots"),
])
@pytest.mark.parametrize("check_mode", [True, False])
def test_prechecks_refuse_before_any_change(backend, vm, params, message, check_mode):
    before = snapshot_names(backend, vm)
    with pytest.raises(PrecheckFailed) as info:
        ensure(backend, backend.find_vm(vm), present("pre", **params), check_mode=check_mode)
    assert message in str(info.value)
    assert str(info.value).startswith("Failed to create snapshot 'pre' of VM '%s' on libvirt: " % vm)
    assert snapshot_names(backend, vm) == before


def test_tree_records(backend):
    snaps = {s.name: s for s in backend.list_snapshots(backend.find_vm("tree"))}
    assert snaps["root"].children == ["left", "right"] and snaps["root"].depth == 1
    assert snaps["right"].parent == "root" and snaps["right"].depth == 2
    assert snaps["left"].current and not snaps["right"].current
    assert snaps["root"].owner is None and snaps["root"].description == "hand made"
    assert snaps["right"].owner["run"] == "r-old" and snaps["right"].description == "Before kernel update"
    assert snaps["root"].to_result()["created"] == "2023-11-14T22:13:20Z"


def test_revert_to_sibling_branch(backend):
    vm = backend.find_vm("tree")
    outcome = ensure(backend, vm, SnapshotParams(state="reverted", name="right"), check_mode=False)
    assert outcome.changed and outcome.snapshot.name == "right" and outcome.snapshot.current
    assert vm.handle.snapshotCurrent(0).getName() == "right"


def test_revert_check_mode_changes_nothing(backend):
    vm = backend.find_vm("tree")
    outcome = ensure(backend, vm, SnapshotParams(state="reverted", name="right"), check_mode=True)
    assert outcome.changed
    assert vm.handle.snapshotCurrent(0).getName() == "left"


def test_revert_missing_snapshot(backend):
    with pytest.raises(SnapshotNotFound) as info:
        ensure(backend, backend.find_vm("tree"), SnapshotParams(state="reverted", name="gone"), check_mode=False)
    assert str(info.value) == ("Failed to revert snapshot 'gone' of VM 'tree' on libvirt: no snapshot with this "
                               "name exists (existing: root, left, right). Check the snapshot name; nothing was "
                               "changed.")


def test_revert_power_state_stopped(backend):
    vm = backend.find_vm("tree")
    outcome = ensure(backend, vm, SnapshotParams(state="reverted", name="root", revert_power_state="stopped"),
                     check_mode=False)
    assert outcome.vm.power_state == "stopped"


def test_delete_reparents_children_or_removes_them(backend):
    vm = backend.find_vm("tree")
    outcome = ensure(backend, vm, SnapshotParams(state="absent", name="root"), check_mode=False)
    assert outcome.after == ["left", "right"]
    assert {s.parent for s in backend.list_snapshots(vm)} == {None}

    other = LibvirtBackend({"uri": "test://" + FIXTURE})
    vm2 = other.find_vm("tree")
    outcome = ensure(other, vm2, SnapshotParams(state="absent", name="root", remove_children=True), check_mode=False)
    assert outcome.after == [] and other.list_snapshots(vm2) == []
    other.close()


def test_delete_all_expired_touches_only_ours(backend):
    vm = backend.find_vm("tree")
    outcome = ensure(backend, vm, SnapshotParams(state="absent", delete_all="expired"), check_mode=False)
    assert [s.name for s in outcome.snapshots] == ["right"]
    assert snapshot_names(backend, "tree") == ["left", "root"]


def test_redescribe_keeps_marker(backend):
    vm = backend.find_vm("tree")
    outcome = ensure(backend, vm, SnapshotParams(state="present", name="right", description="new text"),
                     check_mode=False)
    assert outcome.action == "updated"
    snap = {s.name: s for s in backend.list_snapshots(vm)}["right"]
    assert snap.description == "new text" and snap.owner["run"] == "r-old"


def test_batch(backend):
    results = ensure_many(backend, ["web01", "ghost", "db01"], present("batch"), False, concurrency=3)
    assert [r.error is None for r in results] == [True, False, True]
    assert isinstance(results[1].error, VmNotFound)
    assert snapshot_names(backend, "web01") == ["batch"] and snapshot_names(backend, "db01") == ["batch"]


def test_blocking_call_times_out_with_the_job_state(backend):
    """libvirt calls are synchronous; the provider gives up after 'timeout' and says where it was.

    A sleeping callable stands in for a slow libvirt call (the test driver finishes every job
    at once); the state is read from the real test driver, which keeps no job statistics.
    """
    import time

    from ansible_collections.prechange.snapshots.plugins.module_utils._errors import SnapshotTimeout

    vm = backend.find_vm("web01")
    with pytest.raises(SnapshotTimeout) as info:
        backend._call(lambda: time.sleep(2), vm, 0.1, "create")  # pylint: disable=protected-access
    assert "timed out after 0.1s; last state: domain running, no job statistics" in str(info.value)
    assert "virsh domjobinfo web01" in str(info.value)


def test_running_job_refuses_before_any_change(backend):
    """A domain busy with another job (backup, migration) is refused up front (real libvirtd: test_libvirt_busy).

    The test driver keeps no job statistics, so this wraps its real domain and answers
    jobStats() as libvirt documents for a running job: type 2 (VIR_DOMAIN_JOB_UNBOUNDED).
    """
    vm = backend.find_vm("web01")
    real = vm.handle

    class Busy(object):
        def __getattr__(self, name):
            return getattr(real, name)

        def jobStats(self, flags=0):  # pylint: disable=invalid-name,unused-argument
            return {"type": 2, "operation": 7, "time_elapsed": 1500}

    vm.handle = Busy()
    with pytest.raises(GuestBusy) as info:
        ensure(backend, vm, present("pre"), check_mode=False)
    assert "the VM is busy with another job: libvirt job 'snapshot revert' running for 1 s" in str(info.value)
    assert real.listAllSnapshots(0) == []


@pytest.mark.parametrize("state,what", [("reverted", "reverted to"), ("absent", "deleted")])
def test_internal_snapshot_behind_a_moved_disk_is_refused(backend, state, what):
    vm = backend.find_vm("moved")
    with pytest.raises(PrecheckFailed) as info:
        ensure(backend, vm, SnapshotParams(state=state, name="before-move"), check_mode=False)
    assert ("disk vda now runs on /var/lib/libvirt/images/moved.overlay.qcow2, but the internal snapshot is "
            "inside /var/lib/libvirt/images/moved.qcow2, so it can no longer be %s" % what) in str(info.value)
    assert snapshot_names(backend, "moved") == ["before-move"]


def test_disk_sources_recorded_per_snapshot(backend):
    snap = backend.list_snapshots(backend.find_vm("tree"))[0]
    assert snap.handle["disk_sources"] == {"vda": "/var/lib/libvirt/images/tree.qcow2"}


def test_set_description_replaces_only_the_snapshots_own_description():
    from ansible_collections.prechange.snapshots.plugins.module_utils._libvirt import set_description
    xml = ("<domainsnapshot>\n  <name>s1</name>\n  <description>old</description>\n"
           "  <domain type='qemu'><description>the VM's</description>"
           "<metadata><ns:guest xmlns:ns=\"http://x/\"/></metadata></domain>\n</domainsnapshot>")
    out = set_description(xml, "new & <marked>")
    assert "<description>new &amp; &lt;marked&gt;</description>" in out
    # The embedded domain definition is byte for byte what libvirt gave (no namespace rewrite).
    assert out.split("<domain ", 1)[1] == xml.split("<domain ", 1)[1]
    added = set_description("<domainsnapshot>\n  <name>s1</name>\n  <domain type='qemu'/>\n</domainsnapshot>", "x")
    assert "</name>\n  <description>x</description>" in added


def test_snapshot_domain_xml_prefers_the_stored_persistent_definition():
    """The clone's definition comes from the snapshot: <inactiveDomain> (libvirt 7.0+, a running domain's
    persistent definition) over <domain> (the live one); None when the snapshot stored none (the fallback)."""
    from ansible_collections.prechange.snapshots.plugins.module_utils._libvirt import snapshot_domain_xml  # noqa: E501 pylint: disable=import-outside-toplevel
    live = "<domain type='kvm' id='7'><name>web01</name><memory unit='KiB'>2097152</memory><devices/></domain>"
    inactive = "<inactiveDomain type='kvm'><name>web01</name><memory unit='KiB'>1048576</memory><devices/></inactiveDomain>"
    both = snapshot_domain_xml("<domainsnapshot><name>s</name>%s%s</domainsnapshot>" % (live, inactive))
    assert both.startswith("<domain type=\"kvm\">") and "1048576" in both and "inactiveDomain" not in both
    assert "2097152" in snapshot_domain_xml("<domainsnapshot><name>s</name>%s</domainsnapshot>" % live)
    assert snapshot_domain_xml("<domainsnapshot><name>s</name><state>shutoff</state></domainsnapshot>") is None
