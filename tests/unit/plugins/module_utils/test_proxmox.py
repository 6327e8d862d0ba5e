# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proxmox provider logic, without a server.

The pure helpers (name rules, storage and mount prechecks, list parsing, task texts) are tested on
literal PVE answers. The backend's loops (lookup, lock retries, task waiting) run against ``FakeApi``,
a scripted stand-in for proxmoxer's ``ProxmoxAPI``. What the fake assumes of real PVE 8/9, each also
exercised for real against fakepve in tests/integration/test_proxmox_playbooks.py:

- ``GET /cluster/resources?type=vm`` lists QEMU and LXC guests with vmid, name, node, type, status;
- a snapshot list is unordered and ends with the ``current`` entry, whose ``parent`` is the current snapshot;
- ``POST .../snapshot`` (and delete, rollback) answer a UPID whose second field is the node;
- a task's status is ``running`` until it is ``stopped`` with ``exitstatus`` ``OK`` or the error text;
- a locked guest fails its task with ``VM is locked (<lock>)`` (``CT is locked`` for containers);
- proxmoxer raises ``ResourceException(status, reason, content, errors=...)`` for HTTP errors.
"""

from __future__ import annotations

import pytest

pytest.importorskip("proxmoxer")

# pylint: disable=wrong-import-position
from proxmoxer.core import ResourceException  # noqa: E402

from ansible_collections.prechange.snapshots.plugins.module_utils import _proxmox  # noqa: E402
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import (  # noqa: E402
    AmbiguousVm,
    ConnectionFailed,
    GuestBusy,
    InvalidRequest,
    PrecheckFailed,
    ProviderError,
    SnapshotTimeout,
    VmNotFound,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import (  # noqa: E402
    join_description,
    make_marker,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._proxmox import (  # noqa: E402
    LXC,
    QEMU,
    ProxmoxBackend,
    check_snapshot_name,
    guest_volumes,
    lock_name,
    parse_snapshot_list,
    power_state_of,
    snapshot_blockers,
    task_failure_text,
    upid_node,
    zfs_newer_snapshots,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import (  # noqa: E402
    SnapshotParams,
    ensure,
    ensure_many,
)

STORAGES = {
    "local-lvm": {"storage": "local-lvm", "type": "lvmthin"},
    "local-zfs": {"storage": "local-zfs", "type": "zfspool"},
    "local": {"storage": "local", "type": "dir"},
    "nfs": {"storage": "nfs", "type": "nfs"},
    "san": {"storage": "san", "type": "lvm"},
    "san9": {"storage": "san9", "type": "lvm", "snapshot-as-volume-chain": 1},
    "lun": {"storage": "lun", "type": "iscsi"},
    "mystery": {"storage": "mystery", "type": "someplugin"},
}


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ab", "Before-Patch", "pre_2026-11-22", "a" * 40, "snap1"])
def test_names_proxmox_accepts(name):
    assert check_snapshot_name(name, QEMU) is None
    assert check_snapshot_name(name, LXC) is None


@pytest.mark.parametrize("name, why", [
    ("", "required"),
    ("a", "at least 2"),
    ("a" * 41, "at most 40"),
    ("1st", "start with a letter"),
    ("-x", "start with a letter"),
    ("has space", "' '"),
    ("dots.are.not", "'.'"),
    ("ümlaut", "start with a letter"),
    ("caféé", "'é'"),
    ("current", "reserves"),
])
def test_names_proxmox_refuses_say_why(name, why):
    assert why in check_snapshot_name(name, QEMU)


def test_reserved_names_depend_on_the_guest_kind():
    # PVE: 'pending' is a VM config section (compared without case), 'vzdump' the backup's own CT snapshot.
    assert "reserves" in check_snapshot_name("pending", QEMU)
    assert "reserves" in check_snapshot_name("Pending", QEMU)
    assert check_snapshot_name("pending", LXC) is None
    assert "reserves" in check_snapshot_name("vzdump", LXC)
    assert check_snapshot_name("vzdump", QEMU) is None
    assert check_snapshot_name("pending", None) is None  # before the kind is known: only 'current'


# --- disks, storage, mounts -------------------------------------------------------------------


def test_guest_volumes_skip_cdroms_and_empty_drives():
    config = {"scsi0": "local-lvm:vm-100-disk-0,size=32G", "ide2": "local:iso/debian.iso,media=cdrom",
              "ide0": "none,media=cdrom", "net0": "virtio=AA:BB,bridge=vmbr0", "efidisk0": "local-lvm:vm-100-disk-1",
              "unused0": "local-lvm:vm-100-disk-9"}
    assert [k for k, _v, _p in guest_volumes(QEMU, config)] == ["efidisk0", "scsi0"]


def test_snapshot_blockers_by_storage_and_format():
    ok = {"scsi0": "local-lvm:vm-1-disk-0", "virtio1": "local-zfs:vm-1-disk-1", "sata0": "local:1/vm-1-disk-2.qcow2",
          "scsi1": "nfs:1/vm-1-disk-3.qcow2", "scsi2": "mystery:vm-1-disk-4", "scsi3": "san9:vm-1-disk-5.qcow2"}
    assert snapshot_blockers(QEMU, ok, STORAGES) == []
    bad = {"scsi0": "local:1/vm-1-disk-0.raw", "scsi1": "nfs:1/vm-1-disk-1.vmdk", "scsi2": "san:vm-1-disk-2",
           "scsi3": "lun:0.0.1.scsi-abc"}
    reasons = snapshot_blockers(QEMU, bad, STORAGES)
    assert len(reasons) == 4
    assert "raw volume on dir storage 'local'" in reasons[0]
    assert "vmdk volume on nfs storage" in reasons[1]
    assert "lvm storage 'san'" in reasons[2]
    assert "iscsi storage 'lun'" in reasons[3]


def test_container_bind_and_device_mounts_block_snapshots():
    config = {"rootfs": "local-lvm:vm-200-disk-0,size=8G", "mp0": "/srv/share,mp=/data",
              "mp1": "/dev/sdb1,mp=/mnt/disk", "mp2": "local-zfs:subvol-200-disk-1,mp=/var"}
    reasons = snapshot_blockers(LXC, config, STORAGES)
    assert reasons == ["mp0 is a bind mount of the host path /srv/share, which cannot be snapshotted",
                       "mp1 is a device mount of /dev/sdb1, which cannot be snapshotted"]
    # A container volume on a directory storage (raw image or subvol directory) has no snapshots either.
    assert snapshot_blockers(LXC, {"rootfs": "local:200/vm-200-disk-0.raw"}, STORAGES)
    assert snapshot_blockers(LXC, {"rootfs": "local:subvol-200-disk-0"}, STORAGES)


def test_zfs_rollback_only_to_the_latest():
    items = [{"name": "a", "snaptime": 100}, {"name": "b", "snaptime": 200, "parent": "a"},
             {"name": "current", "parent": "b"}]
    snaps = {s.name: s for s in parse_snapshot_list(items)}
    zfs = {"rootfs": "local-zfs:subvol-203-disk-0"}
    assert zfs_newer_snapshots(LXC, zfs, STORAGES, list(snaps.values()), snaps["a"]) == ["b"]
    assert zfs_newer_snapshots(LXC, zfs, STORAGES, list(snaps.values()), snaps["b"]) == []
    thin = {"rootfs": "local-lvm:vm-203-disk-0"}
    assert zfs_newer_snapshots(LXC, thin, STORAGES, list(snaps.values()), snaps["a"]) == []


# --- listings and task texts ------------------------------------------------------------------


def test_parse_snapshot_list_any_order_current_last():
    marker = make_marker(run="r1", creator="me@here")
    items = [
        {"name": "side", "snaptime": 300, "parent": "base", "description": "", "vmstate": 0},
        {"name": "current", "parent": "pre", "running": 1, "description": "You are here!", "digest": "x"},
        {"name": "pre", "snaptime": 200, "parent": "base", "vmstate": 1,
         "description": join_description("Kernel", marker)},
        {"name": "base", "snaptime": 100, "description": "first"},
        {"name": "half", "snaptime": 400, "parent": "side", "snapstate": "delete"},
    ]
    snaps = parse_snapshot_list(items)
    assert [s.name for s in snaps] == ["base", "pre", "side", "half"]
    by = {s.name: s for s in snaps}
    assert by["pre"].current and not by["base"].current
    assert by["pre"].memory and by["pre"].power_state == "running"
    assert by["pre"].description == "Kernel" and by["pre"].owner["run"] == "r1"
    assert by["base"].owner is None and by["base"].depth == 1
    assert sorted(by["base"].children) == ["pre", "side"]
    assert by["half"].depth == 3 and by["half"].extra == {"snapstate": "delete"}
    assert by["base"].created.isoformat() == "1970-01-01T00:01:40+00:00"


def test_lock_names_from_pve_errors():
    assert lock_name("VM is locked (backup)") == "backup"
    assert lock_name("CT is locked (snapshot-delete)") == "snapshot-delete"
    assert lock_name("can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout") == \
        "lock file /var/lock/qemu-server/lock-100.conf"
    assert lock_name("snapshot feature is not available") is None


def test_task_failure_text_uses_the_log():
    status = {"status": "stopped", "exitstatus": "zfs error: dataset is busy"}
    log = [{"n": 1, "t": "delete snapshot 'x'"}, {"n": 2, "t": "zfs error: dataset is busy"},
           {"n": 3, "t": "TASK ERROR: zfs error: dataset is busy"}]
    assert task_failure_text(status, log) == "zfs error: dataset is busy (task log: delete snapshot 'x')"
    assert task_failure_text(status, []) == "zfs error: dataset is busy"


def test_small_helpers():
    assert upid_node("UPID:pve2:000003E8:00001B58:6B025178:qmsnapshot:100:root@pam:") == "pve2"
    assert upid_node("garbage") is None
    assert power_state_of({"status": "running"}) == "running"
    assert power_state_of({"status": "running", "qmpstatus": "paused"}) == "paused"
    assert power_state_of({"status": "stopped"}) == "stopped"
    assert power_state_of({"status": "unknown"}) == "unknown"


# --- the backend against a scripted API -------------------------------------------------------


class FakeApi(object):
    """Just enough of proxmoxer's ProxmoxAPI: api(path).get/post/delete/put(**params) and api.version.get()."""

    def __init__(self, guests, tasks=None):
        self.guests = guests  # list of /cluster/resources items, plus 'config' and 'snapshots' keys
        self.calls = []
        # upid -> list of statuses to answer in turn (the last one repeats)
        self.tasks = tasks or {}
        self.post_script = []  # UPIDs to answer to successive POST/DELETEs
        self.version = self._Endpoint(self, "version")

    class _Endpoint(object):
        def __init__(self, api, path):
            self.api, self.path = api, path

        def get(self, **params):
            return self.api.handle("GET", self.path, params)

        def post(self, **params):
            return self.api.handle("POST", self.path, params)

        def delete(self, **params):
            return self.api.handle("DELETE", self.path, params)

        def put(self, **params):
            return self.api.handle("PUT", self.path, params)

    def __call__(self, path):
        return self._Endpoint(self, path)

    def handle(self, method, path, params):
        self.calls.append((method, path, params))
        parts = path.split("/")
        if path == "version":
            return {"version": "9.0.10"}
        if path == "cluster/resources":
            return [dict((k, v) for k, v in g.items() if k not in ("config", "snapshots")) for g in self.guests]
        if path == "storage":
            return list(STORAGES.values())
        if parts[0] == "nodes" and parts[2] == "tasks":
            script = self.tasks[parts[3]]
            status = script.pop(0) if len(script) > 1 else script[0]
            if parts[4] == "log":
                return status.get("_log", [])
            return status
        guest = next(g for g in self.guests if str(g["vmid"]) == parts[3])
        rest = parts[4:]
        if rest == ["config"]:
            return guest.get("config", {})
        if rest == ["snapshot"] and method == "GET":
            return guest.get("snapshots", []) + [{"name": "current", "description": "You are here!"}]
        if rest == ["status", "current"]:
            return {"status": guest["status"]}
        if method in ("POST", "DELETE"):
            return self.post_script.pop(0)
        raise AssertionError("unexpected call %s %s" % (method, path))


GUESTS = [
    {"vmid": 100, "name": "web01", "node": "pve1", "type": "qemu", "status": "running",
     "config": {"scsi0": "local-lvm:vm-100-disk-0"}},
    {"vmid": 200, "name": "ct-dns", "node": "pve2", "type": "lxc", "status": "running",
     "config": {"rootfs": "local-lvm:vm-200-disk-0"}},
    {"vmid": 106, "name": "dup", "node": "pve1", "type": "qemu", "status": "stopped"},
    {"vmid": 107, "name": "dup", "node": "pve3", "type": "qemu", "status": "stopped"},
]


def upid(node="pve1", n=1):
    return "UPID:%s:%08X:00000000:00000000:qmsnapshot:100:root@pam:" % (node, n)


@pytest.fixture
def make_backend(monkeypatch):
    def make(api, **params):
        monkeypatch.setattr(_proxmox, "ProxmoxAPI", lambda host, **kwargs: api)
        base = {"api_host": "pve", "api_user": "root@pam", "api_token_id": "ci", "api_token_secret": "s",
                "validate_certs": True, "force": False}
        base.update(params)
        warnings = []
        backend = ProxmoxBackend(base, warn=warnings.append)
        backend.warnings = warnings
        return backend
    monkeypatch.setattr(_proxmox.time, "sleep", lambda secs: None)
    return make


def test_one_resources_query_for_many_guests(make_backend):
    api = FakeApi([dict(g) for g in GUESTS])
    backend = make_backend(api)
    found = backend.find_vms(["web01", "200", "dup", "nope"])
    assert [c[1] for c in api.calls].count("cluster/resources") == 1
    assert found["web01"].extra["type"] == QEMU and found["web01"].extra["node"] == "pve1"
    assert found["200"].extra["type"] == LXC and found["200"].name == "ct-dns"
    assert isinstance(found["dup"], AmbiguousVm)
    assert "106 (qemu on pve1), 107 (qemu on pve3)" in found["dup"].reason
    assert isinstance(found["nope"], VmNotFound)


def test_known_vmid_is_refreshed_without_listing_the_cluster(make_backend):
    api = FakeApi([dict(g) for g in GUESTS])
    backend = make_backend(api)
    backend.find_vm("web01")
    api.guests[0]["status"] = "stopped"
    again = backend.find_vm("100")
    assert again.power_state == "stopped"
    assert [c[1] for c in api.calls].count("cluster/resources") == 1


def test_token_is_checked_at_connect(monkeypatch):
    class Refusing(FakeApi):
        def handle(self, method, path, params):
            raise ResourceException(401, "Unauthorized", "authentication failure")
    monkeypatch.setattr(_proxmox, "ProxmoxAPI", lambda host, **kwargs: Refusing([]))
    with pytest.raises(ConnectionFailed) as err:
        ProxmoxBackend({"api_host": "pve", "api_user": "root@pam", "api_token_id": "ci", "api_token_secret": "s"})
    assert "authentication failure" in str(err.value)
    assert "s" != err.value.reason  # the secret is not the message


def test_invalid_name_fails_before_connecting(monkeypatch):
    def no_connect(*args, **kwargs):
        raise AssertionError("connected")
    monkeypatch.setattr(_proxmox, "ProxmoxAPI", no_connect)
    with pytest.raises(InvalidRequest) as err:
        ProxmoxBackend({"api_host": "pve", "api_user": "u", "api_password": "p", "state": "present", "name": "9x"})
    assert "start with a letter" in str(err.value)


def _locked_then_ok_api():
    first, second = upid(n=1), upid(n=2)
    api = FakeApi([dict(g) for g in GUESTS], tasks={
        first: [{"status": "stopped", "exitstatus": "VM is locked (backup)"}],
        second: [{"status": "running"}, {"status": "running"}, {"status": "stopped", "exitstatus": "OK"}],
    })
    api.post_script = [first, second]
    api.guests[0]["snapshots"] = []

    def appear(method, path, params, original=api.handle):
        result = original(method, path, params)
        if method == "POST":
            api.guests[0]["snapshots"] = [{"name": "pre", "snaptime": 1, "vmstate": 1}]
        return result
    api.handle = appear
    return api, first


def test_a_lock_taken_as_our_task_starts_is_retried_within_lock_timeout(make_backend):
    api, _first = _locked_then_ok_api()
    backend = make_backend(api, lock_timeout=30)
    vm = backend.find_vm("web01")
    outcome = ensure(backend, vm, SnapshotParams(state="present", name="pre", timeout=30, lock_timeout=30),
                     check_mode=False)
    assert outcome.changed and outcome.snapshot.name == "pre" and outcome.snapshot.memory
    posts = [c for c in api.calls if c[0] == "POST"]
    assert len(posts) == 2 and posts[0][2] == {"snapname": "pre", "vmstate": 1}


def test_a_lock_taken_as_our_task_starts_is_refused_with_lock_timeout_0(make_backend):
    api, first = _locked_then_ok_api()
    backend = make_backend(api)
    vm = backend.find_vm("web01")
    with pytest.raises(GuestBusy) as err:
        ensure(backend, vm, SnapshotParams(state="present", name="pre", timeout=600), check_mode=False)
    assert err.value.message == (
        "Failed to create snapshot 'pre' of VM 'web01' on proxmox: the VM is busy with another job: locked "
        "(backup). Wait for it, or set lock_timeout to wait up to N seconds; nothing was changed.")
    assert err.value.details == {"busy": "locked (backup)", "lock": "backup", "upid": first}
    assert len([c for c in api.calls if c[0] == "POST"]) == 1


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_guest_locked_at_precheck_time_is_refused_at_once(make_backend, check_mode):
    api = FakeApi([dict(g) for g in GUESTS])
    api.guests[0]["config"] = dict(api.guests[0]["config"], lock="backup")
    backend = make_backend(api)
    vm = backend.find_vm("web01")
    with pytest.raises(GuestBusy) as err:
        ensure(backend, vm, SnapshotParams(state="present", name="pre", timeout=600), check_mode=check_mode)
    assert err.value.details == {"busy": "locked (backup)"}
    assert "the VM is busy with another job: locked (backup)" in err.value.message
    assert [c[1] for c in api.calls].count("nodes/pve1/qemu/100/config") == 1
    assert not [c for c in api.calls if c[0] in ("POST", "DELETE", "PUT")]


def test_a_lock_held_past_lock_timeout_names_it_and_the_wait(make_backend):
    # time.sleep is a no-op here (make_backend): the wait is polled to its bound without sleeping.
    api = FakeApi([dict(g) for g in GUESTS])
    api.guests[0]["config"] = dict(api.guests[0]["config"], lock="migrate")
    backend = make_backend(api, lock_timeout=0.5)
    vm = backend.find_vm("web01")
    with pytest.raises(GuestBusy) as err:
        ensure(backend, vm, SnapshotParams(state="present", name="pre", timeout=5, lock_timeout=0.5),
               check_mode=False)
    assert "still busy with another job after waiting 0.5s: locked (migrate)" in err.value.message
    assert err.value.message.endswith("raise lock_timeout (now 0.5) to wait longer; nothing was changed.")
    assert [c[1] for c in api.calls].count("nodes/pve1/qemu/100/config") > 1
    assert not [c for c in api.calls if c[0] == "POST"]


def test_a_leftover_snapshot_delete_lock_keeps_its_own_hint_and_force_gets_past_it(make_backend):
    api = FakeApi([dict(g) for g in GUESTS])
    api.guests[0]["config"] = dict(api.guests[0]["config"], lock="snapshot-delete")
    api.guests[0]["snapshots"] = [{"name": "old", "snaptime": 1, "snapstate": "delete"}]
    backend = make_backend(api, state="absent", name="old")
    vm = backend.find_vm("web01")
    with pytest.raises(GuestBusy) as err:
        ensure(backend, vm, SnapshotParams(state="absent", name="old"), check_mode=False)
    assert "locked (snapshot-delete). A snapshot delete failed earlier and left the lock; delete that snapshot " \
           "again with force: true" in err.value.message
    forced = make_backend(api, state="absent", name="old", force=True)
    outcome = ensure(forced, forced.find_vm("web01"), SnapshotParams(state="absent", name="old"), check_mode=True)
    assert outcome.changed and outcome.action == "deleted"


def test_failed_task_reports_its_log_not_a_timeout(make_backend):
    failed = upid(n=3)
    api = FakeApi([dict(g) for g in GUESTS], tasks={failed: [
        {"status": "stopped", "exitstatus": "snapshot feature is not available",
         "_log": [{"n": 1, "t": "snapshot feature is not available"},
                  {"n": 2, "t": "TASK ERROR: snapshot feature is not available"}]}]})
    api.post_script = [failed]
    backend = make_backend(api)
    vm = backend.find_vm("web01")
    with pytest.raises(ProviderError) as err:
        ensure(backend, vm, SnapshotParams(state="present", name="pre", timeout=30), check_mode=False)
    assert "the Proxmox task failed: snapshot feature is not available" in err.value.message
    assert err.value.details["upid"] == failed


def test_task_timeout_names_the_last_state(make_backend):
    slow = upid(n=4)
    api = FakeApi([dict(g) for g in GUESTS], tasks={slow: [{"status": "running"}]})
    backend = make_backend(api)
    vm = backend.find_vm("web01")
    with pytest.raises(SnapshotTimeout) as err:
        backend._run(vm, "snapshot", lambda: slow, timeout=0.3)  # pylint: disable=protected-access
    assert "running (task %s)" % slow in err.value.message


def test_memory_refused_for_containers_and_mounts_before_any_change(make_backend):
    api = FakeApi([dict(g) for g in GUESTS])
    api.guests[1]["config"] = {"rootfs": "local-lvm:vm-200-disk-0", "mp0": "/srv,mp=/data"}
    backend = make_backend(api)
    ct = backend.find_vm("ct-dns")
    assert backend.default_memory(ct, {}) is False
    with pytest.raises(PrecheckFailed) as err:
        ensure(backend, ct, SnapshotParams(state="present", name="x1", memory=True), check_mode=False)
    assert "containers have no memory state" in err.value.message
    with pytest.raises(PrecheckFailed) as err:
        ensure(backend, ct, SnapshotParams(state="present", name="x1"), check_mode=True)
    assert "bind mount" in err.value.message
    assert not [c for c in api.calls if c[0] in ("POST", "DELETE", "PUT")]


def test_batch_reports_each_guest(make_backend):
    api = FakeApi([dict(g) for g in GUESTS])
    backend = make_backend(api)
    results = ensure_many(backend, ["web01", "dup", "ct-dns"], SnapshotParams(state="absent", name="gone"),
                          check_mode=False, concurrency=3)
    assert [r.ref for r in results] == ["web01", "dup", "ct-dns"]
    assert results[0].outcome.action == "absent" and results[2].outcome.action == "absent"
    assert isinstance(results[1].error, AmbiguousVm)
