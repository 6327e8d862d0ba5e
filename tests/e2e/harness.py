# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real-guest harness for the end-to-end tests (issue 6).

A small Debian guest (tests/e2e/image/build.sh) runs in the real libvirtd
(qemu:///system, software emulation) as the domain `pc-e2e-guest`, on its own
qcow2 copy so the cached base image is never written. Networking is QEMU
user mode (slirp) passed through <qemu:commandline>: no libvirt network, no
dnsmasq, no iptables. Host ports on 127.0.0.1 forward to the guest's SSH (22)
and demo service (8080); inside the guest 10.0.2.2 is the host's loopback,
where serve.py publishes the scenario's APT repository.

CLI:
  harness.py up [--fresh]         build/reuse image + packages, start the guest, wait for SSH
  harness.py inventory [PATH]     write the Ansible inventory (prints its path)
  harness.py repo SCENARIO        point the guest's APT repository at v1|good|broken|halfway
  harness.py install-demo         install prechange-demo 1.0 from the v1 repository
  harness.py ssh CMD...           run a command in the guest
  harness.py status               JSON state
  harness.py smoke [--keep]       fresh guest + mechanics + down, print timings
  harness.py mechanics            the smoke's snapshot/revert proof on the running guest
  harness.py snapshots            list the guest's libvirt snapshots
  harness.py reset-demo           back to prechange-demo 1.0 (repo v1), no reboot
  harness.py down                 destroy + undefine the guest, stop the repo server

Environment: PRECHANGE_CACHE (default ~/.cache/prechange-snapshots; this uses
its e2e/ subfolder), PRECHANGE_E2E_DOMAIN (default pc-e2e-guest),
PRECHANGE_E2E_MEMORY_MIB (default 256), PRECHANGE_E2E_DISK=overlay (a qcow2
overlay on the base image instead of a copy).
"""
import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
LIBVIRTD = os.path.join(REPO, "tests", "backends", "libvirtd")
sys.path.insert(0, os.path.join(HERE, "pkgs"))
import aptrepo  # noqa: E402  (tests/e2e/pkgs/aptrepo.py)

URI = "qemu:///system"
DEMO_PORT = 8080
SCENARIOS = ("v1", "good", "broken", "halfway")


def log(msg):
    print("[harness %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def cache_root():
    base = os.environ.get("PRECHANGE_CACHE") or os.path.expanduser("~/.cache/prechange-snapshots")
    return os.path.join(base, "e2e")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pidfile):
    try:
        with open(pidfile) as fh:
            pid = int(fh.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


class Harness:
    def __init__(self, domain=None, uri=URI, memory_mib=None):
        self.domain = domain or os.environ.get("PRECHANGE_E2E_DOMAIN", "pc-e2e-guest")
        self.uri = uri
        self.memory_mib = int(memory_mib or os.environ.get("PRECHANGE_E2E_MEMORY_MIB", "256"))
        self.cache = cache_root()
        self.run_dir = os.path.join(self.cache, "run", self.domain)
        self.key = os.path.join(self.cache, "ssh", "id_ed25519")
        self.state_file = os.path.join(self.run_dir, "state.json")
        self.timings = {}

    # ---------------------------------------------------------------- state
    def state(self):
        try:
            with open(self.state_file) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}

    def _save_state(self, **kw):
        st = self.state()
        st.update(kw)
        os.makedirs(self.run_dir, exist_ok=True)
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(st, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.state_file)

    def _timed(self, name, fn, *a, **kw):
        t0 = time.monotonic()
        result = fn(*a, **kw)
        self.timings[name] = round(time.monotonic() - t0, 2)
        return result

    # ----------------------------------------------------- build + backends
    def build_image(self):
        out = subprocess.run(["bash", os.path.join(HERE, "image", "build.sh")], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        return out.strip().splitlines()[-1]

    def build_pkgs(self):
        out = subprocess.run(["bash", os.path.join(HERE, "pkgs", "build.sh")], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        return out.strip().splitlines()[-1]

    def ensure_libvirtd(self):
        """Use the project's libvirtd layer (setup.sh is idempotent; ctl.sh start is a
        no-op when a daemon already answers, whoever started it)."""
        env = dict(os.environ, PYTHON=sys.executable)
        try:
            import libvirt  # noqa: F401
        except ImportError:
            subprocess.run(["bash", os.path.join(LIBVIRTD, "setup.sh"), "--no-assets"], check=True, env=env)
        else:
            # Still make sure the packages and qemu.conf are in place on a fresh machine.
            if not shutil.which("libvirtd") or not os.path.exists("/etc/libvirt/qemu.conf"):
                subprocess.run(["bash", os.path.join(LIBVIRTD, "setup.sh"), "--no-assets"], check=True, env=env)
        subprocess.run(["bash", os.path.join(LIBVIRTD, "ctl.sh"), "start"], check=True)

    def conn(self):
        import libvirt
        # Expected errors (no such domain) are handled; keep libvirt from also
        # printing them to stderr.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        return libvirt.open(self.uri)

    # ------------------------------------------------------- repo server
    @property
    def repo_root(self):
        return os.path.join(self.run_dir, "repo")

    def ensure_repo_server(self):
        pidfile = os.path.join(self.run_dir, "http.pid")
        portfile = os.path.join(self.run_dir, "http.port")
        os.makedirs(self.repo_root, exist_ok=True)
        if pid_alive(pidfile) and os.path.exists(portfile):
            with open(portfile) as fh:
                return int(fh.read())
        if os.path.exists(portfile):
            os.unlink(portfile)
        logf = open(os.path.join(self.run_dir, "http.log"), "ab")
        proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "pkgs", "serve.py"), "--root", self.repo_root,
             "--port", "0", "--port-file", portfile],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
        with open(pidfile, "w") as fh:
            fh.write(str(proc.pid))
        deadline = time.monotonic() + 30
        while not os.path.exists(portfile):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("repo server did not start; see %s/http.log" % self.run_dir)
            time.sleep(0.05)
        with open(portfile) as fh:
            return int(fh.read())

    # ------------------------------------------------------- rehearsal network (issue 13)
    # A rehearsal clone of the guest cannot use the guest's slirp hostfwd (its host ports are taken by
    # the guest, and the clone module drops <qemu:commandline> network devices anyway). So the clone
    # goes on a libvirt network over a plain host bridge that carries the guest subnet's host side,
    # 10.0.2.2/24: the clone keeps its static 10.0.2.15 and its repository URL 10.0.2.2:PORT (a second
    # repository server listens there, with its own log), and the controller reaches it at
    # 10.0.2.15:22. The network is `<forward mode='bridge'/>` on that existing bridge because a libvirt
    # network with its own bridge (isolated, even without an <ip>) needs iptables for its firewall rules,
    # which this machine does not have; a bridge-mode network needs neither iptables nor dnsmasq.
    REHEARSAL_BRIDGE = "pce2erh0"
    REHEARSAL_NETWORK = "pc-e2e-rehearse"

    def rehearsal_network(self):
        """Bridge + libvirt network + repository server on 10.0.2.2; returns the network's name."""
        br = self.REHEARSAL_BRIDGE
        if not os.path.exists("/sys/class/net/%s" % br):
            subprocess.run(["ip", "link", "add", br, "type", "bridge"], check=True)
        if "10.0.2.2/24" not in subprocess.run(["ip", "-br", "addr", "show", br], stdout=subprocess.PIPE,
                                               text=True, check=True).stdout:
            subprocess.run(["ip", "addr", "add", "10.0.2.2/24", "dev", br], check=True)
        subprocess.run(["ip", "link", "set", br, "up"], check=True)
        conn = self.conn()
        try:
            if self.REHEARSAL_NETWORK not in conn.listNetworks():
                conn.networkCreateXML("<network><name>%s</name><forward mode='bridge'/><bridge name='%s'/>"
                                      "</network>" % (self.REHEARSAL_NETWORK, br))
        finally:
            conn.close()
        pidfile = os.path.join(self.run_dir, "http-bridge.pid")
        if not pid_alive(pidfile):
            logf = open(os.path.join(self.run_dir, "http-bridge.log"), "ab")
            proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "pkgs", "serve.py"), "--root", self.repo_root,
                 "--port", str(self.ensure_repo_server()), "--bind", "10.0.2.2"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
            with open(pidfile, "w") as fh:
                fh.write(str(proc.pid))
        return self.REHEARSAL_NETWORK

    def remove_rehearsal_network(self):
        pid = pid_alive(os.path.join(self.run_dir, "http-bridge.pid"))
        if pid:
            os.kill(pid, signal.SIGTERM)
        conn = self.conn()
        try:
            if self.REHEARSAL_NETWORK in conn.listNetworks():
                conn.networkLookupByName(self.REHEARSAL_NETWORK).destroy()
        finally:
            conn.close()
        subprocess.run(["ip", "link", "del", self.REHEARSAL_BRIDGE], check=False, stderr=subprocess.DEVNULL)

    def stop_repo_server(self):
        pid = pid_alive(os.path.join(self.run_dir, "http.pid"))
        if pid:
            os.kill(pid, signal.SIGTERM)
        for f in ("http.pid", "http.port"):
            try:
                os.unlink(os.path.join(self.run_dir, f))
            except OSError:
                pass

    def set_repo(self, scenario):
        """Serve SCENARIO's repository as <root>/current. It is copied and re-indexed
        with a fresh Release Date so apt always sees a newer index."""
        if scenario not in SCENARIOS:
            raise ValueError("scenario must be one of %s" % (SCENARIOS,))
        pkgs = self.state().get("pkgs") or self.build_pkgs()
        os.makedirs(self.repo_root, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=self.repo_root, prefix=".new-")
        src = os.path.join(pkgs, "repo", scenario)
        for name in os.listdir(src):
            if name.endswith(".deb"):
                shutil.copy2(os.path.join(src, name), tmp)
        aptrepo.index(tmp)
        os.chmod(tmp, 0o755)
        cur = os.path.join(self.repo_root, "current")
        old = None
        if os.path.exists(cur):
            old = cur + ".old.%d" % os.getpid()
            os.rename(cur, old)
        os.rename(tmp, cur)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        with open(os.path.join(cur, "SCENARIO"), "w") as fh:
            fh.write(scenario + "\n")
        self._save_state(scenario=scenario)

    # ------------------------------------------------------------ domain
    def domain_xml(self, image, overlay, ssh_port, demo_port, repo_port):
        with open(os.path.join(image, "cmdline")) as fh:
            cmdline = fh.read().strip() + " prechange_repo=10.0.2.2:%d" % repo_port
        netdev = ("user,id=e2enet,net=10.0.2.0/24,host=10.0.2.2,"
                  "hostfwd=tcp:127.0.0.1:%d-:22,hostfwd=tcp:127.0.0.1:%d-:%d" % (ssh_port, demo_port, DEMO_PORT))

        def esc(text):
            return text.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")
        # Why <qemu:commandline>: libvirt 9.0 has no port forwarding for slirp
        # (<interface type='user'> without passt), and the passt backend needs
        # the passt package and is not migratable/snapshot-friendly there. The
        # network device is therefore invisible to libvirt (domain "tainted:
        # custom-argv"), which changes nothing for internal snapshots: its state
        # is part of the QEMU migration stream like any other device's.
        return """<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <description>prechange.snapshots e2e guest (tests/e2e/harness.py)</description>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{image}/vmlinuz</kernel>
    <initrd>{image}/initrd.img</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features>
    <acpi/>
    <!-- QEMU's default TCG translation cache (1 GiB) grows the process to
         ~1.4 GB RSS with a running Linux; 256 MiB is plenty for this guest. -->
    <tcg><tb-cache unit='MiB'>256</tb-cache></tcg>
  </features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='unsafe'/>
      <source file='{overlay}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='{serial}' append='on'/>
      <target port='0'/>
    </serial>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='{netdev}'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=e2enet,addr=0x10'/>
  </qemu:commandline>
</domain>
""".format(name=esc(self.domain), mem=self.memory_mib, image=esc(image), cmdline=esc(cmdline),
           overlay=esc(overlay), serial=esc(os.path.join(self.run_dir, "serial.log")), netdev=esc(netdev))

    def _lookup(self, conn):
        import libvirt
        try:
            return conn.lookupByName(self.domain)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def _remove_domain(self, conn):
        import libvirt
        dom = self._lookup(conn)
        if dom is None:
            return
        if dom.isActive():
            dom.destroy()
        # Snapshot metadata must go with the domain or undefine is refused.
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)

    def up(self, fresh=False, timeout=900):
        """Make sure the guest runs and answers SSH. Reuses a running guest unless fresh."""
        self.timings = {}
        t_all = time.monotonic()
        os.makedirs(self.run_dir, exist_ok=True)
        image = self._timed("image_build_or_cache", self.build_image)
        pkgs = self._timed("pkgs_build_or_cache", self.build_pkgs)
        self._save_state(image=image, pkgs=pkgs)
        self._timed("libvirtd_ready", self.ensure_libvirtd)
        repo_port = self.ensure_repo_server()
        if not os.path.isdir(os.path.join(self.repo_root, "current")):
            self.set_repo("v1")
        conn = self.conn()
        try:
            dom = self._lookup(conn)
            st = self.state()
            reuse = (not fresh and dom is not None and dom.isActive()
                     and st.get("image_booted") == image and st.get("repo_port") == repo_port)
            if reuse and self.ssh_ok():
                log("guest %s already up (ssh 127.0.0.1:%s)" % (self.domain, st["ssh_port"]))
                return st
            self._remove_domain(conn)
            overlay = os.path.join(self.run_dir, "disk.qcow2")
            if os.path.exists(overlay):
                os.unlink(overlay)
            base = os.path.join(image, "base.qcow2")
            if os.environ.get("PRECHANGE_E2E_DISK") == "overlay":
                # Copy-on-write overlay: cheaper, but the collection's precheck
                # reads any backing file as an external snapshot and refuses
                # internal ones, so it is opt-in (for testing that precheck).
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                                "-b", base, overlay], check=True)
            else:
                # A standalone copy (~150 MB, well under a second): the guest's disk
                # has no backing chain, like a VM's own qcow2, and the cached base
                # image is only ever read.
                subprocess.run(["cp", "--sparse=always", base, overlay], check=True)
                os.chmod(overlay, 0o600)
            ssh_port, demo_port = free_port(), free_port()
            with open(os.path.join(self.run_dir, "serial.log"), "w"):
                pass
            self._save_state(ssh_port=ssh_port, demo_port=demo_port, repo_port=repo_port,
                             image_booted=image, domain=self.domain, uri=self.uri, key=self.key)
            dom = conn.defineXML(self.domain_xml(image, overlay, ssh_port, demo_port, repo_port))
            t0 = time.monotonic()
            dom.create()
            log("started %s, waiting for ssh on 127.0.0.1:%d" % (self.domain, ssh_port))
            self.wait_ssh(timeout)
            self.timings["boot_to_ssh"] = round(time.monotonic() - t0, 2)
            self._save_state(boot_to_ssh_seconds=self.timings["boot_to_ssh"])
        finally:
            conn.close()
        self.timings["up_total"] = round(time.monotonic() - t_all, 2)
        log("up: %s" % json.dumps(self.timings))
        return self.state()

    def down(self):
        try:
            conn = self.conn()
        except Exception as e:  # daemon gone: nothing of ours to undefine
            log("libvirt not reachable (%s); skipping domain removal" % e)
        else:
            try:
                self._remove_domain(conn)
            finally:
                conn.close()
        self.stop_repo_server()
        for f in ("disk.qcow2", "state.json", "inventory.yml"):
            try:
                os.unlink(os.path.join(self.run_dir, f))
            except OSError:
                pass
        shutil.rmtree(self.repo_root, ignore_errors=True)

    # --------------------------------------------------------------- ssh
    def ssh_argv(self):
        st = self.state()
        # No connection sharing: after a memory revert a shared master's TCP
        # state no longer matches the guest's, so every call opens its own.
        return ["ssh", "-i", self.key, "-p", str(st["ssh_port"]), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "ControlMaster=no", "-o", "ControlPath=none",
                "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                "root@127.0.0.1"]

    def ssh(self, cmd, check=True, timeout=300):
        if not isinstance(cmd, str):
            cmd = " ".join(shlex.quote(c) for c in cmd)
        p = subprocess.run(self.ssh_argv() + [cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout, check=False)
        if check and p.returncode != 0:
            raise RuntimeError("ssh %r failed (%d): %s%s" % (cmd, p.returncode, p.stdout, p.stderr))
        return p

    def ssh_ok(self):
        try:
            return self.ssh("true", check=False, timeout=30).returncode == 0
        except (subprocess.TimeoutExpired, KeyError):
            return False

    def wait_ssh(self, timeout=900):
        """Poll until SSH answers (a bound on waiting, not a performance check)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.ssh_ok():
                return
            if time.monotonic() > deadline:
                tail = ""
                try:
                    with open(os.path.join(self.run_dir, "serial.log"), errors="replace") as fh:
                        tail = fh.read()[-2000:]
                except OSError:
                    pass
                raise TimeoutError("guest %s: no ssh after %ss; serial console tail:\n%s"
                                   % (self.domain, timeout, tail))
            time.sleep(0.3)

    # ---------------------------------------------------------- guest helpers
    def install_demo(self):
        """Install prechange-demo 1.0 (repo scenario v1) and leave the repo on v1."""
        self.set_repo("v1")
        self.ssh("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prechange-demo")

    def demo_answer(self, via="guest"):
        """(status, body) of the demo service, asked from inside the guest or, with
        via='host', through the 127.0.0.1 port forward."""
        if via == "host":
            import urllib.error
            import urllib.request
            url = "http://127.0.0.1:%d/" % self.state()["demo_port"]
            try:
                with urllib.request.urlopen(url, timeout=20) as r:
                    return r.status, r.read().decode().strip()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode().strip()
            except OSError as e:
                return None, str(e)
        script = ("import urllib.request as u, urllib.error as e\n"
                  "try:\n r = u.urlopen('http://127.0.0.1:%d/', timeout=20); print(r.status, r.read().decode().strip())\n"
                  "except e.HTTPError as x: print(x.code, x.read().decode().strip())\n"
                  "except OSError as x: print('None', x)\n" % DEMO_PORT)
        out = self.ssh("python3 -c %s" % shlex.quote(script)).stdout.strip()
        code, _sep, body = out.partition(" ")
        return (None if code == "None" else int(code)), body

    def demo_version(self):
        p = self.ssh("dpkg-query -W -f='${Version} ${db:Status-Abbrev}' prechange-demo", check=False)
        return p.stdout.strip() if p.returncode == 0 else None

    def guest_boot(self):
        """(boot_id, uptime seconds): boot_id changes only on a real reboot."""
        out = self.ssh("cat /proc/sys/kernel/random/boot_id /proc/uptime").stdout.split()
        return out[0], float(out[1])

    # --------------------------------------------------------------- inventory
    def inventory(self, path=None):
        st = self.state()
        if "ssh_port" not in st:
            raise RuntimeError("guest not up: run `harness.py up` first")
        path = path or os.path.join(self.run_dir, "inventory.yml")
        ssh_args = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                    "-o ServerAliveInterval=5 -o ServerAliveCountMax=3")
        text = """# Written by tests/e2e/harness.py inventory: the e2e guest under real libvirtd.
all:
  hosts:
    {dom}:
      ansible_host: 127.0.0.1
      ansible_port: {port}
      ansible_user: root
      ansible_ssh_private_key_file: {key}
      ansible_ssh_common_args: "{ssh_args}"
      ansible_python_interpreter: /usr/bin/python3
      prechange_provider: libvirt
      prechange_vm: {dom}
      prechange_libvirt_uri: "{uri}"
      # Not used by the collection: for tests that look at the demo service.
      prechange_e2e_demo_url_host: "http://127.0.0.1:{demo}/"
      prechange_e2e_demo_url_guest: "http://127.0.0.1:{gdemo}/"
""".format(dom=self.domain, port=st["ssh_port"], key=self.key, ssh_args=ssh_args, uri=self.uri,
           demo=st["demo_port"], gdemo=DEMO_PORT)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(text)
        return path

    # ------------------------------------------------------------------ smoke
    def snapshots(self):
        """Names of the guest's libvirt snapshots."""
        conn = self.conn()
        try:
            return sorted(s.getName() for s in conn.lookupByName(self.domain).listAllSnapshots())
        finally:
            conn.close()

    def reset_demo(self):
        """Back to prechange-demo 1.0 running, repo on v1, without a reboot: for
        running several scenarios on one guest."""
        self.set_repo("v1")
        self.ssh("dpkg --configure -a >/dev/null 2>&1; apt-get update -q && "
                 "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades prechange-demo=1.0 && "
                 "invoke-rc.d prechange-demo start")

    # ------------------------------------------------------------------ smoke
    def smoke(self, keep=False):
        """Fresh guest, then mechanics(), then down (unless keep)."""
        try:
            self.up(fresh=True)
            return self.mechanics()
        finally:
            if not keep:
                self.down()

    def mechanics(self):
        """By hand with libvirt-python, on a running guest: ansible ping, install demo
        1.0, snapshot WITH memory, change the guest (file in /run, a process, a file
        on disk, an upgrade that breaks the service), revert, then show: no reboot,
        the change is gone, SSH, Ansible and the service answer."""
        import libvirt
        t = self.timings
        inv = self.inventory()
        self._timed("ansible_ping", self._ansible_ping, inv)
        self._timed("install_demo_v1", self.install_demo)
        assert self.demo_answer() == (200, "ok v1"), self.demo_answer()
        assert self.demo_answer(via="host") == (200, "ok v1")

        boot_id, up_before = self.guest_boot()
        conn = self.conn()
        try:
            dom = conn.lookupByName(self.domain)
            snap_xml = ("<domainsnapshot><name>e2e-smoke</name><description>harness smoke</description>"
                        "<memory snapshot='internal'/></domainsnapshot>")
            snap = self._timed("snapshot_with_memory", dom.snapshotCreateXML, snap_xml, 0)
            sx = snap.getXMLDesc()
            assert "<state>running</state>" in sx and "snapshot='internal'" in sx, sx

            # The change: volatile (tmpfs file, process), persistent (disk file) and
            # a package upgrade that breaks the service.
            self.ssh("echo changed > /run/e2e-smoke; echo changed > /root/e2e-smoke; "
                     "setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo started")
            self.set_repo("broken")
            self._timed("upgrade_to_broken", self.ssh,
                        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prechange-demo")
            assert self.demo_answer()[0] == 500, self.demo_answer()
            assert self.ssh("pgrep -x sleep", check=False).returncode == 0

            t0 = time.monotonic()
            dom.revertToSnapshot(snap, 0)
            t["revert"] = round(time.monotonic() - t0, 2)
            self.wait_ssh(300)
            t["reachable_after_revert"] = round(time.monotonic() - t0, 2)
            state, reason = dom.state()
            assert state == libvirt.VIR_DOMAIN_RUNNING, (state, reason)

            boot_id2, up_after = self.guest_boot()
            assert boot_id2 == boot_id, "guest rebooted"
            # Uptime continues from the snapshot: not reset, and the guest's clock
            # did not see the time spent in the change.
            assert up_after >= up_before, (up_before, up_after)
            gone = self.ssh("test ! -e /run/e2e-smoke && test ! -e /root/e2e-smoke && ! pgrep -x sleep",
                            check=False)
            assert gone.returncode == 0, "change still there after revert"
            assert self.demo_answer() == (200, "ok v1"), self.demo_answer()
            assert self.demo_answer(via="host") == (200, "ok v1")
            assert self.demo_version() == "1.0 ii", self.demo_version()
            self._timed("ansible_ping_after_revert", self._ansible_ping, inv)
            self._timed("snapshot_delete", snap.delete, 0)
        finally:
            conn.close()
        self.set_repo("v1")
        return {"ok": True, "boot_id_unchanged": True, "uptime_before": up_before,
                "uptime_after": up_after, "timings_seconds": dict(t)}

    def _ansible_ping(self, inv):
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False")
        subprocess.run(["ansible", "all", "-i", inv, "-m", "ansible.builtin.ping"], check=True, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up")
    p.add_argument("--fresh", action="store_true", help="recreate the guest even if one runs")
    p.add_argument("--timeout", type=int, default=900, help="bound on waiting for SSH (s)")
    p = sub.add_parser("inventory")
    p.add_argument("path", nargs="?")
    p = sub.add_parser("repo")
    p.add_argument("scenario", choices=SCENARIOS)
    sub.add_parser("install-demo")
    p = sub.add_parser("ssh")
    p.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("status")
    p = sub.add_parser("smoke")
    p.add_argument("--keep", action="store_true", help="leave the guest running afterwards")
    sub.add_parser("mechanics", help="the smoke steps on the running guest (after up)")
    sub.add_parser("snapshots", help="list the guest's snapshots")
    sub.add_parser("reset-demo", help="back to prechange-demo 1.0 and repo v1")
    sub.add_parser("down")
    sub.add_parser("image", help="build or reuse the guest image; print its directory")
    sub.add_parser("pkgs", help="build or reuse the demo packages; print their directory")
    args = ap.parse_args(argv)

    h = Harness()
    if args.cmd == "up":
        h.up(fresh=args.fresh, timeout=args.timeout)
        print(json.dumps(h.state(), indent=1, sort_keys=True))
    elif args.cmd == "inventory":
        print(h.inventory(args.path))
    elif args.cmd == "repo":
        h.set_repo(args.scenario)
    elif args.cmd == "install-demo":
        h.install_demo()
        print(h.demo_answer())
    elif args.cmd == "ssh":
        p = subprocess.run(h.ssh_argv() + [" ".join(args.command)], check=False)
        return p.returncode
    elif args.cmd == "status":
        print(json.dumps(h.state(), indent=1, sort_keys=True))
    elif args.cmd == "smoke":
        print(json.dumps(h.smoke(keep=args.keep), indent=1, sort_keys=True))
    elif args.cmd == "mechanics":
        print(json.dumps(h.mechanics(), indent=1, sort_keys=True))
    elif args.cmd == "snapshots":
        print("\n".join(h.snapshots()))
    elif args.cmd == "reset-demo":
        h.reset_demo()
        print(h.demo_answer())
    elif args.cmd == "down":
        h.down()
    elif args.cmd == "image":
        print(h.build_image())
    elif args.cmd == "pkgs":
        print(h.build_pkgs())
    return 0


if __name__ == "__main__":
    sys.exit(main())
