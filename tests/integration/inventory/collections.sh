#!/usr/bin/env bash
# The three inventory plugins the inventory tests run for real: community.libvirt (libvirt),
# community.vmware (vmware_vm_inventory) and community.proxmox (proxmox), at pinned versions.
#
# These machines reach PyPI but not Ansible Galaxy, so the collections are taken from the pinned
# `ansible` package on PyPI (which bundles them), downloaded once without installing it, and only
# those collections are unpacked into a cached collections path:
#
#   bash tests/integration/inventory/collections.sh      prints the collections path (idempotent)
#
# Versions: ansible 12.3.0 bundles community.libvirt 2.0.0, community.vmware 5.10.0 and
# community.proxmox 1.4.0 (checked against each MANIFEST.json below).
set -euo pipefail
ANSIBLE_PACKAGE=ansible==12.3.0
WANT="libvirt=2.0.0 vmware=5.10.0 proxmox=1.4.0"
cache=${PRECHANGE_CACHE:-$HOME/.cache/prechange-snapshots}
dest="$cache/inventory-collections-${ANSIBLE_PACKAGE#ansible==}"
python=${PYTHON:-python3}
if [ -f "$dest/.complete" ]; then
  echo "$dest"
  exit 0
fi
mkdir -p "$cache/wheels"
version=${ANSIBLE_PACKAGE#ansible==}
wheel=$(find "$cache/wheels" -maxdepth 1 -name "ansible-$version-*.whl" -print -quit)
if [ -z "$wheel" ]; then
  "$python" -m pip download -q --no-deps --only-binary :all: -d "$cache/wheels" "$ANSIBLE_PACKAGE" >&2
  wheel=$(find "$cache/wheels" -maxdepth 1 -name "ansible-$version-*.whl" -print -quit)
fi
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
# shellcheck disable=SC2086  # WANT is a list of name=version words
"$python" - "$wheel" "$dest.tmp" $WANT <<'PY' >&2
import json, sys, zipfile
wheel, dest, wanted = sys.argv[1], sys.argv[2], dict(w.split("=") for w in sys.argv[3:])
with zipfile.ZipFile(wheel) as archive:
    names = [n for n in archive.namelist()
             if any(n.startswith("ansible_collections/community/%s/" % c) for c in wanted)]
    archive.extractall(dest, names)
for name, version in wanted.items():
    with open("%s/ansible_collections/community/%s/MANIFEST.json" % (dest, name)) as handle:
        found = json.load(handle)["collection_info"]["version"]
    if found != version:
        sys.exit("community.%s is %s in %s, the tests pin %s" % (name, found, wheel, version))
PY
touch "$dest.tmp/.complete"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "$dest"
