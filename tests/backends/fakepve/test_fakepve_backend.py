"""Checks of the Proxmox VE test backend (fakepve 0.5.0 + our realism layer) with proxmoxer 2.3.

These pin down the backend behaviours the collection's tests rely on, each as PVE 8/9 behaves (see
backends.md). They talk to the server only over HTTPS, as the modules do.

    python -m pytest tests/backends/fakepve -q
"""

import os
import sys
import threading
import time

import pytest

pytest.importorskip('fakepve')
proxmoxer = pytest.importorskip('proxmoxer')

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pve import pve, pve_cluster  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position

ResourceException = proxmoxer.core.ResourceException


def ticket_api(cluster):
    return proxmoxer.ProxmoxAPI(cluster.host, port=cluster.port, user=cluster.user, password=cluster.password,
                                verify_ssl=cluster.cafile)


def token_api(cluster):
    return proxmoxer.ProxmoxAPI(cluster.host, port=cluster.port, user=cluster.token_user,
                                token_name=cluster.token_name, token_value=cluster.token_secret,
                                verify_ssl=cluster.cafile)


def wait(api, node, upid, limit=30.0):
    """Poll a UPID until it stops; returns its status record."""
    deadline = time.monotonic() + limit
    while True:
        status = api.nodes(node).tasks(upid).status.get()
        if status['status'] != 'running':
            return status
        assert time.monotonic() < deadline, 'task still running: {0}'.format(upid)
        time.sleep(0.01)


def task_log(api, node, upid):
    return '\n'.join(line['t'] for line in api.nodes(node).tasks(upid).log.get())


@pytest.mark.parametrize('auth', [ticket_api, token_api], ids=['ticket', 'token'])
def test_auth_and_cluster_resources(pve, auth):
    api = auth(pve)
    guests = dict((r['vmid'], r) for r in api.cluster.resources.get(type='vm'))
    assert guests[100]['type'] == 'qemu' and guests[100]['node'] == 'pve1'
    assert guests[201]['type'] == 'lxc' and guests[201]['node'] == 'pve2'
    assert {r['node'] for r in guests.values()} == {'pve1', 'pve2', 'pve3'}
    assert sorted(v for v, r in guests.items() if r['name'] == 'dup') == [106, 107]


def test_wrong_password_and_token_are_401(pve):
    bad = proxmoxer.ProxmoxAPI
    with pytest.raises(proxmoxer.AuthenticationError):
        bad(pve.host, port=pve.port, user=pve.user, password='nope', verify_ssl=pve.cafile)
    api = bad(pve.host, port=pve.port, user=pve.token_user, token_name=pve.token_name, token_value='nope',
              verify_ssl=pve.cafile)
    with pytest.raises(ResourceException) as err:
        api.version.get()
    assert err.value.status_code == 401


def test_snapshot_with_vmstate_runs_as_a_task_holding_the_lock(pve):
    api = ticket_api(pve)
    vm = api.nodes('pve1').qemu(100)
    upid = vm.snapshot.post(snapname='pre-patch', vmstate=1, description='hello')
    # Realism: the worker takes time, shows the lock and the snapshot in 'prepare' state.
    assert api.nodes('pve1').tasks(upid).status.get()['status'] == 'running'
    assert vm.config.get().get('lock') == 'snapshot'
    assert any(s['name'] == 'pre-patch' and s.get('snapstate') == 'prepare' for s in vm.snapshot.get())
    status = wait(api, 'pve1', upid)
    assert status['exitstatus'] == 'OK'
    assert 'lock' not in vm.config.get()
    snaps = vm.snapshot.get()
    assert snaps[-1]['name'] == 'current' and snaps[-1]['parent'] == 'pre-patch'
    mine = [s for s in snaps if s['name'] == 'pre-patch'][0]
    assert mine['vmstate'] == 1 and mine['description'] == 'hello' and 'snapstate' not in mine


def test_list_is_unordered_with_current_last(pve):
    api = token_api(pve)
    orders = set()
    for _attempt in range(12):
        names = [s['name'] for s in api.nodes('pve2').qemu(108).snapshot.get()]
        assert names[-1] == 'current'
        orders.add(tuple(names))
    assert len(orders) > 1


def test_rollback_to_ram_snapshot_resumes_the_vm(pve):
    api = token_api(pve)
    vm = api.nodes('pve2').qemu(108)
    upid = vm.snapshot('pre-upgrade').rollback.post()
    assert api.nodes('pve2').tasks(upid).status.get()['status'] == 'running'
    assert vm.config.get().get('lock') == 'rollback'
    assert wait(api, 'pve2', upid)['exitstatus'] == 'OK'
    assert vm.status.current.get()['status'] == 'running'
    assert 'vmstate' not in vm.config.get()


def test_rollback_without_ram_leaves_it_stopped_unless_start(pve):
    api = token_api(pve)
    vm = api.nodes('pve2').qemu(108)
    assert wait(api, 'pve2', vm.snapshot('side').rollback.post())['exitstatus'] == 'OK'
    assert vm.status.current.get()['status'] == 'stopped'
    assert wait(api, 'pve2', vm.snapshot('base').rollback.post(start=1))['exitstatus'] == 'OK'
    assert vm.status.current.get()['status'] == 'running'


def test_delete_and_concurrent_delete_rollback_wait_for_each_other(pve):
    api = ticket_api(pve)
    vm = api.nodes('pve2').qemu(108)
    first = vm.snapshot('side').delete()
    second = vm.snapshot('base').rollback.post()
    assert wait(api, 'pve2', first)['exitstatus'] == 'OK'
    assert wait(api, 'pve2', second)['exitstatus'] == 'OK'
    assert 'side' not in [s['name'] for s in vm.snapshot.get()]


def test_migration_lock_held_too_long_times_out(pve):
    api = ticket_api(pve)
    pve.run(pve.pve.hold_migration_lock(108, 30))
    upid = api.nodes('pve2').qemu(108).snapshot('side').delete()
    status = wait(api, 'pve2', upid)
    assert status['exitstatus'] == "can't lock file '/var/lock/pve-manager/pve-migrate-108' - got timeout"


def test_second_snapshot_while_one_runs_fails_with_the_lock_name(pve):
    api = ticket_api(pve)
    vm = api.nodes('pve1').qemu(100)
    first = vm.snapshot.post(snapname='one', vmstate=1)
    second = vm.snapshot.post(snapname='two')
    assert wait(api, 'pve1', second)['exitstatus'] == 'VM is locked (snapshot)'
    assert wait(api, 'pve1', first)['exitstatus'] == 'OK'


def test_locked_guest_and_failed_task_log_text(pve):
    api = ticket_api(pve)
    pve.pve.snapshot_lock(100, 'backup')
    status = wait(api, 'pve1', api.nodes('pve1').qemu(100).snapshot.post(snapname='x1'))
    assert status['exitstatus'] == 'VM is locked (backup)'
    pve.pve.unlock(100)
    # fakepve's own fault hook: PVE's catalogued error raised inside the worker.
    pve.pve.fail('POST', '/nodes/pve1/qemu/100/snapshot', error='snapshot_feature_not_available', times=1)
    upid = api.nodes('pve1').qemu(100).snapshot.post(snapname='x2')
    assert wait(api, 'pve1', upid)['exitstatus'] == 'snapshot feature is not available'
    assert 'TASK ERROR: snapshot feature is not available' in task_log(api, 'pve1', upid)


def test_storage_without_snapshots_and_bind_mounts_fail(pve):
    api = ticket_api(pve)
    for node, kind, vmid in (('pve1', 'qemu', 103), ('pve3', 'qemu', 105), ('pve2', 'lxc', 201),
                             ('pve3', 'lxc', 202)):
        upid = getattr(api.nodes(node), kind)(vmid).snapshot.post(snapname='nope')
        assert wait(api, node, upid)['exitstatus'] == 'snapshot feature is not available', vmid
    upid = api.nodes('pve2').qemu(104).snapshot.post(snapname='fine')
    assert wait(api, 'pve2', upid)['exitstatus'] == 'OK'


def test_stuck_delete_needs_force(pve):
    api = ticket_api(pve)
    vm = api.nodes('pve2').qemu(108)
    pve.pve.fail_snapshot_storage(108, 'storage went away')
    status = wait(api, 'pve2', vm.snapshot('side').delete())
    assert status['exitstatus'] == 'storage went away'
    assert vm.config.get()['lock'] == 'snapshot-delete'
    # As on PVE, force alone does not get past the leftover lock; `qm unlock` (root, skiplock) does.
    status = wait(api, 'pve2', vm.snapshot('side').delete(force=1))
    assert status['exitstatus'] == 'VM is locked (snapshot-delete)'
    vm.config.put(delete='lock', skiplock=1)
    status = wait(api, 'pve2', vm.snapshot('side').delete(force=1))
    assert status['exitstatus'] == 'OK'
    assert 'lock' not in vm.config.get()


def test_zfs_rolls_back_only_to_the_latest(pve):
    api = ticket_api(pve)
    ct = api.nodes('pve3').lxc(203)
    assert wait(api, 'pve3', ct.snapshot.post(snapname='second'))['exitstatus'] == 'OK'
    status = wait(api, 'pve3', ct.snapshot('first').rollback.post())
    assert status['exitstatus'].startswith("can't rollback, 'first' is not most recent snapshot on 'local-zfs:")
    assert wait(api, 'pve3', ct.snapshot('second').rollback.post())['exitstatus'] == 'OK'


def test_lxc_snapshot_cycle(pve):
    api = token_api(pve)
    ct = api.nodes('pve1').lxc(200)
    upid = ct.snapshot.post(snapname='c1', description='ct')
    assert ct.config.get().get('lock') == 'snapshot'
    assert wait(api, 'pve1', upid)['exitstatus'] == 'OK'
    with pytest.raises(ResourceException) as err:
        ct.snapshot.post(snapname='c2', vmstate=1)
    assert err.value.status_code == 400
    assert wait(api, 'pve1', ct.snapshot('c1').rollback.post(start=1))['exitstatus'] == 'OK'
    assert ct.status.current.get()['status'] == 'running'
    assert wait(api, 'pve1', ct.snapshot('c1').delete())['exitstatus'] == 'OK'


def test_unknown_and_malformed_upid_are_400(pve):
    api = ticket_api(pve)
    with pytest.raises(ResourceException) as err:
        api.nodes('pve1').tasks('UPID:pve1:00000001:00000007:00000000:qmsnapshot:100:root@pam:').status.get()
    assert err.value.status_code == 400 and 'no such task' in str(err.value)
    with pytest.raises(ResourceException) as err:
        api.nodes('pve1').tasks('garbage').status.get()
    assert err.value.status_code == 400


def test_reserved_names_fail_at_once(pve):
    api = ticket_api(pve)
    with pytest.raises(ResourceException) as err:
        api.nodes('pve1').qemu(100).snapshot.post(snapname='current')
    assert "reserved name" in str(err.value)


def test_reset_restores_the_layout(pve):
    api = ticket_api(pve)
    wait(api, 'pve1', api.nodes('pve1').qemu(100).snapshot.post(snapname='gone'))
    pve.reset()
    assert [s['name'] for s in api.nodes('pve1').qemu(100).snapshot.get()] == ['current']


def test_parallel_clients_on_many_guests(pve):
    errors = []

    def one(node, vmid):
        try:
            api = token_api(pve)
            assert wait(api, node, api.nodes(node).qemu(vmid).snapshot.post(snapname='par'))['exitstatus'] == 'OK'
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=one, args=a) for a in (('pve1', 100), ('pve2', 101), ('pve3', 102))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# --- space: what PVE's storage API reports about volumes, snapshot data and RAM state (realism.py "space") ---

MIB = 1024 ** 2
GIB = 1024 ** 3


def control(cluster, **spec):
    """The realism layer's control call, as a playbook makes it (HTTPS, API token)."""
    import requests  # pylint: disable=import-outside-toplevel
    token = 'PVEAPIToken={0}={1}'.format(cluster.token_full_id, cluster.token_secret)
    answer = requests.post('https://{0}:{1}/_prechange/fault'.format(cluster.host, cluster.port), json=spec,
                           headers={'Authorization': token}, verify=cluster.cafile, timeout=30)
    answer.raise_for_status()
    return answer.json()['data']


def volume(api, node, sid, volid):
    vmid = int(volid.split(':', 1)[1].split('vm-', 1)[1].split('-', 1)[0])
    return [v for v in api.nodes(node).storage(sid).content.get(vmid=vmid) if v['volid'] == volid]


def test_file_storage_reports_the_qcow2_allocation_and_copy_on_write_moves_it(pve):
    api = ticket_api(pve)
    vol, store, vm = 'local:104/vm-104-disk-0.qcow2', api.nodes('pve2').storage('local'), api.nodes('pve2').qemu(104)

    def used():
        return volume(api, 'pve2', 'local', vol)[0]['used']
    base, free = used(), store.status.get()['avail']
    assert base > 0 and store.content(vol).get()['used'] == base
    # Without a snapshot an overwrite rewrites in place: nothing grows.
    assert control(pve, op='write', vmid=104, bytes=64 * MIB) == {vol: 0}
    assert used() == base
    assert wait(api, 'pve2', vm.snapshot.post(snapname='s1'))['exitstatus'] == 'OK'
    assert control(pve, op='write', vmid=104, bytes=64 * MIB) == {vol: 64 * MIB}
    assert used() == base + 64 * MIB == store.content(vol).get()['used']
    status = store.status.get()
    assert status['avail'] == free - 64 * MIB and status['used'] + status['avail'] == status['total']
    # A rollback drops what was written since; writing again grows again; the copies are capped at the disk.
    assert wait(api, 'pve2', vm.snapshot('s1').rollback.post())['exitstatus'] == 'OK'
    assert used() == base and store.status.get()['avail'] == free
    control(pve, op='write', vmid=104, bytes=1024 * GIB)
    assert used() == base + 16 * GIB
    # Deleting the snapshot frees what it held.
    assert wait(api, 'pve2', vm.snapshot('s1').delete())['exitstatus'] == 'OK'
    assert used() == base and store.status.get()['avail'] == free


def test_thin_and_zfs_volumes_report_no_used_but_the_pool_moves(pve):
    api = ticket_api(pve)
    for node, vmid, sid, vol in (('pve1', 100, 'local-lvm', 'local-lvm:vm-100-disk-0'),
                                 ('pve3', 102, 'local-zfs', 'local-zfs:vm-102-disk-0')):
        store = api.nodes(node).storage(sid)
        info, free = store.content(vol).get()['used'], store.status.get()['avail']
        assert 'used' not in volume(api, node, sid, vol)[0]
        assert wait(api, node, api.nodes(node).qemu(vmid).snapshot.post(snapname='s1'))[
            'exitstatus'] == 'OK'
        assert control(pve, op='write', vmid=vmid, bytes=64 * MIB) == {vol: 64 * MIB}
        assert 'used' not in volume(api, node, sid, vol)[0]
        # LVM(-thin): volume info says 0; ZFS: usedbydataset, without what the snapshot holds.
        assert store.content(vol).get()['used'] == info == (0 if sid == 'local-lvm' else info)
        assert store.status.get()['avail'] == free - 64 * MIB


def test_ram_snapshot_allocates_a_state_volume_and_delete_frees_it(pve):
    api = ticket_api(pve)
    vm, store = api.nodes('pve1').qemu(100), api.nodes('pve1').storage('local-lvm')
    free = store.status.get()['avail']
    assert wait(api, 'pve1', vm.snapshot.post(snapname='r1', vmstate=1))['exitstatus'] == 'OK'
    state = 'local-lvm:vm-100-state-r1'
    assert vm.snapshot('r1').config.get()['vmstate'] == state
    # 2 x memory (2048 MiB) + 500 MiB, as qemu-server sizes it; what savevm wrote (the RAM) is taken.
    assert volume(api, 'pve1', 'local-lvm', state) == [
        dict(volume(api, 'pve1', 'local-lvm', state)[0], size=(2 * 2048 + 500) * MIB, vmid=100, format='raw')]
    assert store.status.get()['avail'] == free - 2048 * MIB
    assert wait(api, 'pve1', vm.snapshot('r1').delete())['exitstatus'] == 'OK'
    assert volume(api, 'pve1', 'local-lvm', state) == [] and store.status.get()['avail'] == free
