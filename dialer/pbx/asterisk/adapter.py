"""The Asterisk adapter: originate through AMI, follow calls, report PBX-neutral events."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dialer.domain.calls import RawOutcome
from dialer.errors import ActionFailed, DialerError, PbxUnavailable, UnsafeValue, ValidationError
from dialer.pbx.adapter import SwitchAdapter
from dialer.pbx.ami.client import AmiClient, AmiSettings, Fields
from dialer.pbx.ami.codec import Message
from dialer.pbx.asterisk.contacts import ContactView
from dialer.pbx.asterisk.correlate import CallCorrelator
from dialer.pbx.asterisk.record import HANDLER, parse_record, record_families, valid_call_id
from dialer.pbx.base import OriginateRequest
from dialer.pbx.ends import DEFAULT_CAPACITY, EndMemory

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_LISTING_TTL = 0.5  # s: how long a CoreShowChannels listing serves hang-ups


@dataclass(frozen=True, slots=True)
class AsteriskSettings:
    ami: AmiSettings
    dial_template: str = "PJSIP/{number}@{trunk}"  # e.g. "PJSIP/{trunk}/sip:{number}@10.0.0.1"
    failure_grace: float = 5.0  # wait this long for the Hangup that follows a failed originate
    call_id_variable: str = "DIALER_CALL_ID"
    extra_filters: tuple[str, ...] = field(default_factory=tuple)
    # the hangup handler pushed on every call: it records the call's end in AstDB (the switch's
    # own record, read back by call_record); "" pushes none (a dialplan without it)
    record_handler: str = HANDLER
    remembered_ends: int = DEFAULT_CAPACITY  # ends of calls not followed kept in memory

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> AsteriskSettings:
        """``ami://user:secret@host:port``; asks for the call, user and system event classes
        (system: ContactStatus, the switch's view of its trunks).

        Event filters belong in manager.conf (``eventfilter`` lines, see pbx-config/asterisk:
        the correlator's ``FOLLOWED_EVENTS``): sending Filter actions would need the broad
        ``system`` write privilege. Add ``?filter=...`` to the URL to send
        them anyway (the user then needs ``system``).
        """
        ami = replace(AmiSettings.from_url(url), events="call,user,system")
        return cls(ami=ami, **kwargs)


def check_number(number: str) -> str:
    if not _NUMBER.match(number):
        raise ValidationError(f"not a dialable number: {number[:40]!r}")
    return number


class AsteriskAdapter(SwitchAdapter[Message]):
    """:class:`dialer.pbx.base.PbxAdapter` for Asterisk over AMI."""

    name = "asterisk"

    def __init__(
        self, settings: AsteriskSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._settings = settings
        self._ami = AmiClient(settings.ami)
        # the switch's own view of its trunks (PJSIP qualify): dialer.engine.switchview
        self.contacts = ContactView()
        self._correlator: CallCorrelator = CallCorrelator(
            failure_grace=settings.failure_grace,
            memory=EndMemory(capacity=settings.remembered_ends),
            other=self._trunk_item,
        )
        super().__init__(
            self._ami,
            self._correlator,
            failure_grace=settings.failure_grace,
            clock=clock,
            trunks=self.contacts,
        )
        self._listing: tuple[float, dict[str, str]] | None = None  # (monotonic time, channels)

    @property
    def ami(self) -> AmiClient:
        return self._ami

    async def refresh_trunks(self, trunks: Iterable[str]) -> None:
        """Each trunk's contacts and their qualify status now, read with ``Getvar`` of the
        PJSIP dialplan functions (dialer.pbx.asterisk.contacts: no ``system`` privilege)."""
        changed = False
        for trunk in trunks:
            if not _NAME.match(trunk):
                continue
            contacts: dict[str, str] = {}
            for aor in await self._getvar_list(f"PJSIP_ENDPOINT({trunk},aors)"):
                for contact in await self._getvar_list(f"PJSIP_AOR({aor},contact)"):
                    uri = await self._getvar(f"PJSIP_CONTACT({contact},uri)")
                    status = await self._getvar(f"PJSIP_CONTACT({contact},status)")
                    if uri and status:
                        contacts[uri] = status
            if contacts:
                changed |= self.contacts.load(trunk, contacts)
        self._trunks_read(changed)

    async def _getvar(self, function: str) -> str:
        """A dialplan function's value ("" when Asterisk has none or the name is not plain)."""
        try:
            reply = await self._ami.send_action("Getvar", [("Variable", function)])
        except UnsafeValue:
            return ""  # a name from the switch that is not plain: not asked
        return reply.get("Value") or ""

    async def _getvar_list(self, function: str) -> list[str]:
        return [v for v in (await self._getvar(function)).split(",") if v]

    async def call_record(self, call_id: str, *, started_at: float) -> RawOutcome | None:
        """The hangup handler's AstDB entry of the call (``DBGet``, one per day it may be
        filed under: record.record_families), parsed; None when there is none."""
        if not self._settings.record_handler or not valid_call_id(call_id):
            return None
        for family in record_families(started_at, self._clock()):
            try:
                items = await self._ami.send_action_list(
                    "DBGet", {"Family": family, "Key": call_id}
                )
            except ActionFailed as exc:  # "Database entry not found"
                if "not found" not in str(exc):
                    log.warning("DBGet %s/%s refused: %s", family, call_id, exc)
                continue
            for item in items:
                value = item.get("Val")
                if value is not None and (record := parse_record(value)) is not None:
                    return record.outcome()
        return None

    def _originate_action(
        self, request: OriginateRequest
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        number = check_number(request.number)
        if not _NAME.match(request.trunk):
            raise ValidationError(f"not a trunk name: {request.trunk[:40]!r}")
        fields: dict[str, str] = {
            "Channel": self._settings.dial_template.format(number=number, trunk=request.trunk),
            "Context": request.context,
            "Exten": request.exten,
            "Priority": "1",
            "Async": "true",
            "Timeout": str(int(request.ring_timeout * 1000)),
            "ChannelId": request.call_id,
        }
        if request.caller_id:
            fields["CallerID"] = request.caller_id
        variables = {**request.variables, self._settings.call_id_variable: request.call_id}
        if self._settings.record_handler:  # runs at the hang-up, answered or not
            variables["CHANNEL(hangup_handler_push)"] = self._settings.record_handler
        return "Originate", fields, variables

    async def originate(self, request: OriginateRequest) -> None:
        (error,) = await self.originate_many([request])
        if error is not None:
            raise error

    async def originate_many(
        self, requests: Sequence[OriginateRequest]
    ) -> list[DialerError | None]:
        """Originate each request (one AMI write for all); per request None or its error."""
        errors: list[DialerError | None] = [None] * len(requests)
        actions: list[tuple[str, Fields, Mapping[str, str] | None]] = []
        sent: list[int] = []
        now = self._clock()
        for i, request in enumerate(requests):
            try:
                actions.append(self._originate_action(request))
            except ValidationError as exc:
                errors[i] = exc
                continue
            sent.append(i)
            # Follow before sending: events may arrive before the action's response.
            self._correlator.follow(request.call_id, now)
        replies = await self._ami.send_actions(actions)
        for i, reply in zip(sent, replies, strict=True):
            if isinstance(reply, DialerError):
                errors[i] = reply
                if not isinstance(reply, PbxUnavailable):
                    # refused or unsendable: no call. (PbxUnavailable: the PBX may or may not
                    # have it: keep following it; reconciliation with the channel list settles
                    # it. Never re-send.)
                    self._correlator.forget(requests[i].call_id)
        return errors

    async def hangup(self, call_id: str) -> None:
        channel = self._correlator.channel_name(call_id)  # known once answered
        if channel is None:  # still ringing: look it up in the channel list
            channel = (await self._listed_channels()).get(call_id)
        if channel is None:
            return
        try:
            await self._ami.send_action("Hangup", {"Channel": channel, "Cause": "16"})
        except PbxUnavailable:
            raise
        except Exception as exc:  # the channel ended meanwhile: "No such channel"
            log.debug("hangup of %s: %s", call_id, exc)

    async def _listed_channels(self) -> dict[str, str]:
        """Unique id -> channel name from ``CoreShowChannels``, listed at most every
        ``_LISTING_TTL`` seconds (hanging up many ringing calls costs one listing, not one
        each); a call too young for the listing is found by the next one."""
        now = time.monotonic()
        if self._listing is None or now - self._listing[0] > _LISTING_TTL:
            items = await self._ami.send_action_list("CoreShowChannels")
            names = {
                uid: ch
                for item in items
                if (uid := item.get("Uniqueid")) and (ch := item.get("Channel"))
            }
            self._listing = (time.monotonic(), names)
        return self._listing[1]

    async def live_calls(self) -> dict[str, bool]:
        items = await self._ami.send_action_list("CoreShowChannels")
        return {
            uid: item.get("ChannelState") == "6" for item in items if (uid := item.get("Uniqueid"))
        }
