# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""govmomi's vCenter simulator (vcsim) for the prechange.snapshots tests.

Importing this module has no side effects: nothing is built or started until
asked. Three ways to use it:

- pytest fixture ``vcsim`` (session scoped): ``from vcsim import vcsim`` in a
  test module (with this directory on ``sys.path``), or
  ``pytest -p vcsim``. It yields ``{hostname, port, username, password, ...}``.
  VM count: ``--vcsim-vms N``, env ``VCSIM_VMS``, or
  ``@pytest.mark.parametrize("vcsim", [{"vms": 2000}], indirect=True)``.
- Python: ``with Vcsim(vms=2000) as info: ...``
- CLI: ``python tests/backends/vcsim/vcsim.py --vms 2000`` prints the JSON line
  and runs until Ctrl-C / SIGTERM; ``--build-only`` just builds.

Test hooks (see overlay/prechange_ext.go): ``set_task_hook(si, vm, "CreateSnapshot",
delay_ms=..., fault=...)`` makes that VM's next tasks of that kind slow or fail.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"

DEFAULT_VMS = 8


def cache_dir() -> Path:
    root = os.environ.get("PRECHANGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "prechange-snapshots")
    return Path(root) / "vcsim"


def build(quiet: bool = True) -> str:
    """Build the simulator if needed (see build.sh) and return the binary's path."""
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if quiet else None,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError("building vcsim failed (exit %d):\n%s" % (proc.returncode, proc.stderr or ""))
    return proc.stdout.strip().splitlines()[-1]


def vms_per_pool(total: int, datacenters: int = 1, hosts: int = 1, clusters: int = 1) -> int:
    """vcsim creates ``-vm`` VMs per standalone host and per cluster, per datacenter."""
    pools = max(1, datacenters * (hosts + clusters))
    return max(1, math.ceil(total / pools))


class Vcsim:
    """One simulator process. ``start()`` returns its connection info."""

    def __init__(
        self,
        vms: int = DEFAULT_VMS,
        datacenters: int = 1,
        clusters: int = 1,
        hosts: int = 1,
        cluster_hosts: int = 3,
        datastores: int = 1,
        folders: int = 0,
        username: str = "user",
        password: str = "pass",
        tls: bool = True,
        autostart: bool = True,
        env: dict | None = None,
        binary: str | None = None,
        startup_timeout: float = 300.0,
    ):
        self.vms = vms
        self.datacenters = datacenters
        self.clusters = clusters
        self.hosts = hosts
        self.cluster_hosts = cluster_hosts
        self.datastores = datastores
        self.folders = folders
        self.username = username
        self.password = password
        self.tls = tls
        self.autostart = autostart
        self.env = env or {}
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.info: dict | None = None
        self.log_path: Path | None = None

    def command(self) -> list:
        per_pool = vms_per_pool(self.vms, self.datacenters, self.hosts, self.clusters)
        return [
            self.binary or build(),
            "-l", "127.0.0.1:0",
            "-dc", str(self.datacenters),
            "-cluster", str(self.clusters),
            "-host", str(self.hosts),
            "-ch", str(self.cluster_hosts),
            "-ds", str(self.datastores),
            "-folder", str(self.folders),
            "-vm", str(per_pool),
            "-autostart=%s" % str(self.autostart).lower(),
            "-username", self.username,
            "-password", self.password,
            "-tls=%s" % str(self.tls).lower(),
        ]

    def start(self) -> dict:
        if self.proc is not None:
            return self.info
        cmd = self.command()
        logs = cache_dir() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / ("vcsim-%d-%d.log" % (os.getpid(), int(time.time() * 1000)))
        env = dict(os.environ)
        env.update(self.env)
        t0 = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        atexit.register(self.stop)
        line = self._read_line(self.startup_timeout)
        if not line:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError("vcsim did not start: %s\n%s" % (" ".join(cmd), tail))
        info = json.loads(line)
        info["port"] = int(info["port"])
        info["validate_certs"] = False
        info["start_seconds"] = time.monotonic() - t0
        info["log"] = str(self.log_path)
        self.info = info
        return info

    def _read_line(self, timeout: float) -> str:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buf = b""
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not sel.select(0):
                    return ""
                if sel.select(min(left, 0.5)):
                    chunk = os.read(self.proc.stdout.fileno(), 65536)
                    if not chunk:
                        return ""
                    buf += chunk
        finally:
            sel.close()
        return buf.split(b"\n", 1)[0].decode()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        if proc.stdout:
            proc.stdout.close()

    def __enter__(self) -> dict:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def set_task_hook(si, vm, task: str, delay_ms: int | None = None, fault: str | None = None) -> None:
    """Make the simulator delay (``delay_ms``) or fail (``fault`` = message) the
    VM's tasks named ``task`` ("CreateSnapshot", "RemoveSnapshot",
    "RevertToSnapshot", "*"...). ``0`` / ``""`` switch a hook off again."""
    from pyVim.task import WaitForTask  # pylint: disable=import-outside-toplevel
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel

    opts = []
    if delay_ms is not None:
        opts.append(vim.option.OptionValue(key="vcsim.taskDelay." + task, value=str(delay_ms) if delay_ms else ""))
    if fault is not None:
        opts.append(vim.option.OptionValue(key="vcsim.taskFault." + task, value=fault))
    WaitForTask(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=opts)), si=si)


# --- pytest plugin -----------------------------------------------------------

try:  # only when pytest is there; importing this module never needs it
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:

    def pytest_addoption(parser):
        group = parser.getgroup("vcsim")
        group.addoption("--vcsim-vms", type=int, default=None, help="VMs in the session's vCenter simulator")

    @pytest.fixture(scope="session")
    def vcsim(request):
        """A running vcsim for the session: yields its connection info dict."""
        params = getattr(request, "param", None) or {}
        params = {"vms": params} if isinstance(params, int) else dict(params)
        vms = params.pop("vms", None)
        if vms is None:
            try:
                vms = request.config.getoption("vcsim_vms")
            except ValueError:
                vms = None
        if vms is None:
            vms = int(os.environ.get("VCSIM_VMS", DEFAULT_VMS))
        try:
            binary = build()
        except (RuntimeError, OSError) as exc:
            pytest.skip("vcsim cannot be built here: %s" % exc)
        # A password that cannot occur by chance in output, so tests can assert it never leaks.
        params.setdefault("password", os.environ.get("VCSIM_PASSWORD", "vcsim-Secr3t-pw"))
        sim = Vcsim(vms=vms, binary=binary, **params)
        try:
            yield sim.start()
        finally:
            sim.stop()


def main(argv=None) -> int:
    import argparse  # pylint: disable=import-outside-toplevel

    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--vms", type=int, default=DEFAULT_VMS)
    ap.add_argument("--datacenters", type=int, default=1)
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--no-tls", action="store_true")
    args = ap.parse_args(argv)
    binary = build(quiet=False)
    if args.build_only:
        print(binary)
        return 0
    sim = Vcsim(vms=args.vms, datacenters=args.datacenters, tls=not args.no_tls, binary=binary)
    info = sim.start()
    print(json.dumps(info), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while sim.proc and sim.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
