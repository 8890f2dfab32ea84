"""Sans-IO correlation of Asterisk AMI events into one outcome per call.

Asterisk sends a call's events in an order that varies from call to call (Up, DialEnd and
OriginateResponse were seen in three different orders over 20 calls). This class takes AMI event
messages in whatever order they come and yields, per followed call id, at most one
:class:`CallAnswered` and exactly one :class:`CallEnded`.

Rules (from the raw values observed on Asterisk 22 / PJSIP, pbx-config/asterisk/README.md):

- The call id is the Originate ``ChannelId``: every event of the call carries it as ``Uniqueid``.
- ``Hangup`` ends a call that had a channel: its ``Cause`` is the Q.850 cause, its ``TechCause``
  (when present) the SIP response code.
- ``OriginateResponse`` with ``Response: Failure`` and no channel ever seen is terminal by itself
  (unknown endpoint, PBX refusal: ``originate_failed``). With a channel, the Hangup that follows
  carries the cause, so we wait for it (at most ``failure_grace`` seconds, see :meth:`expire`).
- Answered = ``Newstate`` Up, ``OriginateResponse`` Success, or ``DialEnd`` ANSWER.
- ``UserEvent`` ``DialerAMD`` (Status, Cause) and ``DialerResult`` (Result, At) come from the
  dialplan (pbx-config/asterisk/extensions.conf).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

from dialer.domain.calls import AmdStatus, DialplanResult, RawOutcome
from dialer.pbx.ami.codec import Message
from dialer.pbx.base import CallAnswered, CallEnded, PbxEvent

# The events the correlator reads; the adapter asks Asterisk to send only these (AMI Filter).
FOLLOWED_EVENTS = ("Newchannel", "Newstate", "DialEnd", "OriginateResponse", "Hangup", "UserEvent")
_UP_STATE = "6"


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


@dataclass(slots=True)
class _Track:
    started_at: float
    channel: str | None = None
    channel_seen: bool = False
    answered_at: float | None = None
    originate_failed_at: float | None = None
    raw: RawOutcome = RawOutcome(answered=False)


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
            track.raw = replace(track.raw, answered=True)

    def forget(self, call_id: str) -> None:
        self._calls.pop(call_id, None)
        self._failed.discard(call_id)

    def is_followed(self, call_id: str) -> bool:
        return call_id in self._calls

    def channel_name(self, call_id: str) -> str | None:
        track = self._calls.get(call_id)
        return track.channel if track else None

    def __len__(self) -> int:
        return len(self._calls)

    def feed(self, msg: Message, now: float) -> list[PbxEvent]:
        name = msg.event
        # Dial events describe the callee leg as Dest*: an originated channel is that leg.
        call_id = msg.get("DestUniqueid") if name == "DialEnd" else msg.get("Uniqueid")
        if name is None or call_id is None:
            return []
        track = self._calls.get(call_id)
        if track is None:
            return []
        out: list[PbxEvent] = []
        channel = msg.get("Channel")
        if channel:
            track.channel = channel
        if name == "Newchannel":
            track.channel_seen = True
        elif name == "Newstate":
            track.channel_seen = True
            if msg.get("ChannelState") == _UP_STATE:
                self._answer(call_id, track, now, out)
        elif name == "DialEnd":
            status = msg.get("DialStatus")
            track.raw = replace(track.raw, dial_status=status)
            if status == "ANSWER":
                self._answer(call_id, track, now, out)
        elif name == "OriginateResponse":
            reason = _int(msg.get("Reason"))
            track.raw = replace(track.raw, originate_reason=reason)
            if msg.get("Response") == "Success":
                self._answer(call_id, track, now, out)
            elif not track.channel_seen:
                track.raw = replace(track.raw, originate_failed=True)
                out.append(self._end(call_id, track, now))
            else:
                track.originate_failed_at = now
                self._failed.add(call_id)
        elif name == "UserEvent":
            self._user_event(msg, track)
        elif name == "Hangup":
            track.raw = replace(
                track.raw,
                q850_cause=_int(msg.get("Cause")),
                sip_code=_int(msg.get("TechCause")) or track.raw.sip_code,
            )
            out.append(self._end(call_id, track, now))
        return out

    def expire(self, now: float) -> list[PbxEvent]:
        """End calls whose Failure OriginateResponse came without the expected Hangup."""
        due = [
            (cid, t)
            for cid in self._failed
            if (t := self._calls[cid]).originate_failed_at is not None
            and now - t.originate_failed_at >= self._failure_grace
        ]
        return [self._end(cid, t, now) for cid, t in due]

    def _answer(self, call_id: str, track: _Track, now: float, out: list[PbxEvent]) -> None:
        if track.answered_at is None:
            track.answered_at = now
            track.raw = replace(track.raw, answered=True)
            out.append(CallAnswered(call_id=call_id, at=now))

    def _user_event(self, msg: Message, track: _Track) -> None:
        kind = msg.get("UserEvent")
        if kind == "DialerAMD":
            status = msg.get("Status", "") or ""
            with contextlib.suppress(ValueError):
                track.raw = replace(
                    track.raw, amd_status=AmdStatus(status.upper()), amd_cause=msg.get("Cause")
                )
        elif kind == "DialerResult":
            result = (msg.get("Result", "") or "").lower()
            with contextlib.suppress(ValueError):
                at = _int(msg.get("At"))
                track.raw = replace(
                    track.raw,
                    dialplan_result=DialplanResult(result),
                    callback_at=float(at) if at is not None else None,
                )

    def _end(self, call_id: str, track: _Track, now: float) -> CallEnded:
        del self._calls[call_id]
        self._failed.discard(call_id)
        return CallEnded(
            call_id=call_id,
            raw=track.raw,
            ended_at=now,
            answered_at=track.answered_at,
            started_at=track.started_at,
        )
