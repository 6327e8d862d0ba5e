"""Index a directory of .deb files as a flat APT repository ("deb [trusted=yes]
URL ./"): Packages, Packages.gz and a Release with a fresh Date.

Python instead of dpkg-scanpackages/apt-ftparchive so only dpkg-deb is needed.
Origin/Label/Suite/Codename are the same for every scenario on purpose: apt
refuses an update whose Release changed those ("changed its 'Suite' value")."""
import datetime
import gzip
import hashlib
import os
import subprocess
import sys


def _hashes(data):
    return {"MD5Sum": hashlib.md5(data).hexdigest(), "SHA256": hashlib.sha256(data).hexdigest()}


def index(repo_dir):
    stanzas = []
    for name in sorted(os.listdir(repo_dir)):
        if not name.endswith(".deb"):
            continue
        path = os.path.join(repo_dir, name)
        control = subprocess.run(["dpkg-deb", "-f", path], check=True, capture_output=True, text=True).stdout
        with open(path, "rb") as fh:
            data = fh.read()
        h = _hashes(data)
        stanzas.append(
            control.rstrip("\n")
            + "\nFilename: ./%s\nSize: %d\nMD5sum: %s\nSHA256: %s\n" % (name, len(data), h["MD5Sum"], h["SHA256"])
        )
    packages = "\n".join(stanzas).encode()
    files = {"Packages": packages, "Packages.gz": gzip.compress(packages, mtime=0)}
    for fname, data in files.items():
        with open(os.path.join(repo_dir, fname), "wb") as fh:
            fh.write(data)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S UTC")
    lines = [
        "Origin: prechange-e2e",
        "Label: prechange-e2e",
        "Suite: e2e",
        "Codename: e2e",
        "Date: " + now,
        "Architectures: all amd64",
        "Description: prechange.snapshots e2e test packages",
    ]
    for field in ("MD5Sum", "SHA256"):
        lines.append(field + ":")
        for fname, data in files.items():
            lines.append(" %s %d %s" % (_hashes(data)[field], len(data), fname))
    with open(os.path.join(repo_dir, "Release"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    for d in sys.argv[1:]:
        index(d)
