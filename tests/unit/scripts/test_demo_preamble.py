# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The main job's preamble prints no traceback.

``ansible-playbook --version | head -1`` closed the pipe while Python still wrote, and Ansible printed a
40-line ``[Errno 32] Broken pipe`` traceback. The demo and the test scripts read such output to its end.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# A Python CLI piped into a reader that stops early (head, grep -m, sed q).
EARLY_CLOSE = re.compile(r"(^|\$\(|[;&|]\s*)\s*(\S*/)?(ansible[-\w]*|python3?|pip)\s[^|\n]*\|\s*(head\b|grep -m|sed -n '?\d+q)")


def test_no_script_closes_the_pipe_of_a_python_cli_early():
    scripts = glob.glob(os.path.join(REPO, "demo", "*.sh")) + glob.glob(os.path.join(REPO, "tests", "**", "*.sh"),
                                                                        recursive=True)
    offenders = []
    for path in scripts:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if EARLY_CLOSE.search(line):
                    offenders.append("%s:%d: %s" % (os.path.relpath(path, REPO), number, line.strip()))
    assert scripts and not offenders, "\n".join(offenders)


def test_the_demo_version_line_runs_without_a_traceback():
    with open(os.path.join(REPO, "demo", "run.sh"), encoding="utf-8") as handle:
        line = [raw for raw in handle if raw.startswith('echo "ansible-playbook: ')][0]
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run(["bash", "-c", "PYTHON=x; " + line], capture_output=True, text=True, env=env, check=True)
    assert "core 2." in done.stdout
    assert "Traceback" not in done.stderr and "Broken pipe" not in done.stderr, done.stderr
