"""Sans-IO correlation of Asterisk AMI events into one outcome per call.

Asterisk sends a call's events in an order that varies from call to call (the Hangup of a short
call can overtake its OriginateResponse). This class takes AMI event messages in whatever order
they come and yields, per followed call id, at most one :class:`CallAnswered` and exactly one
:class:`CallEnded`.

It needs only two events per call for the outcome: ``OriginateResponse`` and ``Hangup``;
manager.conf sends the dialer's user those, the dialplan's UserEvents and the dialer calls'
``Newchannel`` (the pacing's stamp). Rules (from the raw values
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
- ``Newchannel`` (manager.conf lets the dialer's own through: one event per call) says a
  channel exists, and its ``Timestamp`` (``timestampevents``) when, by Asterisk's clock: one
  :class:`ChannelCreated` per followed call, which the engine feeds to the CPS window's margin
  (dialer.engine.pacing). ``Newstate`` (Up) is read when an AMI user receives it (not
  needed): answered.
- ``UserEvent`` ``DialerAMD`` (Status, Cause), ``DialerResult`` (Result, At), ``DialerGoal``
  (Goal: completed|failed) and ``DialerVoicemail`` (Drop: started, then played) come from the
  dialplan (pbx-config/asterisk/extensions.conf). A value outside its enum is ignored.

Calls not followed: the AMI user receives every dialer call's events (ids starting with
:data:`~dialer.pbx.base.CALL_ID_PREFIX`), other engines' calls included. Their facts are kept
the same way (a bounded dict of live ones), and their ends go to an :class:`EndMemory`
(:meth:`CallCorrelator.seen_end`, source ``seen``): should their owner die, the engine that
settles them reads how they ended there instead of guessing. When the AMI connection drops
(:meth:`CallCorrelator.disconnected`), the live ones are remembered as ``lost`` (answered or
not, as far as their events said): if the PBX restarted they were cut, and the engine uses
such an end only for a call the PBX no longer lists.

Cost: :meth:`CallCorrelator.feed` runs for every event the AMI user receives, other engines'
calls included: one header look-up and one or two dict look-ups (events of calls that are not
the dialer's stop there). The facts of a call are kept on a mutable track and become one frozen
:class:`RawOutcome` when the call ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from dialer.domain.calls import AmdStatus, DialplanResult, GoalResult, RawOutcome, VoicemailDrop
from dialer.pbx.ami.codec import Message
from dialer.pbx.base import (
    CALL_ID_PREFIX,
    CallAnswered,
    CallEnded,
    CallFacts,
    ChannelCreated,
    EndSource,
    PbxEvent,
    int_or_none,
    stamp_or_none,
)
from dialer.pbx.ends import EndMemory

# The events the correlator needs; manager.conf's eventfilter lines let only these through.
FOLLOWED_EVENTS = ("OriginateResponse", "Hangup", "UserEvent", "Newchannel")
_UP_STATE = "6"


@dataclass(slots=True)
class _Track(CallFacts):
    """:class:`CallFacts` plus the Asterisk side's bookkeeping."""

    channel: str | None = None
    originate_failed_at: float | None = None  # Failure OriginateResponse, Hangup awaited


class CallCorrelator:
    """Feed AMI events; get PBX-neutral call events. ``now`` is passed in (epoch seconds)."""

    def __init__(
        self,
        failure_grace: float = 5.0,
        memory: EndMemory | None = None,
        other: Callable[[Message], object] | None = None,
    ) -> None:
        # events of no call (ContactStatus: the switch view's) go to ``other``
        self._other = other
        self._calls: dict[str, _Track] = {}
        self._failed: set[str] = set()  # Failure OriginateResponse seen, Hangup awaited
        self._failure_grace = failure_grace
        # dialer calls not followed: live ones (bounded like the memory), and their ends
        self.memory = memory if memory is not None else EndMemory()
        self._others: dict[str, _Track] = {}
        self._others_failed: set[str] = set()
        self._others_cap = max(self.memory.capacity, 1)

    def follow(self, call_id: str, now: float, *, answered: bool = False) -> None:
        """Follow ``call_id``; ``answered`` for a call adopted while already Up. What its
        events said while it was not followed (an answer, AMD, a dialplan result) is kept."""
        track = self._calls.get(call_id)
        if track is None:
            track = self._others.pop(call_id, None) or _Track(started_at=now)
            self._calls[call_id] = track
            if call_id in self._others_failed:
                self._others_failed.discard(call_id)
                self._failed.add(call_id)
        if answered and track.answered_at is None:
            track.answered_at = now
            track.channel_seen = True

    def seen_end(self, call_id: str, now: float) -> CallEnded | None:
        """How a dialer call this correlator did not follow ended, if it saw that lately."""
        return self.memory.get(call_id, now)

    def disconnected(self, now: float) -> None:
        """The AMI connection dropped: the calls not followed that were live are remembered as
        cut (``lost``); a Hangup seen after the reconnect replaces that (the PBX did not
        restart). Followed calls are the engine's to settle (``Engine._pbx_back``)."""
        for call_id, track in self._others.items():
            raw = replace(track.outcome(), lost=True, originate_failed=False)
            self.memory.remember(
                CallEnded(call_id, raw, now, track.answered_at, track.started_at, EndSource.LOST)
            )
        self._others.clear()
        self._others_failed.clear()

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
        if call_id is None:
            if self._other is not None:
                self._other(msg)
            return []
        track = self._calls.get(call_id)
        if track is None:
            if call_id.startswith(CALL_ID_PREFIX):  # another engine's (or a forgotten) call
                self._see(call_id, msg, now)
            return []  # not an event of a call we follow (most events of a shared PBX)
        out: list[PbxEvent] = []
        if self._apply(call_id, track, msg, now, out, self._failed):
            out.append(self._end(call_id, track, now))
        return out

    def _see(self, call_id: str, msg: Message, now: float) -> None:
        others = self._others
        track = others.get(call_id)
        if track is None:
            if msg.event not in FOLLOWED_EVENTS:
                return
            track = others[call_id] = _Track(started_at=now)
            if len(others) > self._others_cap:  # Hangups missed: drop the oldest
                oldest = next(iter(others))
                del others[oldest]
                self._others_failed.discard(oldest)
        if self._apply(call_id, track, msg, now, [], self._others_failed):
            self._remember(call_id, track, now)

    def _remember(self, call_id: str, track: _Track, now: float) -> None:
        del self._others[call_id]
        self._others_failed.discard(call_id)
        self.memory.remember(
            CallEnded(
                call_id, track.outcome(), now, track.answered_at, track.started_at, EndSource.SEEN
            )
        )

    def _apply(
        self,
        call_id: str,
        track: _Track,
        msg: Message,
        now: float,
        out: list[PbxEvent],
        failed: set[str],
    ) -> bool:
        """Update ``track`` with one event; True when the event ends the call."""
        name = msg.event
        if name == "Hangup":
            track.channel = msg.get("Channel") or track.channel
            if msg.get("ChannelState") == _UP_STATE:  # it overtook the Success response
                self._answer(call_id, track, now, out)
            track.channel_seen = True
            track.q850_cause = int_or_none(msg.get("Cause"))
            track.sip_code = int_or_none(msg.get("TechCause")) or track.sip_code
            return True
        if name == "OriginateResponse":
            track.originate_reason = int_or_none(msg.get("Reason"))
            if msg.get("Response") == "Success":
                track.channel = msg.get("Channel") or track.channel
                track.channel_seen = True
                self._answer(call_id, track, now, out)
            else:  # the Hangup with the cause follows if a channel was made
                track.originate_failed_at = now
                failed.add(call_id)
        elif name == "UserEvent":
            self._user_event(msg, track)
        elif name == "Newchannel":
            if not track.channel_seen and (at := stamp_or_none(msg.get("Timestamp"))):
                out.append(ChannelCreated(call_id, at))  # the switch's clock: pacing's margin
            track.channel_seen = True
            track.channel = msg.get("Channel") or track.channel
        elif name == "Newstate":
            track.channel_seen = True
            track.channel = msg.get("Channel") or track.channel
            if msg.get("ChannelState") == _UP_STATE:
                self._answer(call_id, track, now, out)
        return False

    def expire(self, now: float) -> list[PbxEvent]:
        """End calls whose Failure OriginateResponse came without a Hangup within the grace:
        without a channel seen, the PBX made none (``originate_failed``). Calls not followed
        end the same way, in the memory."""
        if self._others_failed:
            for cid, track in self._due(self._others_failed, self._others, now):
                track.originate_failed = not track.channel_seen
                self._remember(cid, track, now)
        if not self._failed:
            return []
        due = self._due(self._failed, self._calls, now)
        for _, track in due:
            track.originate_failed = not track.channel_seen
        return [self._end(cid, t, now) for cid, t in due]

    def _due(
        self, failed: set[str], tracks: dict[str, _Track], now: float
    ) -> list[tuple[str, _Track]]:
        return [
            (cid, t)
            for cid in failed
            if (t := tracks[cid]).originate_failed_at is not None
            and now - t.originate_failed_at >= self._failure_grace
        ]

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
                at = int_or_none(msg.get("At"))
                track.callback_at = float(at) if at is not None else None
        elif kind == "DialerGoal":
            with contextlib.suppress(ValueError):
                track.goal = GoalResult(msg.get("Goal", "") or "")
        elif kind == "DialerVoicemail":
            with contextlib.suppress(ValueError):
                track.voicemail_drop = VoicemailDrop(msg.get("Drop", "") or "")

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
