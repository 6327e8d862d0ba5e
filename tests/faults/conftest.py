# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the transport fault tests: the simulators, and the collection importable from the checkout."""

from __future__ import annotations

import os
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS)
ROOT = os.path.join(REPO, "build", "collections")
LINK = os.path.join(ROOT, "ansible_collections", "prechange", "snapshots")
if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(REPO, LINK)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
for backend in ("fakepve", "vcsim"):
    path = os.path.join(TESTS, "backends", backend)
    if path not in sys.path:
        sys.path.insert(0, path)

from pve import pve, pve_cluster  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
from vcsim import vcsim  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
