"""Sans-IO: FreeSWITCH's own view of its gateways (the dialer's trunks), from their pings.

A gateway with ``ping`` set (pbx-config/freeswitch/README.md; at least 5 s, FreeSWITCH refuses
less) is sent SIP OPTIONS; a failed ping (408, 503, no answer: ``ping-min``) marks it DOWN, and
FreeSWITCH then refuses to dial it (``-ERR GATEWAY_DOWN``, no channel). Each change is a
``CUSTOM`` event of subclass ``sofia::gateway_state`` (seen on FreeSWITCH 1.10.12)::

    Event-Name: CUSTOM
    Event-Subclass: sofia::gateway_state
    Gateway: carrier-dead-qualified
    State: NOREG                 (registration: NOREG, REGED, FAILED, ...)
    Ping-Status: DOWN            (UP, DOWN)
    Phrase: Service Unavailable
    Status: 503

and the state at a given moment is ``api sofia xmlstatus gateway <name>``: ``<gateway>`` with
``<status>UP|DOWN</status>`` (``Invalid Gateway!`` for an unknown one). A gateway without ping
stays UP: FreeSWITCH dials it blindly, and so does the dialer.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from dialer.pbx.base import TrunkStatus
from dialer.pbx.esl.codec import EslEvent

__all__ = ["GATEWAY_EVENTS", "GATEWAY_STATE", "GatewayView", "parse_xmlstatus"]

GATEWAY_STATE = "sofia::gateway_state"
GATEWAY_EVENTS = ("CUSTOM", GATEWAY_STATE)  # the ESL subscription (CUSTOM then its subclasses)
_STATUSES = frozenset({"UP", "DOWN"})


def parse_xmlstatus(body: str) -> tuple[str, str] | None:
    """``sofia xmlstatus gateway <name>``'s output -> (gateway name, UP | DOWN); None when it
    is not one gateway's status (unknown gateway, unexpected output)."""
    try:
        root = ET.fromstring(body.strip())
    except ET.ParseError:
        return None
    name, status = root.findtext("name"), root.findtext("status")
    if root.tag != "gateway" or not name or status not in _STATUSES:
        return None
    return name, status


class GatewayView:
    """Each gateway's ping status (UP / DOWN), fed by ``sofia::gateway_state`` events and
    ``xmlstatus`` read-outs; :meth:`status` says what the switch thinks of a trunk."""

    def __init__(self) -> None:
        self._gateways: dict[str, str] = {}

    def feed(self, event: EslEvent) -> bool:
        """A ``sofia::gateway_state`` event; True when it changed its gateway's status."""
        if event.subclass != GATEWAY_STATE:
            return False
        name, status = event.get("Gateway"), event.get("Ping-Status")
        if not name or status not in _STATUSES:
            return False
        return self._set(name, status)

    def load(self, body: str) -> bool:
        """One ``xmlstatus`` output (a lost event's state); True when it changed something."""
        parsed = parse_xmlstatus(body)
        return parsed is not None and self._set(*parsed)

    def _set(self, name: str, status: str) -> bool:
        changed = self._gateways.get(name) != status
        self._gateways[name] = status
        return changed

    def status(self, trunk: str) -> TrunkStatus | None:
        status = self._gateways.get(trunk)
        if status is None:
            return None
        return TrunkStatus(trunk, status == "UP", f"switch: gateway {status}")
