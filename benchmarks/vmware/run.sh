#!/usr/bin/env bash
# One command for the VMware benchmark (issue 3, item 4):
#
#   benchmarks/vmware/run.sh [--repeat 3] [--size 2000] [--scale-sizes 1000,5000,10000]
#
# Makes (once) a venv under the cache dir with the `ansible` package from PyPI (it bundles
# community.vmware and vmware.vmware, the peers), pyvmomi, requests (the peers need it) and matplotlib; builds vcsim
# (tests/backends/vcsim/build.sh); then runs bench.py with the venv's ansible-core for every tool.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PRECHANGE_CACHE:-$HOME/.cache/prechange-snapshots}"
venv="$cache/bench-venv"
want='ansible>=12,<13 pyvmomi requests matplotlib'
if [ ! -x "$venv/bin/ansible-playbook" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$want" ]; then
    echo "benchmarks/vmware: making $venv ($want)" >&2
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install -q $want >&2
    echo "$want" >"$venv/.requirements"
fi
exec "$venv/bin/python" "$here/bench.py" "$@"
