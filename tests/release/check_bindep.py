# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What meta/ee-bindep.txt installs on each kind of base image, evaluated with bindep's own rules.

bindep can only inspect the machine it runs on, so the platforms are given as the profiles bindep
itself derives from /etc/os-release (``platform:rhel``, ``platform:rhel-9``, ...). The table is what an
execution environment needs: the libvirt client library at runtime; in the builder stage a compiler,
pkg-config, the libvirt headers and the headers of the EE's own Python (3.11 on EL 9, where the
system python3 is 3.9).

    python tests/release/check_bindep.py meta/ee-bindep.txt
"""

import sys

from bindep.depends import Depends

PLATFORMS = {
    "debian-12": ["dpkg", "debian", "debian-12", "debian-bookworm"],
    "ubuntu-24.04": ["dpkg", "ubuntu", "ubuntu-24", "ubuntu-24.04", "ubuntu-noble"],
    "ubi-9 / rhel-9": ["rpm", "redhat", "rhel", "rhel-9", "rhel-9.6"],
    "centos-stream-9": ["rpm", "redhat", "centos", "centos-9"],
    "rocky-9": ["rpm", "redhat", "rocky", "rocky-9", "rocky-9.6"],
    "fedora-42": ["rpm", "redhat", "fedora", "fedora-42"],
    "rhel-10": ["rpm", "redhat", "rhel", "rhel-10", "rhel-10.0"],
}
DPKG_RUN = {"libvirt0"}
DPKG_COMPILE = DPKG_RUN | {"gcc", "pkg-config", "libvirt-dev", "python3-dev"}
RPM_RUN = {"libvirt-libs"}
RPM_BUILD = RPM_RUN | {"gcc", "pkgconf-pkg-config", "libvirt-devel"}
EXPECTED = {
    "debian-12": (DPKG_RUN, DPKG_COMPILE),
    "ubuntu-24.04": (DPKG_RUN, DPKG_COMPILE),
    "ubi-9 / rhel-9": (RPM_RUN, RPM_BUILD | {"python3.11-devel"}),
    "centos-stream-9": (RPM_RUN, RPM_BUILD | {"python3.11-devel"}),
    "rocky-9": (RPM_RUN, RPM_BUILD | {"python3.11-devel"}),
    "fedora-42": (RPM_RUN, RPM_BUILD | {"python3-devel"}),
    "rhel-10": (RPM_RUN, RPM_BUILD | {"python3-devel"}),
}


def main(path):
    with open(path) as handle:
        depends = Depends(handle.read())
    problems = []
    for name, atoms in PLATFORMS.items():
        profiles = ["platform:%s" % atom for atom in atoms]
        for label, extra, want in (("runtime", [], EXPECTED[name][0]), ("compile", ["compile"], EXPECTED[name][1])):
            got = {rule[0] for rule in depends.active_rules(profiles + extra)}
            status = "ok" if got == want else "WRONG"
            print("%-6s %-16s %-8s %s" % (status, name, label, " ".join(sorted(got))))
            if got != want:
                problems.append("%s %s: missing %s, unexpected %s" % (
                    name, label, sorted(want - got) or "-", sorted(got - want) or "-"))
    for problem in problems:
        print("bindep: " + problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "meta/ee-bindep.txt"))
