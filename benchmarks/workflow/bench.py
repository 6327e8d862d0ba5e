# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The workflow benchmark (issue 10, "Speed"): the maintenance playbook against the peers' workflow.

Run it through ``benchmarks/workflow/run.sh`` (which makes the venv). On vcsim (2000 VMs) and on
fakepve (500 guests, time scale 0.01), at each host count (default 50 and 200 stand-in hosts, forks
10), it times three cases as whole ``ansible-playbook`` processes (wall clock):

  maintenance  ``playbooks/maintenance.yml`` of the checkout this file is in, with a no-op change
               (one task file with one ``ansible.builtin.debug``), no built-in verify checks, and the
               snapshot deleted on success (see MAINTENANCE_EXTRA_VARS)
  peers        the peers' minimal workflow, one play: create a snapshot (community.vmware.
               vmware_guest_snapshot / community.proxmox.proxmox_snap), the same no-op task, remove it
  ping         ``ansible.builtin.ping`` on the same hosts: Ansible's per-host task floor

Every case runs with the callback plugin in ``callback_plugins/task_count.py``, which counts task
executions per host. After the maintenance and peers runs the backend's own API (pyVmomi, proxmoxer;
not the collection) must show every target VM with exactly the snapshots it had before the run, and
a create and a remove task for every target VM during the run; otherwise the benchmark stops.

Output: ``results.md`` and ``results.json`` (``--out``, default next to this file). No thresholds:
the numbers and ratios are for people to read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PLAYBOOK = REPO / "playbooks" / "maintenance.yml"
sys.path.insert(0, str(REPO / "tests" / "backends" / "vcsim"))
sys.path.insert(0, str(REPO / "tests" / "backends" / "fakepve"))
from vcsim import Vcsim, build  # noqa: E402  pylint: disable=wrong-import-position
import pve as fakepve_launcher  # noqa: E402  pylint: disable=wrong-import-position

# The maintenance case: every variable the checkout's maintenance playbook is given, in one place.
# {change_file} and {run_dir} are filled in per run. If the playbook's variable names change (say, a
# `guard` role taking `guard_change_tasks`), this dict is the one thing to adapt.
MAINTENANCE_EXTRA_VARS = {
    "guard_change_tasks": "{change_file}",    # the user's change: a task file with one no-op debug task
    "verify_reachable": False,                # no built-in verify checks
    "verify_no_failed_units": False,
    "revert_or_prune_on_success": "delete",   # the default, stated: delete the snapshot on success
    "snapshot_memory": False,                 # disk-only, as the peers' tasks below
    "maintenance_report_dir": "{run_dir}/reports",
}

CHANGE_TASKS = """---
# The user's change in this benchmark: one task that changes nothing.
- name: Bench | The change (a no-op)
  ansible.builtin.debug:
    msg: "no-op change on {{ inventory_hostname }}"
"""

PEER_PLAYS = {
    "vcsim": """---
- name: Peers' minimal workflow (community.vmware)
  hosts: all
  gather_facts: false
  tasks:
    - name: Peers | Create the snapshot
      community.vmware.vmware_guest_snapshot: &vmware
        hostname: "{{ prechange_vmware_hostname }}"
        port: "{{ prechange_vmware_port }}"
        username: "{{ prechange_vmware_username }}"
        password: "{{ prechange_vmware_password }}"
        validate_certs: false
        datacenter: "{{ prechange_vmware_datacenter }}"
        folder: "/{{ prechange_vmware_datacenter }}/vm"
        name: "{{ prechange_vm }}"
        snapshot_name: "{{ bench_snapshot }}"
        state: present
        memory_dump: false
        quiesce: false
      delegate_to: localhost

    - name: Peers | The change
      ansible.builtin.import_tasks: "CHANGE_FILE"

    - name: Peers | Remove the snapshot
      community.vmware.vmware_guest_snapshot:
        <<: *vmware
        state: absent
      delegate_to: localhost
""",
    "fakepve": """---
- name: Peers' minimal workflow (community.proxmox)
  hosts: all
  gather_facts: false
  tasks:
    - name: Peers | Create the snapshot
      community.proxmox.proxmox_snap: &proxmox
        api_host: "{{ prechange_proxmox_api_host }}"
        api_port: "{{ prechange_proxmox_api_port }}"
        api_user: "{{ prechange_proxmox_api_user }}"
        api_password: "{{ prechange_proxmox_api_password }}"
        validate_certs: false
        hostname: "{{ prechange_vm }}"
        snapname: "{{ bench_snapshot }}"
        vmstate: false
        timeout: 120
        state: present
      delegate_to: localhost

    - name: Peers | The change
      ansible.builtin.import_tasks: "CHANGE_FILE"

    - name: Peers | Remove the snapshot
      community.proxmox.proxmox_snap:
        <<: *proxmox
        state: absent
      delegate_to: localhost
""",
}

PING_PLAY = """---
- name: The per-host task floor
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""

CASES = ("maintenance", "peers", "ping")
CHECKED = ("maintenance", "peers")  # the cases that must leave the VMs' snapshots as they found them


def log(message):
    print("[workflow] " + message, file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- backends

class VcsimBackend:
    """govmomi's simulator with --vms VMs; the check reads it through pyVmomi."""

    name = "vcsim"
    password = "bench-Secr3t"

    def __init__(self, args):
        self.args = args
        self.sim = None
        self.info = None
        self.si = None
        self.vms = {}

    def start(self):
        self.sim = Vcsim(vms=self.args.vms, binary=build(), password=self.password)
        self.info = self.sim.start()
        log("vcsim with %d VMs up in %.1f s (%s:%s)" % (self.info["vms"], self.info["start_seconds"],
                                                        self.info["hostname"], self.info["port"]))
        self.si = self._connect()
        from pyVmomi import vim  # pylint: disable=import-outside-toplevel
        content = self.si.content
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        try:
            self.vms = {vm.name: vm for vm in view.view}
        finally:
            view.Destroy()

    def _connect(self):
        from pyVim.connect import SmartConnect  # pylint: disable=import-outside-toplevel
        return SmartConnect(host=self.info["hostname"], port=self.info["port"], user=self.info["username"],
                            pwd=self.info["password"], disableSslCertValidation=True)

    def stop(self):
        if self.sim:
            self.sim.stop()

    def all_vm_names(self):
        def key(name):  # DC0_H0_VM0 .. DC0_H0_VM999, then DC0_C0_RP0_VM0 ..
            head, _sep, num = name.rpartition("_VM")
            return (head, int(num) if num.isdigit() else 0)
        return sorted(self.vms, key=key)

    def targets(self, count):
        names = self.all_vm_names()
        step = max(1, len(names) // count)
        return names[::step][:count]

    def host_vars(self):
        return {
            "prechange_provider": "vmware",
            "prechange_vmware_hostname": self.info["hostname"],
            "prechange_vmware_port": self.info["port"],
            "prechange_vmware_username": self.info["username"],
            "prechange_vmware_password": self.info["password"],
            "prechange_vmware_validate_certs": False,
            "prechange_vmware_datacenter": "DC0",
        }

    def add_existing_snapshots(self, names):
        """A snapshot made outside the benchmark on these VMs: it must survive every run."""
        from pyVim.task import WaitForTask  # pylint: disable=import-outside-toplevel
        for name in names:
            task = self.vms[name].CreateSnapshot_Task(name="made-before-bench", description="not ours",
                                                      memory=False, quiesce=False)
            WaitForTask(task, si=self.si)

    def snapshots(self, names):
        def walk(nodes):
            for node in nodes or []:
                yield node.name
                yield from walk(node.childSnapshotList)
        out = {}
        for name in names:
            tree = self.vms[name].snapshot
            out[name] = sorted(walk(tree.rootSnapshotList)) if tree else []
        return out

    def watch(self):
        return VcsimTaskWatcher(self)


class VcsimTaskWatcher(threading.Thread):
    """Reads the simulator's TaskManager.recentTask (its last 200 tasks) every 0.25 s during a run, so
    the check can see that each target VM really got a CreateSnapshot and a RemoveSnapshot task."""

    def __init__(self, backend):
        super().__init__(daemon=True)
        self.backend = backend
        self.si = backend._connect()  # pylint: disable=protected-access
        self.halt = threading.Event()
        self.seen = {}       # task moid -> (task name, VM name, state)
        self.overflow = False
        self.error = None
        self.initial = {t._moId for t in self.si.content.taskManager.recentTask}  # pylint: disable=protected-access

    def run(self):
        try:
            while not self.halt.wait(0.25):
                self.poll()
            self.poll()
        except Exception as exc:  # pylint: disable=broad-except
            self.error = exc

    def poll(self):
        from pyVmomi import vim, vmodl  # pylint: disable=import-outside-toplevel
        recent = list(self.si.content.taskManager.recentTask)
        ids = [t._moId for t in recent]  # pylint: disable=protected-access
        known = self.initial | set(self.seen)
        if len(recent) >= 200 and ids and ids[0] not in known:
            self.overflow = True  # more than 200 tasks since the last poll: some may have been missed
        pending = [t for t in recent if t._moId not in self.initial  # pylint: disable=protected-access
                   and self.seen.get(t._moId, ("", "", "running"))[2] not in ("success", "error")]  # pylint: disable=protected-access
        if not pending:
            return
        query = vmodl.query.PropertyCollector
        spec = query.FilterSpec(objectSet=[query.ObjectSpec(obj=t) for t in pending],
                                propSet=[query.PropertySpec(type=vim.Task, pathSet=["info"])])
        for content in self.si.content.propertyCollector.RetrieveContents([spec]):
            info = content.propSet[0].val
            # descriptionId: VirtualMachine.createSnapshot, VirtualMachineSnapshot.removeSnapshot, ...
            self.seen[content.obj._moId] = (info.descriptionId, info.entityName, info.state)  # pylint: disable=protected-access

    def finish(self):
        self.halt.set()
        self.join(30)
        if self.error:
            raise BenchError("watching vcsim's tasks failed: %r" % self.error)
        names = {"VirtualMachine.createSnapshot": "CreateSnapshot",
                 "VirtualMachineSnapshot.removeSnapshot": "RemoveSnapshot"}
        done = {}
        for task, vm, state in self.seen.values():
            if state == "success" and task in names:
                done.setdefault(vm, set()).add(names[task])
        return done, self.overflow


class FakepveBackend:
    """fakepve with the project's realism layer, --guests QEMU guests; the check uses proxmoxer."""

    name = "fakepve"

    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.proc = None
        self.info = None
        self.api = None
        self.guests = {}

    def start(self):
        layout = fakepve_launcher.generate_layout(self.args.guests, nodes=5)
        # generate_layout sizes local-lvm for its guests: the realism layer counts thin volumes' use (issue 12).
        self.layout_file = self.workdir / "guests.json"  # pylint: disable=attribute-defined-outside-init
        self.layout_file.write_text(json.dumps(layout, indent=1) + "\n")
        self.layout = layout  # pylint: disable=attribute-defined-outside-init
        info_file = self.workdir / "fakepve.json"
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "backends" / "fakepve" / "pve.py"), "--layout", str(self.layout_file),
             "--time-scale", str(self.args.time_scale), "--info-file", str(info_file)],
            stdout=subprocess.DEVNULL, stderr=open(self.workdir / "fakepve.log", "w"), start_new_session=True)
        while not info_file.exists() or not info_file.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() - t0 > 60:
                raise BenchError("fakepve did not start: %s" % (self.workdir / "fakepve.log").read_text()[-3000:])
            time.sleep(0.1)
        self.info = json.loads(info_file.read_text())
        log("fakepve with %d guests (time scale %s) up in %.1f s (%s:%s)" % (
            self.args.guests, self.args.time_scale, time.monotonic() - t0, self.info["host"], self.info["port"]))
        from proxmoxer import ProxmoxAPI  # pylint: disable=import-outside-toplevel
        self.api = ProxmoxAPI(self.info["host"], port=self.info["port"], user=self.info["user"],
                              password=self.info["password"], verify_ssl=self.info["cafile"])
        self.guests = {r["name"]: r for r in self.api.cluster.resources.get(type="vm")}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def all_vm_names(self):
        return sorted(self.guests)

    def targets(self, count, nodes=5):
        """Every (guests/count)-th guest, nudged so the targets spread over all the nodes."""
        names = self.all_vm_names()
        step = max(1, len(names) // count)
        return [names[min(len(names) - 1, i * step + (i % min(step, nodes)))] for i in range(count)]

    def host_vars(self):
        return {
            "prechange_provider": "proxmox",
            "prechange_proxmox_api_host": self.info["host"],
            "prechange_proxmox_api_port": self.info["port"],
            "prechange_proxmox_api_user": self.info["user"],
            "prechange_proxmox_api_password": self.info["password"],
            "prechange_proxmox_ca_path": self.info["cafile"],
        }

    def _guest(self, name):
        r = self.guests[name]
        return self.api.nodes(r["node"]).qemu(r["vmid"])

    def add_existing_snapshots(self, names):
        for name in names:
            upid = self._guest(name).snapshot.post(snapname="made-before-bench", description="not ours")
            self._wait(self.guests[name]["node"], upid)

    def _wait(self, node, upid):
        deadline = time.monotonic() + 60
        while True:
            status = self.api.nodes(node).tasks(upid).status.get()
            if status["status"] == "stopped":
                if status.get("exitstatus") != "OK":
                    raise BenchError("fakepve task %s: %s" % (upid, status))
                return
            if time.monotonic() > deadline:
                raise BenchError("fakepve task %s did not finish" % upid)
            time.sleep(0.02)

    def snapshots(self, names):
        return {name: sorted(s["name"] for s in self._guest(name).snapshot.get() if s["name"] != "current")
                for name in names}

    def watch(self):
        return FakepveTaskWatcher(self)


class FakepveTaskWatcher:
    """The nodes' task lists (GET /nodes/{node}/tasks) before and after a run: the snapshot and delete
    tasks the run started, per guest."""

    def __init__(self, backend):
        self.backend = backend
        self.before = {t["upid"] for t in self._tasks()}

    def _tasks(self):
        out = []
        for node in self.backend.layout["nodes"]:
            out.extend(self.backend.api.nodes(node).tasks.get(limit=1000000))
        return out

    def start(self):
        pass

    def finish(self):
        by_vmid = {str(r["vmid"]): name for name, r in self.backend.guests.items()}
        names = {"qmsnapshot": "CreateSnapshot", "qmdelsnapshot": "RemoveSnapshot"}
        done = {}
        for task in self._tasks():
            if task["upid"] in self.before or task.get("type") not in names:
                continue
            if task.get("status") == "OK" and task.get("id") in by_vmid:
                done.setdefault(by_vmid[task["id"]], set()).add(names[task["type"]])
        return done, False


# ----------------------------------------------------------------------------- runs

def peer_versions(python):
    """Versions of ansible-core, the ansible package and the peers' collections in the bench venv."""
    code = r"""
import json, os
import ansible_collections, ansible.release
out = {"ansible-core": ansible.release.__version__}
try:
    import importlib.metadata as md
    out["ansible"] = md.version("ansible")
except Exception:
    pass
root = list(ansible_collections.__path__)
for fq in ("community.vmware", "vmware.vmware", "community.proxmox"):
    for base in root:
        path = os.path.join(base, *fq.split("."), "MANIFEST.json")
        if os.path.exists(path):
            out[fq] = json.load(open(path))["collection_info"]["version"]
            break
print(json.dumps(out))
"""
    return json.loads(subprocess.run([python, "-c", code], check=True, stdout=subprocess.PIPE, text=True).stdout)


def checkout_description():
    """The last commit that touched what the maintenance case runs (roles, playbooks, plugins)."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %s", "--", "roles", "playbooks",
                               "plugins"], check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "roles", "playbooks",
                                "plugins"], check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
        return head + (" (roles/playbooks/plugins modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.python = sys.executable
        self.bindir = Path(self.python).parent
        collections = workdir / "collections" / "ansible_collections" / "prechange"
        collections.mkdir(parents=True)
        (collections / "snapshots").symlink_to(REPO)
        self.change_file = workdir / "change.yml"
        self.change_file.write_text(CHANGE_TASKS)
        self.env = dict(os.environ)
        self.env.update({
            "PATH": str(self.bindir) + os.pathsep + os.environ.get("PATH", ""),
            "ANSIBLE_COLLECTIONS_PATH": str(workdir / "collections"),
            "ANSIBLE_CALLBACKS_ENABLED": "task_count",
            "ANSIBLE_CALLBACK_PLUGINS": str(HERE / "callback_plugins"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_HOST_KEY_CHECKING": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_SYSTEM_WARNINGS": "0",
            "PYTHONWARNINGS": "ignore",
        })
        self.env.pop("ANSIBLE_CONFIG", None)
        self.counter = 0

    def inventory(self, backend, targets, path):
        hosts = {"bench-%03d" % (i + 1): {"prechange_vm": vm} for i, vm in enumerate(targets)}
        group_vars = {"ansible_connection": "local", "ansible_python_interpreter": self.python}
        group_vars.update(backend.host_vars())
        path.write_text(json.dumps({"all": {"vars": group_vars, "hosts": hosts}}, indent=1) + "\n")

    def run_case(self, backend, case, inventory, targets, baseline):
        self.counter += 1
        run_dir = self.workdir / ("%d-%s-%d-%s" % (self.counter, backend.name, len(targets), case))
        run_dir.mkdir()
        counts_file = run_dir / "task-count.json"
        env = dict(self.env, PRECHANGE_TASK_COUNT_FILE=str(counts_file), PRECHANGE_REPORT_DIR=str(run_dir / "reports"))
        cmd = [str(self.bindir / "ansible-playbook"), "-i", str(inventory), "-f", str(self.args.forks)]
        if case == "maintenance":
            extra = {key: value.format(change_file=self.change_file, run_dir=run_dir) if isinstance(value, str) else value
                     for key, value in MAINTENANCE_EXTRA_VARS.items()}
            (run_dir / "extra-vars.json").write_text(json.dumps(extra, indent=1) + "\n")
            cmd += [str(PLAYBOOK), "-e", "@" + str(run_dir / "extra-vars.json")]
        elif case == "peers":
            play = run_dir / "peers.yml"
            play.write_text(PEER_PLAYS[backend.name].replace("CHANGE_FILE", str(self.change_file)))
            cmd += [str(play), "-e", json.dumps({"bench_snapshot": "bench-peers-%d" % self.counter})]
        else:
            play = run_dir / "ping.yml"
            play.write_text(PING_PLAY)
            cmd += [str(play)]
        watcher = backend.watch() if case in CHECKED else None
        if watcher:
            watcher.start()
        load = os.getloadavg()[0]
        start = time.monotonic()
        with open(run_dir / "ansible.log", "w") as out:
            proc = subprocess.run(cmd, env=env, cwd=str(run_dir), stdout=out, stderr=subprocess.STDOUT, check=False)
        elapsed = time.monotonic() - start
        done, overflow = watcher.finish() if watcher else ({}, False)
        if proc.returncode != 0:
            tail = (run_dir / "ansible.log").read_text(errors="replace")[-5000:]
            raise BenchError("%s on %s, %d hosts: ansible-playbook exit %d (log %s):\n%s" % (
                case, backend.name, len(targets), proc.returncode, run_dir / "ansible.log", tail))
        if case in CHECKED:
            self.check(backend, case, targets, baseline, done, overflow)
        counts = json.loads(counts_file.read_text())
        per_host = counts["total"].get("executions", 0) / float(len(targets))
        log("  %-11s %3d hosts %8.2f s  %6.1f task executions per host  (load %.1f before)"
            % (case, len(targets), elapsed, per_host, load))
        return {"seconds": elapsed, "tasks_per_host": per_host, "load_before": load,
                "counts_total": counts["total"],
                "max_per_host": max((c.get("executions", 0) for h, c in counts["hosts"].items() if h != "localhost"),
                                    default=0),
                "top_tasks": dict(list(counts["by_task"].items())[:15]), "log": str(run_dir / "ansible.log")}

    @staticmethod
    def check(backend, case, targets, baseline, done, overflow):
        """Through the backend's API: the VMs' snapshots are exactly what they were before the run
        (nothing of the run left, nothing else lost), and each VM got a create and a remove task."""
        now = backend.snapshots(targets)
        wrong = {vm: {"before": baseline[vm], "after": now[vm]} for vm in targets if now[vm] != baseline[vm]}
        if wrong:
            sample = dict(list(wrong.items())[:5])
            raise BenchError("%s on %s: %d of %d VMs do not have the snapshots they had before the run, e.g. %s"
                             % (case, backend.name, len(wrong), len(targets), json.dumps(sample)))
        missing = [vm for vm in targets if not {"CreateSnapshot", "RemoveSnapshot"} <= done.get(vm, set())]
        if missing:
            raise BenchError("%s on %s: %d of %d VMs got no successful create and remove task during the run%s, "
                             "e.g. %s" % (case, backend.name, len(missing), len(targets),
                                          " (more than 200 tasks between two looks at vcsim's recent tasks: "
                                          "rerun)" if overflow else "", missing[:5]))


def median(values):
    return statistics.median(values) if values else None


def render(results, meta):
    def cell(value, fmt="%.2f"):
        return fmt % value if value is not None else "–"

    def ratio(a, b):
        return a / b if a is not None and b else None

    lines = [
        "# Workflow benchmark: the maintenance playbook against the peers' workflow (issue 10)", "",
        "Written by `bash benchmarks/workflow/run.sh %s`; see README.md for what is measured." % meta["command"], "",
        "- roles, playbooks and plugins as of: %s" % meta["checkout"],
        "- ansible-core %s (`ansible` %s): community.vmware %s, community.proxmox %s (vmware.vmware %s)" % (
            meta["versions"].get("ansible-core"), meta["versions"].get("ansible", "?"),
            meta["versions"].get("community.vmware", "?"), meta["versions"].get("community.proxmox", "?"),
            meta["versions"].get("vmware.vmware", "?")),
        "- machine: %s; load average before the run %s (1, 5, 15 min), after %s" % (
            meta["machine"], meta["load_before"], meta["load_after"]),
        "- backends: vcsim with %d VMs; fakepve 0.5.0 + realism layer with %d QEMU guests on 5 nodes, time scale %s"
        % (meta["vms"], meta["guests"], meta["time_scale"]),
        "- forks %d; seconds are the wall time of the whole `ansible-playbook` process, median of %d run(s); "
        "task executions per host = task results reported (ok, failed, skipped, unreachable; includes and "
        "`run_once` tasks count once) / hosts" % (meta["forks"], meta["repeat"]),
        "- whole benchmark: %.0f s" % meta["seconds_total"], "",
        "| backend | hosts | maintenance (s) | peers' workflow (s) | ping (s) | maintenance / peers | "
        "maintenance / ping | peers / ping | tasks per host: maintenance | peers | ping |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backend, by_hosts in results.items():
        for hosts, cases in sorted(by_hosts.items(), key=lambda kv: int(kv[0])):
            sec = {c: median([r["seconds"] for r in cases.get(c, [])]) for c in CASES}
            tph = {c: median([r["tasks_per_host"] for r in cases.get(c, [])]) for c in CASES}
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                backend, hosts, cell(sec["maintenance"]), cell(sec["peers"]), cell(sec["ping"]),
                cell(ratio(sec["maintenance"], sec["peers"])), cell(ratio(sec["maintenance"], sec["ping"])),
                cell(ratio(sec["peers"], sec["ping"])),
                cell(tph["maintenance"], "%.1f"), cell(tph["peers"], "%.1f"), cell(tph["ping"], "%.1f")))
    lines += ["", "Target (issue 10): maintenance / peers at most 0.5 at 50 hosts, and no higher at 200. "
              "The benchmark reports; nothing asserts on these times.", ""]
    for backend, count in meta.get("skipped", []):
        measured = sorted((int(h), median([r["seconds"] for r in cases["maintenance"]]))
                          for h, cases in results.get(backend, {}).items() if cases.get("maintenance"))
        smaller = [(h, s) for h, s in measured if h < count]
        guess = ""
        if smaller:
            guess = " (about %.0f s, extrapolated linearly from %d hosts)" % (
                smaller[-1][1] * count / smaller[-1][0], smaller[-1][0])
        lines.append("- Not run: maintenance on %s at %d hosts (`--maintenance-hosts`)%s." % (backend, count, guess))
    return "\n".join(lines) + "\n"


def parse_counts(text):
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv=None):
    ap = argparse.ArgumentParser(description="The maintenance playbook against the peers' workflow, "
                                             "on vcsim and fakepve.")
    ap.add_argument("--hosts", default="50,200", help="stand-in host counts (comma separated)")
    ap.add_argument("--maintenance-hosts", default=None,
                    help="host counts to run the maintenance case at (default: all of --hosts)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per figure (the table shows the median)")
    ap.add_argument("--backends", default="vcsim,fakepve")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--forks", type=int, default=10)
    ap.add_argument("--vms", type=int, default=2000, help="VMs in the vCenter simulator")
    ap.add_argument("--guests", type=int, default=500, help="guests in the fake Proxmox cluster")
    ap.add_argument("--time-scale", type=float, default=0.01, help="fakepve: real seconds per PVE second")
    ap.add_argument("--out", default=str(HERE), help="where results.md and results.json go")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, inventories)")
    args = ap.parse_args(argv)

    host_counts = parse_counts(args.hosts)
    maint_counts = parse_counts(args.maintenance_hosts) if args.maintenance_hosts else host_counts
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        ap.error("unknown cases: %s" % ", ".join(sorted(unknown)))
    if not PLAYBOOK.exists():
        ap.error("no %s in this checkout" % PLAYBOOK)
    versions = peer_versions(sys.executable)
    meta = {"command": " ".join(sys.argv[1:]) or "(defaults)", "checkout": checkout_description(),
            "versions": versions, "load_before": ", ".join("%.2f" % x for x in os.getloadavg()),
            "machine": "%s, %d cores, Python %s" % (
                platform.platform(terse=True), os.cpu_count() or 0, platform.python_version()),
            "vms": args.vms, "guests": args.guests, "time_scale": args.time_scale, "forks": args.forks,
            "repeat": args.repeat, "hosts": host_counts, "skipped": []}
    log("checkout %s; %s" % (meta["checkout"], ", ".join("%s %s" % kv for kv in versions.items())))
    log("load average before the run: %s" % meta["load_before"])
    started = time.monotonic()
    results = {}
    workdir = Path(tempfile.mkdtemp(prefix="prechange-workflow-"))
    ok = False
    try:
        bench = Bench(args, workdir)
        for backend_name in [b for b in args.backends.split(",") if b]:
            backend = {"vcsim": lambda: VcsimBackend(args),
                       "fakepve": lambda: FakepveBackend(args, workdir)}[backend_name]()
            backend.start()
            try:
                all_targets = {n: backend.targets(n) for n in host_counts}
                union = sorted({vm for names in all_targets.values() for vm in names})
                # About a third of the target VMs carry a snapshot made before the benchmark.
                existing = [vm for i, vm in enumerate(backend.all_vm_names()) if i % 3 == 0 and vm in set(union)]
                backend.add_existing_snapshots(existing)
                baseline = backend.snapshots(union)
                log("%s: %d target VMs, %d of them with a snapshot made before the benchmark"
                    % (backend_name, len(union), len(existing)))
                for count in host_counts:
                    targets = all_targets[count]
                    inventory = workdir / ("inventory-%s-%d.yml" % (backend_name, count))
                    bench.inventory(backend, targets, inventory)
                    by_case = results.setdefault(backend_name, {}).setdefault(str(count), {})
                    for repeat in range(args.repeat):
                        log("%s, %d hosts, run %d of %d" % (backend_name, count, repeat + 1, args.repeat))
                        for case in ("ping", "peers", "maintenance"):
                            if case not in cases:
                                continue
                            if case == "maintenance" and count not in maint_counts:
                                if [backend_name, count] not in meta["skipped"]:
                                    meta["skipped"].append([backend_name, count])
                                continue
                            by_case.setdefault(case, []).append(
                                bench.run_case(backend, case, inventory, targets, baseline))
            finally:
                backend.stop()
        ok = True
    finally:
        if args.keep or not ok:
            log("work directory kept: %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    meta["load_after"] = ", ".join("%.2f" % x for x in os.getloadavg())
    meta["seconds_total"] = time.monotonic() - started
    text = render(results, meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(text)
    for by_hosts in results.values():
        for cases_ in by_hosts.values():
            for runs in cases_.values():
                for run in runs:
                    run.pop("log", None)
    (out / "results.json").write_text(json.dumps(dict(meta, results=results), indent=1) + "\n")
    print(text)
    log("wrote %s/results.md and results.json in %.0f s" % (out, meta["seconds_total"]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print("\nBENCHMARK FAILED: %s" % exc, file=sys.stderr)
        sys.exit(1)
