"""The project's realism layer over fakepve 0.5.0 (test-only; see backends.md "Proxmox VE: fakepve").

fakepve is AGPL-3.0-or-later and is used only as a pinned, test-only dependency: this module contains
none of its code. It subclasses ``fakepve.FakePve`` and wraps the snapshot request handlers and the task
runner it already has, so the behaviours our tests depend on match what Proxmox VE 8/9 really does.

Every fix below says which gap of fakepve 0.5.0 it closes and what PVE does instead. Times are PVE
seconds; ``time_scale`` turns them into real ones (the launcher uses 0.01-0.05 so that tasks really run).

Extension points used (read from fakepve's source, not copied):
- the ``_qm_*`` / ``_lxc_*`` snapshot handlers are bound methods collected when the app is built, so a
  subclass can wrap them;
- ``Model.task(node, ttype, tid, user, body, vm=..., lock=..., log=...)`` runs every worker; ``body`` is an
  async callable that raises ``TaskError`` to fail the task;
- ``FakePve._get_task(request)`` resolves a UPID for the task status and log endpoints;
- storage: ``_volumes(storage)`` (everything on a storage), ``_item(...)`` (one content-list entry),
  ``_content_info(v, user)`` (GET .../content/{volume}) and ``_space(store)`` (total, used, avail).
"""

import asyncio
import contextvars
import json
import time

from aiohttp import web
from fakepve import FakePve, PveError, TaskError

# The request being served while its handler starts a worker: (operation, values). A context variable,
# because fakepve copies the context into the asyncio task that runs the worker.
_OPERATION = contextvars.ContextVar('prechange_pve_operation', default=None)

GIB = 1024 ** 3
MIB = 1024 ** 2
# Storage types whose volumes are files: PVE::Storage::Plugin::list_images (dir, NFS, CIFS) reports each
# file's 'used' from `qemu-img info` "actual-size", i.e. the file's allocation on the host, internal qcow2
# snapshots' clusters included (pve-storage src/PVE/Storage/Plugin.pm, list_images and file_size_info).
FILE_TYPES = ('dir', 'nfs', 'cifs')

QEMU_TASKS = {'qmsnapshot': 'snapshot', 'qmdelsnapshot': 'delete', 'qmrollback': 'rollback'}
LXC_TASKS = {'vzsnapshot': 'snapshot', 'vzdelsnapshot': 'delete', 'vzrollback': 'rollback'}


def migration_lock_timeout(vmid):
    """PVE::GuestHelpers::guest_migration_lock -> PVE::Tools::lock_file's wording on timeout."""
    return "can't lock file '/var/lock/pve-manager/pve-migrate-{0}' - got timeout".format(vmid)


class RealisticPve(FakePve):
    """FakePve with the project's realism fixes. Scenario helpers at the end."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Fix: fakepve's VM snapshot/delete/rollback workers finish instantly, so the 'snapshot',
        # 'snapshot-delete' and 'rollback' config locks and running tasks are never visible for QEMU guests.
        # On PVE these take seconds (storage snapshots, and the RAM dump for vmstate). PVE seconds:
        self.snapshot_secs = {'snapshot': 2.0, 'snapshot_vmstate': 6.0, 'delete': 1.5, 'rollback': 2.0,
                              'rollback_vmstate': 4.0}
        # fakepve already has these for containers, but at 0 seconds: give them PVE-like durations too.
        self.ct_secs.update(snapshot=2.0, delsnapshot=1.5, rollback=2.0)
        # Fix: PVE serialises delete and rollback on one guest with the per-guest migration lock and waits up
        # to 10 s for it (guest_migration_lock($vmid, 10, ...)); fakepve fails the second one at once.
        self.migration_lock_wait = 10.0
        self._migration_locks = {}
        # Scenario: storage errors a delete meets (vmid -> message); see fail_snapshot_storage().
        self.storage_errors = {}
        # Space on the storages (see "space" below): what each volume took before any snapshot data, and
        # the copy-on-write data each snapshot holds, per volume.
        self.base_used = {}  # volid -> bytes (default: an eighth of the disk's size)
        self.held = {}  # (vmid, snapshot) -> {volid: bytes}

    def reset_space(self):
        self.base_used.clear()
        self.held.clear()

    # ------------------------------------------------------------ helpers

    async def _scaled_sleep(self, secs):
        await self.pause(secs)

    def _migration_lock(self, vmid):
        lock = self._migration_locks.get(vmid)
        if lock is None:
            lock = self._migration_locks[vmid] = asyncio.Lock()
        return lock

    async def _with_migration_lock(self, vmid, inner):
        lock = self._migration_lock(vmid)
        wait = self.migration_lock_wait * (self.time_scale or 0)
        try:
            if wait:
                await asyncio.wait_for(lock.acquire(), wait)
            elif lock.locked():
                raise asyncio.TimeoutError()
            else:
                await lock.acquire()
        except asyncio.TimeoutError:
            raise TaskError(migration_lock_timeout(vmid)) from None
        try:
            return await inner()
        finally:
            lock.release()

    @staticmethod
    def _kind(guest):
        return 'CT' if guest.guest.startswith('lxc/') else 'VM'

    @staticmethod
    def _set_lock(guest, lock):
        # FakeVm keeps the lock in an attribute and in config; FakeCt only in config (a property).
        guest.lock = lock
        if lock:
            guest.config['lock'] = lock
        else:
            guest.config.pop('lock', None)

    def _storage_type(self, volume):
        sid = str(volume).split(',', maxsplit=1)[0].split(':', maxsplit=1)[0]
        return (self.storages.get(sid) or {}).get('type')

    def _disk_volumes(self, guest):
        """Volume ids of the guest's disks (QEMU drives, LXC rootfs/mpN), CD-ROMs and binds left out."""
        out = []
        for key, value in guest.config.items():
            text = str(value)
            if 'media=cdrom' in text:
                continue
            if key == 'rootfs' or key.startswith(('mp', 'scsi', 'virtio', 'sata', 'ide', 'efidisk', 'tpmstate')):
                if key[-1].isdigit() or key == 'rootfs':
                    volume = text.split(',', maxsplit=1)[0]
                    if volume.startswith('volume='):
                        volume = volume[len('volume='):]
                    if ':' in volume and not volume.startswith('/'):
                        out.append(volume)
        return out

    # ----------------------------------------------------- request context

    def _remember(self, operation, values):
        return _OPERATION.set((operation, dict(values)))

    async def _qm_snapshot(self, v, user):
        token = self._remember('snapshot', v)
        try:
            return await super()._qm_snapshot(v, user)
        finally:
            _OPERATION.reset(token)

    async def _qm_snapshot_delete(self, v, user):
        token = self._remember('delete', v)
        try:
            return await super()._qm_snapshot_delete(v, user)
        finally:
            _OPERATION.reset(token)

    async def _qm_rollback(self, v, user):
        token = self._remember('rollback', v)
        try:
            return await super()._qm_rollback(v, user)
        finally:
            _OPERATION.reset(token)

    async def _lxc_snapshot(self, user, v):
        token = self._remember('snapshot', v)
        try:
            return await super()._lxc_snapshot(user, v)
        finally:
            _OPERATION.reset(token)

    async def _lxc_snapshot_delete(self, user, v):
        token = self._remember('delete', v)
        try:
            return await super()._lxc_snapshot_delete(user, v)
        finally:
            _OPERATION.reset(token)

    async def _lxc_rollback(self, user, v):
        token = self._remember('rollback', v)
        try:
            return await super()._lxc_rollback(user, v)
        finally:
            _OPERATION.reset(token)

    # -------------------------------------------------------------- tasks

    async def task(self, node, ttype, tid, user, body, vm=None, lock=True, log=()):
        current = _OPERATION.get()
        if vm is not None and current is not None:
            operation, values = current
            if ttype in QEMU_TASKS and QEMU_TASKS[ttype] == operation:
                body = self._qemu_body(operation, vm, values, body)
            elif ttype in LXC_TASKS and LXC_TASKS[ttype] == operation:
                body = self._lxc_body(operation, vm, values, body)
        return await super().task(node, ttype, tid, user, body, vm=vm, lock=lock, log=log)

    def _qemu_body(self, operation, vm, values, original):
        name = values.get('snapname')

        async def snapshot():
            # The checks PVE makes before it locks, so they fail at once as on PVE.
            if vm.template or vm.lock or name in vm.snapshots or not self._qm_can_snapshot(vm.config):
                return await original()
            with_ram = bool(values.get('vmstate')) and vm.status == 'running'
            # During the work PVE shows the config lock and the snapshot in 'prepare' state.
            self._set_lock(vm, 'snapshot')
            vm.snapshots[name] = {'snapstate': 'prepare', 'snaptime': int(time.time())}
            try:
                await self.pause(self.snapshot_secs['snapshot_vmstate' if with_ram else 'snapshot'])
            finally:
                vm.snapshots.pop(name, None)
                self._set_lock(vm, None)
            # fakepve commits (no await before it, so nothing can slip in between).
            result = await original()
            snap = vm.snapshots.get(name) or {}
            if snap.get('vmstate'):
                # Fix: fakepve names the state volume 'local:vm-<id>-state-<snap>' whatever the VM's storages
                # are, and allocates nothing. PVE allocates it as a volume of its own (see _vmstate_volumes).
                snap['vmstate'] = self._vmstate_volid(vm, name)
            return result

        async def delete():
            return await self._with_migration_lock(vm.vmid, lambda: self._delete_steps(vm, values, original))

        async def rollback():
            def steps():
                return self._qemu_rollback_steps(vm, values, original)
            return await self._with_migration_lock(vm.vmid, steps)
        return {'snapshot': snapshot, 'delete': delete, 'rollback': rollback}[operation]

    async def _delete_steps(self, guest, values, original):
        name = values.get('snapname')
        force = str(values.get('force', '0')) in ('1', 'true')
        kind = self._kind(guest)
        if name not in guest.snapshots:
            return await original()
        if guest.lock:
            # PVE's set_lock() checks for any lock first, so not even force gets past a leftover
            # 'snapshot-delete': it takes 'qm unlock' / 'pct unlock' (see _qemu_unlock below).
            raise TaskError('{0} is locked ({1})'.format(kind, guest.lock))
        self._set_lock(guest, 'snapshot-delete')
        guest.snapshots[name]['snapstate'] = 'delete'
        await self.pause(self.snapshot_secs['delete'] if kind == 'VM' else 0)
        problem = self.storage_errors.get(guest.vmid)
        if problem and not force:
            # Fix: on PVE a delete that fails in the storage layer leaves 'lock: snapshot-delete' and the
            # snapshot in 'delete' state (the classic stuck state); only force=1 gets past it.
            raise TaskError(problem)
        guest.snapshots[name].pop('snapstate', None)
        self._set_lock(guest, None)
        parent = guest.snapshots[name].get('parent')
        note = None
        if problem:
            note = 'WARN: {0} (ignored: force)'.format(problem)
        # For containers fakepve's own body pauses ct_secs['delsnapshot'] with the lock held.
        await original()
        self._release_held(guest, name, parent)
        return note

    async def _qemu_rollback_steps(self, vm, values, original):
        name = values.get('snapname')
        snap = vm.snapshots.get(name)
        if vm.template or snap is None or snap.get('snapstate') or vm.lock:
            return await original()
        self._refuse_zfs_rollback(vm, name)
        with_ram = bool(snap.get('vmstate'))
        parent = vm.config.get('parent')
        self._set_lock(vm, 'rollback')
        # PVE stops the VM before it rolls the disks back.
        vm.status = vm.qmpstatus = 'stopped'
        try:
            await self.pause(self.snapshot_secs['rollback_vmstate' if with_ram else 'rollback'])
        finally:
            self._set_lock(vm, None)
        note = await original()
        self._rolled_back(vm, name, parent)
        # fakepve copies the snapshot's 'vmstate' into the live config; PVE never keeps it there.
        vm.config.pop('vmstate', None)
        if with_ram:
            # Fix: fakepve leaves the VM stopped after a rollback to a snapshot with RAM. PVE starts it from
            # the saved state, so it is running again, whatever 'start' says.
            vm.status = vm.qmpstatus = 'running'
            vm.started_at = time.time()
        return note

    def _refuse_zfs_rollback(self, guest, name):
        # Fix: ZFS can only roll back to the most recent snapshot of a dataset; fakepve allows any. PVE's
        # wording (ZFSPoolPlugin::volume_rollback_is_possible).
        later = [n for n, s in guest.snapshots.items()
                 if n != name and (s.get('snaptime') or 0) >= (guest.snapshots[name].get('snaptime') or 0)
                 and list(guest.snapshots).index(n) > list(guest.snapshots).index(name)]
        if not later:
            return
        for volume in self._disk_volumes(guest):
            if self._storage_type(volume) == 'zfspool':
                raise TaskError("can't rollback, '{0}' is not most recent snapshot on '{1}'".format(name, volume))

    def _lxc_body(self, operation, ct, values, original):
        async def snapshot():
            # Fix: fakepve skips bind and device mount points when it decides whether a container can be
            # snapshotted. PVE asks the storage layer about every mount point, and a bind mount (a host path)
            # or a device has no snapshot feature, so the task fails with this text.
            if not ct.template and not ct.lock and values.get('snapname') not in ct.snapshots:
                for key, value in ct.config.items():
                    if key.startswith('mp') and key[2:].isdigit():
                        volume = str(value).split(',', maxsplit=1)[0]
                        if volume.startswith('volume='):
                            volume = volume[len('volume='):]
                        if volume.startswith('/'):
                            raise TaskError('snapshot feature is not available')
            return await original()

        async def delete():
            return await self._with_migration_lock(ct.vmid, lambda: self._delete_steps(ct, values, original))

        async def rollback():
            async def steps():
                snap = ct.snapshots.get(values.get('snapname'))
                parent = ct.config.get('parent')
                if snap is not None and not snap.get('snapstate') and not ct.lock:
                    self._refuse_zfs_rollback(ct, values.get('snapname'))
                result = await original()
                if snap is not None:
                    self._rolled_back(ct, values.get('snapname'), parent)
                return result
            return await self._with_migration_lock(ct.vmid, steps)
        return {'snapshot': snapshot, 'delete': delete, 'rollback': rollback}[operation]

    # ----------------------------------------------------------- unlocking

    def _skiplock_unlock(self, guest, values, user):
        """True if this config PUT is `qm unlock` / `pct unlock`: delete=lock with skiplock=1 by root@pam."""
        deletes = [k for k in str(values.get('delete') or '').split(',') if k]
        if deletes != ['lock'] or str(values.get('skiplock', '0')) not in ('1', 'true'):
            return False
        if user != 'root@pam':
            raise PveError(400, 'Parameter verification failed.', {'skiplock': 'Only root may use this option.'})
        self._set_lock(guest, None)
        return True

    async def _config_put(self, request):
        # Fix: fakepve checks the config lock even with skiplock=1, so `qm unlock` (PUT config delete=lock
        # skiplock=1, root only) cannot clear a stuck lock. PVE skips the lock check for root with skiplock.
        from fakepve.server import USER, params
        values = await params(request)
        vm = self._vm(request)
        if self._skiplock_unlock(vm, values, request[USER]):
            return web.json_response({'data': None})
        return await super()._config_put(request)

    async def _lxc_config_put(self, user, v):
        # The same fix for containers (pct unlock).
        ct = self._find_ct(v['node'], v['vmid'])
        if self._skiplock_unlock(ct, v, user):
            return None
        return await super()._lxc_config_put(user, v)

    # --------------------------------------------------------------- space
    #
    # Fix: in fakepve 0.5.0 no storage space moves with snapshots: the content list carries no 'used', a RAM
    # snapshot allocates no state volume, and a storage's status counts only provisioned sizes of volumes
    # made through the API. Growth between a snapshot and the decision (issue 12) cannot be tested on it.
    # What PVE really reports (pve-storage at 0c56bad8, qemu-server at e6352be6):
    # - GET /nodes/{node}/storage/{storage}/content (API2/Storage/Content.pm, "Used space. Please note that
    #   most storage plugins do not report anything useful here."): each plugin's list_images decides.
    #   dir/NFS/CIFS (Storage/Plugin.pm) give 'used' = qemu-img "actual-size", the image file's allocation,
    #   so a qcow2's internal snapshots (their copy-on-write clusters) are in it. LVM-thin
    #   (LvmThinPlugin.pm) and LVM give only the LV size, and the thin snapshot LVs (snap_<vol>_<snap>) are
    #   not listed; ZFS (ZFSPoolPlugin.pm zfs_list_zvol: volsize/refquota) and RBD (rbd ls -l) give no
    #   'used' either.
    # - GET .../content/{volume} (volume_size_info): file storages the same actual-size; LVM and LVM-thin a
    #   constant 0; ZFS 'usedbydataset', which leaves out what the dataset's snapshots hold; RBD 'rbd du'.
    # - GET .../storage/{storage}/status: LVM-thin the thin pool's data_percent of its size (snapshot LVs'
    #   data included), ZFS the pool's free/used, dir the file system's df: all move with snapshot data.
    # - A snapshot with RAM (QemuConfig.pm __snapshot_save_vmstate) allocates a raw volume
    #   'vm-<vmid>-state-<snap>' ('.raw' and '<vmid>/' on file storages) of 2 x memory + 500 MiB on the
    #   storage find_vmstate_storage picks (vmstatestorage, else a shared storage of the VM's disks, else a
    #   local one, file storages preferred, else 'local'); deleting the snapshot frees it
    #   (__snapshot_delete_vmstate_file).
    # The model below: a volume takes base_used (default an eighth of its size) plus what its snapshots
    # hold; guest_write() is the guest overwriting data after a snapshot, so copy-on-write keeps the old
    # blocks for the newest snapshot (up to the disk's size and the storage's free space); a rollback to
    # that snapshot drops the new data, deleting it frees what it held (handed to its parent snapshot when
    # there is one, as if the data was already there then). A state volume takes the VM's memory (the RAM
    # savevm wrote), not all of its 2 x memory + 500 MiB.

    @staticmethod
    def _bytes(text):
        text = str(text or '0').strip().upper()
        units = {'K': 1024, 'M': MIB, 'G': GIB, 'T': 1024 * GIB}
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text) if text.isdigit() else 0

    def _disks(self, guest):
        """[(config key, volid, size in bytes)] of the guest's disks (QEMU drives, rootfs/mpN)."""
        wanted = set(self._disk_volumes(guest))
        out = []
        for key, value in guest.config.items():
            parts = str(value).split(',')
            volid = parts[0][len('volume='):] if parts[0].startswith('volume=') else parts[0]
            if volid in wanted:
                size = [p[len('size='):] for p in parts[1:] if p.startswith('size=')]
                out.append((key, volid, self._bytes(size[0] if size else 0)))
        return out

    def _vmstate_volid(self, vm, name):
        """The volume PVE allocates for a RAM snapshot (find_vmstate_storage, __snapshot_save_vmstate)."""
        target = vm.config.get('vmstatestorage')
        if not target:
            shared = local = None
            for sid in sorted({v.split(':', 1)[0] for v in self._disk_volumes(vm)}):
                scfg = self.storages.get(sid) or {}
                if scfg.get('shared'):
                    shared = sid if shared is None or scfg.get('path') else shared
                else:
                    local = sid if local is None or scfg.get('path') else local
            target = shared or local or 'local'
        volname = 'vm-{0}-state-{1}'.format(vm.vmid, name)
        if (self.storages.get(target) or {}).get('path'):
            volname = '{0}/{1}.raw'.format(vm.vmid, volname)
        return '{0}:{1}'.format(target, volname)

    def _vmstate_volumes(self, name):
        """The RAM snapshots' state volumes on this storage: {volname: volume record}."""
        out = {}
        for vm in self.vms:
            for snap in vm.snapshots.values():
                volid = str(snap.get('vmstate') or '')
                if not volid.startswith(name + ':'):
                    continue
                # 'memory' is '[current=]<MiB>' (default 512), as get_current_memory reads it.
                text = str(snap.get('memory') or vm.config.get('memory') or 512)
                memory = self._bytes(text.rsplit('=', maxsplit=1)[-1] + 'M')
                out[volid.split(':', 1)[1]] = {'content': 'images', 'format': 'raw', 'vmid': vm.vmid,
                                               'size': 2 * memory + 500 * MIB, 'ctime': int(snap.get('snaptime') or 0),
                                               'vmstate_written': memory}
        return out

    def _volumes(self, name):
        out = super()._volumes(name)
        out.update(self._vmstate_volumes(name))
        return out

    def _held_on(self, volid):
        return sum(held.get(volid, 0) for held in self.held.values())

    def _allocation(self, sid, volname, vol):
        """Bytes the volume takes on its storage now."""
        if 'vmstate_written' in vol:
            return vol['vmstate_written']
        size = int(vol.get('size') or 0)
        if vol.get('content') not in ('images', 'rootdir') or (self.storages.get(sid) or {}).get('type') == 'lvm':
            return size  # thick LVM, ISOs, templates, backups: all of it
        volid = '{0}:{1}'.format(sid, volname)
        return self.base_used.get(volid, size // 8) + self._held_on(volid)

    def _item(self, name, volname, vol):
        item = super()._item(name, volname, vol)
        item.pop('used', None)
        if (self.storages.get(name) or {}).get('type') in FILE_TYPES and vol.get('content') in ('images', 'rootdir'):
            item['used'] = self._allocation(name, volname, vol)
        return item

    async def _content_info(self, v, user):
        data = await super()._content_info(v, user)
        sid, volname = self._volume_target(v)[:2]
        vol = self._find_volume(sid, volname) or {}
        kind = (self.storages.get(sid) or {}).get('type')
        if kind in FILE_TYPES:
            data['used'] = self._allocation(sid, volname, vol)
        elif kind in ('lvm', 'lvmthin'):
            data['used'] = 0
        elif kind == 'zfspool':
            # usedbydataset: without what the dataset's snapshots hold.
            data['used'] = self._allocation(sid, volname, vol) - self._held_on('{0}:{1}'.format(sid, volname))
        return data

    def _space(self, store):
        name = next((n for n, s in self.storages.items() if s is store), None)
        if name is None:
            return super()._space(store)
        total = store.setdefault('total', super()._space(store)[0])
        used = sum(self._allocation(name, volname, vol) for volname, vol in self._volumes(name).items())
        return total, used, max(total - used, 0)

    def guest_write(self, vmid, nbytes, disk=None):
        """Test hook: the guest overwrites ``nbytes`` of its data on each disk (or on ``disk``, e.g. 'scsi0').

        With a snapshot, copy-on-write keeps the old blocks for the newest snapshot: the volume takes more,
        up to the disk's size and the storage's free space. Without one the data is rewritten in place and
        nothing grows. Returns {volid: bytes grown}.
        """
        guest = self.guest(int(vmid))
        parent = guest.config.get('parent')
        grown = {}
        for key, volid, size in self._disks(guest):
            if disk and key != disk:
                continue
            if not parent:
                grown[volid] = 0
                continue
            held = self.held.setdefault((guest.vmid, parent), {})
            sid = volid.split(':', 1)[0]
            free = self._space(self.storages[sid])[2] if sid in self.storages else 0
            more = max(0, min(int(nbytes), size - held.get(volid, 0), free))
            held[volid] = held.get(volid, 0) + more
            grown[volid] = more
        return grown

    def _rolled_back(self, guest, name, parent):
        if name == parent:
            # The data written since the snapshot is dropped; the blocks it kept are the live ones again.
            self.held.pop((guest.vmid, name), None)

    def _release_held(self, guest, name, parent):
        held = self.held.pop((guest.vmid, name), None) or {}
        if parent and parent in guest.snapshots:
            keep = self.held.setdefault((guest.vmid, parent), {})
            for volid, amount in held.items():
                keep[volid] = keep.get(volid, 0) + amount

    # ------------------------------------------------------------- listing

    def _shuffled(self, data):
        # Fix: PVE builds the snapshot list from a Perl hash, so its order is arbitrary; only 'current'
        # ("You are here!") is always appended last. fakepve keeps insertion order, which hides clients
        # that rely on order to find the newest snapshot or the tree.
        rest = [item for item in data if item.get('name') != 'current']
        current = [item for item in data if item.get('name') == 'current']
        self._random.shuffle(rest)
        return rest + current

    async def _qm_snapshot_list(self, v, user):
        return self._shuffled(await super()._qm_snapshot_list(v, user))

    async def _lxc_snapshot_list(self, user, v):
        return self._shuffled(await super()._lxc_snapshot_list(user, v))

    # ----------------------------------------------------------- task UPIDs

    def _get_task(self, request):
        # Fix: fakepve answers an unknown UPID with a 500. PVE (API2/Tasks.pm) raises a parameter exception:
        # 400 'unable to decode worker upid' for a malformed one, 400 'no such task' for an unknown one.
        upid = request.match_info['upid']
        parts = upid.split(':')
        if len(parts) < 9 or parts[0] != 'UPID':
            raise PveError(400, 'Parameter verification failed.', {'upid': 'unable to decode worker upid'})
        task = self.tasks.get(upid)
        if task is None or task['node'] != request.match_info['node']:
            raise PveError(400, 'Parameter verification failed.', {'upid': 'no such task'})
        return super()._get_task(request)

    # ---------------------------------------------------------- control API

    def _build_app(self):
        # Not PVE: a small control endpoint so playbook-level tests can set up faults right before the
        # task they concern (ansible.builtin.uri with the usual token or ticket). Outside /api2, so it
        # never shadows or is shadowed by PVE's own routes; the fake's auth middleware still applies.
        app = super()._build_app()
        app.router.add_post('/_prechange/fault', self._control)
        return app

    async def _control(self, request):
        try:
            spec = json.loads(await request.text() or '{}')
            result = await self.control(**spec)
        except (TypeError, ValueError, KeyError) as exc:
            return web.json_response({'error': str(exc)}, status=400)
        return web.json_response({'data': result})

    async def control(self, op, vmid=None, **args):
        """One fault operation by name (see the branches); returns a short JSON-able answer."""
        vmid = int(vmid) if vmid is not None else None
        if op == 'lock':
            # A lock another job holds: 'secs' PVE seconds, or until 'unlock'.
            self.snapshot_lock(vmid, args.get('lock', 'backup'))
            if args.get('secs'):
                async def later():
                    await self.pause(float(args['secs']))
                    self.unlock(vmid)
                asyncio.ensure_future(later())
            return 'locked'
        if op == 'backup':
            # fakepve's own vzdump task: the 'backup' lock for 'secs' PVE seconds, a running task meanwhile.
            return await self.backup(vmid, secs=float(args.get('secs', 30)))
        if op == 'unlock':
            self.unlock(vmid)
            return 'unlocked'
        if op == 'fail':
            # fakepve's own fault hook: a catalogued PVE error, sync or inside the task.
            self.fail(args['method'], args['suffix'], status=args.get('status'), message=args.get('message'),
                      error=args.get('error'), times=args.get('times'))
            return 'armed'
        if op == 'storage_error':
            self.fail_snapshot_storage(vmid, args.get('message') or 'storage error')
            return 'armed'
        if op == 'clear':
            self.failures.clear()
            self.storage_errors.clear()
            return 'cleared'
        if op == 'write':
            # The guest writes after the snapshot (see guest_write): the change of a growth test.
            return self.guest_write(vmid, int(args['bytes']), disk=args.get('disk'))
        if op == 'state':
            guest = self.guest(vmid)
            return {'status': guest.status, 'lock': guest.config.get('lock'),
                    'snapshots': sorted(guest.snapshots), 'parent': guest.config.get('parent')}
        raise ValueError('unknown op {0!r}'.format(op))

    # ------------------------------------------------------------ scenarios

    def fail_snapshot_storage(self, vmid, message="zfs error: could not find any snapshots to destroy; "
                                                  "check snapshot names."):
        """Deletes of this guest's snapshots fail in the storage layer (PVE leaves the lock behind)."""
        self.storage_errors[vmid] = message

    async def hold_migration_lock(self, vmid, secs):
        """Another job (replication, migration) holds the guest's migration lock for secs PVE seconds."""
        lock = self._migration_lock(vmid)
        await lock.acquire()

        async def later():
            try:
                await self.pause(secs)
            finally:
                lock.release()
        asyncio.ensure_future(later())
