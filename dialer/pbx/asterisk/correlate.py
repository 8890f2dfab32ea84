"""Sans-IO correlation of Asterisk AMI events into one outcome per call.

Asterisk sends a call's events in an order that varies from call to call (the Hangup of a short
call can overtake its OriginateResponse). This class takes AMI event messages in whatever order
they come and yields, per followed call id, at most one :class:`CallAnswered` and exactly one
:class:`CallEnded`.

It needs only two events per call, which is all manager.conf sends the dialer's user (with the
dialplan's UserEvents): ``OriginateResponse`` and ``Hangup``. Rules (from the raw values
observed on Asterisk 22 / PJSIP, pbx-config/asterisk/README.md):

- The call id is the Originate ``ChannelId``: every event of the call carries it as ``Uniqueid``.
- ``OriginateResponse`` ``Success`` = answered; its ``Channel`` is then the channel's name.
- ``Hangup`` ends the call: ``Cause`` is the Q.850 cause, ``TechCause`` (when present) the SIP
  response code. Its ``ChannelState`` is the channel's state when it hung up: ``6`` (Up) marks
  the call answered when the Hangup overtakes the Success OriginateResponse.
- ``OriginateResponse`` ``Failure`` does not say whether a channel was made (its ``Channel`` is
  the dial string either way): a SIP rejection or a ring timeout had one, and its Hangup, with
  the cause, follows; an unknown endpoint had none and nothing follows. So a Failure waits for
  the Hangup at most ``failure_grace`` seconds (see :meth:`CallCorrelator.expire`); a call with
  no Hangup by then ends as ``originate_failed`` (no channel), unless a ``Newchannel`` was seen.
- ``Newchannel`` and ``Newstate`` (Up) are read when an AMI user receives them (they are not
  needed): a channel exists, its name; answered.
- ``UserEvent`` ``DialerAMD`` (Status, Cause) and ``DialerResult`` (Result, At) come from the
  dialplan (pbx-config/asterisk/extensions.conf).

Cost: :meth:`CallCorrelator.feed` runs for every event the AMI user receives, other engines'
calls included. Its first step is one header look-up and one dict look-up; an event of a call
not followed stops there. The facts of a followed call are kept on a mutable track and become
one frozen :class:`RawOutcome` when the call ends.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from dialer.domain.calls import AmdStatus, DialplanResult, RawOutcome
from dialer.pbx.ami.codec import Message
from dialer.pbx.base import CallAnswered, CallEnded, CallFacts, PbxEvent

# The events the correlator needs; manager.conf's eventfilter lines let only these through.
FOLLOWED_EVENTS = ("OriginateResponse", "Hangup", "UserEvent")
_UP_STATE = "6"


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


@dataclass(slots=True)
class _Track(CallFacts):
    """:class:`CallFacts` plus the Asterisk side's bookkeeping."""

    channel: str | None = None
    originate_failed_at: float | None = None  # Failure OriginateResponse, Hangup awaited


class CallCorrelator:
    """Feed AMI events; get PBX-neutral call events. ``now`` is passed in (epoch seconds)."""

    def __init__(self, failure_grace: float = 5.0) -> None:
        self._calls: dict[str, _Track] = {}
        self._failed: set[str] = set()  # Failure OriginateResponse seen, Hangup awaited
        self._failure_grace = failure_grace

    def follow(self, call_id: str, now: float, *, answered: bool = False) -> None:
        """Follow ``call_id``; ``answered`` for a call adopted while already Up."""
        track = self._calls.setdefault(call_id, _Track(started_at=now))
        if answered and track.answered_at is None:
            track.answered_at = now
            track.channel_seen = True

    def forget(self, call_id: str) -> RawOutcome | None:
        """Stop following ``call_id``; what its events said so far (None: not followed)."""
        track = self._calls.pop(call_id, None)
        self._failed.discard(call_id)
        return track.outcome() if track is not None else None

    def is_followed(self, call_id: str) -> bool:
        return call_id in self._calls

    def channel_name(self, call_id: str) -> str | None:
        track = self._calls.get(call_id)
        return track.channel if track else None

    def __len__(self) -> int:
        return len(self._calls)

    def feed(self, msg: Message, now: float) -> list[PbxEvent]:
        call_id = msg.get("Uniqueid")
        if call_id is None or (track := self._calls.get(call_id)) is None:
            return []  # not an event of a call we follow (most events of a shared PBX)
        name = msg.event
        out: list[PbxEvent] = []
        if name == "Hangup":
            track.channel = msg.get("Channel") or track.channel
            if msg.get("ChannelState") == _UP_STATE:  # it overtook the Success response
                self._answer(call_id, track, now, out)
            track.channel_seen = True
            track.q850_cause = _int(msg.get("Cause"))
            track.sip_code = _int(msg.get("TechCause")) or track.sip_code
            out.append(self._end(call_id, track, now))
        elif name == "OriginateResponse":
            track.originate_reason = _int(msg.get("Reason"))
            if msg.get("Response") == "Success":
                track.channel = msg.get("Channel") or track.channel
                track.channel_seen = True
                self._answer(call_id, track, now, out)
            else:  # the Hangup with the cause follows if a channel was made
                track.originate_failed_at = now
                self._failed.add(call_id)
        elif name == "UserEvent":
            self._user_event(msg, track)
        elif name == "Newchannel":
            track.channel_seen = True
            track.channel = msg.get("Channel") or track.channel
        elif name == "Newstate":
            track.channel_seen = True
            track.channel = msg.get("Channel") or track.channel
            if msg.get("ChannelState") == _UP_STATE:
                self._answer(call_id, track, now, out)
        return out

    def expire(self, now: float) -> list[PbxEvent]:
        """End calls whose Failure OriginateResponse came without a Hangup within the grace:
        without a channel seen, the PBX made none (``originate_failed``)."""
        if not self._failed:
            return []
        due = [
            (cid, t)
            for cid in self._failed
            if (t := self._calls[cid]).originate_failed_at is not None
            and now - t.originate_failed_at >= self._failure_grace
        ]
        for _, track in due:
            track.originate_failed = not track.channel_seen
        return [self._end(cid, t, now) for cid, t in due]

    def _answer(self, call_id: str, track: _Track, now: float, out: list[PbxEvent]) -> None:
        if track.answered_at is None:
            track.answered_at = now
            out.append(CallAnswered(call_id=call_id, at=now))

    def _user_event(self, msg: Message, track: _Track) -> None:
        kind = msg.get("UserEvent")
        if kind == "DialerAMD":
            status = msg.get("Status", "") or ""
            with contextlib.suppress(ValueError):
                track.amd_status = AmdStatus(status.upper())
                track.amd_cause = msg.get("Cause")
        elif kind == "DialerResult":
            result = (msg.get("Result", "") or "").lower()
            with contextlib.suppress(ValueError):
                track.dialplan_result = DialplanResult(result)
                at = _int(msg.get("At"))
                track.callback_at = float(at) if at is not None else None

    def _end(self, call_id: str, track: _Track, now: float) -> CallEnded:
        del self._calls[call_id]
        self._failed.discard(call_id)
        return CallEnded(
            call_id=call_id,
            raw=track.outcome(),
            ended_at=now,
            answered_at=track.answered_at,
            started_at=track.started_at,
        )
