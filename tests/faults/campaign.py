# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fault campaign's ledger, module runner, ground truth and judges (see test_campaign.py for the definitions).

Nothing here goes through the collection to learn what happened: the platform's state is read with
pyvmomi, proxmoxer and libvirt-python directly (never through the fault proxy), and the modules run as
Ansible runs them, one Python process per call with its arguments file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
COLLECTIONS = os.path.join(REPO, "build", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "prechange", "snapshots")


def _integration():
    """tests/integration/conftest.py (Workspace, run_playbook, API read-backs), imported by path under its own name."""
    name = "prechange_integration_conftest"
    if name not in sys.modules:
        for sub in ("fakepve", "vcsim"):
            path = os.path.join(REPO, "tests", "backends", sub)
            if path not in sys.path:
                sys.path.insert(0, path)
        spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tests", "integration", "conftest.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


it = _integration()  # pylint: disable=invalid-name

MARKER = re.compile(r"\[prechange\.snapshots v1 ([^\]]*)\]")
GRAMMAR = re.compile(r"^Failed to (\w+) (?:snapshot '(.*?)'|snapshots) of VM '(.*?)' on (vmware|proxmox|libvirt): (.+)$", re.S)
# What a crash looks like to the user: ansible's wrapper text, a traceback, a bare exception class as the reason.
CRASH = (
    re.compile(r"MODULE FAILURE"),
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r"\braised [A-Z]\w*(Error|Exception)\b"),
    re.compile(r":\s*[A-Z][A-Za-z]*(Error|Exception|Fault)\s*(:|$)"),
    re.compile(r"^[A-Z][A-Za-z]*(Error|Exception)\b"),
    re.compile(r"\(task \{'errors'"),
    # A Python repr as the reason: ('Connection aborted.', RemoteDisconnected('...')), SSLError(SSLEOFError(...
    re.compile(r"\b[A-Z][A-Za-z]+\((?:'|\"|\d|[A-Z][A-Za-z]+\(|host=)"),
    re.compile(r"^\('"),
)
NOTHING_CHANGED = re.compile(r"nothing was changed|nothing changed|was not (created|deleted|reverted)", re.I)


def secret(prefix="S3cr3t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


class Fault(object):
    def __init__(self, fid, survived, happened, message=""):
        self.id = fid
        self.survived = survived
        self.happened = happened
        self.message = message


class Ledger(object):
    """Every fault tried, and the four safety counters."""

    COUNTERS = ("wrong_reverts", "foreign_deletions", "unrecorded_snapshots", "secrets_leaked")

    def __init__(self):
        self.faults = []
        self.violations = {name: [] for name in self.COUNTERS}
        self.secrets = set()
        # Faults the harness aimed but that never fired (a call made fewer requests): not counted as tried.
        self.unfired = []
        self.lock = threading.Lock()
        self.scanned = 0

    def record(self, fid, survived, happened, message=""):
        with self.lock:
            self.faults.append(Fault(fid, bool(survived), happened, message))
        return survived

    def violation(self, counter, fid, what):
        with self.lock:
            self.violations[counter].append("%s: %s" % (fid, what))

    def scan(self, fid, *texts):
        """A secret in any text the user or a report sees is a leak."""
        for text in texts:
            if not text:
                continue
            self.scanned += 1
            for value in list(self.secrets):
                if value and value in text:
                    self.violation("secrets_leaked", fid, "the secret %s...%s appears in %s" % (
                        value[:4], value[-2:], _where(text, value)))

    def count(self, counter):
        return len(self.violations[counter])

    def summary_line(self):
        return "fault campaign: tried=%d survived=%d %s" % (
            len(self.faults), sum(1 for f in self.faults if f.survived),
            " ".join("%s=%d" % (name, self.count(name)) for name in self.COUNTERS))

    def report_lines(self, everything=False):
        lines = []
        for fault in self.faults:
            if everything and fault.survived:
                lines.append("survived %s: %s%s" % (fault.id, fault.happened,
                                                    (" | message: %s" % _short(fault.message)) if fault.message else ""))
            if not fault.survived:
                lines.append("NOT SURVIVED %s: %s%s" % (fault.id, fault.happened,
                                                        (" | message: %s" % _short(fault.message)) if fault.message else ""))
        for fid in self.unfired:
            lines.append("NOT FIRED %s (not counted: the call made fewer requests than aimed at)" % fid)
        for name in self.COUNTERS:
            for item in self.violations[name]:
                lines.append("%s %s" % (name.upper(), item))
        return lines


def _short(text, limit=600):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _where(text, value):
    pos = text.find(value)
    return repr(text[max(0, pos - 60):pos].replace(value, "<secret>"))


# --- modules, run as Ansible runs them --------------------------------------------------------------------

def ensure_link():
    if not os.path.exists(LINK):
        os.makedirs(os.path.dirname(LINK), exist_ok=True)
        os.symlink(REPO, LINK)


class ModuleRun(object):
    """One module process: started with its arguments file, as Ansible's module runner does."""

    def __init__(self, module, args, cap=60.0):
        ensure_link()
        self.module = module
        self.args = args
        self.cap = cap
        fd, self.path = tempfile.mkstemp(prefix="prechange-fault-args-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, out)
        env = dict(os.environ, PYTHONPATH=COLLECTIONS, ANSIBLE_MODULE_ARGS="")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "ansible_collections.prechange.snapshots.plugins.modules." + module, self.path],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, start_new_session=True)
        self.stdout = self.stderr = ""
        self.killed = False
        self.elapsed = None
        self.result = None

    def wait(self):
        try:
            self.stdout, self.stderr = self.proc.communicate(timeout=max(0.1, self.cap - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            self.killed = True
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.stdout, self.stderr = self.proc.communicate()
        self.elapsed = time.monotonic() - self.started
        os.unlink(self.path)
        try:
            self.result = json.loads(self.stdout.strip().splitlines()[-1]) if self.stdout.strip() else None
        except ValueError:
            self.result = None
        return self

    @property
    def failed(self):
        return self.result is None or bool(self.result.get("failed"))

    @property
    def msg(self):
        if self.killed:
            return "(no answer: the module still ran after %.0f s, killed by the campaign)" % self.elapsed
        if self.result is None:
            return "MODULE FAILURE (no JSON result): %s" % _short(self.stderr or self.stdout, 400)
        return str(self.result.get("msg", ""))


def run_module(module, args, cap=60.0):
    return ModuleRun(module, args, cap).wait()


def crash_of(run, provider=None):
    """Why this failed run is not a clear error in the collection's grammar; None when it is one."""
    if run.killed:
        return "no answer within %.0f s (module timeout %s s): killed" % (run.cap, run.args.get("timeout"))
    if run.result is None:
        return "crash: no JSON result (MODULE FAILURE); stderr: %s" % _short(run.stderr or run.stdout, 300)
    if "Traceback (most recent call last)" in (run.stderr or "") or run.result.get("exception"):
        return "crash: a Python traceback"
    msg = run.msg
    match = GRAMMAR.match(msg)
    if not match:
        return "not in the collection's grammar"
    if provider and match.group(4) != provider:
        return "names provider %s" % match.group(4)
    for pattern in CRASH:
        if pattern.search(match.group(5)):
            return "raw exception or crash text in the reason (%s)" % pattern.pattern
    return None


def says_nothing_changed(msg):
    return bool(NOTHING_CHANGED.search(msg or ""))


# --- ground truth -------------------------------------------------------------------------------------------

class Snap(object):
    def __init__(self, name, sid, description):
        self.name = name
        self.id = sid
        self.description = description or ""

    @property
    def marker(self):
        found = MARKER.findall(self.description)
        if not found:
            return None
        return dict(part.split("=", 1) for part in found[-1].split() if "=" in part)

    def __repr__(self):
        return "%s(%s)" % (self.name, self.id)


class Truth(object):
    """The platform's own view of a provider's VMs, read with its SDK, never through the proxy."""

    def __init__(self, provider, conn):
        self.provider = provider
        self.conn = conn
        self._si = None

    def _vsphere_vm(self, vm):
        if self._si is None:
            self._si = it._vsphere(self.conn)  # pylint: disable=protected-access
        try:
            return it._vsphere_vm(self._si, vm)  # pylint: disable=protected-access
        except Exception:  # pylint: disable=broad-except
            self._si = it._vsphere(self.conn)  # pylint: disable=protected-access
            return it._vsphere_vm(self._si, vm)  # pylint: disable=protected-access

    def snapshots(self, vm):
        """(every snapshot as a Snap, in tree order, duplicates kept; the current one's id or None)."""
        if self.provider == "vmware":
            machine = self._vsphere_vm(vm)
            snaps = [Snap(n.name, n.snapshot._moId, n.description)  # pylint: disable=protected-access
                     for n in it._vsphere_tree(machine)]  # pylint: disable=protected-access
            current = machine.snapshot.currentSnapshot._moId if machine.snapshot and machine.snapshot.currentSnapshot else None  # noqa: E501  pylint: disable=protected-access
            return snaps, current
        if self.provider == "proxmox":
            guest = it._pve_guest(it._pve_api(self.conn), vm)  # pylint: disable=protected-access
            listed = guest.snapshot.get()
            snaps = [Snap(s["name"], s["name"], s.get("description", "")) for s in listed if s["name"] != "current"]
            parent = [s.get("parent") for s in listed if s["name"] == "current"]
            return snaps, (parent[0] if parent else None)
        import libvirt  # pylint: disable=import-outside-toplevel
        import xml.etree.ElementTree as ET  # pylint: disable=import-outside-toplevel
        conn = libvirt.open(self.conn["uri"])
        try:
            dom = conn.lookupByName(vm)
            snaps = [Snap(s.getName(), s.getName(), ET.fromstring(s.getXMLDesc()).findtext("description"))
                     for s in dom.listAllSnapshots()]
            current = dom.snapshotCurrent().getName() if dom.hasCurrentSnapshot() else None
            return snaps, current
        finally:
            conn.close()

    def names(self, vm):
        return [s.name for s in self.snapshots(vm)[0]]

    def count(self, vm, name):
        return self.names(vm).count(name)

    def settle(self, vm, cluster=None, limit=30.0):
        """Wait (bounded) until no task of the platform runs on the VM, so the state read is final."""
        deadline = time.monotonic() + limit
        if self.provider == "vmware":
            while time.monotonic() < deadline:
                machine = self._vsphere_vm(vm)
                states = [str(t.info.state) for t in (machine.recentTask or [])]
                if not any(s in ("queued", "running") for s in states):
                    return True
                time.sleep(0.1)
            return False
        if self.provider == "proxmox" and cluster is not None:
            while time.monotonic() < deadline:
                if not any(t.get("status") == "running" for t in list(cluster.pve.tasks.values())):
                    return True
                time.sleep(0.05)
            return False
        return True

    def close(self):
        if self._si is not None:
            from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
            try:
                Disconnect(self._si)
            except Exception:  # pylint: disable=broad-except
                pass
            self._si = None

    # --- seeding, straight through the API ----------------------------------------------------------------
    def make(self, vm, name, description, memory=False):
        """Make a snapshot with the platform's own API (a foreign one, or one of an older run)."""
        if self.provider == "vmware":
            from pyVim.task import WaitForTask  # pylint: disable=import-outside-toplevel
            machine = self._vsphere_vm(vm)
            WaitForTask(machine.CreateSnapshot_Task(name=name, description=description, memory=memory, quiesce=False),
                        si=self._si)
        elif self.provider == "proxmox":
            api = it._pve_api(self.conn)  # pylint: disable=protected-access
            guest = it._pve_guest(api, vm)  # pylint: disable=protected-access
            upid = guest.snapshot.post(snapname=name, description=description)
            _pve_wait(api, upid)
        else:
            import libvirt  # pylint: disable=import-outside-toplevel
            from xml.sax.saxutils import escape  # pylint: disable=import-outside-toplevel
            conn = libvirt.open(self.conn["uri"])
            try:
                conn.lookupByName(vm).snapshotCreateXML(
                    "<domainsnapshot><name>%s</name><description>%s</description></domainsnapshot>"
                    % (escape(name), escape(description)), 0)
            finally:
                conn.close()

    def remove(self, vm, name):
        """Remove every snapshot of that name (clean-up of the campaign's own calibration snapshots)."""
        if self.provider == "vmware":
            from pyVim.task import WaitForTask  # pylint: disable=import-outside-toplevel
            machine = self._vsphere_vm(vm)
            for node in reversed(list(it._vsphere_tree(machine))):  # pylint: disable=protected-access
                if node.name == name:
                    WaitForTask(node.snapshot.RemoveSnapshot_Task(removeChildren=False), si=self._si)
        elif self.provider == "proxmox":
            api = it._pve_api(self.conn)  # pylint: disable=protected-access
            guest = it._pve_guest(api, vm)  # pylint: disable=protected-access
            if name in [s["name"] for s in guest.snapshot.get()]:
                _pve_wait(api, guest.snapshot(name).delete())
        else:
            import libvirt  # pylint: disable=import-outside-toplevel
            conn = libvirt.open(self.conn["uri"])
            try:
                dom = conn.lookupByName(vm)
                for snap in dom.listAllSnapshots():
                    if snap.getName() == name:
                        snap.delete(0)
            finally:
                conn.close()

    def revert(self, vm, name):
        if self.provider == "vmware":
            from pyVim.task import WaitForTask  # pylint: disable=import-outside-toplevel
            machine = self._vsphere_vm(vm)
            node = [n for n in it._vsphere_tree(machine) if n.name == name][0]  # pylint: disable=protected-access
            WaitForTask(node.snapshot.RevertToSnapshot_Task(), si=self._si)
        elif self.provider == "proxmox":
            api = it._pve_api(self.conn)  # pylint: disable=protected-access
            _pve_wait(api, it._pve_guest(api, vm).snapshot(name).rollback.post())  # pylint: disable=protected-access
        else:
            import libvirt  # pylint: disable=import-outside-toplevel
            conn = libvirt.open(self.conn["uri"])
            try:
                dom = conn.lookupByName(vm)
                dom.revertToSnapshot(dom.snapshotLookupByName(name, 0), 0)
            finally:
                conn.close()


def _pve_wait(api, upid, limit=60.0):
    node = upid.split(":")[1]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if api.nodes(node).tasks(upid).status.get()["status"] == "stopped":
            return
        time.sleep(0.05)
    raise RuntimeError("task %s still running after %ss" % (upid, limit))


def old_marker(run_id, phase="verified"):
    return ("[prechange.snapshots v1 run=%s creator=ops%%40old created=2026-01-02T03:04:05Z "
            "expires=2099-01-01T00:00:00Z phase=%s]" % (run_id, phase))


class Seeds(object):
    """Foreign snapshots and an older run's snapshot on every VM the campaign touches; all must survive."""

    def __init__(self, ledger):
        self.ledger = ledger
        self.seeded = []  # (truth, vm, Snap)

    def seed(self, truth, vm, tag):
        made = []
        old_run = "old-%s" % uuid.uuid4().hex[:6]
        for name, description in (("foreign-%s" % tag, "made by another team, not ours"),
                                  ("prechange-%s" % old_run, "Before maintenance run %s\n%s" % (old_run, old_marker(old_run))),
                                  ("foreign2-%s" % tag, "looks like ours but is not\n[prechange.snapshots v1 run= broken")):
            truth.make(vm, name, description)
            made.append(name)
        snaps = truth.snapshots(vm)[0]
        for snap in snaps:
            if snap.name in made:
                self.seeded.append((truth, vm, snap))
        return made

    def check(self):
        """Every seeded snapshot still there (same id); each missing one is a foreign deletion."""
        missing = []
        for truth, vm, snap in self.seeded:
            try:
                ids = [s.id for s in truth.snapshots(vm)[0]]
            except Exception as exc:  # pylint: disable=broad-except
                missing.append("%s: cannot read %s (%s)" % (truth.provider, vm, exc))
                continue
            if snap.id not in ids:
                self.ledger.violation("foreign_deletions", "%s/%s" % (truth.provider, vm),
                                      "snapshot %s (%s) is gone" % (snap.name, snap.id))
                missing.append(snap.name)
        return missing
