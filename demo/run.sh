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
        ansible-playbook --version 2>/dev/null | head -1 | grep -Eq 'core 2\.(1[6-9]|[2-9][0-9])'
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
echo "ansible-playbook: $(command -v ansible-playbook) ($(ansible-playbook --version | head -1)), python: $PYTHON"

log "2/5 libvirtd + QEMU (tests/backends/libvirtd)"
PYTHON="$PYTHON" bash "$REPO/tests/backends/libvirtd/setup.sh" --no-assets
bash "$REPO/tests/backends/libvirtd/ctl.sh" start

log "3/5 Two blank guests for the stand-in hosts"
"$PYTHON" "$REPO/tests/backends/libvirtd/guests.py" cleanup pcstest-demo- >/dev/null
for g in "${GUESTS[@]}"; do
    "$PYTHON" "$REPO/tests/backends/libvirtd/guests.py" create blank "$g" --start >/dev/null
    virsh -q -c qemu:///system desc "$g" --title --live --config "app v1" >/dev/null
    echo "$g: $(virsh -c qemu:///system domstate "$g" | head -1), application: $(virsh -c qemu:///system desc "$g" --title)"
done

log "4/5 ansible-playbook prechange.snapshots.maintenance -i demo/inventory.yml"
mkdir -p "$REPO/build/collections/ansible_collections/prechange" "$WORK"
ln -sfn "$REPO" "$REPO/build/collections/ansible_collections/prechange/snapshots"
rm -rf "$WORK/state" "$WORK/reports"
export ANSIBLE_COLLECTIONS_PATH="$REPO/build/collections"
export PRECHANGE_REPORT_DIR="$WORK/reports"
export ANSIBLE_PYTHON_INTERPRETER="$PYTHON"
set +e
ansible-playbook prechange.snapshots.maintenance -i "$REPO/demo/inventory.yml" \
    -e prechange_state_dir="$WORK/state" 2>&1 | tee "$WORK/maintenance.log"
rc=${PIPESTATUS[0]}
set -e
echo "ansible-playbook exit code: $rc (2 = a host was reverted, as intended for web-bad)"

log "5/5 What the VMs look like now"
for g in "${GUESTS[@]}"; do
    echo "$g: application: $(virsh -c qemu:///system desc "$g" --title); snapshots:"
    virsh -q -c qemu:///system snapshot-list "$g" --name | sed '/^$/d; s/^/    /'
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
# The demo succeeded when web-good passed and web-bad was reverted.
"$PYTHON" - "${report%.md}.json" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
hosts = {h["host"]: h for h in r["hosts"]}
ok = (hosts["web-good"]["outcome"] == "ok" and hosts["web-good"]["action"] == ("kept" if os.environ.get("DEMO_ON_SUCCESS") == "keep" else "deleted")
      and hosts["web-bad"]["outcome"] == "reverted" and hosts["web-bad"]["action"] == "reverted")
print("demo: %s" % ("OK: web-good %s, web-bad reverted" % hosts["web-good"]["action"] if ok else "UNEXPECTED OUTCOME"))
sys.exit(0 if ok else 1)
PY
