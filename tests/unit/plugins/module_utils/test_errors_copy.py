# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An endpoint's error is copied for every host of the endpoint; each copy binds its own VM."""

from __future__ import annotations

import copy

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import ConnectionLost, SnapshotTimeout


def test_every_error_kind_copies_and_each_copy_binds_its_own_vm():
    for error in (ConnectionLost("127.0.0.1", "refused", provider="vmware"),
                  SnapshotTimeout("timed out", last_state="running", provider="vmware")):
        first, second = copy.copy(error).bind(vm="web01"), copy.copy(error).bind(vm="web02")
        assert "VM 'web01'" in first.message and "VM 'web02'" in second.message
        first.details["extra"] = 1
        assert "extra" not in second.details and type(second) is type(error)
