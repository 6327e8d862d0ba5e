#!/usr/bin/env bash
# Every ansible-core the collection claims (meta/runtime.yml requires_ansible): for each version, a
# virtualenv with that ansible-core plus tests/cores/requirements.txt, cached under $PRECHANGE_CACHE,
# then the unit tests and a smoke of the controller-side plugins on fakepve (Proxmox VE simulator):
#   tests/integration/test_cores_smoke.py   the modules' action plugins in process and as a module
#                                           process; the maintenance playbook, a passing and a failing host
#   test_workflow_connection.py[proxmox-module_defaults]   the roles by include_role in a user's play,
#                                           connection from module_defaults (the workflow action's
#                                           module_defaults and task-tree lookups)
# Versions run one after another; the last lines say which ansible-core passed on which Python.
#
#   bash tests/cores/run.sh                 every version in CORES below
#   bash tests/cores/run.sh 2.16 2.20       only these
#   PRECHANGE_CORES="2.18 2.19" bash tests/cores/run.sh
#
# A version's Python: the first interpreter that ansible-core supports as a controller Python, from
# python3, python3.1x on PATH and pyenv's versions. ansible-core 2.20 needs Python 3.12 or later, which
# Debian 12 does not package: where none is found, that version fails and says so.
# Virtualenvs are built with uv when it installs from PyPI (seconds), else with pip (about a minute each).
# PRECHANGE_CORES_TESTED=<version>: the caller ran these tests on that ansible-core already (skipped here).
# The virtualenv of the test command ($PRECHANGE_VENV, default .venv) is used as it is for the version
# it already has.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo" || exit 1
cache=${PRECHANGE_CACHE:-$HOME/.cache/prechange-snapshots}/cores
requirements=tests/cores/requirements.txt
main_venv=${PRECHANGE_VENV:-$repo/.venv}

# ansible-core minor version -> the controller Pythons it supports, preferred first.
declare -A PYTHONS=(
  [2.16]="3.11 3.12 3.10"
  [2.17]="3.11 3.12 3.10"
  [2.18]="3.11 3.12 3.13"
  [2.19]="3.11 3.12 3.13"
  [2.20]="3.12 3.13 3.14"
)
CORES="2.16 2.17 2.18 2.19 2.20"
if [ $# -gt 0 ]; then versions="$*"; else versions=${PRECHANGE_CORES:-$CORES}; fi

TESTS=(
  tests/unit
  tests/integration/test_cores_smoke.py
  "tests/integration/test_workflow_connection.py::test_good_workflow_with_connection_from[proxmox-module_defaults]"
)

pyver() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

find_python() { # find_python 2.16 -> path of a supported interpreter, or nothing
  local want candidates=() c v pyenv_root
  pyenv_root=$( (command -v pyenv >/dev/null && pyenv root) 2>/dev/null || echo "$HOME/.pyenv")
  for want in ${PYTHONS[$1]}; do
    candidates=(python3 "python$want")
    # pyenv's builds, newest patch release first
    while IFS= read -r c; do candidates+=("$c"); done < <(printf '%s\n' "$pyenv_root/versions/$want".*/bin/python"$want" | sort -rV)
    for c in "${candidates[@]}"; do
      c=$(command -v "$c" 2>/dev/null) || continue
      v=$(pyver "$c") || continue
      if [ "$v" = "$want" ]; then echo "$c"; return 0; fi
    done
  done
  return 1
}

core_of() { "$1" -c 'import ansible; print(ansible.__version__)' 2>/dev/null; }

# uv (from PyPI) builds a virtualenv in seconds where pip takes a minute: cold runs are what CI pays.
UV_VERSION=0.13.9
uv_bin() { # prints the path of uv, installed once into the cache; nothing (pip is used) if it will not install
  local tools="$cache/uv-$UV_VERSION"
  if [ ! -x "$tools/bin/uv" ]; then
    mkdir -p "$cache"
    ( flock 9
      [ -x "$tools/bin/uv" ] && exit 0
      rm -rf "$tools" && python3 -m venv "$tools" >&2 && "$tools/bin/pip" install -q "uv==$UV_VERSION" >&2
    ) 9>"$tools.lock" || { rm -rf "$tools"; return 1; }
  fi
  echo "$tools/bin/uv"
}

# make_venv VERSION PYTHON -> prints the virtualenv's path (built once per version, Python and requirements)
make_venv() {
  local version=$1 python=$2 key dir uv wheels tag wheel
  key=$( { echo "ansible-core==$version.*"; "$python" -c 'import sys; print(sys.version)'; realpath "$python";
           cat "$requirements"; } | sha256sum | cut -c1-12)
  dir="$cache/ansible-core-$version-py$(pyver "$python")-$key"
  if [ -f "$dir/.ready" ]; then echo "$dir"; return 0; fi
  mkdir -p "$cache"
  uv=$(uv_bin) || uv=""
  (
    flock 9
    [ -f "$dir/.ready" ] && exit 0
    rm -rf "$dir"
    if [ -n "$uv" ]; then
      export UV_CACHE_DIR="$cache/uv-cache"
      # uv would build libvirt-python (no wheels) again for every virtualenv: build it once per Python
      # (pip reuses the wheel it built for the test command's virtualenv) and install that wheel.
      wheels="$cache/wheels/py$(pyver "$python")"
      tag=$("$python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
      wheel=$(printf '%s\n' "$wheels"/libvirt_python-*-"$tag"-*.whl | sort -V | tail -n 1)
      if [ ! -f "$wheel" ]; then
        "$python" -m pip wheel -q --no-deps -w "$wheels" libvirt-python >&2 || exit 1
        wheel=$(printf '%s\n' "$wheels"/libvirt_python-*-"$tag"-*.whl | sort -V | tail -n 1)
      fi
      "$uv" venv -q --python "$python" "$dir" >&2 &&
        VIRTUAL_ENV="$dir" "$uv" pip install -q "ansible-core==$version.*" "$wheel" -r "$requirements" >&2 || exit 1
    else
      "$python" -m venv "$dir" >&2 && "$dir/bin/pip" install -q "ansible-core==$version.*" -r "$requirements" >&2 ||
        exit 1
    fi
    touch "$dir/.ready"
  ) 9>"$dir.lock" || { rm -rf "$dir"; return 1; }
  echo "$dir"
}

mkdir -p build/collections/ansible_collections/prechange
ln -sfn "$repo" build/collections/ansible_collections/prechange/snapshots

results=()
failed=0
for version in $versions; do
  if [ -z "${PYTHONS[$version]:-}" ]; then
    echo "cores: unknown ansible-core version $version (known: $CORES)" >&2
    results+=("FAILED  ansible-core $version: not a version this script knows"); failed=1; continue
  fi
  printf '\n==> ansible-core %s\n' "$version"
  if [[ -n "${PRECHANGE_CORES_TESTED:-}" && "$PRECHANGE_CORES_TESTED" == "$version".* ]]; then
    echo "tested by the caller (tests/run.sh's pytest stage runs these tests and more on it)"
    results+=("covered ansible-core $PRECHANGE_CORES_TESTED: by the pytest stage of tests/run.sh")
    continue
  fi
  start=$SECONDS
  python=""
  if [ -x "$main_venv/bin/python" ] && [[ "$(core_of "$main_venv/bin/python")" == "$version".* ]] &&
     [[ " ${PYTHONS[$version]} " == *" $(pyver "$main_venv/bin/python") "* ]]; then
    venv=$main_venv
  elif python=$(find_python "$version"); then
    if ! venv=$(make_venv "$version" "$python"); then
      results+=("FAILED  ansible-core $version: the virtualenv did not install (Python $python)"); failed=1
      continue
    fi
  else
    echo "cores: no Python ${PYTHONS[$version]// / or } found for ansible-core $version" \
         "(python3.x on PATH or under pyenv's versions)" >&2
    results+=("FAILED  ansible-core $version: no supported Python (${PYTHONS[$version]}) on this machine"); failed=1
    continue
  fi
  setup=$((SECONDS - start))
  core=$(core_of "$venv/bin/python")
  py=$("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')
  echo "ansible-core $core, Python $py, $venv (ready in ${setup}s)"
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
  rc=$?
  took=$((SECONDS - start))
  if [ $rc -eq 0 ]; then
    results+=("ok      ansible-core $core (Python $py): unit tests and smoke passed (${setup}s setup, ${took}s in all)")
  else
    results+=("FAILED  ansible-core $core (Python $py): pytest exit $rc (${took}s)"); failed=1
  fi
done

printf '\n==> ansible-core matrix\n'
printf '%s\n' "${results[@]}"
exit $failed
