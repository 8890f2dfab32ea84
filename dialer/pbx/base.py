"""The one interface every PBX adapter implements (Asterisk AMI, FreeSWITCH ESL).

An adapter turns the PBX's own event soup into three PBX-neutral facts per call, delivered in
order per call whatever order the PBX sent them in:

- :class:`CallAnswered` at most once,
- :class:`CallEnded` exactly once per originated call (the attempt's raw outcome),
- :class:`PbxState` whenever the connection to the PBX goes up or down.

An adapter follows only the calls it originated itself (or adopted with :meth:`PbxAdapter.adopt`
during reconciliation); other engine processes' calls on the same PBX are ignored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dialer.domain.calls import AmdStatus, DialplanResult, RawOutcome
from dialer.errors import DialerError


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

    def outcome(self) -> RawOutcome:
        return RawOutcome(
            answered=self.answered_at is not None,
            q850_cause=self.q850_cause,
            sip_code=self.sip_code,
            amd_status=self.amd_status,
            amd_cause=self.amd_cause,
            dialplan_result=self.dialplan_result,
            callback_at=self.callback_at,
            originate_failed=self.originate_failed,
            originate_reason=self.originate_reason,
        )


@dataclass(frozen=True, slots=True)
class CallAnswered:
    call_id: str
    at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    raw: RawOutcome
    ended_at: float  # epoch seconds
    answered_at: float | None = None
    started_at: float | None = None


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


PbxEvent = CallAnswered | CallEnded | PbxState


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

    def events(self) -> AsyncIterator[PbxEvent]:
        """The adapter's event stream (one consumer)."""
        ...

    def event_batches(self) -> AsyncIterator[list[PbxEvent]]:
        """The same stream a list at a time (one consumer, instead of :meth:`events`)."""
        ...

    @property
    def connected(self) -> bool: ...
