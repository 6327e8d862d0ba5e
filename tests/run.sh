#!/usr/bin/env bash
# The test command. On a fresh Debian/Ubuntu machine, as root: installs what the tests need
# (apt packages, a virtualenv, libvirtd+QEMU, the vCenter simulator, fakepve), then runs the
# unit, provider, integration and workflow tests against those real backends and, beside them in
# the background, the static stages: ansible-test sanity, ansible-lint (production profile), the
# changelog lint, the docs (lint and site), a build and the release checks (tests/release/run.sh: the
# artifact, the execution environment, galaxy-importer as Automation Hub). Each stage's result and wall
# time are in the summary.
#
#   bash tests/run.sh            everything
#   bash tests/run.sh -k libvirt extra pytest arguments narrow the pytest stage
#   SKIP_MOLECULE=1 SKIP_E2E=1 SKIP_SANITY=1 ...   skip the workflow scenarios / the real-guest
#                                                  scenarios / the static stages while iterating
#   SKIP_DOCS=1                                    skip the docs stage (lint and site) of the static stages
#   SKIP_CORES=1                                   skip the ansible-core matrix (tests/cores)
#   SKIP_FAULTS=1                                  skip the fault campaign (tests/faults: faults injected against
#                                                  vcsim, fakepve and libvirtd; prints one "fault campaign:" line)
#   SKIP_RELEASE=1                                 skip the release checks (tests/release/run.sh) of the static stages
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
export PRECHANGE_CACHE=${PRECHANGE_CACHE:-$HOME/.cache/prechange-snapshots}
venv=${PRECHANGE_VENV:-$repo/.venv}
step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "tests/run.sh installs packages and runs libvirtd: run it as root (sudo bash tests/run.sh)" >&2
  exit 2
fi

step "System packages"
export DEBIAN_FRONTEND=noninteractive
pkgs="python3 python3-venv python3-dev gcc pkg-config libvirt-dev git make"
missing=()
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || exit 1
fi
bash tests/backends/libvirtd/setup.sh || exit 1
bash tests/backends/vcsim/build.sh || exit 1

step "Python virtualenv ($venv)"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" || exit 1
stamp="$venv/.requirements.sha"
want=$(sha256sum < tests/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install -q --upgrade pip >/dev/null && \
  "$venv/bin/pip" install -q -r tests/requirements.txt || exit 1
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
# The inventory plugins the inventory tests run (community.libvirt, .vmware, .proxmox), pinned and cached.
PYTHON="$venv/bin/python" bash tests/integration/inventory/collections.sh >/dev/null || exit 1
mkdir -p build/collections/ansible_collections/prechange
ln -sfn "$repo" build/collections/ansible_collections/prechange/snapshots
export ANSIBLE_COLLECTIONS_PATH="$repo/build/collections"

# Two groups run side by side on the 2 cores: the static stages (no backend: sanity, lint, docs, build)
# in the background, logging to build/logs/static.log, and the backend stages (pytest, molecule, e2e)
# in the foreground. Each stage appends "ok NAME" or "FAILED NAME (exit N)" to one results file.
mkdir -p build/logs
results="$repo/build/logs/results"
: > "$results"
stage() { # stage NAME COMMAND...: run it, record its result and wall time
  local name=$1 start rc
  shift
  start=$(date +%s)
  step "$name"
  "$@"
  rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "ok      $name ($(( $(date +%s) - start )) s)" >> "$results"
  else
    echo "FAILED  $name (exit $rc, $(( $(date +%s) - start )) s)" >> "$results"
  fi
  return 0
}

static_stages() {
  if [ -z "${SKIP_CORES:-}" ]; then
    stage "ansible-core matrix: unit tests and a smoke of the plugins on every version claimed (tests/cores)" \
      env PRECHANGE_CORES_TESTED="$cores_tested" bash tests/cores/run.sh
  fi
  if [ -z "${SKIP_SANITY:-}" ]; then
    stage "ansible-test sanity" env PYTHON="$venv/bin/python" bash tests/sanity/run.sh
    stage "ansible-lint (production profile)" ansible-lint --profile production
    stage "changelog fragments" antsibull-changelog lint
    if [ -z "${SKIP_DOCS:-}" ]; then
      stage "docs: antsibull-docs lint-collection-docs and the docs site" bash tests/docs/run.sh
    fi
    stage "collection build" bash -c 'rm -rf build/dist && ansible-galaxy collection build --output-path build/dist --force >/dev/null'
    if [ -z "${SKIP_RELEASE:-}" ]; then
      stage "release: the artifact, the execution environment, galaxy-importer (tests/release)" \
        env PRECHANGE_VENV="$venv" bash tests/release/run.sh
    fi
  fi
}

# The pytest stage runs the same tests on this virtualenv's ansible-core, unless it is narrowed: the
# matrix leaves that version out.
cores_tested=""
[ $# -eq 0 ] && cores_tested=$(python -c 'import ansible; print(ansible.__version__)')
static_pid=""
if [ -z "${SKIP_SANITY:-}" ] || [ -z "${SKIP_CORES:-}" ]; then
  printf '\n==> static stages in the background (log: build/logs/static.log)\n'
  static_stages > build/logs/static.log 2>&1 &
  static_pid=$!
fi

bash tests/backends/libvirtd/ctl.sh start || exit 1
stage "pytest: unit, provider and integration tests on the real backends" python -m pytest "$@"

if [ -z "${SKIP_FAULTS:-}" ]; then
  # Its own stage (not in pytest.ini's testpaths): it restarts libvirtd under flock /tmp/prechange-libvirt.lock.
  stage "faults: the fault campaign against vcsim, fakepve and libvirtd (tests/faults)" \
    python -m pytest tests/faults -p no:cacheprovider
fi

if [ -z "${SKIP_MOLECULE:-}" ]; then
  # One scenario after another: each starts its own backend.
  stage "molecule: the maintenance workflow on every provider (extensions/molecule)" molecule test --all
fi

if [ -z "${SKIP_E2E:-}" ]; then
  stage "e2e: the maintenance workflow on a real Debian guest under libvirt/QEMU (tests/e2e)" \
    python -m pytest tests/e2e
fi

if [ -n "$static_pid" ]; then
  wait "$static_pid"
  printf '\n==> static stages (from build/logs/static.log)\n'
  cat build/logs/static.log
fi

printf '\n==> Summary\n'
cat "$results"
failed=$(grep -c '^FAILED' "$results")
echo "stages: $(grep -c '^ok' "$results") passed, $failed failed"
[ "$failed" -eq 0 ]
