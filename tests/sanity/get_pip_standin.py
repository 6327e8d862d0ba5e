# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for ansible-test's get-pip bootstrap script.

ansible-test sanity --venv downloads get-pip from a host these machines cannot reach; it
uses ~/.ansible/test/cache/get_pip_<version>.py instead when that exists. This stand-in
does the same job from the standard library: ensurepip, then pip installs the pip version
ansible-test asked for. ansible-test runs it with PIP_CONFIG_FILE=/dev/null and a stripped
environment, so the system's CA bundle must be passed explicitly with --cert.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys


def ca_file():
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile,
                      "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def main():
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    cert = ca_file()
    if cert:
        cmd += ["--cert", cert]
    subprocess.check_call(cmd + args)


if __name__ == "__main__":
    main()
