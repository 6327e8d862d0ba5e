#!/usr/bin/env bash
# One command for the workflow benchmark (issue 10, "Speed"):
#
#   bash benchmarks/workflow/run.sh [--repeat 1] [--hosts 50,200] [--backends vcsim,fakepve]
#
# Makes (once) a venv under the cache dir with the `ansible` package from PyPI (it bundles
# community.vmware and community.proxmox, the peers), pyvmomi, and the Proxmox test backend's pins
# (fakepve, proxmoxer: tests/backends/fakepve/requirements.txt); builds vcsim
# (tests/backends/vcsim/build.sh, through bench.py); then runs bench.py with that venv's ansible-core
# for every case. See benchmarks/workflow/README.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${PRECHANGE_CACHE:-$HOME/.cache/prechange-snapshots}"
venv="$cache/bench-workflow-venv"
pve_reqs="$repo/tests/backends/fakepve/requirements.txt"
want="ansible==12.3.0 pyvmomi requests; $(sha256sum <"$pve_reqs" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/ansible-playbook" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$want" ]; then
    echo "benchmarks/workflow: making $venv (ansible==12.3.0 pyvmomi requests -r $pve_reqs)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q ansible==12.3.0 pyvmomi requests -r "$pve_reqs" >&2
    echo "$want" >"$venv/.requirements"
fi
exec "$venv/bin/python" "$here/bench.py" "$@"
