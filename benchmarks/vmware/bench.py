# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot 50 VMs on govmomi's vCenter simulator, with this collection and with its peers.

Run it through ``benchmarks/vmware/run.sh`` (which makes the venv with the ``ansible`` package, pyvmomi
and matplotlib under the cache dir). In one run, on one simulator holding 2000 VMs, it times
snapshotting the same 50 VMs with:

  (a) prechange.snapshots.vmware_snapshot, one task per host (the action plugin runs it in the
      worker Ansible forked for the task: no module process, pyVmomi imported once)
  (h) the same as (a), forced through a module process per host (prechange_snapshots_in_process:
      false), as it runs when the task is delegated to a remote host
  (b) prechange.snapshots.vmware_snapshot, batch mode (one task, ``vms:`` list)
  (c) community.vmware.vmware_guest_snapshot, one task per host
  (d) vmware.vmware.vm_snapshot, one task per host
  (e) a direct pyvmomi script (FindByInventoryPath + CreateSnapshot_Task, one session): the floor
  (f) ansible.builtin.ping, one task per host: Ansible's own per-task floor
  (g) one no-op task on one host: the fixed cost of an ansible-playbook run, which batch mode pays
  (A), (B) the provider's own work for (a) and (b), in-process without Ansible (is any growth with
      the inventory ours, or the machine's?)

then repeats (a), (b), (c) on fresh simulators holding 1000, 5000 and 10000 VMs. Each figure is the
wall time of the whole command (ansible-playbook, or the script), the median of ``--repeat`` runs.
Every run's snapshots are checked on the server afterwards, so a tool that failed cannot look fast.
It prints a table with ratios and writes ``results.md``, ``results.json`` and ``results.png``.

There is deliberately no pass/fail threshold here; the numbers are for people to read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "backends" / "vcsim"))
from vcsim import Vcsim, build  # noqa: E402  pylint: disable=wrong-import-position

PASSWORD = "bench-Secr3t"
TOOLS = {
    "a": "prechange per host",
    "b": "prechange batch",
    "c": "community.vmware.vmware_guest_snapshot",
    "d": "vmware.vmware.vm_snapshot",
    "e": "pyvmomi script (floor)",
    "f": "ansible.builtin.ping (floor)",
    "g": "one no-op task, one host (floor of b)",
    "h": "prechange per host, module process",
    "A": "provider only, per host (in-process, no Ansible)",
    "B": "provider only, batch (in-process, no Ansible)",
}

PLAYS = {
    "a": """
- hosts: vms
  gather_facts: false
  tasks:
    - prechange.snapshots.vmware_snapshot:
        hostname: "{{ vc_host }}"
        port: "{{ vc_port }}"
        username: "{{ vc_user }}"
        password: "{{ vc_password }}"
        validate_certs: false
        datacenter: DC0
        vm: "{{ inventory_hostname }}"
        name: "{{ snap }}"
        memory: false
""",
    "b": """
- hosts: localhost
  gather_facts: false
  tasks:
    - prechange.snapshots.vmware_snapshot:
        hostname: "{{ vc_host }}"
        port: "{{ vc_port }}"
        username: "{{ vc_user }}"
        password: "{{ vc_password }}"
        validate_certs: false
        datacenter: DC0
        vms: "{{ groups['vms'] }}"
        name: "{{ snap }}"
        memory: false
        concurrency: 16
""",
    "c": """
- hosts: vms
  gather_facts: false
  tasks:
    - community.vmware.vmware_guest_snapshot:
        hostname: "{{ vc_host }}"
        port: "{{ vc_port }}"
        username: "{{ vc_user }}"
        password: "{{ vc_password }}"
        validate_certs: false
        datacenter: DC0
        folder: /DC0/vm
        name: "{{ inventory_hostname }}"
        snapshot_name: "{{ snap }}"
        state: present
        memory_dump: false
        quiesce: false
""",
    "d": """
- hosts: vms
  gather_facts: false
  tasks:
    - vmware.vmware.vm_snapshot:
        hostname: "{{ vc_host }}"
        port: "{{ vc_port }}"
        username: "{{ vc_user }}"
        password: "{{ vc_password }}"
        validate_certs: false
        datacenter: DC0
        folder: /DC0/vm
        name: "{{ inventory_hostname }}"
        snapshot_name: "{{ snap }}"
        state: present
        memory_dump: false
        quiesce: false
""",
    "f": """
- hosts: vms
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
""",
    "g": """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: nothing
""",
}


def as_module_process(play):
    """The same play with the action plugin told to ship a module process, as for a remote host."""
    return play.replace("  tasks:", "  vars:\n    prechange_snapshots_in_process: false\n  tasks:", 1)


PLAYS["h"] = as_module_process(PLAYS["a"])

FLOOR_SCRIPT = r"""
import sys
from pyVim.connect import SmartConnect, Disconnect
from pyVim.task import WaitForTask
host, port, user, pwd, snap = sys.argv[1:6]
names = sys.argv[6:]
si = SmartConnect(host=host, port=int(port), user=user, pwd=pwd, disableSslCertValidation=True)
index = si.content.searchIndex
for name in names:
    vm = index.FindByInventoryPath("DC0/vm/" + name)
    WaitForTask(vm.CreateSnapshot_Task(name=snap, description="", memory=False, quiesce=False), si=si)
Disconnect(si)
"""

CHECK_SCRIPT = r"""
import sys
from pyVim.connect import SmartConnect, Disconnect
host, port, user, pwd, snap = sys.argv[1:6]
names = sys.argv[6:]
si = SmartConnect(host=host, port=int(port), user=user, pwd=pwd, disableSslCertValidation=True)
index = si.content.searchIndex
def walk(nodes):
    for n in nodes or []:
        yield n
        yield from walk(n.childSnapshotList)
missing = []
for name in names:
    vm = index.FindByInventoryPath("DC0/vm/" + name)
    found = [n for n in walk(vm.snapshot.rootSnapshotList)] if vm.snapshot else []
    if not any(n.name == snap for n in found):
        missing.append(name)
Disconnect(si)
print(" ".join(missing))
"""


def ansible_env(bindir):
    link = REPO / "build" / "collections" / "ansible_collections" / "prechange" / "snapshots"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)
    env = dict(os.environ)
    env.update({
        "PATH": str(bindir) + os.pathsep + env.get("PATH", ""),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "build" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_SYSTEM_WARNINGS": "0",
        "ANSIBLE_ACTION_WARNINGS": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    })
    return env


class Bench(object):
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = Path(workdir)
        self.bindir = Path(sys.executable).parent
        self.env = ansible_env(self.bindir)
        self.hosts = ["DC0_H0_VM%d" % i for i in range(args.hosts)]
        self.inventory = self.workdir / "inventory.ini"
        lines = ["[vms]"] + ["%s ansible_connection=local" % h for h in self.hosts]
        self.inventory.write_text("\n".join(lines) + "\n")
        for key, play in PLAYS.items():
            (self.workdir / ("play_%s.yml" % key)).write_text(play)
        (self.workdir / "floor.py").write_text(FLOOR_SCRIPT)
        (self.workdir / "check.py").write_text(CHECK_SCRIPT)
        self.counter = 0

    def run_one(self, key, info):
        self.counter += 1
        snap = "bench-%s-%d" % (key, self.counter)
        conn = [info["hostname"], str(info["port"]), info["username"], info["password"], snap]
        if key in "AB":
            return provider_only(key, info, snap, self.hosts)
        if key == "e":
            cmd = [sys.executable, str(self.workdir / "floor.py")] + conn + self.hosts
        else:
            extra = {"vc_host": info["hostname"], "vc_port": info["port"], "vc_user": info["username"],
                     "vc_password": info["password"], "snap": snap}
            cmd = [str(self.bindir / "ansible-playbook"), "-i", str(self.inventory), "-f", str(self.args.forks),
                   str(self.workdir / ("play_%s.yml" % key)), "-e", json.dumps(extra)]
        start = time.monotonic()
        proc = subprocess.run(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              check=False)
        elapsed = time.monotonic() - start
        if proc.returncode != 0:
            raise RuntimeError("%s failed (rc=%s):\n%s" % (TOOLS[key], proc.returncode, proc.stdout[-6000:]))
        if key not in "fg":
            check = subprocess.run([sys.executable, str(self.workdir / "check.py")] + conn + self.hosts,
                                   env=self.env, stdout=subprocess.PIPE, text=True, check=True)
            if check.stdout.strip():
                raise RuntimeError("%s did not snapshot: %s" % (TOOLS[key], check.stdout.strip()))
        return elapsed

    def measure(self, key, info):
        times = [self.run_one(key, info) for dummy in range(self.args.repeat)]
        value = statistics.median(times)
        print("  %-42s %7.2f s  %s" % (TOOLS[key], value, " ".join("%.2f" % t for t in times)), flush=True)
        return value


def provider_only(key, info, snap, hosts):
    """The provider's own work without Ansible around it: (A) one session, lookup and snapshot per
    VM in turn, as per-host mode does in each module process; (B) one ensure_many call."""
    sys.path.insert(0, str(REPO / "build" / "collections"))
    # pylint: disable=import-outside-toplevel
    from ansible_collections.prechange.snapshots.plugins.module_utils import _vmware
    from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import (
        SnapshotParams, ensure, ensure_many)
    params = dict(hostname=info["hostname"], port=info["port"], username=info["username"],
                  password=info["password"], validate_certs=False, datacenter="DC0", state="present")
    want = SnapshotParams(state="present", name=snap, memory=False, timeout=60)
    start = time.monotonic()
    if key == "A":
        for host in hosts:
            with _vmware.VmwareBackend(params) as backend:
                ensure(backend, backend.find_vm(host), want, False)
    else:
        with _vmware.VmwareBackend(params) as backend:
            failed = [r for r in ensure_many(backend, hosts, want, False, 16) if r.error]
            if failed:
                raise RuntimeError(failed[0].error.message)
    return time.monotonic() - start


def start_sim(binary, vms):
    sim = Vcsim(vms=vms, binary=binary, password=PASSWORD)
    info = sim.start()
    print("vcsim with %d VMs up in %.1f s (%s:%s)"
          % (info["vms"], info["start_seconds"], info["hostname"], info["port"]), flush=True)
    return sim, info


def table(results, args):
    main = str(args.size)
    at = results[main]
    lines = ["| tool | %s VMs (s) | vs vmware.vmware | vs ping floor | vs pyvmomi floor |" % main,
             "| --- | ---: | ---: | ---: | ---: |"]
    for key in "ahbcdefgAB":
        if key not in at:
            continue
        value = at[key]
        lines.append("| (%s) %s | %.2f | %s | %s | %s |" % (
            key, TOOLS[key], value,
            "%.3f" % (value / at["d"]) if "d" in at else "-",
            "%.2f" % (value / at["f"]) if "f" in at else "-",
            "%.1f" % (value / at["e"]) if "e" in at else "-"))
    sizes = sorted(int(s) for s in results)
    lines += ["", "| tool | " + " | ".join("%d VMs (s)" % s for s in sizes) + " | %d→%d |" % (sizes[0], sizes[-1]),
              "| --- | " + " | ".join("---:" for dummy in sizes) + " | ---: |"]
    for key in "ahbcAB":
        row = [results[str(s)].get(key) for s in sizes]
        if not any(row):
            continue
        growth = "%+.0f%%" % (100.0 * (row[-1] / row[0] - 1)) if row[0] and row[-1] else "-"
        cells = " | ".join("%.2f" % v if v else "-" for v in row)
        lines.append("| (%s) %s | %s | %s |" % (key, TOOLS[key], cells, growth))
    return "\n".join(lines)


def plot(results, args, path):
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    at = results[str(args.size)]
    keys = [k for k in "ahbcdefg" if k in at]
    left.barh(["(%s) %s" % (k, TOOLS[k]) for k in keys], [at[k] for k in keys],
              color=["#2b8a3e" if k in "ab" else "#69db7c" if k == "h" else "#868e96" if k in "efg" else "#c92a2a" for k in keys])
    left.invert_yaxis()
    left.set_xlabel("seconds to snapshot %d VMs (wall time)" % args.hosts)
    left.set_title("%d VMs in the inventory, forks %d" % (args.size, args.forks))
    for i, k in enumerate(keys):
        left.text(at[k], i, " %.1f s" % at[k], va="center")
    sizes = sorted(int(s) for s in results)
    for key, style in (("a", "o-"), ("b", "s-"), ("c", "^-"), ("A", "o:"), ("B", "s:")):
        xs = [s for s in sizes if key in results[str(s)]]
        right.plot(xs, [results[str(s)][key] for s in xs], style, label="(%s) %s" % (key, TOOLS[key]))
    right.set_xscale("log")
    right.set_xticks(sizes)
    right.set_xticklabels([str(s) for s in sizes])
    right.set_ylim(bottom=0)
    right.set_xlabel("VMs in the inventory")
    right.set_ylabel("seconds to snapshot %d VMs" % args.hosts)
    right.set_title("Does it grow with the inventory?")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Snapshot 50 VMs on vcsim: this collection vs its peers.")
    ap.add_argument("--size", type=int, default=2000, help="VMs in the inventory for the full comparison")
    ap.add_argument("--scale-sizes", default="1000,5000,10000", help="sizes to repeat (a), (b), (c) at")
    ap.add_argument("--hosts", type=int, default=50, help="VMs to snapshot")
    ap.add_argument("--forks", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1, help="runs per figure (median)")
    ap.add_argument("--tools", default="gfahbcde", help="which of a-h to run at --size")
    ap.add_argument("--scale-tools", default="abcAB", help="which tools to repeat at --scale-sizes")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)

    binary = build()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prechange-bench-") as workdir:
        bench = Bench(args, workdir)
        sim, info = start_sim(binary, args.size)
        try:
            results[str(args.size)] = {key: bench.measure(key, info) for key in args.tools + "AB"}
        finally:
            sim.stop()
        for size in [int(s) for s in args.scale_sizes.split(",") if s]:
            sim, info = start_sim(binary, size)
            try:
                results.setdefault(str(size), {}).update({key: bench.measure(key, info)
                                                          for key in args.scale_tools})
            finally:
                sim.stop()

    text = table(results, args)
    meta = {"machine": "%s, %d cores, Python %s" % (platform.platform(), os.cpu_count(), platform.python_version()),
            "hosts": args.hosts, "forks": args.forks, "repeat": args.repeat, "size": args.size,
            "seconds_total": round(time.monotonic() - started, 1), "results": results}
    try:
        import ansible  # pylint: disable=import-outside-toplevel
        from ansible.release import __version__ as core_version  # pylint: disable=import-outside-toplevel
        meta["ansible_core"] = core_version
        meta["ansible_package"] = getattr(ansible, "__version__", None)
    except ImportError:
        pass
    print()
    print(text)
    (out / "results.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "results.md").write_text(
        "# VMware snapshot benchmark (vcsim)\n\n%s\n\n%s\n" % (
            "Snapshot %d VMs, forks %d, median of %d run(s); %s; ansible-core %s." % (
                args.hosts, args.forks, args.repeat, meta["machine"], meta.get("ansible_core")),
            text))
    plot(results, args, out / "results.png")
    print("\nwrote %s/results.{md,json,png} in %.0f s" % (out, meta["seconds_total"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
