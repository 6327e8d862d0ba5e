# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make the collection importable as ansible_collections.prechange.snapshots from a checkout."""

from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.path.join(REPO, "build", "collections")
LINK = os.path.join(ROOT, "ansible_collections", "prechange", "snapshots")

if not os.path.exists(LINK) and not REPO.endswith(os.path.join("ansible_collections", "prechange", "snapshots")):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(REPO, LINK)
if REPO.endswith(os.path.join("ansible_collections", "prechange", "snapshots")):
    ROOT = os.path.dirname(os.path.dirname(os.path.dirname(REPO)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
