#!/usr/bin/env bash
# Build govmomi's vCenter simulator (vcsim) from Debian's govmomi source, with
# this project's fixes, into the cache dir. Idempotent: a rebuild is skipped
# when no input changed. Prints the binary's path as its last stdout line.
#
#   tests/backends/vcsim/build.sh            # build if needed, print path
#   PRECHANGE_CACHE=/some/dir build.sh        # other cache root
#   VCSIM_FORCE_REBUILD=1 build.sh            # ignore the input stamp
#
# How: Debian ships the govmomi library (simulator included, no vcsim main) in
# golang-github-vmware-govmomi-dev under /usr/share/gocode. We build offline in
# GOPATH mode: GOPATH = an overlay (govmomi's tree symlinked, except a patched
# copy of simulator/) followed by /usr/share/gocode. Fixes: patches/*.patch
# (each says WHY in its header) and overlay/*.go (new files). Launcher:
# launcher/main.go.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PRECHANGE_CACHE:-$HOME/.cache/prechange-snapshots}/vcsim"
src=/usr/share/gocode/src/github.com/vmware/govmomi
bin="$cache/bin/prechange-vcsim"
log() { echo "vcsim/build.sh: $*" >&2; }

mkdir -p "$cache/bin"
exec 9>"$cache/build.lock"
flock 9   # parallel test workers build once

# 1. Toolchain and source, from Debian (patch applies the fixes; not on every minimal image).
pkgs=(golang-go golang-github-vmware-govmomi-dev patch)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    [ "$(id -u)" = 0 ] && sudo="" || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
        $sudo apt-get update -q >&2
        $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    fi
fi
[ -d "$src/simulator" ] || { log "no govmomi source at $src"; exit 1; }

# 2. Skip when the inputs are unchanged.
stamp="$(
    {
        go version
        dpkg-query -W -f='${Version}\n' golang-github-vmware-govmomi-dev
        cd "$here" && cat build.sh launcher/*.go overlay/*.go patches/*.patch
    } | sha256sum | cut -d' ' -f1
)"
if [ -z "${VCSIM_FORCE_REBUILD:-}" ] && [ -x "$bin" ] && [ "$(cat "$bin.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "up to date: $bin"
    echo "$bin"
    exit 0
fi

# 3. Overlay GOPATH: govmomi symlinked entry by entry, simulator/ copied + fixed.
gopath="$cache/gopath"
rm -rf "$gopath"
gv="$gopath/src/github.com/vmware/govmomi"
mkdir -p "$gv" "$gopath/src/prechange.snapshots/vcsim"
for entry in "$src"/*; do
    name="$(basename "$entry")"
    [ "$name" = simulator ] || ln -s "$entry" "$gv/$name"
done
cp -r "$src/simulator" "$gv/simulator"
chmod -R u+w "$gv/simulator"
cp "$here"/overlay/*.go "$gv/simulator/"
for p in "$here"/patches/*.patch; do
    log "applying $(basename "$p")"
    patch -p1 --forward --quiet --no-backup-if-mismatch -d "$gv/simulator" <"$p" >&2
done
cp "$here"/launcher/*.go "$gopath/src/prechange.snapshots/vcsim/"

# 4. Build offline in GOPATH mode.
log "building (GOPATH mode, offline)"
start=$(date +%s.%N)
(
    cd "$gopath/src/prechange.snapshots/vcsim"
    # CGO_ENABLED=0: a static binary, and no C compiler needed.
    CGO_ENABLED=0 GO111MODULE=off GOPROXY=off GOFLAGS="" GOPATH="$gopath:/usr/share/gocode" \
        GOCACHE="${GOCACHE:-$cache/go-build}" \
        go build -ldflags="-s -w" -o "$bin.tmp" .
)
mv -f "$bin.tmp" "$bin"
echo "$stamp" >"$bin.stamp"
log "built $bin in $(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || echo '?') s"
echo "$bin"
