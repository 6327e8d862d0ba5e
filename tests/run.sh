#!/usr/bin/env bash
# The test command. On a fresh Debian/Ubuntu machine, as root: installs what the tests need
# (apt packages, a virtualenv, libvirtd+QEMU, the vCenter simulator, fakepve), then runs the
# unit, provider, integration and workflow tests against those real backends, then
# ansible-test sanity, ansible-lint (production profile), the changelog lint, a build and the
# release checks (tests/release/run.sh: artifact, execution environment, galaxy-importer).
#
#   bash tests/run.sh            everything
#   bash tests/run.sh -k libvirt extra pytest arguments narrow the pytest stage
#   SKIP_MOLECULE=1 SKIP_E2E=1 SKIP_SANITY=1 ...   skip the workflow scenarios / the real-guest
#                                                  scenarios / the static stages while iterating
#   SKIP_RELEASE=1                                 skip only the release checks (tests/release/run.sh)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
export PRECHANGE_CACHE=${PRECHANGE_CACHE:-$HOME/.cache/prechange-snapshots}
venv=${PRECHANGE_VENV:-$repo/.venv}
failed=()
passed=()

step() { printf '\n==> %s\n' "$*"; }
record() { # record NAME RC
  if [ "$2" -eq 0 ]; then passed+=("$1"); else failed+=("$1 (exit $2)"); fi
}

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
mkdir -p build/collections/ansible_collections/prechange
ln -sfn "$repo" build/collections/ansible_collections/prechange/snapshots
export ANSIBLE_COLLECTIONS_PATH="$repo/build/collections"

step "pytest: unit, provider and integration tests on the real backends"
bash tests/backends/libvirtd/ctl.sh start || exit 1
python -m pytest "$@"
record pytest $?

if [ -z "${SKIP_MOLECULE:-}" ]; then
  step "molecule: the maintenance workflow on every provider (extensions/molecule)"
  # One scenario after another: each starts its own backend and the machine has 2 cores.
  molecule test --all
  record molecule $?
fi

if [ -z "${SKIP_E2E:-}" ]; then
  step "e2e: the maintenance workflow on a real Debian guest under libvirt/QEMU (tests/e2e)"
  python -m pytest tests/e2e
  record e2e $?
fi

if [ -z "${SKIP_SANITY:-}" ]; then
  step "ansible-test sanity"
  PYTHON="$venv/bin/python" bash tests/sanity/run.sh
  record sanity $?

  step "ansible-lint (production profile)"
  ansible-lint --profile production
  record ansible-lint $?

  step "Changelog fragments"
  antsibull-changelog lint
  record changelog $?

  step "Collection build"
  rm -rf build/dist && ansible-galaxy collection build --output-path build/dist --force >/dev/null
  record build $?

  if [ -z "${SKIP_RELEASE:-}" ]; then
    step "Release: the artifact, the execution environment, galaxy-importer as Automation Hub (tests/release)"
    PRECHANGE_VENV="$venv" bash tests/release/run.sh
    record release $?
  fi
fi

printf '\n==> Summary\n'
for s in "${passed[@]}"; do echo "ok      $s"; done
for s in "${failed[@]+"${failed[@]}"}"; do echo "FAILED  $s"; done
echo "stages: ${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
