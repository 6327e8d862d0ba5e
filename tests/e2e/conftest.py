# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the real-guest e2e tests (the maintenance scenarios and the mechanics proof).
Not in pytest.ini's testpaths: run them explicitly, as root: `python -m pytest tests/e2e`.

PRECHANGE_E2E_REUSE=1 reuses a guest that `harness.py up` left running;
PRECHANGE_E2E_KEEP=1 leaves it running after the session."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness  # noqa: E402


@pytest.fixture(scope="session")
def e2e_guest():
    if os.geteuid() != 0:
        pytest.skip("the e2e guest needs root (debootstrap, libvirtd)")
    h = Harness()
    h.up(fresh=os.environ.get("PRECHANGE_E2E_REUSE") != "1")
    yield h
    print("\ne2e timings (s): %s" % json.dumps(h.timings, sort_keys=True))
    if os.environ.get("PRECHANGE_E2E_KEEP") != "1":
        h.down()
