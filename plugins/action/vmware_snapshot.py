# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of vmware_snapshot: the host's connection variables (prechange_vmware_*) where the task gives none,
then the module, on the controller without a new process when it can."""

from __future__ import annotations

from ansible_collections.prechange.snapshots.plugins.modules import vmware_snapshot
from ansible_collections.prechange.snapshots.plugins.plugin_utils._host_connection import HostConnectionModuleAction


class ActionModule(HostConnectionModuleAction):
    module = vmware_snapshot
    provider = "vmware"
