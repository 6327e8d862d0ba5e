# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proxmox VE benchmark: snapshot 50 guests of a 500-guest cluster, five ways, on the same fake cluster.

    python3 benchmarks/proxmox/run.py [--guests 500] [--targets 50] [--forks 10] [--repeat 1]

One command: it makes (once) a virtualenv under the cache dir ($PRECHANGE_CACHE, default
~/.cache/prechange-snapshots) with the `ansible` package from PyPI (which bundles community.proxmox),
proxmoxer and matplotlib; starts fakepve (tests/backends/fakepve, time scale 0.02) with a generated
cluster; then times, each in a fresh process:

  ping floor         ansible.builtin.ping delegated to localhost, one task per host (forks 10)
  ours, per host     prechange.snapshots.proxmox_snapshot, one task per host (forks 10)
  ours, batch        prechange.snapshots.proxmox_snapshot with vms: <all 50>, one task (one login)
  proxmox_snap       community.proxmox.proxmox_snap, one task per host (forks 10)
  proxmoxer direct   one Python script: one login, one lookup, 50 POSTs, all UPIDs polled together

Every playbook runs with the same ansible-playbook (the venv's ansible-core). Disk-only snapshots
everywhere (vmstate off), because proxmox_snap takes none by default. Writes results.md (table with
ratios) and results.png next to this file, and prints the table. Timings are wall-clock on this machine;
no test asserts on them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("PRECHANGE_CACHE") or os.path.expanduser("~/.cache/prechange-snapshots")
VENV = os.path.join(CACHE, "bench-proxmox-venv")
PEER_PINS = ["ansible==12.3.0", "proxmoxer==2.3.0", "requests", "matplotlib"]
LAUNCHER = os.path.join(REPO, "tests", "backends", "fakepve", "pve.py")
TIME_SCALE = 0.02


def log(message):
    print("[bench] " + message, file=sys.stderr, flush=True)


def ensure_venv():
    python = os.path.join(VENV, "bin", "python")
    stamp = os.path.join(VENV, ".pins")
    current = open(stamp).read() if os.path.exists(stamp) else None
    if not os.path.exists(python) or current != "\n".join(PEER_PINS):
        log("making the peer virtualenv %s (ansible from PyPI, once)" % VENV)
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([python, "-m", "pip", "install", "-q"] + PEER_PINS)
        with open(stamp, "w") as fh:
            fh.write("\n".join(PEER_PINS))
    return python


def start_cluster(guests, python):
    """fakepve in its own process (the launcher's CLI); returns (process, connection info)."""
    handle, info_file = tempfile.mkstemp(prefix="pve-bench-", suffix=".json")
    os.close(handle)
    os.unlink(info_file)  # the launcher writes it once it listens
    proc = subprocess.Popen([python, LAUNCHER, "--generate", str(guests), "--nodes", "5",
                             "--time-scale", str(TIME_SCALE), "--info-file", info_file],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(info_file) or not open(info_file).read().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("fakepve did not start: %s" % proc.stderr.read())
        time.sleep(0.1)
    with open(info_file) as fh:
        info = json.load(fh)
    os.unlink(info_file)
    return proc, info


def pick_targets(guests, count, nodes=5):
    """Every (guests/count)-th guest, nudged so the targets spread over all the nodes."""
    step = max(1, guests // count)
    return ["vm%04d" % (i * step + (i % min(step, nodes))) for i in range(count)]


def write_inventory(workdir, targets, python):
    path = os.path.join(workdir, "inventory.ini")
    with open(path, "w") as fh:
        fh.write("[bench]\n")
        for name in targets:
            fh.write("%s\n" % name)
        fh.write("\n[bench:vars]\nansible_connection=local\nansible_python_interpreter=%s\n" % python)
    return path


CONNECTION = """        api_host: "{{ pve.host }}"
        api_port: "{{ pve.port }}"
        api_user: "{{ pve.user }}"
        api_password: "{{ pve.password }}"
"""

PLAYBOOKS = {
    "ping": """- hosts: bench
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
      delegate_to: localhost
""",
    "ours_per_host": """- hosts: bench
  gather_facts: false
  tasks:
    - prechange.snapshots.proxmox_snapshot:
%s        ca_path: "{{ pve.cafile }}"
        vm: "{{ inventory_hostname }}"
        name: ours-per-host
        memory: false
      delegate_to: localhost
""" % CONNECTION,
    "ours_batch": """- hosts: bench
  gather_facts: false
  tasks:
    - prechange.snapshots.proxmox_snapshot:
%s        ca_path: "{{ pve.cafile }}"
        vms: "{{ ansible_play_hosts_all }}"
        name: ours-batch
        memory: false
        concurrency: 10
      delegate_to: localhost
      run_once: true
""" % CONNECTION,
    "proxmox_snap": """- hosts: bench
  gather_facts: false
  tasks:
    - community.proxmox.proxmox_snap:
%s        validate_certs: false
        hostname: "{{ inventory_hostname }}"
        snapname: peer-snap
        state: present
        vmstate: false
        timeout: 120
      delegate_to: localhost
""" % CONNECTION,
}
# The per-host task with the action plugin told to ship a module process, as for a remote host.
PLAYBOOKS["ours_module"] = PLAYBOOKS["ours_per_host"].replace(
    "  tasks:", "  vars:\n    prechange_snapshots_in_process: false\n  tasks:", 1).replace(
    "name: ours-per-host", "name: ours-module", 1)

DIRECT = r'''
import json, sys, time
from proxmoxer import ProxmoxAPI
info, names = json.loads(sys.argv[1]), json.loads(sys.argv[2])
api = ProxmoxAPI(info["host"], port=info["port"], user=info["user"], password=info["password"],
                 verify_ssl=info["cafile"])
index = {r["name"]: r for r in api.cluster.resources.get(type="vm")}
running = {}
for name in names:
    r = index[name]
    running[api.nodes(r["node"]).qemu(r["vmid"]).snapshot.post(snapname="direct")] = r["node"]
while running:
    for upid, node in list(running.items()):
        status = api.nodes(node).tasks(upid).status.get()
        if status["status"] == "stopped":
            assert status["exitstatus"] == "OK", status
            del running[upid]
    time.sleep(0.05)
'''


def timed(cmd, env):
    start = time.monotonic()
    result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                            check=False)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(cmd), result.stdout[-6000:]))
    return elapsed, result.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=500)
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the table shows the median")
    parser.add_argument("--out", default=HERE)
    args = parser.parse_args()

    python = ensure_venv()
    bindir = os.path.dirname(python)
    # The fake cluster runs with this interpreter (it has the test requirements: fakepve), not the peer venv.
    proc, info = start_cluster(args.guests, sys.executable)
    try:
        workdir = tempfile.mkdtemp(prefix="pve-bench-")
        targets = pick_targets(args.guests, args.targets)
        inventory = write_inventory(workdir, targets, python)
        collections = os.path.join(workdir, "collections")
        os.makedirs(os.path.join(collections, "ansible_collections", "prechange"))
        os.symlink(REPO, os.path.join(collections, "ansible_collections", "prechange", "snapshots"))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_FORKS=str(args.forks),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_HOST_KEY_CHECKING="0",
                   ANSIBLE_LOCALHOST_WARNING="0", PYTHONWARNINGS="ignore",
                   PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
        extra = json.dumps({"pve": info})
        versions = subprocess.run([os.path.join(bindir, "ansible-galaxy"), "collection", "list",
                                   "community.proxmox"], env=env, stdout=subprocess.PIPE,
                                  universal_newlines=True, check=False).stdout
        peer_version = next((line.split()[-1] for line in versions.splitlines()
                             if line.startswith("community.proxmox")), "?")
        cases = [
            ("ping", "ansible.builtin.ping floor (per host)"),
            ("ours_per_host", "prechange.snapshots.proxmox_snapshot, per host"),
            ("ours_module", "prechange.snapshots.proxmox_snapshot, per host as a module process"),
            ("ours_batch", "prechange.snapshots.proxmox_snapshot, batch (1 task)"),
            ("proxmox_snap", "community.proxmox.proxmox_snap %s, per host" % peer_version),
            ("direct", "proxmoxer script (1 process, 1 login)"),
        ]
        times = {}
        for repeat in range(args.repeat):
            if repeat:
                reset(info, python)  # so every run really creates its 50 snapshots
            for key, label in cases:
                if key == "direct":
                    cmd = [python, "-c", DIRECT, json.dumps(info), json.dumps(targets)]
                else:
                    book = os.path.join(workdir, key + ".yml")
                    with open(book, "w") as fh:
                        fh.write(PLAYBOOKS[key])
                    cmd = [os.path.join(bindir, "ansible-playbook"), "-i", inventory, book, "-e", extra]
                log("%s (run %d)" % (label, repeat + 1))
                elapsed, _out = timed(cmd, env)
                times.setdefault(key, []).append(elapsed)
                log("  %.2f s" % elapsed)
            # Every case but ping made one snapshot on each target guest: checked, so none passes by doing nothing.
            check_made(info, python, targets)
        table = render(cases, times, args, peer_version)
        print(table)
        with open(os.path.join(args.out, "results.md"), "w") as fh:
            fh.write(table)
        plot(cases, times, args, os.path.join(args.out, "results.png"), bindir)
    finally:
        proc.terminate()
        proc.wait(10)


def reset(info, python):
    """Delete the benchmark's snapshots so the next repeat creates them again."""
    code = r'''
import json, sys
from proxmoxer import ProxmoxAPI
info = json.loads(sys.argv[1])
api = ProxmoxAPI(info["host"], port=info["port"], user=info["user"], password=info["password"], verify_ssl=info["cafile"])
import time
for r in api.cluster.resources.get(type="vm"):
    g = api.nodes(r["node"]).qemu(r["vmid"])
    for s in g.snapshot.get():
        if s["name"] != "current":
            upid = g.snapshot(s["name"]).delete()
            while api.nodes(r["node"]).tasks(upid).status.get()["status"] == "running":
                time.sleep(0.02)
'''
    subprocess.run([python, "-c", code, json.dumps(info)], check=True)


def check_made(info, python, targets):
    code = r'''
import json, sys
from proxmoxer import ProxmoxAPI
info, names = json.loads(sys.argv[1]), json.loads(sys.argv[2])
api = ProxmoxAPI(info["host"], port=info["port"], user=info["user"], password=info["password"], verify_ssl=info["cafile"])
index = {r["name"]: r for r in api.cluster.resources.get(type="vm")}
for name in names:
    r = index[name]
    got = sorted(s["name"] for s in api.nodes(r["node"]).qemu(r["vmid"]).snapshot.get() if s["name"] != "current")
    assert got == ["direct", "ours-batch", "ours-module", "ours-per-host", "peer-snap"], (name, got)
'''
    subprocess.run([python, "-c", code, json.dumps(info), json.dumps(targets)], check=True)


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def render(cases, times, args, peer_version):
    peer = median(times["proxmox_snap"])
    floor = median(times["ping"])
    lines = ["# Proxmox VE benchmark: %d snapshots in a cluster of %d guests" % (args.targets, args.guests), "",
             "fakepve 0.5.0 + realism layer at time scale %s (a disk-only snapshot task: 2 PVE s = %.0f ms); "
             "forks %d; median of %d run(s); wall time of the whole ansible-playbook (or script) process."
             % (TIME_SCALE, 2 * TIME_SCALE * 1000, args.forks, args.repeat), "",
             "| case | seconds | vs proxmox_snap | vs ping floor |", "|---|---:|---:|---:|"]
    for key, label in cases:
        value = median(times[key])
        lines.append("| %s | %.2f | %.2f | %.2f |" % (label, value, value / peer, value / floor))
    lines += ["", "Machine: %s, %d cores. `python3 benchmarks/proxmox/run.py`." % (
        os.uname().sysname + " " + os.uname().release, os.cpu_count() or 0), ""]
    return "\n".join(lines)


def plot(cases, times, args, path, bindir):
    data = json.dumps([[label, median(times[key])] for key, label in cases])
    code = r'''
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows, title, path = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
fig, ax = plt.subplots(figsize=(9, 3.8))
labels = [r[0] for r in rows][::-1]
values = [r[1] for r in rows][::-1]
colors = ["#4c72b0" if "prechange" in l else ("#c44e52" if "community" in l else "#8c8c8c") for l in labels]
bars = ax.barh(labels, values, color=colors)
for bar, value in zip(bars, values):
    ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " %.1f s" % value, va="center", fontsize=9)
ax.set_xlabel("wall time, seconds (lower is better)")
ax.set_title(title, fontsize=10)
ax.set_xlim(0, max(values) * 1.18)
fig.tight_layout()
fig.savefig(path, dpi=110)
'''
    title = "Snapshot %d of %d Proxmox guests (fakepve, forks %d)" % (args.targets, args.guests, args.forks)
    subprocess.run([os.path.join(bindir, "python"), "-c", code, data, title, path], check=True)


if __name__ == "__main__":
    main()
