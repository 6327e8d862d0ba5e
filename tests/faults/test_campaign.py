# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault campaign (issue 14): faults injected against the real test backends, ground truth read from their APIs.

Run by the test command as its own stage (tests/run.sh, ``SKIP_FAULTS=1`` skips it)::

    python -m pytest tests/faults

The backends are the test ones: the campaign's own vcsim and fakepve (started here, with distinctive secrets)
and the real libvirtd (held under ``flock /tmp/prechange-libvirt.lock`` for the whole libvirt part). Every fault
is bounded (small module ``timeout``, a kill cap on every process) and self-stopping (proxies close, hooks are
switched off, locks released); all traffic stays on loopback. What happened is read from the platforms' own
APIs (pyvmomi, proxmoxer, libvirt-python), never through the fault proxy and never from the collection's output.

Each fault ends as one line in the ledger; at the end one summary line::

    fault campaign: tried=N survived=N wrong_reverts=0 foreign_deletions=0 unrecorded_snapshots=0 secrets_leaked=0

and every fault not survived is listed with its id, what happened and the message the user saw. The stage fails
on any wrong revert, foreign deletion, unrecorded snapshot or leaked secret (a fault merely not survived is
reported, and fails nothing by itself).

Definitions:

- **survived**: the user got a clear error in the collection's grammar ("Failed to <action> snapshot '<name>' of
  VM '<vm>' on <provider>: ...": no "MODULE FAILURE", no Python traceback, no raw exception class name as the
  message) or a correct success, and the platform's state is what the messages say (an error that says nothing
  was changed changed nothing; a success did what it says; the user's retry, or the next run, ends right).
- **wrong revert**: a VM reverted that the user did not ask to revert, or to a snapshot other than the run's own.
- **foreign deletion**: any snapshot deleted that the collection did not make in this run. Every VM is seeded
  with foreign snapshots and with a snapshot of an older run of ours; all of them must survive.
- **unrecorded snapshot**: after the fault, a snapshot of ours on the platform that the next run (or the run's
  report) does not find and account for: a second snapshot of one name made by a retry, a resumed or a
  concurrent run beside the first, or any snapshot with our marker that no report lists and the next run ignores.
- **secret leaked**: the connection password or API token secret (distinctive ``S3cr3t-<random>`` values)
  appearing in any stdout/stderr, report file or snapshot description.

Faults: transport (a TCP fault proxy between the modules and vcsim / fakepve: reset mid-answer, truncated
answer, refused connection, stalled answer, during create, delete, revert and the listing); SIGINT and SIGTERM
to ``ansible-playbook prechange.snapshots.maintenance`` at each stage, then the next run as a user does it;
concurrent runs; busy VMs through the simulators' own hooks and a real libvirt job; bad input; wrong secrets;
libvirtd stopped and restarted under a running job. Most faults are module level (the module's process, as
Ansible starts it, with its arguments file: a module that dies without a JSON result is what ansible shows as
"MODULE FAILURE"); the signal and concurrency ones are playbook level.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

import campaign
from campaign import crash_of, run_module, says_nothing_changed
from proxy import FaultProxy

RUN_ID = "campaign-%s" % campaign.uuid.uuid4().hex[:8]
# A stalled answer: the module is asked for this timeout, and killed by the campaign after STALL_CAP seconds.
STALL_TIMEOUT = 3
STALL_CAP = 15
# Bytes of the server's answer that pass before a reset or a truncation (mid-answer, mid-TLS-record).
MID_ANSWER = 200
# ... and later in a longer answer (past the headers' TLS record, where one arrives apart).
LATE_ANSWER = 1500

TRANSPORT_VMS = {
    "vmware": {"create": "DC0_H0_VM0", "delete": "DC0_H0_VM1", "revert": "DC0_H0_VM2", "list": "DC0_H0_VM3"},
    "proxmox": {"create": "fault300", "delete": "fault301", "revert": "fault302", "list": "fault303"},
}
STATE = {"create": "present", "delete": "absent", "revert": "reverted"}


def conn_args(backend, port=None):
    """The module's connection arguments, to the backend or (port) to a proxy in front of it."""
    args = dict(backend.module_args)
    if port is not None:
        if backend.provider == "vmware":
            args.update(hostname="127.0.0.1", port=port)
        else:
            args.update(api_host="127.0.0.1", api_port=port)
    return args


def target(backend):
    if backend.provider == "vmware":
        return backend.info["hostname"], backend.info["port"]
    return backend.cluster.host, backend.cluster.port


def call(backend, op, vm, name=None, port=None, cap=60.0, **extra):
    module = "%s_snapshot_info" % backend.provider if op == "list" else "%s_snapshot" % backend.provider
    args = conn_args(backend, port)
    args["vm"] = vm
    if op != "list":
        args.update(name=name, state=STATE[op])
    if op == "create":
        args.update(run_id=RUN_ID, description="made by the fault campaign")
    args.update(extra)
    return campaign.ModuleRun(module, args, cap)


class TransportCase(object):
    """One transport fault on one operation: prepare the VM, run the module through the proxy, judge, retry."""

    def __init__(self, backend, ledger, op, mode, index, serial, after_bytes=0):
        self.backend = backend
        self.truth = backend.truth
        self.ledger = ledger
        self.op = op
        self.mode = mode
        self.index = index
        self.vm = TRANSPORT_VMS[backend.provider][op]
        self.after_bytes = after_bytes
        self.id = "transport/%s/%s/%s@request%d%s" % (
            backend.provider, op, mode, index, "+%dB" % after_bytes if after_bytes else "")
        self.name = {"create": "fc-%s-%d" % (mode, serial), "delete": "fd-%s-%d" % (mode, serial),
                     "revert": "fr-target", "list": None}[op]
        self.proxy = None
        self.run = None

    def prepare(self):
        if self.op == "delete":
            made = run_module("%s_snapshot" % self.backend.provider,
                              dict(conn_args(self.backend), vm=self.vm, name=self.name, state="present", run_id=RUN_ID))
            assert not made.failed, made.msg
        if self.op == "revert":
            self.truth.revert(self.vm, "fr-after")
        self.truth.settle(self.vm, getattr(self.backend, "cluster", None))
        self.before, self.current_before = self.truth.snapshots(self.vm)
        self.proxy = FaultProxy(*target(self.backend))
        self.proxy.set_fault(self.mode, after_requests=self.index, after_bytes=self.after_bytes)

    def launch(self):
        extra = {"timeout": STALL_TIMEOUT} if self.mode == "stall" else {"timeout": 30}
        cap = STALL_CAP if self.mode == "stall" else 90
        self.run = call(self.backend, self.op, self.vm, self.name, port=self.proxy.port, cap=cap, **extra)

    def finish(self):
        run = self.run.wait()
        self.proxy.set_fault("pass")
        self.proxy.close()
        self.ledger.scan(self.id, run.stdout, run.stderr)
        self.truth.settle(self.vm, getattr(self.backend, "cluster", None))
        after, current = self.truth.snapshots(self.vm)
        problems = []
        if run.failed:
            crash = crash_of(run, self.backend.provider)
            if crash:
                problems.append(crash)
            if says_nothing_changed(run.msg) and [s.id for s in after] != [s.id for s in self.before]:
                problems.append("the error says nothing was changed, but the snapshots went from %s to %s"
                                % (self.before, after))
            if says_nothing_changed(run.msg) and current != self.current_before:
                problems.append("the error says nothing was changed, but the current snapshot moved")
        else:
            problems += self.success_problems(run, after, current)
        target_id = self._target_id(after)
        if self.op == "revert" and current not in (self.current_before, target_id):
            self.ledger.violation("wrong_reverts", self.id, "the VM's current snapshot is %s, neither %s nor %s"
                                  % (current, self.current_before, target_id))
        problems += self.retry()
        if self.proxy.hits == 0:
            self.ledger.unfired.append("%s (%d requests seen)" % (self.id, self.proxy.requests))
            return False
        self.ledger.record(self.id, not problems, "; ".join(problems) or "ok", run.msg if run.failed else "")
        return True

    def _target_id(self, snaps):
        ids = [s.id for s in snaps if s.name == self.name]
        return ids[0] if ids else None

    def success_problems(self, run, after, current):
        names = [s.name for s in after]
        if self.op == "create" and names.count(self.name) != 1:
            return ["reported success, but the VM has %d snapshots named %s" % (names.count(self.name), self.name)]
        if self.op == "delete" and self.name in names:
            return ["reported success, but %s is still there" % self.name]
        if self.op == "revert" and current != self._target_id(after):
            return ["reported success, but the current snapshot is %s" % current]
        if self.op == "list":
            listed = sorted(s.get("name") for s in run.result.get("snapshots", []))
            if listed != sorted(names):
                return ["listed %s, the platform has %s" % (listed, sorted(names))]
        return []

    def retry(self):
        """The user's next attempt, without the fault: it must end right, and never with a second snapshot."""
        if self.op == "list":
            return []
        again = call(self.backend, self.op, self.vm, self.name, timeout=30).wait()
        self.ledger.scan(self.id, again.stdout, again.stderr)
        self.truth.settle(self.vm, getattr(self.backend, "cluster", None))
        after, current = self.truth.snapshots(self.vm)
        names = [s.name for s in after]
        problems = []
        if again.failed:
            problems.append("the retry failed: %s" % again.msg)
        if self.op == "create":
            if names.count(self.name) > 1:
                self.ledger.violation("unrecorded_snapshots", self.id, "after the retry the VM has %d snapshots named %s"
                                      % (names.count(self.name), self.name))
                problems.append("%d snapshots named %s after the retry" % (names.count(self.name), self.name))
            # Clean up: the next case starts from the seeded snapshots only.
            self.truth.remove(self.vm, self.name)
        elif self.op == "delete" and self.name in names:
            problems.append("%s still there after the retry" % self.name)
            self.truth.remove(self.vm, self.name)
        elif self.op == "revert" and current != self._target_id(after):
            problems.append("after the retry the current snapshot is %s" % current)
        return problems


def calibrate(backend, op):
    """(requests one call makes, index of the request that changes the platform) for an operation.

    The changing request is found by bisection with the proxy refusing from request k on: the platform
    changed iff that request came before k. Through TLS the proxy cannot read the requests, so this is
    how a fault is aimed at "the create call" and not at the login."""
    vm = TRANSPORT_VMS[backend.provider][op]
    truth = backend.truth
    cluster = getattr(backend, "cluster", None)

    def attempt(mode, k, name):
        with FaultProxy(*target(backend)) as proxy:
            proxy.set_fault(mode, after_requests=k)
            run = call(backend, op, vm, name, port=proxy.port, timeout=30).wait()
            truth.settle(vm, cluster)
            return proxy.requests, run

    def changed(k):
        name = {"create": "fcal-%d" % k, "delete": "fcal-del", "revert": "fr-target"}[op]
        if op == "delete":
            truth.make(vm, name, "campaign calibration")
        if op == "revert":
            truth.revert(vm, "fr-after")
        _seen, _run = attempt("refuse", k, name)
        snaps, current = truth.snapshots(vm)
        names = [s.name for s in snaps]
        if op == "create":
            result = name in names
            truth.remove(vm, name)
        elif op == "delete":
            result = name not in names
            truth.remove(vm, name)
        else:
            result = current == [s.id for s in snaps if s.name == "fr-target"][0]
        return result

    if op == "revert" and "fr-target" not in truth.names(vm):
        truth.make(vm, "fr-target", "campaign revert target")
        truth.make(vm, "fr-after", "campaign: current before each revert")
    name = {"create": "fcal-count", "delete": "fcal-del", "revert": "fr-target", "list": None}[op]
    if op == "delete":
        truth.make(vm, name, "campaign calibration")
    if op == "revert":
        truth.revert(vm, "fr-after")
    total, run = attempt("pass", 0, name)
    assert not run.failed, "calibration call failed without a fault: %s" % run.msg
    if op == "create":
        truth.remove(vm, name)
    if op == "list":
        # Past the login, into the reads of the VM and its snapshots.
        return total, max(1, total - 2)
    low, high = 0, total
    assert changed(high), "%s/%s: refusing after all %d requests, the platform did not change" % (
        backend.provider, op, total)
    while high - low > 1:
        mid = (low + high) // 2
        if changed(mid):
            high = mid
        else:
            low = mid
    return total, high - 1


def transport_cases(backend, ledger, seeds):
    cases = []
    for op, vm in TRANSPORT_VMS[backend.provider].items():
        seeds.seed(backend.truth, vm, op)
    serial = 0
    for op in ("create", "delete", "revert", "list"):
        _total, index = calibrate(backend, op)
        faults = [("reset", MID_ANSWER), ("truncate", MID_ANSWER), ("refuse", 0), ("stall", 0)]
        if op in ("create", "list"):
            faults.append(("reset", LATE_ANSWER))
        for mode, after_bytes in faults:
            serial += 1
            cases.append(TransportCase(backend, ledger, op, mode, index, serial, after_bytes))
        if op == "create":
            # The API goes away right after the create was accepted: the answer of the next request is lost.
            serial += 1
            cases.append(TransportCase(backend, ledger, op, "refuse", index + 1, serial))
    done = []
    for case in cases:
        if case.mode != "stall":
            case.prepare()
            case.launch()
            if not case.finish() and case.index > 0:
                # Through TLS a request's count can be one off (headers and body arriving apart): aim once more,
                # one request earlier.
                case = TransportCase(backend, ledger, case.op, case.mode, case.index - 1, serial + len(done) + 1,
                                     case.after_bytes)
                case.prepare()
                case.launch()
                case.finish()
        done.append(case)
    return done


def test_transport_faults(vc, pv, ledger, seeds):
    """Reset mid-answer, truncated answer, refused connection and stalled answer during create, delete, revert, list."""
    # The two providers side by side (separate backends and VMs); then every stall at once (one VM per operation),
    # since each waits for the module's timeout.
    with ThreadPoolExecutor(2) as pool:
        cases = [case for found in pool.map(lambda b: transport_cases(b, ledger, seeds), (vc, pv)) for case in found]
    stalls = [case for case in cases if case.mode == "stall"]
    for case in stalls:
        case.prepare()
        case.launch()
    for case in stalls:
        case.finish()
    assert all(case.run is not None and case.run.elapsed is not None for case in cases)


# --- module-level faults: busy VMs, concurrent creates, bad input, secrets ---------------------------------

def judge(ledger, fid, backend, run, problems=(), expect_failure=None):
    """Record one module-level fault: a clear error or a success, plus the case's own state problems."""
    problems = list(problems)
    ledger.scan(fid, run.stdout, run.stderr)
    if run.failed:
        crash = crash_of(run, backend.provider)
        if crash:
            problems.insert(0, crash)
        if expect_failure is False:
            problems.insert(0, "failed: %s" % run.msg)
    elif expect_failure:
        problems.insert(0, "succeeded where it must fail")
    return ledger.record(fid, not problems, "; ".join(problems) or "ok", run.msg if run.failed else "")


def unchanged(truth, vm, before, run):
    """Problems when the VM's snapshots or current snapshot differ from ``before`` (a (snaps, current) pair)."""
    after, current = truth.snapshots(vm)
    problems = []
    if sorted(s.id for s in after) != sorted(s.id for s in before[0]):
        problems.append("the snapshots went from %s to %s%s" % (
            before[0], after, " although the error says nothing was changed" if says_nothing_changed(run.msg) else ""))
    if current != before[1]:
        problems.append("the current snapshot moved from %s to %s" % (before[1], current))
    return problems


BUSY_VMS = {"vmware": "DC0_H0_VM4", "proxmox": "fault304"}
OTHER_JOB_MS = 1000


class OtherJob(object):
    """Another job holding the VM, through the simulator's own hooks (a vcsim task kept running; a PVE lock)."""

    def __init__(self, backend, vm, seeds):
        self.backend = backend
        self.vm = vm
        self.seeds = seeds
        self.serial = 0

    def hold(self, ends_by_itself):
        """Hold the VM: for ever (until release) or for about OTHER_JOB_MS."""
        self.serial += 1
        if self.backend.provider == "vmware":
            from vcsim import set_task_hook  # pylint: disable=import-outside-toplevel
            truth = self.backend.truth
            machine = truth._vsphere_vm(self.vm)  # pylint: disable=protected-access
            # Held for good: a long delay, and the test ends it by waiting; the other client's snapshot is foreign.
            delay = OTHER_JOB_MS if ends_by_itself else 3000
            set_task_hook(truth._si, machine, "CreateSnapshot", delay_ms=delay)  # pylint: disable=protected-access
            machine.CreateSnapshot_Task(name="other-job-%d" % self.serial, description="another team's job",
                                        memory=False, quiesce=False)
            set_task_hook(truth._si, machine, "CreateSnapshot", delay_ms=0)  # pylint: disable=protected-access
        else:
            vmid = int(self.vm.replace("fault", ""))
            cluster = self.backend.cluster
            if ends_by_itself:
                # fakepve's vzdump holds the 'backup' lock for 50 PVE seconds: 1 s at time scale 0.02.
                cluster.run(cluster.pve.backup(vmid, secs=50 * OTHER_JOB_MS // 1000))
            else:
                cluster.pve.snapshot_lock(vmid, "backup")

    def release(self):
        truth = self.backend.truth
        if self.backend.provider == "vmware":
            truth.settle(self.vm, limit=30)
            for snap in truth.snapshots(self.vm)[0]:
                if snap.name.startswith("other-job-") and snap.id not in [s[2].id for s in self.seeds.seeded]:
                    self.seeds.seeded.append((truth, self.vm, snap))
        else:
            self.backend.cluster.pve.unlock(int(self.vm.replace("fault", "")))
            truth.settle(self.vm, self.backend.cluster)


def test_busy_vms(vc, pv, ledger, seeds):
    """A VM busy with another job: refused at once (lock_timeout 0) naming the job, or waited for (lock_timeout)."""
    for backend in (vc, pv):
        vm = BUSY_VMS[backend.provider]
        truth = backend.truth
        seeds.seed(truth, vm, "busy")
        job = OtherJob(backend, vm, seeds)
        made = run_module("%s_snapshot" % backend.provider,
                          dict(conn_args(backend), vm=vm, name="busy-target", state="present", run_id=RUN_ID))
        assert not made.failed, made.msg
        truth.make(vm, "busy-after", "campaign: current before the revert")
        for op in ("create", "delete", "revert"):
            for lock_timeout in (0, 10):
                fid = "busy/%s/%s/lock_timeout=%d" % (backend.provider, op, lock_timeout)
                name = {"create": "busy-new-%d" % lock_timeout, "delete": "busy-del-%d" % lock_timeout,
                        "revert": "busy-target"}[op]
                if op == "delete":
                    truth.make(vm, name, "ours to delete\n" + campaign.old_marker(RUN_ID, "pending"))
                if op == "revert":
                    truth.revert(vm, "busy-after")
                truth.settle(vm, getattr(backend, "cluster", None))
                before = truth.snapshots(vm)
                job.hold(ends_by_itself=bool(lock_timeout))
                run = call(backend, op, vm, name, timeout=30, lock_timeout=lock_timeout).wait()
                job.release()
                after, current = truth.snapshots(vm)
                # The other job's own snapshot (vcsim) is not ours to judge: leave it out, and let it be current.
                theirs = [s.id for s in after if s.name.startswith("other-job-")]
                ours_before = sorted(s.id for s in before[0] if s.id not in theirs)
                ours_after = sorted(s.id for s in after if s.id not in theirs)
                names = [s.name for s in after if s.id not in theirs]
                target = [s.id for s in after if s.name == name]
                problems = []
                if run.failed:
                    if "busy" not in run.msg:
                        problems.append("the error does not say the VM is busy")
                    if ours_after != ours_before or current not in [before[1]] + theirs:
                        problems.append("the error says %r, but the snapshots went from %s to %s (current %s -> %s)"
                                        % (run.msg[-40:], before[0], after, before[1], current))
                    if lock_timeout:
                        problems.append("not waited for within lock_timeout=%d" % lock_timeout)
                else:
                    if not lock_timeout:
                        problems.append("lock_timeout=0 but the busy VM was acted on")
                    if op == "create" and names.count(name) != 1:
                        problems.append("%d snapshots named %s" % (names.count(name), name))
                    if op == "delete" and name in names:
                        problems.append("reported deleted, still there")
                    if op == "revert" and current not in target:
                        problems.append("reported reverted, current is %s" % current)
                if op == "revert" and current not in [before[1]] + theirs + target:
                    ledger.violation("wrong_reverts", fid, "current snapshot %s" % current)
                judge(ledger, fid, backend, run, problems)
                if op in ("create", "delete"):
                    truth.remove(vm, name)
    assert ledger.faults


CONCURRENT_VMS = {"vmware": "DC0_H0_VM5", "proxmox": "fault305"}


def concurrent_creates(backend, ledger, vm, hook=None):
    """Two `<provider>_snapshot state=present` of one name on one VM at once: exactly one snapshot of it after."""
    name = "twice-%s" % campaign.uuid.uuid4().hex[:6]
    fid = "concurrency/%s/two-creates-of-one-name" % backend.provider
    if hook:
        hook(True)
    runs = [call(backend, "create", vm, name, timeout=30, lock_timeout=30) for _twice in range(2)]
    runs = [run.wait() for run in runs]
    if hook:
        hook(False)
    backend.truth.settle(vm, getattr(backend, "cluster", None))
    count = backend.truth.count(vm, name)
    problems = []
    for run in runs:
        ledger.scan(fid, run.stdout, run.stderr)
        if run.failed and crash_of(run, backend.provider):
            problems.append("%s: %s" % (crash_of(run, backend.provider), run.msg))
    if count != 1:
        problems.append("%d snapshots named %s after both (%s)" % (count, name, [r.msg or "ok" for r in runs]))
        if count > 1:
            ledger.violation("unrecorded_snapshots", fid, "%d snapshots named %s on %s" % (count, name, vm))
    if all(run.failed for run in runs):
        problems.append("both failed")
    ledger.record(fid, not problems, "; ".join(problems) or "ok", " / ".join(r.msg for r in runs if r.failed))
    backend.truth.remove(vm, name)


def slow_creates(backend, vm):
    """A vcsim hook: a create that takes a while, as on vCenter; the second call meets the first one's running task."""
    from vcsim import set_task_hook  # pylint: disable=import-outside-toplevel
    truth = backend.truth

    def hook(on):
        machine = truth._vsphere_vm(vm)  # pylint: disable=protected-access
        set_task_hook(truth._si, machine, "CreateSnapshot", delay_ms=1000 if on else 0)  # pylint: disable=protected-access
    return hook


def test_concurrent_creates(vc, pv, ledger, seeds):
    """Two creates of one snapshot name on one VM at once (lock_timeout 30): exactly one snapshot of it after."""
    for backend in (vc, pv):
        vm = CONCURRENT_VMS[backend.provider]
        seeds.seed(backend.truth, vm, "race")
        concurrent_creates(backend, ledger, vm, slow_creates(backend, vm) if backend.provider == "vmware" else None)
    assert ledger.faults


# --- playbook level: signals to ansible-playbook at each stage, then the next runs as a user does them -------

SIGNAL_STAGES = ("snapshot", "change", "verify", "revert_or_prune")
RESUME = campaign.re.compile(r"resume it with (-e \S+(?: -e \S+)*) once it no longer runs")
STAGE_WAIT = 60


def ours(snaps):
    """{run id: [Snap]} of the snapshots that carry our marker and a phase (runs that record their state)."""
    found = {}
    for snap in snaps:
        marker = snap.marker
        if marker and marker.get("run") and marker.get("phase"):
            found.setdefault(marker["run"], []).append(snap)
    return found


def reported_ids(report_dir):
    """Snapshot ids every report in the directory lists (left on the platform, or a host's snapshot)."""
    ids = set()
    for path in report_dir.glob("*.json") if report_dir.exists() else ():
        try:
            data = campaign.json.loads(path.read_text())
        except ValueError:
            continue
        for left in data.get("left_on_platform") or []:
            ids.add(str(left.get("id")))
        for host in data.get("hosts") or []:
            for key in ("snapshot", "left"):
                if isinstance(host.get(key), dict) and host[key].get("id"):
                    ids.add(str(host[key]["id"]))
    return ids


class SignalCase(object):
    """Interrupt one maintenance run at one stage, then run as the user would: a fresh run, then the resume command."""

    def __init__(self, backend, ledger, seeds, tmp_path, stage, signum, vm):
        self.backend, self.ledger, self.seeds = backend, ledger, seeds
        self.stage, self.signum, self.vm = stage, signum, vm
        self.truth = backend.truth_factory()
        self.id = "signal/%s/%s/%s" % (backend.provider, campaign.signal.Signals(signum).name, stage)
        self.dir = tmp_path
        self.flag = tmp_path / "reached"
        fail_check = stage == "revert_or_prune" and signum == campaign.signal.SIGTERM
        self.ws = it.Workspace(tmp_path, backend.provider, backend.conn, {"h1": vm},
                               group_vars=backend.inventory_vars, check_passes=not fail_check)
        self.outputs = []

    def _hook(self, task, delay):
        from vcsim import set_task_hook  # pylint: disable=import-outside-toplevel
        machine = self.truth._vsphere_vm(self.vm)  # pylint: disable=protected-access
        set_task_hook(self.truth._si, machine, task, delay_ms=delay)  # pylint: disable=protected-access

    def _running(self, task):
        machine = self.truth._vsphere_vm(self.vm)  # pylint: disable=protected-access
        # Only the delayed task can be running then (the hooks' own ReconfigVM tasks end at once).
        return any(str(t.info.state) == "running" and "reconfig" not in str(t.info.descriptionId).lower()
                   for t in machine.recentTask or [])

    def run(self):
        self.seeds.seed(self.truth, self.vm, "sig")
        initial_current = self.truth.snapshots(self.vm)[1]
        hold = "- ansible.builtin.copy: {dest: '%s', content: x}\n- ansible.builtin.command: sleep 40\n" % self.flag
        if self.stage == "change":
            self.ws.change.write_text(hold)
        if self.stage == "verify":
            self.ws.check.write_text(hold)
        task = {"snapshot": "CreateSnapshot",
                "revert_or_prune": "RemoveSnapshot" if self.signum == campaign.signal.SIGINT else "RevertToSnapshot"
                }.get(self.stage)
        if task:
            self._hook(task, 2500)
        cmd = [it.os.path.join(it.os.path.dirname(it.sys.executable), "ansible-playbook"),
               "prechange.snapshots.maintenance", "-i", str(self.ws.inventory)]
        env = it.ansible_env({"PRECHANGE_REPORT_DIR": str(self.ws.report_dir)})
        proc = campaign.subprocess.Popen(cmd, env=env, stdout=campaign.subprocess.PIPE, stderr=campaign.subprocess.STDOUT,
                                         universal_newlines=True, start_new_session=True)
        problems = []
        deadline = campaign.time.monotonic() + STAGE_WAIT
        reached = False
        while campaign.time.monotonic() < deadline and proc.poll() is None:
            reached = self.flag.exists() if not task else self._running(task)
            if reached:
                break
            campaign.time.sleep(0.1)
        if not reached:
            problems.append("the run never reached the %s stage (exit %s)" % (self.stage, proc.poll()))
        try:
            if self.signum == campaign.signal.SIGINT:
                campaign.os.killpg(proc.pid, campaign.signal.SIGINT)  # Ctrl-C: the whole foreground group
            else:
                proc.send_signal(campaign.signal.SIGTERM)  # kill PID: ansible-playbook alone
        except ProcessLookupError:
            pass
        try:
            out = proc.communicate(timeout=60)[0]
        except campaign.subprocess.TimeoutExpired:
            campaign.os.killpg(proc.pid, campaign.signal.SIGKILL)
            out = proc.communicate()[0]
            problems.append("ansible-playbook did not stop within 60 s of the signal")
        if task:
            self._hook(task, 0)
        self.truth.settle(self.vm, limit=30)
        self.outputs.append(out)
        resume = RESUME.search(out)
        run_id = None
        if resume:
            run_id = campaign.re.search(r"prechange_run_id=(\S+)", resume.group(1)).group(1)
        else:
            problems.append("the interrupted run printed no resume command")
        after_signal = ours(self.truth.snapshots(self.vm)[0])
        listed = reported_ids(self.ws.report_dir)
        # The user's next move: a fresh run (no run id) with the usual change and checks.
        self.ws.change.write_text("- ansible.builtin.copy: {dest: '%s/changed', content: x}\n" % self.dir)
        self.ws.check.write_text("- ansible.builtin.debug: {msg: all good}\n")
        fresh = self.ws.run("prechange.snapshots.maintenance")
        self.outputs.append(fresh.stdout)
        snaps, _current = self.truth.snapshots(self.vm)
        after_fresh = ours(snaps)
        pending = [s for found in after_fresh.values() for s in found if s.marker.get("phase") == "pending"]
        listed |= reported_ids(self.ws.report_dir)
        if run_id and [s for s in after_signal.get(run_id, []) if s.marker.get("phase") == "pending"] \
                and run_id not in fresh.stdout:
            problems.append("the fresh run did not mention the interrupted run %s, whose snapshot is on the VM" % run_id)
        if len(pending) > 1:
            self.ledger.violation("unrecorded_snapshots", self.id, "after the fresh run %d pending snapshots of ours: %s"
                                  % (len(pending), pending))
        # Then the command the interrupted run printed.
        if resume:
            again = self.ws.run("prechange.snapshots.maintenance", env=None,
                                extra_vars=dict(part.split("=", 1) for part in resume.group(1).replace("-e ", "").split()))
            self.outputs.append(again.stdout)
            if again.returncode != 0:
                problems.append("the resume command failed (exit %d): %s" % (
                    again.returncode, _failure_lines(again.stdout)))
            listed |= reported_ids(self.ws.report_dir)
        snaps, current = self.truth.snapshots(self.vm)
        final = ours(snaps)
        for run, found in final.items():
            if run.startswith("old-"):
                continue
            names = [s.name for s in found]
            if len(found) != len(set(names)):
                self.ledger.violation("unrecorded_snapshots", self.id, "two snapshots of one name of run %s: %s" % (run, found))
            for snap in found:
                if snap.id not in listed:
                    self.ledger.violation("unrecorded_snapshots", self.id,
                                          "snapshot %s (%s, phase %s) of run %s is in no report"
                                          % (snap.name, snap.id, snap.marker.get("phase"), run))
        own = [s.id for found in final.values() for s in found] + [s.id for found in after_signal.values() for s in found]
        if current not in [initial_current] + own:
            self.ledger.violation("wrong_reverts", self.id, "the VM's current snapshot is %s" % current)
        for out in self.outputs:
            self.ledger.scan(self.id, out)
            for text in ("MODULE FAILURE", "Traceback (most recent call last)"):
                if text in out:
                    problems.append("%r in the output" % text)
        for path in self.ws.report_dir.glob("*") if self.ws.report_dir.exists() else ():
            self.ledger.scan(self.id, path.read_text(errors="replace"))
        self.ledger.record(self.id, not problems, "; ".join(problems) or "ok",
                           _failure_lines(self.outputs[-1]) if problems else "")
        self.truth.close()


def _failure_lines(output):
    lines = [line for line in output.splitlines() if "Failed to" in line or "fatal:" in line or "msg" in line]
    return " / ".join(line.strip() for line in lines[-3:])


it = campaign.it


def test_signals_to_maintenance(vc, ledger, seeds, tmp_path):
    """SIGINT (Ctrl-C to the group) and SIGTERM (to ansible-playbook) at each stage of a vSphere maintenance run."""
    vc.truth_factory = lambda: campaign.Truth("vmware", vc.conn)
    cases = []
    for number, (stage, signum) in enumerate((s, g) for s in SIGNAL_STAGES
                                             for g in (campaign.signal.SIGINT, campaign.signal.SIGTERM)):
        folder = tmp_path / ("case%d" % number)
        folder.mkdir()
        cases.append(SignalCase(vc, ledger, seeds, folder, stage, signum, "DC0_C0_RP0_VM%d" % number))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda case: case.run(), cases))
    assert len(cases) == 8


def test_two_maintenance_runs_with_one_run_id(vc, ledger, seeds, tmp_path):
    """Two maintenance runs with the same run id on the same VM at once: never two snapshots of that name."""
    vm = "DC0_H0_VM7"
    truth = campaign.Truth("vmware", vc.conn)
    seeds.seed(truth, vm, "samerun")
    run_id = "same-%s" % campaign.uuid.uuid4().hex[:8]
    name = "prechange-" + run_id
    fid = "concurrency/vmware/two-maintenance-runs-one-run-id"
    spaces = []
    for number in range(2):
        folder = tmp_path / ("run%d" % number)
        folder.mkdir()
        spaces.append(it.Workspace(folder, "vmware", vc.conn, {"h1": vm}, group_vars=vc.inventory_vars,
                                   change_probe=True))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda ws: ws.run("prechange.snapshots.maintenance", {"prechange_run_id": run_id}),
                                spaces))
    truth.settle(vm)
    problems = []
    counts = [(ws.during("h1") or {"snapshots": {}})["snapshots"] for ws in spaces]
    # during-*.json holds a name-keyed map: read the duplicates from the platform now, and from the probes' names.
    final = truth.count(vm, name)
    if final > 1:
        ledger.violation("unrecorded_snapshots", fid, "%d snapshots named %s at the end" % (final, name))
        problems.append("%d snapshots named %s at the end" % (final, name))
    listed = set()
    for ws in spaces:
        listed |= reported_ids(ws.report_dir)
    for snap in truth.snapshots(vm)[0]:
        if snap.name == name and snap.id not in listed:
            ledger.violation("unrecorded_snapshots", fid, "%s (%s) is in no report" % (snap.name, snap.id))
    codes = [r.returncode for r in results]
    if codes.count(0) == 0:
        # Both backed off: fine only if what they say holds the VM is really there.
        present = [s.id for s in truth.snapshots(vm)[0]]
        named = set(campaign.re.findall(r"took the VM at the same moment \(its snapshot '[^']*', id ([^)\s]+)\)",
                                        "\n".join(r.stdout for r in results)))
        gone = sorted(i for i in named if i not in present)
        problems.append("neither run passed%s" % (
            "; each says the other run's snapshot (%s) holds the VM, but %s is not on the platform: nobody holds it"
            % (", ".join(sorted(named)), ", ".join(gone)) if gone else ""))
    for result in results:
        ledger.scan(fid, result.stdout)
        if "MODULE FAILURE" in result.stdout or "Traceback (most recent call last)" in result.stdout:
            problems.append("a crash in the output")
    ledger.record(fid, not problems, "; ".join(problems) or "ok (exit codes %s, seen during the change: %s)" % (
        codes, [sorted(c) for c in counts]), " / ".join(_failure_lines(r.stdout) for r in results if r.returncode))
    truth.close()


BAD_VMS = {"vmware": "DC0_H0_VM6", "proxmox": "fault306"}


def test_bad_input_changes_nothing(vc, pv, ledger, seeds):
    """A wrong VM, a wrong snapshot name, an ambiguous snapshot name or VM name: a clear error, nothing changed."""
    for backend in (vc, pv):
        vm = BAD_VMS[backend.provider]
        truth = backend.truth
        seeds.seed(truth, vm, "bad")
        truth.make(vm, "bad-one", "campaign")
        cases = [("wrong-vm", "revert", "no-such-vm-%s" % campaign.uuid.uuid4().hex[:4], "bad-one"),
                 ("wrong-vm", "delete", "no-such-vm-x", "bad-one"),
                 ("wrong-snapshot", "revert", vm, "no-such-snapshot")]
        if backend.provider == "vmware":
            # vSphere allows two snapshots of one name: a revert or a delete by that name must refuse.
            truth.make(vm, "twin", "first")
            truth.make(vm, "twin", "second")
            cases += [("ambiguous-snapshot", "revert", vm, "twin"), ("ambiguous-snapshot", "delete", vm, "twin")]
        for kind, op, target_vm, name in cases:
            fid = "bad-input/%s/%s/%s" % (backend.provider, kind, op)
            before = truth.snapshots(vm)
            run = call(backend, op, target_vm, name, timeout=30).wait()
            problems = unchanged(truth, vm, before, run)
            if op == "revert" and truth.snapshots(vm)[1] != before[1]:
                ledger.violation("wrong_reverts", fid, "%s reverted" % vm)
            judge(ledger, fid, backend, run, problems, expect_failure=True)
    ambiguous_vm(vc, ledger, seeds)
    ambiguous_vm(pv, ledger, seeds)
    assert ledger.faults


def ambiguous_vm(backend, ledger, seeds):
    """Two VMs of one name (vSphere: in two folders; fakepve's own 'dup' pair): a revert by that name refuses."""
    truth = backend.truth
    if backend.provider == "vmware":
        from pyVim.task import WaitForTask  # pylint: disable=import-outside-toplevel
        name = "DC0_H0_VM8"
        first = truth._vsphere_vm(name)  # pylint: disable=protected-access
        second = truth._vsphere_vm("DC0_H0_VM9")  # pylint: disable=protected-access
        datacenter = first.parent
        while not hasattr(datacenter, "vmFolder"):
            datacenter = datacenter.parent
        folder = datacenter.vmFolder.CreateFolder("campaign-dup")
        WaitForTask(folder.MoveIntoFolder_Task([second]), si=truth._si)  # pylint: disable=protected-access
        WaitForTask(second.Rename_Task(name), si=truth._si)  # pylint: disable=protected-access
        machines = [first, second]

        def state(machine):
            return machine.snapshot.currentSnapshot._moId if machine.snapshot else None  # pylint: disable=protected-access

        def make(machine, snap):
            WaitForTask(machine.CreateSnapshot_Task(name=snap, description="campaign", memory=False, quiesce=False),
                        si=truth._si)  # pylint: disable=protected-access

        def revert_to(machine, snap):
            node = [n for n in it._vsphere_tree(machine) if n.name == snap][0]  # pylint: disable=protected-access
            WaitForTask(node.snapshot.RevertToSnapshot_Task(), si=truth._si)  # pylint: disable=protected-access
    else:
        name = "dup"
        api = it._pve_api(backend.conn)  # pylint: disable=protected-access
        machines = [api.nodes("pve1").qemu(106), api.nodes("pve2").qemu(107)]

        def state(machine):
            return [s.get("parent") for s in machine.snapshot.get() if s["name"] == "current"][0]

        def make(machine, snap):
            campaign._pve_wait(api, machine.snapshot.post(snapname=snap))  # pylint: disable=protected-access

        def revert_to(machine, snap):
            campaign._pve_wait(api, machine.snapshot(snap).rollback.post())  # pylint: disable=protected-access
    for machine in machines:
        make(machine, "amb-target")
        make(machine, "amb-after")
    before = [state(m) for m in machines]
    fid = "bad-input/%s/ambiguous-vm/revert" % backend.provider
    run = call(backend, "revert", name, "amb-target", timeout=30).wait()
    after = [state(m) for m in machines]
    problems = []
    if after != before:
        ledger.violation("wrong_reverts", fid, "the VM name %r matches %d VMs and one was reverted" % (name, len(machines)))
        problems.append("one of the two VMs named %s was reverted" % name)
    judge(ledger, fid, backend, run, problems, expect_failure=True)
    for machine in machines:
        revert_to(machine, "amb-after")


def test_secrets_are_never_printed(vc, pv, ledger, tmp_path):
    """Wrong passwords and token secrets (distinctive values) are in no output; the real ones neither."""
    wrong = campaign.secret()
    ledger.secrets.add(wrong)
    token = pv.extra
    cases = [
        (vc, "wrong-password", dict(password=wrong)),
        (pv, "wrong-password", dict(api_password=wrong)),
        (pv, "wrong-token-secret", dict(api_password=None, api_user=token["token_user"],
                                        api_token_id=token["token_id"], api_token_secret=wrong)),
        (pv, "right-token-secret", dict(api_password=None, api_user=token["token_user"],
                                        api_token_id=token["token_id"], api_token_secret=token["token_secret"])),
    ]
    for backend, kind, override in cases:
        vm = TRANSPORT_VMS[backend.provider]["list"]
        args = {k: v for k, v in dict(conn_args(backend), vm=vm, name="sec-x", state="reverted", **override).items()
                if v is not None}
        run = run_module("%s_snapshot" % backend.provider, args)
        fid = "secrets/%s/%s/module" % (backend.provider, kind)
        judge(ledger, fid, backend, run, expect_failure=True)
    # The same wrong password through the maintenance playbook, at -vvv (what a user pastes into a ticket).
    ws = it.Workspace(tmp_path, "vmware", vc.conn, {"h1": "DC0_H0_VM3"},
                      group_vars=dict(vc.inventory_vars, prechange_vmware_password=wrong))
    result = it.run_playbook("prechange.snapshots.maintenance", inventory=str(ws.inventory), verbosity=3,
                             env={"PRECHANGE_REPORT_DIR": str(ws.report_dir)})
    ledger.scan("secrets/vmware/wrong-password/playbook -vvv", result.stdout)
    for path in ws.report_dir.glob("*") if ws.report_dir.exists() else ():
        ledger.scan("secrets/vmware/wrong-password/report %s" % path.name, path.read_text(errors="replace"))
    problems = [] if result.returncode else ["the run with a wrong password passed"]
    if "MODULE FAILURE" in result.stdout or "Traceback (most recent call last)" in result.stdout:
        problems.append("a crash in the output")
    ledger.record("secrets/vmware/wrong-password/playbook", not problems, "; ".join(problems) or "ok",
                  _failure_lines(result.stdout))
    assert ledger.secrets


# --- the real libvirtd: busy domains, races, bad input, the daemon stopped and restarted under a job ---------

CTL = campaign.os.path.join(campaign.REPO, "tests", "backends", "libvirtd", "ctl.sh")


def ctl(action):
    done = campaign.subprocess.run(["bash", CTL, action], stdout=campaign.subprocess.PIPE,
                                   stderr=campaign.subprocess.STDOUT, universal_newlines=True, timeout=120, check=False)
    assert done.returncode == 0, "ctl.sh %s: %s" % (action, done.stdout)


@pytest.fixture
def libvirt_part(libvirtd, libvirt_guests, seeds):
    """The libvirt part holds /tmp/prechange-libvirt.lock throughout (it stops and restarts the shared libvirtd)."""
    import fcntl  # pylint: disable=import-outside-toplevel
    with open("/tmp/prechange-libvirt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        made = []
        try:
            ctl("start")
            for _guest in range(2):
                guest = libvirt_guests.create("blank", "%sfaults-%s" % (libvirt_guests.PREFIX, campaign.uuid.uuid4().hex[:8]),
                                              start=True, uri=libvirtd)
                made.append(guest)
            backend = it.libvirt_backend(libvirtd, [g.name for g in made])
            backend.truth = campaign.Truth("libvirt", backend.conn)
            backend.guests = made
            for guest in made:
                seeds.seed(backend.truth, guest.name, "lv")
            yield backend
            # The foreign snapshots are checked here, before the guests go (and their descriptions scanned).
            seeds.check()
            for truth, vm, _snap in [entry for entry in seeds.seeded if entry[0] is backend.truth]:
                for snap in truth.snapshots(vm)[0]:
                    seeds.ledger.scan("descriptions/libvirt/%s" % vm, snap.description)
            seeds.seeded[:] = [entry for entry in seeds.seeded if entry[0] is not backend.truth]
        finally:
            ctl("start")
            for guest in made:
                libvirt_guests.destroy(guest.name, uri=libvirtd)


def _backup(guest):
    """A pull-mode backup job on the domain (runs until aborted), as tests/integration/test_libvirt_busy.py starts it."""
    import libvirt  # pylint: disable=import-outside-toplevel
    conn = libvirt.open(guest.uri if hasattr(guest, "uri") else "qemu:///system")
    dom = conn.lookupByName(guest.name)
    xml = ("<domainbackup mode='pull'><server transport='unix' socket='%s'/><disks>"
           "<disk name='vda' backup='yes' type='file'><scratch file='%s'/></disk></disks></domainbackup>"
           % (campaign.os.path.join(guest.dir, "nbd-%s.sock" % campaign.uuid.uuid4().hex[:4]),
              campaign.os.path.join(guest.dir, "scratch-%s.qcow2" % campaign.uuid.uuid4().hex[:4])))
    dom.backupBegin(xml, None, 0)
    return conn, dom


def _abort(conn, dom):
    """End the backup job; after a daemon restart the old connection is dead: a new one finds the job again."""
    import libvirt  # pylint: disable=import-outside-toplevel
    try:
        dom.abortJob()
    except libvirt.libvirtError:
        fresh = libvirt.open("qemu:///system")
        try:
            job = fresh.lookupByName(dom.name())
            if job.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE:
                job.abortJob()
        finally:
            fresh.close()
    try:
        conn.close()
    except libvirt.libvirtError:
        pass


def test_libvirt_faults(libvirt_part, ledger, tmp_path):
    backend = libvirt_part
    truth = backend.truth
    guest, other = backend.guests
    vm = guest.name
    # Busy: a real backup job holds the domain.
    for lock_timeout in (0, 10):
        fid = "busy/libvirt/create/lock_timeout=%d" % lock_timeout
        name = "lv-busy-%d" % lock_timeout
        before = truth.snapshots(vm)
        conn, dom = _backup(guest)
        ender = campaign.threading.Timer(1.0, _abort, (conn, dom)) if lock_timeout else None
        if ender:
            ender.start()
        run = call(backend, "create", vm, name, timeout=30, lock_timeout=lock_timeout).wait()
        if ender:
            ender.join()
        else:
            _abort(conn, dom)
        problems = []
        count = truth.count(vm, name)
        if run.failed:
            problems += unchanged(truth, vm, before, run) + (["not waited for"] if lock_timeout else [])
        elif not lock_timeout or count != 1:
            problems.append("created %d with lock_timeout=%d on a busy domain" % (count, lock_timeout))
        judge(ledger, fid, backend, run, problems)
        truth.remove(vm, name)
    # Two creates of one name at once.
    concurrent_creates(backend, ledger, other.name)
    # Bad input.
    for kind, target_vm, name in (("wrong-vm", "pcstest-no-such-domain", "x"), ("wrong-snapshot", vm, "no-such")):
        before = truth.snapshots(vm)
        run = call(backend, "revert", target_vm, name, timeout=30).wait()
        judge(ledger, "bad-input/libvirt/%s/revert" % kind, backend, run, unchanged(truth, vm, before, run),
              expect_failure=True)
    # libvirtd stopped: a clear error, nothing made; the retry after the restart makes exactly one.
    before = truth.snapshots(vm)
    ctl("stop")
    try:
        run = call(backend, "create", vm, "lv-down", timeout=10).wait()
    finally:
        ctl("start")
    fid = "daemon/libvirt/create-while-stopped"
    problems = unchanged(truth, vm, before, run) if run.failed else []
    again = call(backend, "create", vm, "lv-down", timeout=30).wait()
    if again.failed or truth.count(vm, "lv-down") != 1:
        problems.append("after the restart the retry gave %s and %d snapshots" % (again.msg or "ok", truth.count(vm, "lv-down")))
    judge(ledger, fid, backend, run, problems, expect_failure=True)
    truth.remove(vm, "lv-down")
    # libvirtd restarted while the module waits for another job (lock_timeout): the job's connection goes away.
    fid = "daemon/libvirt/restart-under-a-waiting-create"
    before = truth.snapshots(vm)
    conn, dom = _backup(guest)
    pending = call(backend, "create", vm, "lv-restart", timeout=20, lock_timeout=20)
    campaign.time.sleep(1.5)
    ctl("stop")
    ctl("start")
    _abort(conn, dom)
    run = pending.wait()
    count = truth.count(vm, "lv-restart")
    problems = []
    if run.failed:
        if says_nothing_changed(run.msg) and count:
            problems.append("says nothing was changed, but %d snapshots named lv-restart exist" % count)
    elif count != 1:
        problems.append("reported created, %d exist" % count)
    again = call(backend, "create", vm, "lv-restart", timeout=30).wait()
    count = truth.count(vm, "lv-restart")
    if again.failed or count != 1:
        problems.append("the retry gave %s and %d snapshots" % (again.msg or "ok", count))
        if count > 1:
            ledger.violation("unrecorded_snapshots", fid, "%d snapshots named lv-restart" % count)
    judge(ledger, fid, backend, run, problems)
    truth.remove(vm, "lv-restart")
    # A maintenance run whose change restarts libvirtd (a libvirt upgrade on the hypervisor, say).
    fid = "daemon/libvirt/maintenance-change-restarts-libvirtd"
    ws = it.Workspace(tmp_path, "libvirt", backend.conn, {"h1": other.name}, group_vars=backend.inventory_vars)
    ws.change.write_text("- ansible.builtin.shell: bash %s stop && bash %s start\n" % (CTL, CTL))
    result = ws.run("prechange.snapshots.maintenance")
    ledger.scan(fid, result.stdout)
    problems = [] if result.returncode == 0 else ["the run failed (exit %d)" % result.returncode]
    listed = reported_ids(ws.report_dir)
    for run_id, found in ours(truth.snapshots(other.name)[0]).items():
        for snap in found:
            if not run_id.startswith("old-") and snap.id not in listed:
                ledger.violation("unrecorded_snapshots", fid, "%s of run %s is in no report" % (snap.name, run_id))
    if "MODULE FAILURE" in result.stdout or "Traceback (most recent call last)" in result.stdout:
        problems.append("a crash in the output")
    ledger.record(fid, not problems, "; ".join(problems) or "ok", _failure_lines(result.stdout) if problems else "")
    assert ledger.faults


def test_every_seeded_snapshot_survived_and_no_secret_is_in_a_description(vc, pv, ledger, seeds):
    """The campaign's end: foreign and older runs' snapshots all there; no secret in any snapshot description."""
    seeds.check()
    for backend in (vc, pv):
        for vm in set(v for _truth, v, _snap in seeds.seeded if _truth.provider == backend.provider):
            for snap in backend.truth.snapshots(vm)[0]:
                ledger.scan("descriptions/%s/%s" % (backend.provider, vm), snap.description)
    # The list of what happened is printed once, with the summary line, at the end of the session.
    assert not any(ledger.count(name) for name in campaign.Ledger.COUNTERS), ledger.summary_line()
