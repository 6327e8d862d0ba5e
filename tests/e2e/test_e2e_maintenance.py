# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole maintenance workflow on the real guest (issue 6).

Each scenario runs the real CLI, `ansible-playbook prechange.snapshots.maintenance -i <harness
inventory>`, against the e2e guest under the real libvirtd, with the verify role checking the demo
service (its HTTP answer on the guest's port 8080 and the service's status). The outcome is
asserted from three sides: the guest itself over SSH (dpkg-query, the service's answer, boot_id and
uptime, dpkg.log), the run report (JSON + Markdown) and the VM's libvirt snapshots (libvirt-python).
The repository server's log shows the guest really fetched the scenario's package.

One guest for all scenarios (the session fixture `e2e_guest`); before each one the guest goes back
to prechange-demo 1.0 without a reboot (`reset_demo`). The scenarios run in file order:
good, breaking, half way, check mode.

Outputs (run reports, the ansible-playbook logs, timings.json) go to $PRECHANGE_E2E_OUTPUT
(default tests/output/e2e/). PRECHANGE_E2E_EXTRA_VARS (a JSON object) is merged into every run's
extra vars, e.g. '{"patch_cache_valid_time": 3600}' or '{"revert_or_prune_action": "keep"}' to see
the scenarios fail.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.environ.get("PRECHANGE_E2E_OUTPUT") or os.path.join(REPO, "tests", "output", "e2e")
DEMO_URL = "http://127.0.0.1:8080/"  # inside the guest: the verify role's checks run there

# What the verify role checks: the demo service must run and answer 200 "ok v<N>".
VERIFY_VARS = {
    "verify_services": ["prechange-demo"],
    "verify_http": [{"url": DEMO_URL, "status": 200, "body": "^ok v"}],
    # sysvinit guest: the failed-units check would only note "systemd is not running".
    "verify_no_failed_units": False,
}

TIMINGS = {}


def _save_timings(h=None):
    os.makedirs(OUT, exist_ok=True)
    data = dict(TIMINGS)
    if h is not None:
        data["harness"] = dict(h.timings)
        data["boot_to_ssh"] = h.state().get("boot_to_ssh_seconds")
    with open(os.path.join(OUT, "timings.json"), "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)


@pytest.fixture(scope="module")
def maint(e2e_guest, tmp_path_factory):
    """Runs the maintenance playbook against the guest; the collection is this checkout."""
    base = tmp_path_factory.mktemp("maint")
    coll = base / "collections" / "ansible_collections" / "prechange"
    coll.mkdir(parents=True)
    os.symlink(REPO, str(coll / "snapshots"))
    env = dict(os.environ,
               ANSIBLE_COLLECTIONS_PATH=str(base / "collections"),
               ANSIBLE_HOST_KEY_CHECKING="False",
               ANSIBLE_PIPELINING="True",
               ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="False")
    env.pop("ANSIBLE_CONFIG", None)
    runner = Maintenance(e2e_guest, e2e_guest.inventory(str(base / "inventory.yml")), env)
    yield runner
    _save_timings(e2e_guest)
    print("\ne2e maintenance timings (s): %s" % json.dumps(TIMINGS, sort_keys=True))


class Run:
    def __init__(self, rc, log, report, markdown, seconds, report_path):
        self.rc, self.log, self.report, self.markdown = rc, log, report, markdown
        self.seconds, self.report_path = seconds, report_path

    @property
    def host(self):
        assert len(self.report["hosts"]) == 1, self.report
        return self.report["hosts"][0]

    def tail(self, n=60):
        return "\n".join(self.log.splitlines()[-n:])


class Maintenance:
    def __init__(self, h, inventory, env):
        self.h, self.inventory, self.env = h, inventory, env

    def run(self, name, check=False, extra_vars=None):
        out = os.path.join(OUT, name)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        extra = dict(VERIFY_VARS, **(extra_vars or {}))
        extra.update(json.loads(os.environ.get("PRECHANGE_E2E_EXTRA_VARS") or "{}"))
        argv = ["ansible-playbook", "prechange.snapshots.maintenance", "-i", self.inventory,
                "-e", json.dumps(extra)] + (["--check"] if check else [])
        # ansible.log: the same output with a timestamp per line (where the time goes).
        env = dict(self.env, PRECHANGE_REPORT_DIR=out, ANSIBLE_LOG_PATH=os.path.join(out, "ansible.log"))
        t0 = time.monotonic()
        p = subprocess.run(argv, env=env, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=3000, check=False)
        seconds = round(time.monotonic() - t0, 1)
        TIMINGS["scenario_" + name.replace("-", "_")] = seconds
        with open(os.path.join(out, "ansible-playbook.log"), "w") as fh:
            fh.write("$ %s\n%s" % (" ".join(argv), p.stdout))
        reports = sorted(glob.glob(os.path.join(out, "maintenance-*.json")))
        assert len(reports) == 1, "expected one run report in %s, got %s\n%s" % (
            out, reports, "\n".join(p.stdout.splitlines()[-60:]))
        with open(reports[0]) as fh:
            report = json.load(fh)
        with open(reports[0][:-len(".json")] + ".md") as fh:
            markdown = fh.read()
        return Run(p.returncode, p.stdout, report, markdown, seconds, reports[0])


# ------------------------------------------------------------------ guest-side helpers
def http_log_mark(h):
    """Offset into the repository server's log, to see what the guest fetched after it."""
    try:
        return os.path.getsize(os.path.join(h.run_dir, "http.log"))
    except OSError:
        return 0


def fetched_since(h, mark, filename):
    with open(os.path.join(h.run_dir, "http.log"), errors="replace") as fh:
        fh.seek(mark)
        return sum(1 for line in fh if ('"GET /current/./%s ' % filename) in line and '" 200 ' in line)


def dpkg_log_count(h, version):
    """How often dpkg.log mentions VERSION of the demo package (the log is on the guest's disk, so
    a disk revert takes entries written after the snapshot away)."""
    p = h.ssh("grep -c -F ' prechange-demo:all %s' /var/log/dpkg.log || true" % version)
    return int(p.stdout.strip() or 0)


def libvirt_snapshots(h):
    """{name: (state, memory_snapshot_attr)} of the guest's libvirt snapshots."""
    import xml.etree.ElementTree as ET
    conn = h.conn()
    try:
        dom = conn.lookupByName(h.domain)
        out = {}
        for s in dom.listAllSnapshots():
            x = ET.fromstring(s.getXMLDesc())
            mem = x.find("memory")
            out[s.getName()] = (x.findtext("state"), mem.get("snapshot") if mem is not None else None)
        return out
    finally:
        conn.close()


def snapshot_markers(h):
    """{name: ownership marker} of the guest's libvirt snapshots, read from each snapshot's
    description with libvirt-python (the marker is its last line:
    ``[prechange.snapshots v1 run=... phase=... lease=...]``, values percent-encoded)."""
    import xml.etree.ElementTree as ET
    from urllib.parse import unquote
    conn = h.conn()
    try:
        dom = conn.lookupByName(h.domain)
        out = {}
        for s in dom.listAllSnapshots():
            last = (ET.fromstring(s.getXMLDesc()).findtext("description") or "").strip().split("\n")[-1].strip()
            marker = None
            if last.startswith("[prechange.snapshots v1 ") and last.endswith("]"):
                marker = dict((k, unquote(v)) for k, _sep, v in
                              (pair.partition("=") for pair in last[len("[prechange.snapshots v1 "):-1].split()))
            out[s.getName()] = marker
        return out
    finally:
        conn.close()


def delete_snapshot(h, name):
    conn = h.conn()
    try:
        conn.lookupByName(h.domain).snapshotLookupByName(name).delete(0)
    finally:
        conn.close()


def delete_run_snapshots(h):
    """Remove the snapshots a maintenance run made (after a test whose run kept them)."""
    for name in h.snapshots():
        if name.startswith("prechange-"):
            delete_snapshot(h, name)


def prepare(h, scenario):
    """Guest on prechange-demo 1.0 (answering ok v1), no snapshots, then the scenario's repository
    published. Returns what the scenario compares against."""
    t0 = time.monotonic()
    h.reset_demo()
    assert h.demo_version() == "1.0 ii"
    assert h.demo_answer() == (200, "ok v1")
    assert h.snapshots() == [], "a previous scenario left snapshots: %s" % h.snapshots()
    h.set_repo(scenario)
    boot_id, uptime = h.guest_boot()
    base = {"boot_id": boot_id, "uptime": uptime, "http_mark": http_log_mark(h)}
    TIMINGS.setdefault("reset_demo", []).append(round(time.monotonic() - t0, 1))
    return base


def assert_no_reboot(h, base):
    boot_id, uptime = h.guest_boot()
    assert boot_id == base["boot_id"], "the guest rebooted (boot_id %s -> %s)" % (base["boot_id"], boot_id)
    assert uptime >= base["uptime"], "uptime reset: %s -> %s" % (base["uptime"], uptime)


def assert_reverted(h, run, base, new_version):
    """The common proof of scenarios 2 and 3: the guest is back on this run's memory snapshot."""
    rep, host = run.report, run.host
    snap = host["snapshot"]
    # The run report says reverted, to this run's snapshot.
    assert rep["check_mode"] is False
    assert rep["summary"]["reverted"] == 1 and rep["summary"]["ok"] == 0 and rep["summary"]["error"] == 0, rep["summary"]
    assert host["outcome"] == "reverted" and host["action"] == "reverted", host
    assert host["error"] == "", host["error"]
    assert snap["action"] == "created" and snap["memory"] is True, snap
    assert snap["run_id"] == rep["run_id"] and snap["name"] == "prechange-%s" % rep["run_id"], snap
    # The restored host is checked (by default: it answers again) and the row says so.
    assert host["reverify_passed"] is True, host
    assert re.search(r"\| reverted( \(%s\))?; the restored host passed its checks \|" % re.escape(host["reason"]),
                     run.markdown), run.markdown
    assert "reverted 1" in run.markdown, run.markdown
    # ansible-playbook fails the reverted host (exit 2) and names the snapshot.
    assert run.rc == 2, run.tail()
    assert "reverted to snapshot %s" % snap["name"] in run.log, run.tail()
    # The change really happened in the guest: it downloaded the new package during the run.
    assert fetched_since(h, base["http_mark"], "prechange-demo_%s_all.deb" % new_version) == 1
    # libvirt: exactly this run's snapshot is left (kept after the revert by default), with memory;
    # its marker on the hypervisor records the verdict (phase reverted) and holds the VM no more.
    assert libvirt_snapshots(h) == {snap["name"]: ("running", "internal")}
    marker = snapshot_markers(h)[snap["name"]]
    assert marker is not None and marker["run"] == rep["run_id"], marker
    assert marker["phase"] == "reverted" and "lease" not in marker and "holder" not in marker, marker
    assert marker.get("power") == "running", marker
    # The guest: no reboot, the old version, the service answers, and the disk went back too
    # (dpkg.log no longer records the upgrade it did during the run).
    assert_no_reboot(h, base)
    assert h.demo_version() == "1.0 ii"
    assert h.demo_answer() == (200, "ok v1")
    assert h.demo_answer(via="host") == (200, "ok v1")
    assert dpkg_log_count(h, new_version) == base["dpkg_new_version"]


# ------------------------------------------------------------------ scenarios
def test_1_good_update_installs_verifies_and_prunes(e2e_guest, maint, record_property):
    h = e2e_guest
    base = prepare(h, "good")
    run = maint.run("1-good")
    record_property("playbook_seconds", run.seconds)
    rep, host = run.report, run.host

    assert run.rc == 0, run.tail()
    assert rep["check_mode"] is False
    expected = {"hosts": 1, "ok": 1, "reverted": 0, "error": 0, "deleted": 1, "kept": 0, "not_reached": 0}
    assert {k: rep["summary"].get(k) for k in expected} == expected, rep["summary"]
    assert host["outcome"] == "ok" and host["action"] == "deleted", host
    assert host["reason"] == "the checks passed", host
    assert host["change"]["duration_seconds"] is not None and "durations" not in host, host
    # While the change ran, the snapshot held the VM: pending under this run's lease.
    assert host["snapshot"]["owner"]["phase"] == "pending" and host["snapshot"]["owner"]["lease"], host["snapshot"]
    assert host["change"]["failed"] is False and host["change"]["packages"] == ["prechange-demo"], host["change"]
    assert host["verify"]["passed"] is True and host["verify"]["failures"] == [], host["verify"]
    snap = host["snapshot"]
    assert snap["action"] == "created" and snap["memory"] is True, snap
    assert snap["name"] == "prechange-%s" % rep["run_id"], snap
    assert "| passed | deleted |" in run.markdown, run.markdown
    # This run's snapshot is gone from the VM (and nothing else was left).
    assert libvirt_snapshots(h) == {}
    assert fetched_since(h, base["http_mark"], "prechange-demo_2.0-good_all.deb") == 1
    # The guest keeps running, on the new version, and the service answers v2.
    assert_no_reboot(h, base)
    assert h.demo_version() == "2.0-good ii"
    assert h.demo_answer() == (200, "ok v2")
    assert h.demo_answer(via="host") == (200, "ok v2")


def test_2_breaking_update_is_reverted_with_memory(e2e_guest, maint, record_property):
    h = e2e_guest
    base = prepare(h, "broken")
    base["dpkg_new_version"] = dpkg_log_count(h, "2.0-broken")
    run = maint.run("2-broken")
    record_property("playbook_seconds", run.seconds)
    try:
        host = run.host
        # The update went in and verify failed on the service's answer.
        assert host["change"]["failed"] is False and host["change"]["packages"] == ["prechange-demo"], host["change"]
        assert host["verify"]["passed"] is False, host["verify"]
        assert host["verify"]["failures"] == [
            "HTTP %s answered 500, expected 200 with a body matching ^ok v" % DEMO_URL], host["verify"]
        assert host["reason"] == "the checks failed", host
        assert_reverted(h, run, base, "2.0-broken")
    finally:
        delete_run_snapshots(h)


def test_3_change_failing_half_way_is_reverted(e2e_guest, maint, record_property):
    h = e2e_guest
    base = prepare(h, "halfway")
    base["dpkg_new_version"] = dpkg_log_count(h, "2.0-halfway")
    run = maint.run("3-halfway")
    record_property("playbook_seconds", run.seconds)
    try:
        host = run.host
        # The change task failed (the package's postinst exits 1 after unpacking); verify never ran.
        assert host["change"]["failed"] is True, host["change"]
        error = host["change"]["error"]
        assert set(error) == {"task", "msg", "rc", "stderr"}, error
        assert error["task"].startswith("Patch | apt | Upgrade every package"), error
        assert "Sub-process /usr/bin/dpkg returned an error code (1)" in error["msg"] + error["stderr"], error
        assert host["verify"]["passed"] is None, host["verify"]
        assert host["reason"] == "the change failed", host
        # Pipes in the task name are escaped so the Markdown table row stays one row.
        assert "FAILED: task 'Patch \\| apt \\| Upgrade every package" in run.markdown, run.markdown
        assert_reverted(h, run, base, "2.0-halfway")
    finally:
        delete_run_snapshots(h)


def test_4_check_mode_creates_no_snapshot_and_installs_nothing(e2e_guest, maint, record_property):
    h = e2e_guest
    base = prepare(h, "good")
    # Let the guest's package lists know 2.0-good (check mode does not refresh them), so the check
    # run has an upgrade it would make.
    h.ssh("apt-get update -q >/dev/null")
    base["http_mark"] = http_log_mark(h)
    run = maint.run("4-check", check=True)
    record_property("playbook_seconds", run.seconds)
    rep, host = run.report, run.host

    assert run.rc == 0, run.tail()
    assert rep["check_mode"] is True and run.report_path.endswith("-check.json"), run.report_path
    assert "(check mode: nothing was changed)" in run.markdown, run.markdown
    assert host["outcome"] == "check" and host["error"] == "" and rep["status"] == "check", host
    # What a real run would do: snapshot (only predicted), upgrade the demo, then revert or delete as
    # the checks decide. No verdict: the checks test a change that did not happen, so they do not run.
    assert host["snapshot"]["predicted"] is True, host["snapshot"]
    assert host["change"]["packages"] == ["prechange-demo"], host["change"]
    assert host["verify"]["passed"] is None and host["verify"]["failures"] == [], host["verify"]
    assert host["action"] == "depends" and host["if_passed"] == "delete", host
    assert "would revert if the checks fail, else delete" in run.markdown, run.markdown
    # Nothing happened: no snapshot on the VM, no package fetched, 1.0 still installed and answering.
    assert libvirt_snapshots(h) == {}
    assert fetched_since(h, base["http_mark"], "prechange-demo_2.0-good_all.deb") == 0
    assert_no_reboot(h, base)
    assert h.demo_version() == "1.0 ii"
    assert h.demo_answer() == (200, "ok v1")


def _domains_and_disk(h):
    """(every domain's name, the guest's disk source) as libvirt has them."""
    import xml.etree.ElementTree as ET
    conn = h.conn()
    try:
        names = [d.name() for d in conn.listAllDomains()]
        xml = ET.fromstring(conn.lookupByName(h.domain).XMLDesc(0))
        return names, [d.find("source").get("file") for d in xml.findall("./devices/disk")]
    finally:
        conn.close()


def test_5_breaking_update_fails_its_rehearsal_and_never_reaches_the_guest(e2e_guest, maint, record_property):
    """Issue 13: the breaking update rehearsed on a clone of this run's snapshot; the real guest is never changed.

    The clone is on the rehearsal network (harness.rehearsal_network: a bridge with 10.0.2.2/24, see the
    README) and reached at 10.0.2.15:22; its apt reads the repository server on the bridge, whose log is
    separate from the real guest's."""
    h = e2e_guest
    network = h.rehearsal_network()
    try:
        base = prepare(h, "broken")
        base["dpkg_new_version"] = dpkg_log_count(h, "2.0-broken")
        domains_before, disk_before = _domains_and_disk(h)
        bridge_log = os.path.join(h.run_dir, "http-bridge.log")
        bridge_mark = os.path.getsize(bridge_log) if os.path.exists(bridge_log) else 0
        run = maint.run("5-rehearsal", extra_vars={
            "maintenance_rehearse": True, "maintenance_rehearse_network": network,
            "maintenance_rehearse_connection": {"ansible_host": "10.0.2.15", "ansible_port": 22}})
        record_property("playbook_seconds", run.seconds)
        host = run.host
        rehearsal = host["rehearsal"]
        assert rehearsal and rehearsal["passed"] is False, run.tail()
        # The rehearsal failed on the clone's checks: the broken package answered 500 there.
        assert rehearsal["reason"] == "the checks failed on the clone", rehearsal
        assert rehearsal["failures"] == [
            "HTTP %s answered 500, expected 200 with a body matching ^ok v" % DEMO_URL], rehearsal
        clone = rehearsal["clone"]["name"]
        assert clone.startswith(h.domain + "-rehearsal-"), rehearsal
        assert host["outcome"] == "rehearsal_failed" and run.rc == 2, run.tail()
        assert host["action"] == "deleted", host  # settled as for a host with no change
        assert host["change"]["packages"] == [] and host["verify"]["passed"] is None, host
        assert "| not changed (the change never reached it) |" in run.markdown, run.markdown
        # The clone fetched the broken package over the bridge; the real guest never fetched it.
        with open(bridge_log, errors="replace") as fh:
            fh.seek(bridge_mark)
            assert sum(1 for line in fh if "prechange-demo_2.0-broken_all.deb" in line and '" 200 ' in line) == 1
        assert fetched_since(h, base["http_mark"], "prechange-demo_2.0-broken_all.deb") == 0
        # The real guest: no reboot, the old package, nothing in dpkg.log, the same disk; no snapshot
        # left; the clone is gone from libvirt.
        assert_no_reboot(h, base)
        assert h.demo_version() == "1.0 ii"
        assert h.demo_answer() == (200, "ok v1")
        assert dpkg_log_count(h, "2.0-broken") == base["dpkg_new_version"]
        domains_after, disk_after = _domains_and_disk(h)
        assert disk_after == disk_before
        assert clone not in domains_after and sorted(domains_after) == sorted(domains_before), domains_after
        assert libvirt_snapshots(h) == {}
        TIMINGS["rehearsal"] = {"clone_seconds": rehearsal["clone_seconds"], "started": rehearsal["started"],
                                "finished": rehearsal["finished"]}
        print("\n" + run.markdown)
    finally:
        h.remove_rehearsal_network()
