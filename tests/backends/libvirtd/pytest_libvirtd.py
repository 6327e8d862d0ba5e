# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pytest fixtures for the real libvirt layer (libvirtd + QEMU under software emulation).

Load with ``python -m pytest -p tests.backends.libvirtd.pytest_libvirtd ...`` or from the root
conftest (``pytest_plugins = ["tests.backends.libvirtd.pytest_libvirtd"]``). Importing this file
does nothing else: libvirt-python is imported only when a fixture runs.

Fixtures:
  libvirtd        (session) runs setup.sh (idempotent, ~0.5 s when already done) and
                  ``ctl.sh start``; yields the URI ``qemu:///system``. Stops the daemon at the
                  end only if this session started it, and never under pytest-xdist (other
                  workers may still use it) or with PRECHANGE_LIBVIRTD_KEEP=1.
  libvirt_guest   (function) factory: ``libvirt_guest("counter", start=True)`` returns a
                  guests.Guest (name, kind, dir, disk, serial, uri, plus counter helpers);
                  every guest it made is destroyed, undefined (snapshot metadata included)
                  and its files removed at teardown.
  libvirt_guests  (session) the guests module itself (read_counter, counter_mark, ...).
Set PRECHANGE_LIBVIRTD_SETUP=0 to skip running setup.sh (then it must have been run).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import subprocess
import sys
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
_MODULE = "prechange_libvirtd_guests"


def _guests():
    """Import guests.py by path (no sys.path change), once per process."""
    if _MODULE not in sys.modules:
        spec = importlib.util.spec_from_file_location(_MODULE, os.path.join(HERE, "guests.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[_MODULE] = mod
        spec.loader.exec_module(mod)
    return sys.modules[_MODULE]


def _sh(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["bash", os.path.join(HERE, script), *args], capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        pytest.fail(
            f"{script} {' '.join(args)} failed (exit {p.returncode}):\n{p.stdout}{p.stderr}",
            pytrace=False,
        )
    return p


@pytest.fixture(scope="session")
def libvirtd():
    if os.geteuid() != 0:
        pytest.fail("the real libvirt layer needs root (packages, qemu.conf, libvirtd)", pytrace=False)
    state = os.environ.get("PRECHANGE_TEST_STATE", "/var/lib/prechange-test")
    os.makedirs(state, exist_ok=True)
    xdist = bool(os.environ.get("PYTEST_XDIST_WORKER"))
    # One process at a time does setup + start (xdist workers, parallel sessions): apt and
    # two libvirtd starting at once would trip over each other.
    with open(os.path.join(state, ".fixture.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.environ.get("PRECHANGE_LIBVIRTD_SETUP", "1") != "0":
            _sh("setup.sh", "--no-assets")
        was_running = _sh("ctl.sh", "status", check=False).returncode == 0
        if not was_running:
            _sh("ctl.sh", "start")
        if not xdist:
            # Guests left by an earlier session that was killed before its teardown.
            _guests().cleanup(_guests().PREFIX + "pt-")
    uri = _guests().URI
    yield uri
    if not was_running and not xdist and os.environ.get("PRECHANGE_LIBVIRTD_KEEP") != "1":
        _sh("ctl.sh", "stop", check=False)


@pytest.fixture(scope="session")
def libvirt_guests(libvirtd):
    return _guests()


@pytest.fixture
def libvirt_guest(libvirtd):
    guests = _guests()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    made = []

    def make(kind: str = "blank", start: bool = False):
        # Unique per test and per xdist worker: pcstest-pt-<kind>-<worker>-<random>.
        name = f"{guests.PREFIX}pt-{kind}-{worker}-{uuid.uuid4().hex[:8]}"
        guest = guests.create(kind, name, start=start, uri=libvirtd)
        made.append(guest.name)
        return guest

    make.guests = guests
    yield make
    errors = []
    for name in reversed(made):
        try:
            guests.destroy(name, uri=libvirtd)
        except Exception as e:  # report every failure, clean up the rest anyway
            errors.append(f"{name}: {e}")
    if errors:
        pytest.fail("libvirt_guest teardown failed:\n" + "\n".join(errors), pytrace=False)
