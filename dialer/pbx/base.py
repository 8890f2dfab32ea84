"""The one interface every PBX adapter implements (Asterisk AMI, FreeSWITCH ESL).

An adapter turns the PBX's own event soup into three PBX-neutral facts per call, delivered in
order per call whatever order the PBX sent them in:

- :class:`CallAnswered` at most once,
- :class:`CallEnded` exactly once per originated call (the attempt's raw outcome),
- :class:`PbxState` whenever the connection to the PBX goes up or down,
- :class:`ChannelCreated` at most once, when the switch stamps its channel's creation (it feeds
  the CPS window's margin, dialer.engine.pacing; calls without a stamp have none).

An adapter follows only the calls it originated itself (or adopted with :meth:`PbxAdapter.adopt`
during reconciliation). It also remembers, for a while, how the dialer calls it saw end but did
not follow ended (other engine processes' calls on the same PBX: :meth:`PbxAdapter.seen_end`),
so that whichever engine settles a call that ended while no engine owned it (its owner died,
its lease lapsed, Redis was away) settles it with what the switch reported, not a guess.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from dialer.domain.calls import AmdStatus, DialplanResult, GoalResult, RawOutcome, VoicemailDrop
from dialer.errors import DialerError

#: Every call id the dialer originates starts with this (``dialer.engine.runner.new_call_id``):
#: how an adapter tells the dialer's calls on a shared PBX from the others.
CALL_ID_PREFIX = "dlr-"


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    call_id: str  # pre-assigned, unique; becomes the channel's unique id
    trunk: str  # PBX endpoint / gateway name
    number: str  # what is dialed on the trunk
    context: str  # where the answered call goes
    exten: str = "s"
    ring_timeout: float = 30.0  # seconds
    caller_id: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)  # already sanitised


@dataclass(slots=True)
class CallFacts:
    """What a correlator knows of one followed call so far, updated in place per event; the
    :class:`RawOutcome` is built once, when the call ends. Each PBX's correlator adds its own
    bookkeeping fields in a subclass."""

    started_at: float
    channel_seen: bool = False
    answered_at: float | None = None
    originate_failed: bool = False  # the PBX refused or failed the originate, no channel
    originate_reason: int | None = None
    q850_cause: int | None = None
    sip_code: int | None = None
    amd_status: AmdStatus | None = None
    amd_cause: str | None = None
    dialplan_result: DialplanResult | None = None
    callback_at: float | None = None
    goal: GoalResult | None = None
    voicemail_drop: VoicemailDrop | None = None

    def outcome(self) -> RawOutcome:
        return RawOutcome(
            answered=self.answered_at is not None,
            q850_cause=self.q850_cause,
            sip_code=self.sip_code,
            amd_status=self.amd_status,
            amd_cause=self.amd_cause,
            dialplan_result=self.dialplan_result,
            callback_at=self.callback_at,
            goal=self.goal,
            voicemail_drop=self.voicemail_drop,
            originate_failed=self.originate_failed,
            originate_reason=self.originate_reason,
        )


@dataclass(frozen=True, slots=True)
class ChannelCreated:
    """The switch created the call's channel at ``at``: epoch seconds by the *switch's* clock
    (Asterisk's Newchannel ``Timestamp``, FreeSWITCH's CHANNEL_CREATE
    ``Event-Date-Timestamp``), not the engine's."""

    call_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallAnswered:
    call_id: str
    at: float  # epoch seconds


class EndSource(StrEnum):
    """Where a call's end came from (the record's ``end_source``), in the order the engine
    tries them for a call no engine followed to its end."""

    EVENTS = "events"  # the PBX's events, followed by the engine that owned the call
    SEEN = "seen"  # the PBX's events, seen by an engine that did not own the call then
    SWITCH = "switch"  # the switch's own record (Asterisk: the hangup handler's AstDB entry)
    LOST = "lost"  # the switch never reported it: cut by a PBX failure
    UNKNOWN = "unknown"  # nobody saw it end and the switch kept no record


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    raw: RawOutcome
    ended_at: float  # epoch seconds
    answered_at: float | None = None
    started_at: float | None = None
    source: EndSource = EndSource.EVENTS


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """A protocol client's connection went up or down (AMI and ESL clients yield these in order
    with the PBX's events)."""

    connected: bool
    reason: str
    at: float  # the client's clock (time.monotonic by default)


@dataclass(frozen=True, slots=True)
class PbxState:
    connected: bool
    reason: str
    at: float  # epoch seconds


PbxEvent = CallAnswered | CallEnded | PbxState | ChannelCreated


@dataclass(frozen=True, slots=True)
class TrunkStatus:
    """What the switch itself says of a trunk (Asterisk: its PJSIP contacts' qualify;
    FreeSWITCH: its gateway's pings): reachable or not, and the reason shown on its breaker."""

    trunk: str
    up: bool
    reason: str  # e.g. "switch: contact Unreachable"


@runtime_checkable
class TrunkWatch(Protocol):
    """An adapter that knows the switch's own view of its trunks (dialer.engine.switchview)."""

    def trunk_status(self, trunk: str) -> TrunkStatus | None:
        """The switch's latest word on ``trunk``; None when it has none (never qualified, not
        a trunk of this switch)."""
        ...

    async def refresh_trunks(self, trunks: Iterable[str]) -> None:
        """Ask the switch for these trunks' state now (at connect and reconnect: what changed
        while disconnected sent no event). Raises PbxUnavailable / ActionFailed."""
        ...

    async def wait_trunks_changed(self) -> None:
        """Until a switch event changed some trunk's status (then cleared for the next)."""
        ...


class PbxAdapter(Protocol):
    """What the engine needs from a PBX."""

    name: str

    async def originate(self, request: OriginateRequest) -> None:
        """Ask the PBX to place the call. Returns once the PBX has accepted the request.

        Raises PbxUnavailable (not connected, or the connection dropped before the PBX answered:
        the request is never re-sent) or ActionFailed (the PBX refused it: no call was placed).
        """
        ...

    async def originate_many(
        self, requests: Sequence[OriginateRequest]
    ) -> list[DialerError | None]:
        """:meth:`originate` for each request, together (a claim's batch); per request None
        (the PBX took it) or the error :meth:`originate` would have raised."""
        ...

    async def hangup(self, call_id: str) -> None:
        """End a call now (no-op if it already ended)."""
        ...

    async def live_calls(self) -> dict[str, bool]:
        """Every channel the PBX has right now: unique id -> answered (Up)."""
        ...

    def adopt(self, call_id: str, *, answered: bool) -> None:
        """Follow a call originated by another (possibly crashed) engine process."""
        ...

    def forget(self, call_id: str) -> RawOutcome | None:
        """Stop following a call (its result is settled without the PBX's end of it): what
        the PBX reported of it so far (an answer, the originate's reason, AMD, a dialplan
        result), or None if the call was not followed."""
        ...

    def seen_end(self, call_id: str) -> CallEnded | None:
        """How a dialer call this adapter did not follow ended, if it saw that end lately
        (a bounded memory: :class:`dialer.pbx.ends.EndMemory`); ``source`` is
        :attr:`EndSource.SEEN`, or :attr:`EndSource.LOST` for a call that was live when the
        connection to the PBX dropped (trust it only for a call the PBX no longer lists)."""
        ...

    async def call_record(self, call_id: str, *, started_at: float) -> RawOutcome | None:
        """The switch's own record of how the call ended (``started_at``: about when it was
        placed, epoch seconds), or None when it kept none. Raises PbxUnavailable when the PBX
        cannot be asked (the caller tries again later rather than guess)."""
        ...

    def events(self) -> AsyncIterator[PbxEvent]:
        """The adapter's event stream (one consumer)."""
        ...

    def event_batches(self) -> AsyncIterator[list[PbxEvent]]:
        """The same stream a list at a time (one consumer, instead of :meth:`events`)."""
        ...

    @property
    def connected(self) -> bool: ...


def stamp_or_none(value: str | None, scale: float = 1.0) -> float | None:
    """A header's time stamp in epoch seconds (``scale``: the header's unit, 1e-6 for
    microseconds); None when absent, not a number or not finite."""
    if not value:
        return None
    try:
        at = float(value) * scale
    except ValueError:
        return None
    return at if math.isfinite(at) else None


def int_or_none(value: str | None) -> int | None:
    """A header's integer (``" 486"`` -> 486); None when absent or not a number."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None
