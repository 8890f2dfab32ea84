"""Every campaign command in one place: the HTTP API and the ``dialer`` CLI only parse and render.

::

    CampaignCommands  create, edit, upload, start (its calling-hours check: CampaignControl),
                      pause, resume, stop, stop-all, delete, stop a list, a list's caller id,
                      recycle, remove contacts, callbacks (CallbackCommands)
    NodeCommands      PBX nodes, trunk groups and the global cap: replace (PUT) or change
                      only the fields given (``dialer node set``)
    DncCommands       do-not-call lists (global, or a campaign's): add, remove, check, import
    TrunkCommands     trunks' circuit breakers: see, reset

A command checks its rules here (the lifecycle table of :mod:`dialer.domain.lifecycle`, the
statuses in which settings and lists may change, the configured contexts and trunks) and
raises the dialer's own errors (:mod:`dialer.errors`); each face renders them its way (the API
as a status and an error code, the CLI as ``dialer: <sentence>``). Neither face writes to
Redis by itself.
"""

from __future__ import annotations

from .campaigns import EDITABLE, CampaignCommands, CampaignDraining, not_editable
from .dnc import DncCommands
from .nodes import NodeCommands
from .trunks import TrunkCommands

__all__ = [
    "EDITABLE",
    "CampaignCommands",
    "CampaignDraining",
    "DncCommands",
    "NodeCommands",
    "TrunkCommands",
    "not_editable",
]
