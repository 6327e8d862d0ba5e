#!/usr/bin/env bash
# The main job, end to end, on this machine:
#   snapshot -> change -> verify -> revert or prune, with `ansible-playbook prechange.snapshots.maintenance`.
#
# On a fresh Debian/Ubuntu machine (as root, no systemd needed) it installs what it needs (ansible-core
# in .venv when missing, libvirtd + QEMU + libvirt-python through tests/backends/libvirtd/setup.sh),
# starts libvirtd (ctl.sh), creates two blank guests on qemu:///system, and runs the maintenance playbook
# against two stand-in hosts (ansible_connection=local), one per guest:
#   web-good: the change passes verify; the host keeps it and its snapshot is pruned (DEMO_ON_SUCCESS=keep
#             keeps the snapshot until its expiry instead)
#   web-bad:  the change deploys a broken build; verify fails; the VM is reverted to exactly this run's
#             snapshot (the guest's title, the demo's "application", goes back to "app v1")
# and prints where the run report (JSON + Markdown) is.
#
# Usage: bash demo/run.sh            (DEMO_KEEP_GUESTS=1 keeps the guests afterwards for a look)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$REPO/build/demo"
GUESTS=(pcstest-demo-good pcstest-demo-bad)
log() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "demo/run.sh: run as root (it installs packages and talks to qemu:///system)" >&2
    exit 1
fi

log "1/5 Ansible"
ansible_ok() {
    command -v ansible-playbook >/dev/null 2>&1 &&
        ansible-playbook --version 2>/dev/null | sed -n 1p | grep -Eq 'core 2\.(1[6-9]|[2-9][0-9])'
}
if [ -x "$REPO/.venv/bin/ansible-playbook" ]; then
    export PATH="$REPO/.venv/bin:$PATH"
fi
if ! ansible_ok; then
    echo "installing ansible-core into $REPO/.venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-venv python3-pip >/dev/null
    python3 -m venv "$REPO/.venv"
    "$REPO/.venv/bin/pip" install -q 'ansible-core>=2.16,<2.20'
    export PATH="$REPO/.venv/bin:$PATH"
fi
PYTHON="$(ansible-playbook --version | sed -n 's/^ *python version = .*(\([^()]*\))$/\1/p')"
echo "ansible-playbook: $(command -v ansible-playbook) ($(ansible-playbook --version | sed -n 1p)), python: $PYTHON"

log "2/5 libvirtd + QEMU (tests/backends/libvirtd)"
PYTHON="$PYTHON" bash "$REPO/tests/backends/libvirtd/setup.sh" --no-assets
bash "$REPO/tests/backends/libvirtd/ctl.sh" start

log "3/5 Two blank guests for the stand-in hosts"
"$PYTHON" "$REPO/tests/backends/libvirtd/guests.py" cleanup pcstest-demo- >/dev/null
for g in "${GUESTS[@]}"; do
    "$PYTHON" "$REPO/tests/backends/libvirtd/guests.py" create blank "$g" --start >/dev/null
    virsh -q -c qemu:///system desc "$g" --title --live --config "app v1" >/dev/null
    echo "$g: $(virsh -c qemu:///system domstate "$g" | sed -n 1p), application: $(virsh -c qemu:///system desc "$g" --title)"
done

log "4/5 ansible-playbook prechange.snapshots.maintenance -i demo/inventory.yml"
mkdir -p "$REPO/build/collections/ansible_collections/prechange" "$WORK"
ln -sfn "$REPO" "$REPO/build/collections/ansible_collections/prechange/snapshots"
rm -rf "$WORK/reports"
export ANSIBLE_COLLECTIONS_PATH="$REPO/build/collections"
export PRECHANGE_REPORT_DIR="$WORK/reports"
export ANSIBLE_PYTHON_INTERPRETER="$PYTHON"
set +e
ansible-playbook prechange.snapshots.maintenance -i "$REPO/demo/inventory.yml" 2>&1 | tee "$WORK/maintenance.log"
rc=${PIPESTATUS[0]}
set -e
echo "ansible-playbook exit code: $rc (2 = a host was reverted, as intended for web-bad)"

log "5/5 What the VMs look like now (read from libvirt with virsh)"
# The run's state lives on the hypervisor: each snapshot's ownership marker (the last line of its
# description) records the run and its phase (pending until a verdict, then verified / reverted).
: > "$WORK/virsh.txt"
for g in "${GUESTS[@]}"; do
    title="$(virsh -c qemu:///system desc "$g" --title)"
    current="$(virsh -q -c qemu:///system snapshot-current "$g" --name 2>/dev/null || true)"
    echo "$g: application: $title; current snapshot: ${current:-none}; snapshots:"
    printf 'vm %s\ntitle %s\ncurrent %s\n' "$g" "$title" "$current" >> "$WORK/virsh.txt"
    for s in $(virsh -q -c qemu:///system snapshot-list "$g" --name); do
        marker="$(virsh -c qemu:///system snapshot-dumpxml "$g" "$s" \
                  | sed -n 's/.*\(\[prechange\.snapshots v1 [^]]*\]\).*/\1/p' | tail -1)"
        echo "    $s ${marker:-(no marker)}"
        printf 'snapshot %s %s\n' "$s" "$marker" >> "$WORK/virsh.txt"
    done
done
report="$(find "$PRECHANGE_REPORT_DIR" -name 'maintenance-*.md' 2>/dev/null | sort | tail -1)"
if [ -z "$report" ]; then
    echo "demo/run.sh: no run report was written (see $WORK/maintenance.log)" >&2
    exit 1
fi
echo
cat "$report"
echo
echo "Run report: ${report%.md}.json"
echo "            $report"
echo "Log:        $WORK/maintenance.log"
if [ "${DEMO_KEEP_GUESTS:-0}" != 1 ]; then
    "$PYTHON" "$REPO/tests/backends/libvirtd/guests.py" cleanup pcstest-demo- >/dev/null
    echo "(guests removed; DEMO_KEEP_GUESTS=1 keeps them)"
fi
# The demo succeeded when, on libvirt itself (what virsh read above), web-good runs the new version
# and web-bad is back on "app v1" at this run's snapshot, whose marker records the verdict; and the
# run report says the same.
"$PYTHON" - "${report%.md}.json" "$WORK/virsh.txt" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
run = r["run_id"]
vms, vm = {}, None
for line in open(sys.argv[2]):
    key, _sep, value = line.rstrip("\n").partition(" ")
    if key == "vm":
        vm = vms.setdefault(value, {"snapshots": {}})
    elif key == "snapshot":
        name, _sep, marker = value.partition(" ")
        fields = dict(p.split("=", 1) for p in marker.strip("[]").split()[2:] if "=" in p)
        vm["snapshots"][name] = fields
    else:
        vm[key] = value
good, bad = vms["pcstest-demo-good"], vms["pcstest-demo-bad"]
mine = "prechange-" + run
keep = os.environ.get("DEMO_ON_SUCCESS") == "keep"
problems = []
if good["title"] != "app v2":
    problems.append("web-good's application is %r, expected 'app v2'" % good["title"])
if keep and (good["snapshots"].get(mine) or {}).get("phase") != "verified":
    problems.append("web-good's snapshot %s should be kept, marked verified: %s" % (mine, good["snapshots"]))
if not keep and mine in good["snapshots"]:
    problems.append("web-good's snapshot %s should have been deleted" % mine)
if bad["title"] != "app v1":
    problems.append("web-bad's application is %r, expected 'app v1' after the revert" % bad["title"])
if bad["current"] != mine or (bad["snapshots"].get(mine) or {}).get("phase") != "reverted":
    problems.append("web-bad should be at snapshot %s marked reverted: current %r, %s"
                    % (mine, bad["current"], bad["snapshots"]))
pending = [(v, s) for v, d in vms.items() for s, m in d["snapshots"].items() if m.get("phase") == "pending"]
if pending:
    problems.append("snapshots still pending (holding their VMs): %s" % pending)
hosts = {h["host"]: h for h in r["hosts"]}
if not (hosts["web-good"]["outcome"] == "ok" and hosts["web-good"]["action"] == ("kept" if keep else "deleted")
        and hosts["web-bad"]["outcome"] == "reverted" and hosts["web-bad"]["action"] == "reverted"):
    problems.append("the run report says otherwise: %s" % {h: (v["outcome"], v["action"]) for h, v in hosts.items()})
print("demo: %s" % ("OK (read from libvirt): web-good on app v2, snapshot %s; web-bad reverted to %s, back on app v1"
                    % ("kept" if keep else "deleted", mine) if not problems else "UNEXPECTED OUTCOME: " + "; ".join(problems)))
sys.exit(1 if problems else 0)
PY
