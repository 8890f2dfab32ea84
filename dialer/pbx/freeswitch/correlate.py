"""Sans-IO correlation of FreeSWITCH ESL events into one outcome per call.

Written from FreeSWITCH's source and recorded events (tests/data/esl), and checked against a
real FreeSWITCH 1.10.12 with the carrier simulator (tests/integration/test_carrier_sim.py feeds
it every behaviour's events; pbx-config/README.md has the raw values). Feed
:class:`~dialer.pbx.esl.codec.EslEvent` objects in whatever order they come; per followed call
id this yields at most one :class:`CallAnswered` and exactly one :class:`CallEnded`.

Rules (the contract is pbx-config/freeswitch/README.md):

- The call id is the channel's ``Unique-ID``: the adapter originates with
  ``origination_uuid=<call id>`` and uses the call id as the ``bgapi`` ``Job-UUID`` too.
- ``CHANNEL_HANGUP_COMPLETE`` ends a call that had a channel: ``variable_hangup_cause_q850``
  (else the ``Hangup-Cause`` name) is the Q.850 cause, ``variable_sip_term_status`` (else
  ``variable_sip_invite_failure_status``, else ``variable_proto_specific_hangup_cause``
  ``sip:NNN``) the SIP code; answered when ``variable_answer_epoch`` is not 0.
- ``BACKGROUND_JOB`` of the originate: ``-ERR <CAUSE>`` with no channel ever seen is terminal by
  itself (unknown gateway, refused: ``originate_failed``), the cause's code (Q.850, or
  FreeSWITCH's own: ``INVALID_GATEWAY`` 808) kept as ``originate_reason``. With a channel, the
  ``CHANNEL_HANGUP_COMPLETE`` carries the facts, so we wait for it (``failure_grace``).
- ``CHANNEL_CREATE``: the channel exists; its ``Event-Date-Timestamp`` (µs, FreeSWITCH's
  clock) becomes one :class:`ChannelCreated` per followed call, which the engine feeds to the
  CPS window's margin (dialer.engine.pacing).
- Answered = ``CHANNEL_ANSWER`` (or the answer epoch of the hang-up).
- AMD: channel variables ``dialer_amd_status`` / ``dialer_amd_cause`` (set by dialer.xml's
  greeting-length step), else ``amd_result`` / ``amd_cause`` (the third-party mod_amd), read
  from the hang-up. Dialplan results: ``dialer_result`` (``dnc`` / ``callback``) and
  ``dialer_callback_at`` (epoch seconds); the goal ``dialer_goal`` (``completed`` / ``failed``)
  and the voicemail drop ``dialer_vm_drop`` (``started`` / ``played``), exact values only. No
  CUSTOM event is needed (nor subscribed): the dialplan decides and its variables travel in the
  hang-up.
- Calls not followed: the ``CHANNEL_HANGUP_COMPLETE`` of any other dialer call (id starting with
  ``dlr-``) carries all of the above by itself; its end goes to an :class:`EndMemory`
  (:meth:`CallCorrelator.seen_end`), read by the engine that settles the call should its owner
  die. Ends no engine saw come from the switch's own record (:mod:`.record`, ``api_hangup_hook``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from dialer.domain.calls import AmdStatus, DialplanResult, GoalResult, RawOutcome, VoicemailDrop
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
from dialer.pbx.esl.codec import EslEvent

# What the adapter subscribes to: the four events :meth:`CallCorrelator.feed` reads, no more.
# (dialer.xml reports AMD and the IVR's result as channel variables of the hang-up, so no CUSTOM
# event such as mod_avmd's ``avmd::beep`` is needed.)
FOLLOWED_EVENTS = (
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_HANGUP_COMPLETE",
    "BACKGROUND_JOB",
)

# FreeSWITCH cause names (switch_channel.c CAUSE_CHART) whose code is a Q.850 cause, for when
# only the name is known (a failed originate's "-ERR USER_BUSY", a hang-up without the q850
# variable). FreeSWITCH's own causes (ORIGINATOR_CANCEL 487, INVALID_GATEWAY 608...) are not
# Q.850 causes and map to nothing.
Q850_BY_NAME = {
    "UNALLOCATED_NUMBER": 1,
    "NO_ROUTE_TRANSIT_NET": 2,
    "NO_ROUTE_DESTINATION": 3,
    "CHANNEL_UNACCEPTABLE": 6,
    "CALL_AWARDED_DELIVERED": 7,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20,
    "CALL_REJECTED": 21,
    "NUMBER_CHANGED": 22,
    "REDIRECTION_TO_NEW_DESTINATION": 23,
    "EXCHANGE_ROUTING_ERROR": 25,
    "DESTINATION_OUT_OF_ORDER": 27,
    "INVALID_NUMBER_FORMAT": 28,
    "FACILITY_REJECTED": 29,
    "RESPONSE_TO_STATUS_ENQUIRY": 30,
    "NORMAL_UNSPECIFIED": 31,
    "NORMAL_CIRCUIT_CONGESTION": 34,
    "NETWORK_OUT_OF_ORDER": 38,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "SWITCH_CONGESTION": 42,
    "ACCESS_INFO_DISCARDED": 43,
    "REQUESTED_CHAN_UNAVAIL": 44,
    "PRE_EMPTED": 45,
    "FACILITY_NOT_SUBSCRIBED": 50,
    "OUTGOING_CALL_BARRED": 52,
    "INCOMING_CALL_BARRED": 54,
    "BEARERCAPABILITY_NOTAUTH": 57,
    "BEARERCAPABILITY_NOTAVAIL": 58,
    "SERVICE_UNAVAILABLE": 63,
    "BEARERCAPABILITY_NOTIMPL": 65,
    "CHAN_NOT_IMPLEMENTED": 66,
    "FACILITY_NOT_IMPLEMENTED": 69,
    "SERVICE_NOT_IMPLEMENTED": 79,
    "INVALID_CALL_REFERENCE": 81,
    "INCOMPATIBLE_DESTINATION": 88,
    "INVALID_MSG_UNSPECIFIED": 95,
    "MANDATORY_IE_MISSING": 96,
    "MESSAGE_TYPE_NONEXIST": 97,
    "WRONG_MESSAGE": 98,
    "IE_NONEXIST": 99,
    "INVALID_IE_CONTENTS": 100,
    "WRONG_CALL_STATE": 101,
    "RECOVERY_ON_TIMER_EXPIRE": 102,
    "MANDATORY_IE_LENGTH_ERROR": 103,
    "PROTOCOL_ERROR": 111,
    "INTERWORKING": 127,
}
# FreeSWITCH's own causes (switch_types.h switch_call_cause_t), not Q.850: their codes are kept
# as a failed originate's ``originate_reason`` (a job's "-ERR INVALID_GATEWAY" -> 808).
FREESWITCH_CAUSES = {
    "ORIGINATOR_CANCEL": 487,
    "CRASH": 700,
    "SYSTEM_SHUTDOWN": 701,
    "LOSE_RACE": 702,
    "MANAGER_REQUEST": 703,
    "BLIND_TRANSFER": 800,
    "ATTENDED_TRANSFER": 801,
    "ALLOTTED_TIMEOUT": 802,
    "USER_CHALLENGE": 803,
    "MEDIA_TIMEOUT": 804,
    "PICKED_OFF": 805,
    "USER_NOT_REGISTERED": 806,
    "PROGRESS_TIMEOUT": 807,
    "INVALID_GATEWAY": 808,
    "GATEWAY_DOWN": 809,
    "INVALID_URL": 810,
    "INVALID_PROFILE": 811,
    "NO_PICKUP": 812,
    "SRTP_READ_ERROR": 813,
    "BOWOUT": 814,
    "BUSY_EVERYWHERE": 815,
    "DECLINE": 816,
    "DOES_NOT_EXIST_ANYWHERE": 817,
    "NOT_ACCEPTABLE": 818,
    "UNWANTED": 819,
    "NO_IDENTITY": 820,
    "BAD_IDENTITY_INFO": 821,
    "UNSUPPORTED_CERTIFICATE": 822,
    "INVALID_IDENTITY": 823,
    "STALE_DATE": 824,
    "REJECT_ALL": 825,
}
_ANSWERED_CALLSTATES = frozenset({"ACTIVE", "HELD", "UNHELD"})


def _q850(code: int | None) -> int | None:
    return code if code is not None and 0 < code < 128 else None


def cause_from_job(body: str) -> tuple[bool, str | None]:
    """``(ok, cause name)`` of an originate's BACKGROUND_JOB body (``+OK <uuid>`` / ``-ERR X``)."""
    text = body.strip()
    if text.startswith("+OK"):
        return True, None
    words = text.partition(" ")[2].split()
    return False, words[0] if words else None


def cause_code(name: str | None) -> int | None:
    """FreeSWITCH's numeric code of a cause name (Q.850 or its own), None if unknown."""
    name = name or ""
    return Q850_BY_NAME.get(name) or FREESWITCH_CAUSES.get(name)


def sip_code_of(event: EslEvent) -> int | None:
    for name in ("variable_sip_term_status", "variable_sip_invite_failure_status"):
        code = int_or_none(event.get(name))
        if code is not None and 100 <= code <= 699:
            return code
    proto = event.get("variable_proto_specific_hangup_cause") or ""
    if proto.startswith("sip:"):
        return int_or_none(proto[4:])
    return None


def answered_in_show_channels(callstate: object) -> bool:
    """Whether a ``show channels`` row's ``callstate`` means the channel was answered."""
    return callstate in _ANSWERED_CALLSTATES


@dataclass(slots=True)
class _Track(CallFacts):
    """:class:`CallFacts` plus the FreeSWITCH side's bookkeeping."""

    job_failed_at: float | None = None
    job_cause: str | None = None


class CallCorrelator:
    """Feed ESL events; get PBX-neutral call events. ``now`` is passed in (epoch seconds)."""

    def __init__(
        self,
        failure_grace: float = 5.0,
        memory: EndMemory | None = None,
        other: Callable[[EslEvent], object] | None = None,
    ) -> None:
        # CUSTOM events of no call (sofia::gateway_state: the switch view's) go to ``other``
        self._other = other
        self._calls: dict[str, _Track] = {}
        self._jobs: dict[str, str] = {}  # Job-UUID -> call id, when they differ
        self._failure_grace = failure_grace
        self.memory = memory if memory is not None else EndMemory()

    def seen_end(self, call_id: str, now: float) -> CallEnded | None:
        """How a dialer call this correlator did not follow ended, if it saw that lately."""
        return self.memory.get(call_id, now)

    def disconnected(self, now: float) -> None:
        """Nothing to do: only ends are remembered here (no live calls not followed)."""

    def follow(self, call_id: str, now: float, *, answered: bool = False) -> None:
        """Follow ``call_id``; ``answered`` for a call adopted while already up."""
        track = self._calls.setdefault(call_id, _Track(started_at=now))
        if answered and track.answered_at is None:
            track.answered_at = now
            track.channel_seen = True

    def bind_job(self, job_uuid: str, call_id: str) -> None:
        """The originate of ``call_id`` runs as ``job_uuid`` (when FreeSWITCH chose its own)."""
        if job_uuid != call_id and call_id in self._calls:
            self._jobs[job_uuid] = call_id

    def forget(self, call_id: str) -> RawOutcome | None:
        """Stop following ``call_id``; what its events said so far (None: not followed)."""
        track = self._calls.pop(call_id, None)
        for job in [job for job, cid in self._jobs.items() if cid == call_id]:
            del self._jobs[job]
        return track.outcome() if track is not None else None

    def is_followed(self, call_id: str) -> bool:
        return call_id in self._calls

    def __len__(self) -> int:
        return len(self._calls)

    def feed(self, event: EslEvent, now: float) -> list[PbxEvent]:
        name = event.name  # Event-Name comes first: found at once
        if name == "CUSTOM" and event.unique_id is None:
            if self._other is not None:
                self._other(event)
            return []
        if name == "BACKGROUND_JOB":
            job = event.job_uuid or ""
            call_id = self._jobs.pop(job, job)
        else:
            call_id = event.unique_id or ""
        track = self._calls.get(call_id)
        if track is None or name is None:
            if name == "CHANNEL_HANGUP_COMPLETE" and call_id.startswith(CALL_ID_PREFIX):
                self._see_end(call_id, event, now)
            return []  # not an event of a call we follow (most events of a shared PBX)
        out: list[PbxEvent] = []
        if name == "CHANNEL_CREATE":
            at = stamp_or_none(event.get("Event-Date-Timestamp"), 1e-6)  # µs, the switch's clock
            if at is not None and not track.channel_seen:
                out.append(ChannelCreated(call_id, at))  # for the CPS window's margin (pacing)
            track.channel_seen = True
        elif name == "CHANNEL_ANSWER":
            track.channel_seen = True
            self._answer(call_id, track, now, out)
        elif name == "BACKGROUND_JOB":
            ok, cause = cause_from_job(event.body)
            if not ok and not track.channel_seen:
                track.originate_failed = True
                track.q850_cause = Q850_BY_NAME.get(cause or "")
                track.originate_reason = cause_code(cause)
                out.append(self._end(call_id, track, now))
            elif not ok:
                track.job_failed_at, track.job_cause = now, cause
        elif name == "CHANNEL_HANGUP_COMPLETE":
            self._hangup(call_id, track, event, now, out)
        return out

    def expire(self, now: float) -> list[PbxEvent]:
        """End calls whose failed originate had a channel but no hang-up came in time."""
        due = [
            (cid, t)
            for cid, t in self._calls.items()
            if t.job_failed_at is not None and now - t.job_failed_at >= self._failure_grace
        ]
        out: list[PbxEvent] = []
        for cid, track in due:
            track.q850_cause = track.q850_cause or Q850_BY_NAME.get(track.job_cause or "")
            out.append(self._end(cid, track, now))
        return out

    def _hangup(
        self, call_id: str, track: _Track, event: EslEvent, now: float, out: list[PbxEvent]
    ) -> None:
        code = _q850(int_or_none(event.get("variable_hangup_cause_q850")))
        if code is None:
            code = Q850_BY_NAME.get(event.get("Hangup-Cause") or "")
        answer_usec = int_or_none(event.get("variable_answer_uepoch")) or 0
        answer_sec = int_or_none(event.get("variable_answer_epoch")) or 0
        if track.answered_at is None and (answer_sec or answer_usec):
            track.answered_at = answer_usec / 1e6 if answer_usec else float(answer_sec)
        track.q850_cause = code
        track.sip_code = sip_code_of(event)
        self._variables(event, track)
        out.append(self._end(call_id, track, now))

    def _see_end(self, call_id: str, event: EslEvent, now: float) -> None:
        track = _Track(started_at=now, channel_seen=True)
        out: list[PbxEvent] = []
        self._calls[call_id] = track  # _hangup ends it through _end (which forgets it)
        self._hangup(call_id, track, event, now, out)
        for ended in out:
            if isinstance(ended, CallEnded):
                self.memory.remember(replace(ended, source=EndSource.SEEN))

    def _variables(self, event: EslEvent, track: _Track) -> None:
        status = event.get("variable_dialer_amd_status") or event.get("variable_amd_result")
        cause = event.get("variable_dialer_amd_cause") or event.get("variable_amd_cause")
        with contextlib.suppress(ValueError):
            if status:
                track.amd_status = AmdStatus(status.strip().upper())
                track.amd_cause = cause
        result = (event.get("variable_dialer_result") or "").strip().lower()
        with contextlib.suppress(ValueError):
            if result:
                track.dialplan_result = DialplanResult(result)
                at = int_or_none(event.get("variable_dialer_callback_at"))
                track.callback_at = float(at) if at is not None else None
        with contextlib.suppress(ValueError):
            track.goal = GoalResult(event.get("variable_dialer_goal") or "")
        with contextlib.suppress(ValueError):
            track.voicemail_drop = VoicemailDrop(event.get("variable_dialer_vm_drop") or "")

    def _answer(self, call_id: str, track: _Track, now: float, out: list[PbxEvent]) -> None:
        if track.answered_at is None:
            track.answered_at = now
            out.append(CallAnswered(call_id=call_id, at=now))

    def _end(self, call_id: str, track: _Track, now: float) -> CallEnded:
        self.forget(call_id)
        return CallEnded(
            call_id=call_id,
            raw=track.outcome(),
            ended_at=now,
            answered_at=track.answered_at,
            started_at=track.started_at,
        )
