#!/usr/bin/env bash
# Release readiness (issue 11): what a 1.0.0 release would ship and whether it passes Automation Hub.
#
#   bash tests/release/run.sh
#
# As root on a fresh Debian/Ubuntu machine (it installs bindep's compile set with apt). Its tools
# (galaxy-importer, ansible-builder, bindep, flake8, antsibull-changelog; tests/release/requirements.txt)
# live in a venv cached under $PRECHANGE_CACHE/release/, keyed by a hash of that file and the Python.
# Checks, each reported on its own:
#   build       `make build` works without ansible-galaxy on PATH; the artifact ships what users run
#               and none of the development kit (tests, benchmarks, PNGs, e2e root filesystem, ...)
#   flake8      plugins/ with galaxy-importer's own flake8 options (W503 and W504 included)
#   sanity      no ansible-test ignore files (the artifact has no tests/, so the importer cannot see them)
#   changelog   `antsibull-changelog release` in a throw-away copy: a release summary, every module
#               and role listed exactly once, no bugfixes or breaking changes in the first release
#   ee-*        `ansible-builder create` on execution-environment/execution-environment.yml; the CRB
#               step in the builder stage; the context's own introspection of the installed artifact;
#               bindep's compile set on this Debian machine (installed, then nothing missing); the
#               Python requirements into a fresh venv (libvirt-python compiled); the bindep table
#               for dpkg and rpm bases (tests/release/check_bindep.py)
#   importer    galaxy-importer with an Automation Hub-like configuration (tests/release/galaxy-importer.cfg):
#               any WARNING or ERROR fails
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo" || exit 1
python=${PYTHON3:-python3}
cache=${PRECHANGE_CACHE:-$HOME/.cache/prechange-snapshots}/release
work=$repo/build/release
venv=${PRECHANGE_VENV:-$repo/.venv}
passed=()
failed=()
started=$(date +%s)

check() { # check NAME COMMAND...: run one check, record its outcome
  local name=$1 rc t0
  shift
  printf '\n--> %s\n' "$name"
  t0=$(date +%s)
  "$@"
  rc=$?
  name="$name ($(($(date +%s) - t0))s)"
  if [ $rc -eq 0 ]; then passed+=("$name"); else failed+=("$name, exit $rc"); fi
}

pip_quiet() { # pip without the notes about local index locations some machines' pip.conf names
  "$@" --disable-pip-version-check 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
  return "${PIPESTATUS[0]}"
}

# --- tools ------------------------------------------------------------------------------------
mkdir -p "$cache"
key=$({ cat "$here/requirements.txt"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
tools=$cache/tools-$key
(
  flock 9
  if [ ! -f "$tools/.complete" ]; then
    echo "release tools: installing into $tools"
    rm -rf "$tools" && "$python" -m venv "$tools" &&
      pip_quiet "$tools/bin/pip" install -q -r "$here/requirements.txt" &&
      touch "$tools/.complete"
  fi
) 9>"$cache/.lock"
[ -f "$tools/.complete" ] || { echo "release tools could not be installed" >&2; exit 1; }
echo "release tools: $tools (ready after $(($(date +%s) - started))s)"
rm -rf "$work" && mkdir -p "$work"

version=$("$tools/bin/python" -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
artifact=$work/prechange-snapshots-$version.tar.gz

# --- build and artifact -----------------------------------------------------------------------
build_and_inspect() {
  # The issue's "make build: ansible-galaxy: No such file or directory": PATH without any venv.
  local with=$venv
  [ -x "$with/bin/ansible-galaxy" ] || with=$tools
  env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin make -s build VENV="$with" >/dev/null || return 1
  cp "build/dist/prechange-snapshots-$version.tar.gz" "$artifact" || return 1
  tar tzf "$artifact" > "$work/artifact.txt" || return 1
  local bad=0 path
  # The development kit: none of it is for users, and tests/ holds the e2e guest's root filesystem.
  if grep -E '^(tests|benchmarks|demo|extensions|build|changelogs/fragments|\.[^/]+)(/|$)|\.png$|\.pyc$|__pycache__|^(Makefile|pytest\.ini)$' \
      "$work/artifact.txt"; then
    echo "the artifact ships the files above, which are for development only" >&2
    bad=1
  fi
  local required=(README.md LICENSE meta/runtime.yml meta/execution-environment.yml meta/ee-requirements.txt
    meta/ee-bindep.txt execution-environment/execution-environment.yml execution-environment/requirements.yml
    changelogs/changelog.yaml changelogs/config.yaml playbooks/maintenance.yml)
  for path in plugins/*/*.py roles/*/meta/main.yml roles/*/meta/argument_specs.yml roles/*/tasks/main.yml; do
    required+=("$path")
  done
  for path in "${required[@]}"; do
    grep -qxF "$path" "$work/artifact.txt" || { echo "missing from the artifact: $path" >&2; bad=1; }
  done
  local files bytes
  files=$(grep -vc '/$' "$work/artifact.txt")
  bytes=$(tar tzvf "$artifact" | awk '{s += $3} END {print s}')
  echo "artifact: $(basename "$artifact"), $(stat -c %s "$artifact") bytes compressed, $files files, $bytes bytes unpacked"
  return $bad
}
check build build_and_inspect

# --- flake8, sanity ignores -------------------------------------------------------------------
flake8_like_the_importer() {
  local opts
  # The importer's own options (galaxy_importer.constants), so the two cannot drift apart.
  opts=$("$tools/bin/python" -c 'from galaxy_importer import constants as c
print("--extend-ignore=%s --select=%s --max-line-length=%s" % (
    c.FLAKE8_IGNORE_ERRORS, c.FLAKE8_SELECT_ERRORS, c.FLAKE8_MAX_LINE_LENGTH))') || return 1
  # shellcheck disable=SC2086
  "$tools/bin/flake8" --isolated $opts plugins
}
check flake8 flake8_like_the_importer

no_sanity_ignores() {
  local found
  found=$(grep -lvE '^\s*(#|$)' tests/sanity/ignore-*.txt 2>/dev/null)
  [ -z "$found" ] || { echo "ansible-test sanity ignore files with entries: $found" >&2; return 1; }
}
check sanity-ignores no_sanity_ignores

# --- changelog of the release -----------------------------------------------------------------
changelog_release_dry_run() {
  local copy=$work/changelog/ansible_collections/prechange/snapshots
  mkdir -p "$copy" || return 1
  git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$copy" || return 1
  (cd "$copy" && HOME=$work/changelog ANSIBLE_COLLECTIONS_PATH=$work/changelog PATH="$tools/bin:$PATH" \
    "$tools/bin/antsibull-changelog" release --version "$version" --date 2000-01-01) || return 1
  "$tools/bin/python" - "$copy/CHANGELOG.rst" "$version" <<'PY'
import glob, os, re, sys
text = open(sys.argv[1]).read()
version = sys.argv[2]
problems = []
sections = re.findall(r"^(.+)\n-+\n", text, re.M)
if "Release Summary" not in sections:
    problems.append("no release summary")
for unwanted in ("Bugfixes", "Breaking Changes / Porting Guide", "Removed Features (previously deprecated)"):
    if version == "1.0.0" and unwanted in sections:
        problems.append("a first release with a %r section (behaviour that never shipped)" % unwanted)
parts = re.split(r"^(.+)\n-+\n", text, flags=re.M)
bodies = dict(zip(parts[1::2], parts[2::2]))
def listed(kind):
    return re.findall(r"^- prechange\.snapshots\.(\w+) - ", bodies.get("New %s" % kind, ""), re.M)
modules = sorted(os.path.basename(p)[:-3] for p in glob.glob("plugins/modules/*.py"))
# A role is listed from its main entry point (roles/playbooks only documents the playbooks' variables).
roles = sorted(os.path.basename(os.path.dirname(os.path.dirname(p))) for p in glob.glob("roles/*/meta/argument_specs.yml")
               if re.search(r"^  main:", open(p).read(), re.M))
for kind, want in (("Modules", modules), ("Roles", roles)):
    got = listed(kind)
    if sorted(got) != want:
        problems.append("New %s lists %s, expected each of %s once" % (kind, got, want))
# Every documented plugin (modules, callbacks, ...) new in this release is listed exactly once.
for path in sorted(glob.glob("plugins/*/*.py")):
    source = open(path).read()
    added = re.search(r"^version_added: ['\"]?([0-9.]+)", source, re.M)
    if "DOCUMENTATION" in source and added:
        name = os.path.basename(path)[:-3]
        count = len(re.findall(r"^- prechange\.snapshots\.%s - " % name, text, re.M))
        if added.group(1) == version and count != 1:
            problems.append("%s (version_added %s) is listed %d times" % (path, version, count))
        elif version == "1.0.0" and added.group(1) != version:
            problems.append("%s has version_added %s in the first release" % (path, added.group(1)))
# New content is listed from version_added; an entry that announces it too lists it twice.
for line in re.findall(r"^- .*\bnew (?:modules?|roles?|plugins?)\b.*$", text, re.M | re.I):
    problems.append("announced in an entry as well as in the generated listing: %s" % line[:100])
print("\n".join("changelog: " + p for p in problems) or "changelog: %d sections, %d modules and %d roles listed once"
      % (len(sections), len(modules), len(roles)))
sys.exit(1 if problems else 0)
PY
}
check changelog-release changelog_release_dry_run

# --- execution environment --------------------------------------------------------------------
ee=$work/ee
ee_create() {
  mkdir -p "$ee" && "$tools/bin/ansible-builder" create -f execution-environment/execution-environment.yml \
    -c "$ee/context" --output-filename Containerfile || return 1
  # libvirt-devel comes from CodeReady Builder: it must be enabled in the builder stage, before
  # assemble installs the [compile] packages there.
  "$tools/bin/python" - "$ee/context/Containerfile" <<'PY'
import re, sys
stages = re.split(r"^FROM ", open(sys.argv[1]).read(), flags=re.M)
builder = [s for s in stages if re.match(r"\S+ AS builder\b", s)]
assert builder, "no builder stage"
lines = builder[0].splitlines()
crb = [i for i, line in enumerate(lines) if re.search(r"--set-enabled crb|--enablerepo[= ](crb|codeready)", line)]
assemble = [i for i, line in enumerate(lines) if "/output/scripts/assemble" in line]
assert crb and assemble and crb[0] < assemble[0], "the builder stage does not enable CRB before assemble"
print("Containerfile: CRB enabled in the builder stage (line %d) before assemble (line %d)" % (crb[0], assemble[0]))
PY
}
check ee-create ee_create

ee_introspect() {
  # What the galaxy stage would install (the artifact stands in for Galaxy), then the context's
  # own introspection script, as the builder stage runs it.
  # Only that directory: a copy already in the configured collections paths (the test command's own
  # link to this checkout) must not make ansible-galaxy skip the install.
  rm -rf "$ee/collections"
  ANSIBLE_COLLECTIONS_PATH="$ee/collections" "$tools/bin/ansible-galaxy" collection install --force --no-deps \
    -p "$ee/collections" "$artifact" >/dev/null || return 1
  "$tools/bin/python" "$ee/context/_build/scripts/introspect.py" introspect --sanitize \
    --write-pip "$ee/requirements.txt" --write-bindep "$ee/bindep.txt" "$ee/collections" || return 1
  local want
  for want in pyvmomi libvirt-python proxmoxer requests; do
    grep -qiE "^$want\b" "$ee/requirements.txt" || { echo "introspection lost $want" >&2; return 1; }
  done
  grep -q '^libvirt-dev ' "$ee/bindep.txt" || { echo "introspection found no system packages" >&2; return 1; }
}
check ee-introspect ee_introspect

ee_bindep_debian() {
  if ! command -v dpkg >/dev/null; then
    echo "not a dpkg machine: the rpm side is checked by ee-bindep-table"
    return 0
  fi
  local missing
  missing=$("$tools/bin/bindep" -b -f "$ee/bindep.txt" compile)
  [ $? -ne 2 ] || return 2
  if [ -n "$missing" ]; then
    echo "installing bindep's compile set: $missing"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null; } ||
      return 1
  fi
  missing=$("$tools/bin/bindep" -b -f "$ee/bindep.txt" compile) || { echo "still missing: $missing" >&2; return 1; }
  echo "bindep compile set: $("$tools/bin/bindep" -l newline -f "$ee/bindep.txt" compile | tr '\n' ' ')- all installed"
}
check ee-bindep-debian ee_bindep_debian

ee_python_requirements() {
  # A fresh venv every time; libvirt-python is built from its sdist (never a cached wheel), so the
  # compile set above is what makes it build.
  rm -rf "$ee/venv" && "$python" -m venv "$ee/venv" || return 1
  pip_quiet "$ee/venv/bin/pip" install -q --no-binary libvirt-python -r "$ee/requirements.txt" || return 1
  "$ee/venv/bin/python" -c 'import libvirt, pyVmomi, proxmoxer, requests; print("imported libvirt %s, pyVmomi, proxmoxer %s" % (libvirt.getVersion(), proxmoxer.__version__))'
}
check ee-python-requirements ee_python_requirements

check ee-bindep-table "$tools/bin/python" "$here/check_bindep.py" meta/ee-bindep.txt

# --- galaxy-importer ----------------------------------------------------------------------------
galaxy_importer_like_hub() {
  local log=$work/galaxy-importer.log
  # A HOME of its own: ansible-lint would otherwise resolve the collection's roles from any other copy
  # in ~/.ansible/collections (it puts that path first), not from the artifact under test.
  mkdir -p "$work/importer-home"
  (cd "$work" && HOME=$work/importer-home GALAXY_IMPORTER_CONFIG=$here/galaxy-importer.cfg PATH="$tools/bin:$PATH" \
    ANSIBLE_LOCAL_TEMP=$work/ansible-tmp "$tools/bin/python" -m galaxy_importer.main "$artifact") > "$log" 2>&1
  local rc=$?
  grep -E '^(Importing with|Getting doc strings|Linting collection via|\.\.\.ansible-lint run complete|Collection loading complete|Importer processing completed successfully)' "$log"
  if grep -E '^(WARNING|ERROR|CRITICAL)' "$log"; then
    echo "galaxy-importer reported the lines above (full log: $log)" >&2
    return 1
  fi
  if [ $rc -ne 0 ] || ! grep -q '^Importer processing completed successfully' "$log"; then
    tail -20 "$log" >&2
    return 1
  fi
}
check galaxy-importer galaxy_importer_like_hub

printf '\n--> release checks (%ss)\n' "$(($(date +%s) - started))"
for s in "${passed[@]+"${passed[@]}"}"; do echo "ok      $s"; done
for s in "${failed[@]+"${failed[@]}"}"; do echo "FAILED  $s"; done
[ ${#failed[@]} -eq 0 ]
