"""Launcher and pytest plugin for the Proxmox VE test backend: fakepve==0.5.0 plus our realism layer.

Importing this module starts nothing. Three ways to use it:

- pytest plugin: ``python -m pytest -p tests.backends.fakepve.pve ...`` (or import the fixtures into a
  test module). Fixtures:
    ``pve_cluster``  (session) a running server with guests.json loaded; yields a ``PveCluster``
                     (connection info + the live model for fault hooks);
    ``pve``          (function) the same server, reset to guests.json before the test.
- Python: ``with serve() as cluster: ...`` (same object).
- Command line, for playbooks by hand and for benchmarks:
    ``python tests/backends/fakepve/pve.py [--layout FILE | --generate N] [--time-scale S]``
  prints one JSON line with the connection info, then serves until SIGTERM/SIGINT.

The server runs on its own asyncio loop in a daemon thread, on 127.0.0.1 (or --host, any 127.0.0.x) with a
port the system picks, TLS with a throw-away self-signed certificate (``cafile``). Time scale default 0.02:
a 2 PVE-second snapshot takes 40 ms of real time, so polling, locks and running tasks are exercised.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_LAYOUT = os.path.join(HERE, 'guests.json')
DEFAULT_TIME_SCALE = 0.02
DEFAULT_USER = 'root@pam'
DEFAULT_PASSWORD = 'prechange-test'
START_TIMEOUT = 30


def _realism():
    # Late import: importing this module must not need fakepve (e.g. to collect unit tests without it).
    try:
        from .realism import RealisticPve
    except ImportError:
        sys.path.insert(0, HERE)
        from realism import RealisticPve
    return RealisticPve


class PveCluster(object):
    """Connection info for a running fake cluster, plus the model itself (``.pve``) for fault hooks.

    Fault hooks must run on the server's loop: use ``call(fn, *args)`` for plain functions and
    ``run(coro)`` for coroutines; ``pve.fail(...)``/``pve.snapshot_lock(...)`` are plain dict updates and
    are also safe from the test thread between requests.
    """

    def __init__(self, pve, loop, layout, cafile, token_id, token_secret):
        self.pve = pve
        self.loop = loop
        self.layout = layout
        self.cafile = cafile
        self.host = pve.host
        self.port = pve.port
        self.url = pve.url
        self.user = pve.user
        self.password = pve.password
        # community.proxmox / our modules: api_user + api_token_id (the token's name) + api_token_secret.
        self.token_full_id = token_id
        self.token_user, _sep, self.token_name = token_id.partition('!')
        self.token_secret = token_secret
        self.time_scale = pve.time_scale

    def info(self):
        """A JSON-able dict of everything a client needs."""
        return dict(host=self.host, port=self.port, url=self.url, user=self.user, password=self.password,
                    token_id=self.token_name, token_full_id=self.token_full_id, token_user=self.token_user,
                    token_secret=self.token_secret, cafile=self.cafile, time_scale=self.time_scale)

    def run(self, coro, timeout=START_TIMEOUT):
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args, **kwargs):
        """Call a plain function on the server's loop (for hooks that touch asyncio objects)."""
        async def wrapper():
            return fn(*args, **kwargs)
        return self.run(wrapper())

    def guest(self, vmid):
        return self.pve.guest(vmid)

    def reset(self):
        """Back to the layout: guests, snapshots, tasks, faults and locks as at start."""
        async def again():
            await self._quiesce()
            p = self.pve
            p.vms[:] = []
            p.cts[:] = []
            p.failures.clear()
            p.storage_errors.clear()
            p._migration_locks.clear()
            p.reset_space()
            p.tasks.clear()
            del p.tasklog[:]
            del p.requests[:]
            p.quorate = True
            for node in p.nodes.values():
                node['online'] = True
            load_layout(p, self.layout)
        self.run(again())

    async def _quiesce(self, limit=30.0):
        # Let running workers finish so none writes into the fresh state.
        deadline = time.monotonic() + limit
        while any(t.get('status') == 'running' for t in self.pve.tasks.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


# -------------------------------------------------------------------- layout

def generate_layout(count, nodes=5, seed=0):
    """A cluster of ``count`` QEMU guests named vm0000.. spread over ``nodes`` nodes (for benchmarks)."""
    rng = random.Random(seed)
    names = ['pve{0}'.format(n + 1) for n in range(nodes)]
    guests = []
    for n in range(count):
        vmid = 1000 + n
        guests.append({'vmid': vmid, 'type': 'qemu', 'name': 'vm{0:04d}'.format(n), 'node': names[n % nodes],
                       'status': 'running' if rng.random() < 0.7 else 'stopped',
                       'config': {'memory': 1024, 'cores': 1,
                                  'scsi0': 'local-lvm:vm-{0}-disk-0,size=16G'.format(vmid)}})
    # The realism layer counts what the thin volumes take (an eighth of each disk until written) against one
    # pool shared by every node (fakepve keeps a storage's space once, PVE per node for local-lvm): size that pool
    # as the nodes' local-lvm pools together, the guests' disks with room to spare, so a snapshot fits as it would.
    storages = {'local-lvm': {'type': 'lvmthin', 'vgname': 'pve', 'thinpool': 'data', 'content': 'images,rootdir',
                              'total': count * 16 * 1024 ** 3}}
    return {'nodes': names, 'storages': storages, 'tokens': {'root@pam!ci': 'bench-token-secret'}, 'guests': guests}


def load_layout(pve, layout):
    """Put a layout (our own JSON format, see guests.json) into a fresh model."""
    for node in layout.get('nodes', []):
        pve.add_node(node)
    for sid, opts in layout.get('storages', {}).items():
        store = dict({'active': 1, 'files': set()}, **opts)
        pve.storages[sid] = store
    pve.apitokens.update(layout.get('tokens', {}))
    now = int(time.time())
    for guest in layout.get('guests', []):
        if guest.get('type', 'qemu') == 'lxc':
            obj = pve.add_ct(guest['vmid'], guest.get('name'), node=guest.get('node', 'pve1'),
                             status=guest.get('status', 'stopped'), config=guest.get('config', {}),
                             template=guest.get('template', False))
        else:
            obj = pve.add_vm(guest['vmid'], guest['name'], node=guest.get('node', 'pve1'),
                             status=guest.get('status', 'stopped'), config=guest.get('config', {}),
                             template=guest.get('template', False))
            if guest.get('template'):
                obj.config['template'] = 1
        _add_snapshots(obj, guest.get('snapshots', []), now)
        if guest.get('lock'):
            pve.snapshot_lock(guest['vmid'], guest['lock'])
    return pve


def _add_snapshots(guest, snapshots, now):
    """Preloaded snapshots: a copy of the config, its time, description, parent (default: the previous one)."""
    previous = None
    current = None
    for snap in snapshots:
        record = dict((k, v) for k, v in guest.config.items() if k not in ('lock', 'description', 'parent'))
        record['snaptime'] = now - int(snap.get('age', 60))
        record['description'] = snap.get('description', '')
        parent = snap.get('parent', previous)
        if parent:
            record['parent'] = parent
        if snap.get('vmstate'):
            record['vmstate'] = 'local-lvm:vm-{0}-state-{1}'.format(guest.vmid, snap['name'])
        guest.snapshots[snap['name']] = record
        previous = snap['name']
        if snap.get('current', True):
            current = snap['name']
    if current:
        guest.config['parent'] = current


def read_layout(path=None):
    with open(path or DEFAULT_LAYOUT) as fh:
        return json.load(fh)


# -------------------------------------------------------------------- server

@contextlib.contextmanager
def serve(layout=None, host=None, port=0, time_scale=DEFAULT_TIME_SCALE, user=DEFAULT_USER,
          password=DEFAULT_PASSWORD, seed=1):
    """Start the fake cluster in a thread; yields a PveCluster; stops it on exit."""
    from fakepve.certs import make_cert  # test-only dependency, imported when a server is wanted
    layout = read_layout() if layout is None else layout
    host = host or os.environ.get('PRECHANGE_PVE_HOST', '127.0.0.1')
    pve = _realism()(user=user, password=password, host=host, port=port)
    pve.time_scale = time_scale
    # A fixed seed makes the snapshot list order repeatable within a run (still not sorted).
    pve.network['seed'] = seed
    load_layout(pve, layout)
    tmp = tempfile.mkdtemp(prefix='prechange-fakepve-')
    certfile, keyfile, _der = make_cert(tmp, hosts=(host,))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name='fakepve', daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(pve.start(certfile, keyfile), loop).result(START_TIMEOUT)
        tokens = sorted(pve.apitokens.items())
        token_id, token_secret = tokens[0] if tokens else ('root@pam!none', '')
        yield PveCluster(pve, loop, layout, certfile, token_id, token_secret)
    finally:
        try:
            asyncio.run_coroutine_threadsafe(pve.stop(), loop).result(START_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(START_TIMEOUT)
            shutil.rmtree(tmp, ignore_errors=True)


# -------------------------------------------------------------------- pytest

try:
    import pytest
except ImportError:  # the CLI needs no pytest
    pytest = None

if pytest is not None:
    @pytest.fixture(scope='session')
    def pve_cluster():
        """One realistic fake PVE for the session (guests.json, time scale 0.02)."""
        pytest.importorskip('fakepve')
        scale = float(os.environ.get('PRECHANGE_PVE_TIME_SCALE', DEFAULT_TIME_SCALE))
        with serve(time_scale=scale) as cluster:
            yield cluster

    @pytest.fixture
    def pve(pve_cluster):
        """The session's fake PVE, reset to guests.json before the test."""
        pve_cluster.reset()
        return pve_cluster


# -------------------------------------------------------------------- CLI

def main(argv=None):
    parser = argparse.ArgumentParser(description='Serve the prechange.snapshots fake Proxmox VE cluster.')
    parser.add_argument('--layout', help='guest layout JSON (default: guests.json beside this file)')
    parser.add_argument('--generate', type=int, help='instead of a layout: this many generated QEMU guests')
    parser.add_argument('--nodes', type=int, default=5, help='nodes for --generate')
    parser.add_argument('--host', default=None, help='a loopback address (default 127.0.0.1)')
    parser.add_argument('--port', type=int, default=0, help='0: a free port')
    parser.add_argument('--time-scale', type=float, default=DEFAULT_TIME_SCALE)
    parser.add_argument('--info-file', help='also write the connection info JSON here')
    args = parser.parse_args(argv)
    layout = generate_layout(args.generate, args.nodes) if args.generate else read_layout(args.layout)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_args: stop.set())
    with serve(layout, host=args.host, port=args.port, time_scale=args.time_scale) as cluster:
        info = json.dumps(cluster.info())
        if args.info_file:
            with open(args.info_file, 'w') as fh:
                fh.write(info)
        print(info, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
