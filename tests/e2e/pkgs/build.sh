#!/usr/bin/env bash
# Build the prechange-demo test packages with dpkg-deb and one flat APT
# repository per scenario. Prints the output directory, which holds
#   debs/*.deb  and  repo/<scenario>/{*.deb,Packages,Packages.gz,Release}
# Scenarios (each repository carries only its own version, so `apt-get
# upgrade` in the guest picks exactly that one):
#   v1       prechange-demo 1.0          service answers "ok v1"
#   good     prechange-demo 2.0-good     service answers "ok v2"
#   broken   prechange-demo 2.0-broken   installs and starts, answers HTTP 500
#   halfway  prechange-demo 2.0-halfway  files unpacked, then postinst fails
#                                        (dpkg half-configured, service stopped)
# Cached under ${PRECHANGE_CACHE:-$HOME/.cache/prechange-snapshots}/e2e/pkgs/
# while this directory's files are unchanged.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${PRECHANGE_CACHE:-$HOME/.cache/prechange-snapshots}/e2e
key=$(cd "$HERE" && find . -type f -not -name '*.pyc' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
OUT="$CACHE/pkgs/$key"
if [ -z "${PRECHANGE_E2E_REBUILD:-}" ] && [ -f "$OUT/.done" ]; then
  echo "$OUT"
  exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/out/debs" "$WORK/out/repo"

build() { # build SCENARIO VERSION MODE HALFWAY
  local scenario=$1 version=$2 mode=$3 halfway=$4
  local d="$WORK/pkg-$scenario"
  mkdir -p "$d/DEBIAN" "$d/usr/lib/prechange-demo" "$d/etc/init.d" "$d/etc/default"
  sed -e "s/@VERSION@/$version/" -e "s/@MODE@/$mode/" "$HERE/src/server.py" > "$d/usr/lib/prechange-demo/server.py"
  install -m 755 "$HERE/src/init.d" "$d/etc/init.d/prechange-demo"
  printf '# Port the prechange-demo service listens on.\nPRECHANGE_DEMO_PORT=8080\n' > "$d/etc/default/prechange-demo"
  printf '/etc/init.d/prechange-demo\n/etc/default/prechange-demo\n' > "$d/DEBIAN/conffiles"
  sed -e "s|@HALFWAY@|$halfway|" "$HERE/src/postinst" > "$d/DEBIAN/postinst"
  cp "$HERE/src/prerm" "$HERE/src/postrm" "$d/DEBIAN/"
  chmod 755 "$d/DEBIAN/postinst" "$d/DEBIAN/prerm" "$d/DEBIAN/postrm"
  cat > "$d/DEBIAN/control" <<CTL
Package: prechange-demo
Version: $version
Architecture: all
Maintainer: prechange.snapshots tests <tests@prechange.invalid>
Depends: python3
Section: misc
Priority: optional
Description: prechange.snapshots e2e demo service ($scenario)
 A tiny HTTP service on port 8080 answering with its version.
CTL
  dpkg-deb --root-owner-group -Zgzip -b "$d" "$WORK/out/debs/prechange-demo_${version}_all.deb" >/dev/null
  mkdir -p "$WORK/out/repo/$scenario"
  cp "$WORK/out/debs/prechange-demo_${version}_all.deb" "$WORK/out/repo/$scenario/"
  python3 "$HERE/aptrepo.py" "$WORK/out/repo/$scenario"
}

build v1 1.0 ok ""
build good 2.0-good ok ""
build broken 2.0-broken broken ""
# A change that fails half way: the new files are on disk, the old service was
# stopped by the old prerm, then the new postinst dies before restarting it.
build halfway 2.0-halfway ok 'echo "prechange-demo: migrating state..." >\&2; echo "prechange-demo: migration failed half way" >\&2; exit 1'

mkdir -p "$CACHE/pkgs"
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
touch "$OUT/.done"
find "$CACHE/pkgs" -mindepth 1 -maxdepth 1 -type d -not -name "$key" -exec rm -rf {} +
echo "$OUT"
