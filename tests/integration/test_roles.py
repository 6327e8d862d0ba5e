# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role behaviour that needs no hypervisor (the molecule scenarios cover the whole workflow)."""

from __future__ import annotations

from conftest import run_target  # pylint: disable=import-error


def test_revert_or_prune_keeps_the_snapshot_without_a_verdict():
    run_target("revert_or_prune_no_verdict")
