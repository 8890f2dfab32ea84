"""Sans-IO: Asterisk's own view of its PJSIP trunks, from qualify (SIP OPTIONS) results.

An AOR with ``qualify_frequency`` set is sent OPTIONS by Asterisk; each contact's status changes
are the AMI ``ContactStatus`` event (class ``system``)::

    Event: ContactStatus
    URI: sip:127.0.0.1:5999
    ContactStatus: Unreachable          (Reachable, Unreachable, Unknown, Removed, Created, ...)
    AOR: carrier-dead-qualified
    EndpointName: carrier-dead-qualified

and the state at a given moment (at connect: what changed while disconnected sent no event) is
read per trunk with ``Getvar`` of the PJSIP dialplan functions (``PJSIP_ENDPOINT(<trunk>,aors)``,
``PJSIP_AOR(<aor>,contact)``, ``PJSIP_CONTACT(<id>,uri|status)``): the ``PJSIPShowContacts``
listing would need the broad ``system`` write privilege, Getvar only ``call``. The trunk name the
dialer uses is the PJSIP endpoint (``PJSIP/<number>@<endpoint>``): a contact belongs to its
event's ``EndpointName``, or to its AOR when no endpoint is named (pbx-config names both
alike).

A trunk is down when it has contacts and every one is Unreachable (Asterisk refuses to dial
it then: OriginateResponse Failure, Reason 0, no channel), or when its last contact was
Removed; up when one of them is Reachable (or not qualified: Asterisk dials it blindly); the
view has no opinion while every contact is Unknown (not qualified yet) or the trunk was never
heard of.
"""

from __future__ import annotations

from collections.abc import Mapping

from dialer.pbx.ami.codec import Message
from dialer.pbx.base import TrunkStatus

__all__ = ["CONTACT_EVENT", "ContactView"]

CONTACT_EVENT = "ContactStatus"
_UP = frozenset({"Reachable", "NonQualified", "Unqualified"})
_DOWN = "Unreachable"
_REMOVED = "Removed"
_NO_STATUS = frozenset({"Created", "Updated"})  # the contact changed, not its reachability


class ContactView:
    """Contacts' statuses per trunk, fed by ``ContactStatus`` events and read-outs of the
    state (:meth:`load`); :meth:`status` says what the switch thinks of a trunk."""

    def __init__(self) -> None:
        self._trunks: dict[str, dict[str, str]] = {}  # trunk -> contact URI -> status
        self._removed: set[str] = set()  # trunks whose last contact was removed

    def feed(self, msg: Message) -> bool:
        """A ``ContactStatus`` event; True when it changed its trunk's :meth:`status`."""
        if msg.event != CONTACT_EVENT:
            return False
        trunk = msg.get("EndpointName") or msg.get("AOR")
        uri, status = msg.get("URI"), msg.get("ContactStatus")
        if not trunk or not uri or not status:
            return False
        before = self.status(trunk)
        contacts = self._trunks.setdefault(trunk, {})
        if status == _REMOVED:
            contacts.pop(uri, None)
            if not contacts:
                self._removed.add(trunk)
        elif status in _NO_STATUS:
            contacts.setdefault(uri, "Unknown")
            self._removed.discard(trunk)
        else:
            contacts[uri] = status
            self._removed.discard(trunk)
        return self.status(trunk) != before

    def load(self, trunk: str, contacts: Mapping[str, str]) -> bool:
        """The trunk's contacts now (URI -> status, read from the switch), replacing what the
        events said (those of a disconnected spell were lost); True when its
        :meth:`status` changed."""
        before = self.status(trunk)
        self._trunks[trunk] = dict(contacts)
        self._removed.discard(trunk)
        return self.status(trunk) != before

    def status(self, trunk: str) -> TrunkStatus | None:
        contacts = self._trunks.get(trunk)
        if not contacts:
            if trunk in self._removed:
                return TrunkStatus(trunk, False, "switch: contact Removed")
            return None
        statuses = set(contacts.values())
        if statuses & _UP:
            return TrunkStatus(trunk, True, "switch: contact Reachable")
        if statuses == {_DOWN}:
            return TrunkStatus(trunk, False, "switch: contact Unreachable")
        return None

    def trunks(self) -> list[str]:
        return sorted(self._trunks.keys() | self._removed)
