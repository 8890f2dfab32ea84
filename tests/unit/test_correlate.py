"""The AMI call correlator, fed with event sequences in the orders seen on Asterisk 22.

manager.conf lets through OriginateResponse, Hangup, UserEvent and its own calls' Newchannel to
the dialer's user (the "lean" sequences have no Newchannel: it only adds a ChannelCreated,
tests/unit/test_channel_stamps.py); an AMI user without those filters also receives Newstate
and DialEnd, which must give the same outcomes.
"""

from __future__ import annotations

import itertools

import pytest

from dialer.domain.calls import AmdStatus, DialplanResult, RawOutcome
from dialer.domain.outcome import classify
from dialer.domain.statuses import CallStatus
from dialer.engine.calls import lost_outcome
from dialer.pbx.ami.codec import Message
from dialer.pbx.asterisk.correlate import CallCorrelator
from dialer.pbx.base import CallAnswered, CallEnded, EndSource

CID = "dlr-abc"


def ev(name: str, **fields: str) -> Message:
    headers = [("Event", name), ("Channel", "PJSIP/carrier-00000001"), ("Uniqueid", CID)]
    headers += [(k, v) for k, v in fields.items()]
    return Message(headers=tuple(headers))


NEWCHANNEL = ev("Newchannel", ChannelState="0")
RINGING = ev("Newstate", ChannelState="5", ChannelStateDesc="Ringing")
UP = ev("Newstate", ChannelState="6", ChannelStateDesc="Up")
DIALEND_ANSWER = Message(
    headers=(("Event", "DialEnd"), ("DestUniqueid", CID), ("DialStatus", "ANSWER"))
)
ORIG_OK = ev("OriginateResponse", Response="Success", Reason="4")
AMD_HUMAN = ev("UserEvent", UserEvent="DialerAMD", Status="HUMAN", Cause="HUMAN-300-300")
HANGUP_16 = ev("Hangup", Cause="16", **{"Cause-txt": "Normal Clearing"})


def run(events: list[Message], now: float = 100.0) -> list[object]:
    c = CallCorrelator(failure_grace=5.0)
    c.follow(CID, now)
    out: list[object] = []
    for i, e in enumerate(events):
        out += c.feed(e, now + i)
    return out


@pytest.mark.parametrize("middle", list(itertools.permutations([UP, DIALEND_ANSWER, ORIG_OK])))
def test_answered_call_in_any_order_gives_one_answer_and_one_end(middle):
    out = run([NEWCHANNEL, RINGING, *middle, AMD_HUMAN, HANGUP_16])
    assert [type(e) for e in out] == [CallAnswered, CallEnded]
    answered = [e for e in out if isinstance(e, CallAnswered)]
    ended = [e for e in out if isinstance(e, CallEnded)]
    assert len(answered) == 1
    assert len(ended) == 1
    raw = ended[0].raw
    assert raw.answered
    assert raw.q850_cause == 16
    assert raw.amd_status is AmdStatus.HUMAN
    assert ended[0].answered_at == answered[0].at
    assert raw.originate_reason == 4
    assert raw.dial_status is None  # DialEnd is not followed


def test_up_marks_the_call_answered_when_the_hangup_overtakes_the_originate_response():
    out = run([NEWCHANNEL, UP, HANGUP_16, ORIG_OK])
    assert [type(e) for e in out] == [CallAnswered, CallEnded]
    assert out[1].raw.answered  # type: ignore[attr-defined]
    assert out[1].answered_at == 101.0  # type: ignore[attr-defined]


def test_lean_answered_call_needs_only_the_response_and_the_hangup():
    out = run([ORIG_OK, HANGUP_16])
    assert [type(e) for e in out] == [CallAnswered, CallEnded]
    ended = out[1]
    assert isinstance(ended, CallEnded)
    assert ended.raw.answered
    assert ended.raw.originate_reason == 4
    assert not ended.raw.originate_failed


def test_hangup_of_an_up_channel_marks_it_answered_when_it_overtakes_the_response():
    hangup_up = ev("Hangup", Cause="16", ChannelState="6", ChannelStateDesc="Up")
    out = run([hangup_up, ORIG_OK])
    assert [type(e) for e in out] == [CallAnswered, CallEnded]
    assert out[1].raw.answered  # type: ignore[attr-defined]
    assert out[0].at == out[1].ended_at == 100.0  # type: ignore[attr-defined]
    # a channel that hung up while Down or Ringing was not answered
    for state in ("0", "5"):
        (ended,) = run([ev("Hangup", Cause="17", TechCause="486", ChannelState=state)])
        assert isinstance(ended, CallEnded)
        assert not ended.raw.answered


def test_originate_success_alone_marks_the_call_answered():
    out = run([NEWCHANNEL, ORIG_OK, HANGUP_16])
    assert [type(e) for e in out] == [CallAnswered, CallEnded]
    assert out[1].raw.answered  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("cause", "tech"), [("17", "486"), ("19", "480"), ("1", "404"), ("34", "503"), ("21", "603")]
)
@pytest.mark.parametrize("failure_first", [True, False])
def test_sip_rejection_waits_for_hangup_cause_whatever_the_order(cause, tech, failure_first):
    fail = ev("OriginateResponse", Response="Failure", Reason="0")
    hangup = ev("Hangup", Cause=cause, TechCause=tech)
    tail = [fail, hangup] if failure_first else [hangup, fail]
    for head in ([NEWCHANNEL], []):  # with a Newchannel, and lean
        out = run([*head, *tail])
        ended = [e for e in out if isinstance(e, CallEnded)]
        assert len(ended) == 1
        assert ended[0].raw.q850_cause == int(cause)
    out = run([NEWCHANNEL, *tail])
    ended = [e for e in out if isinstance(e, CallEnded)]
    assert len(ended) == 1
    raw = ended[0].raw
    assert not raw.answered
    assert raw.q850_cause == int(cause)
    assert raw.sip_code == int(tech)
    assert raw.originate_reason == (0 if failure_first else None)
    assert not raw.originate_failed


def test_failure_without_a_hangup_ends_as_originate_failed_after_grace():
    # an unknown endpoint: Failure, no channel, nothing follows (the response cannot tell)
    c = CallCorrelator(failure_grace=5.0)
    c.follow(CID, 0.0)
    assert c.feed(ev("OriginateResponse", Response="Failure", Reason="0"), 1.0) == []
    assert c.expire(5.9) == []
    (ended,) = c.expire(6.0)
    assert isinstance(ended, CallEnded)
    assert ended.raw.originate_failed
    assert ended.raw.originate_reason == 0
    assert not ended.raw.answered
    assert len(c) == 0


def test_failure_with_channel_but_no_hangup_ends_after_grace():
    c = CallCorrelator(failure_grace=5.0)
    c.follow(CID, 0.0)
    c.feed(NEWCHANNEL, 0.0)
    assert c.feed(ev("OriginateResponse", Response="Failure", Reason="3"), 1.0) == []
    assert c.expire(5.9) == []
    (ended,) = c.expire(6.0)
    assert isinstance(ended, CallEnded)
    assert ended.raw.originate_reason == 3
    assert not ended.raw.originate_failed  # a channel was made: not a PBX refusal
    assert len(c) == 0


def test_dialplan_results_and_machine_detection_are_kept():
    out = run(
        [
            NEWCHANNEL,
            UP,
            ev("UserEvent", UserEvent="DialerAMD", Status="MACHINE", Cause="LONGGREETING"),
            ev("UserEvent", UserEvent="DialerResult", Result="callback", At="1790000000"),
            HANGUP_16,
        ]
    )
    raw = next(e for e in out if isinstance(e, CallEnded)).raw
    assert raw.amd_status is AmdStatus.MACHINE
    assert raw.amd_cause == "LONGGREETING"
    assert raw.dialplan_result is DialplanResult.CALLBACK
    assert raw.callback_at == 1790000000.0


def test_unknown_values_and_other_calls_are_ignored():
    c = CallCorrelator()
    c.follow(CID, 0.0)
    other = Message(headers=(("Event", "Hangup"), ("Uniqueid", "someone-else"), ("Cause", "16")))
    assert c.feed(other, 1.0) == []
    assert c.feed(ev("UserEvent", UserEvent="DialerAMD", Status="BOGUS"), 1.0) == []
    assert c.feed(ev("Hangup", Cause="not-a-number"), 2.0)[0].raw.q850_cause is None  # type: ignore[union-attr]
    assert c.feed(HANGUP_16, 3.0) == []  # already ended: nothing twice


def test_events_of_other_calls_and_without_uniqueid_change_nothing():
    c = CallCorrelator()
    c.follow(CID, 0.0)
    for other in (
        Message(headers=(("Event", "Newstate"), ("Uniqueid", "other"), ("ChannelState", "6"))),
        Message(headers=(("Event", "OriginateResponse"), ("Response", "Failure"))),
        Message(headers=(("Event", "DialEnd"), ("DestUniqueid", CID), ("DialStatus", "ANSWER"))),
        Message(headers=(("Response", "Success"), ("Ping", "Pong"))),
    ):
        assert c.feed(other, 1.0) == []
    (ended,) = c.feed(HANGUP_16, 2.0)
    assert isinstance(ended, CallEnded)
    assert not ended.raw.answered
    assert ended.answered_at is None


def test_adopted_answered_call_and_channel_name():
    c = CallCorrelator()
    c.follow(CID, 10.0, answered=True)
    assert c.channel_name(CID) is None
    assert c.feed(UP, 11.0) == []  # already answered: no second CallAnswered
    assert c.channel_name(CID) == "PJSIP/carrier-00000001"
    (ended,) = c.feed(HANGUP_16, 12.0)
    assert isinstance(ended, CallEnded)
    assert ended.raw.answered
    assert ended.answered_at == 10.0
    assert ended.started_at == 10.0
    assert c.channel_name(CID) is None


def test_forget_drops_a_call_awaiting_its_hangup():
    c = CallCorrelator(failure_grace=1.0)
    c.follow(CID, 0.0)
    c.feed(NEWCHANNEL, 0.0)
    c.feed(ev("OriginateResponse", Response="Failure", Reason="0"), 0.0)
    seen = c.forget(CID)
    assert seen is not None
    assert (seen.answered, seen.originate_reason) == (False, 0)
    assert c.expire(10.0) == []
    assert not c.is_followed(CID)
    assert c.forget(CID) is None


def test_a_call_lost_with_the_pbx_keeps_what_the_pbx_said_of_it():
    """The PBX went away before the Hangup: the record still carries the switch's reason."""
    c = CallCorrelator()
    c.follow(CID, 0.0)
    c.feed(ORIG_OK, 1.0)
    c.feed(AMD_HUMAN, 2.0)
    raw = lost_outcome(c.forget(CID), answered=True)
    assert (raw.lost, raw.originate_reason, raw.answered) == (True, 4, True)
    assert not raw.originate_failed
    assert raw.amd_status is AmdStatus.HUMAN
    assert classify(raw).status is CallStatus.ANSWERED_CUT  # answered: not redialed
    # an adopted call this engine never saw originate: nothing to keep
    assert lost_outcome(None, answered=False) == RawOutcome(False, lost=True)
    assert classify(RawOutcome(False, lost=True)).status is CallStatus.TECHNICAL_ERROR


OTHER = "dlr-other-1"


def oev(name: str, **headers: str) -> Message:
    return Message(tuple({"Event": name, "Uniqueid": OTHER, **headers}.items()))


def test_the_end_of_a_call_not_followed_is_remembered_with_its_facts():
    """Another engine's call: nothing comes out, but its end (answer, AMD, dialplan result,
    cause) is in the memory, marked ``seen``; a non-dialer id is not kept at all."""
    c = CallCorrelator()
    assert c.feed(oev("OriginateResponse", Response="Success", Reason="4"), 1.0) == []
    assert (
        c.feed(oev("UserEvent", UserEvent="DialerAMD", Status="HUMAN", Cause="HUMAN-1"), 2.0) == []
    )
    assert c.feed(oev("UserEvent", UserEvent="DialerResult", Result="dnc"), 3.0) == []
    assert c.seen_end(OTHER, 3.0) is None  # still live
    assert c.feed(oev("Hangup", Cause="16", ChannelState="6"), 4.0) == []
    end = c.seen_end(OTHER, 5.0)
    assert end is not None
    assert end.source is EndSource.SEEN
    assert (end.answered_at, end.ended_at) == (1.0, 4.0)
    assert (end.raw.answered, end.raw.q850_cause) == (True, 16)
    assert (end.raw.amd_status, end.raw.dialplan_result) == (
        AmdStatus.HUMAN,
        DialplanResult.DO_NOT_CALL,
    )
    assert classify(end.raw).status is CallStatus.DO_NOT_CALL
    c.feed(Message((("Event", "Hangup"), ("Uniqueid", "1700000000.1"), ("Cause", "16"))), 6.0)
    assert len(c.memory) == 1


def test_a_call_not_followed_that_made_no_channel_ends_after_the_grace():
    c = CallCorrelator(failure_grace=5.0)
    c.feed(oev("OriginateResponse", Response="Failure", Reason="0"), 1.0)
    c.expire(3.0)
    assert c.seen_end(OTHER, 3.0) is None
    c.expire(6.5)
    end = c.seen_end(OTHER, 6.5)
    assert end is not None
    assert end.raw.originate_failed


def test_an_adopted_call_keeps_what_was_seen_before_and_its_end_comes_out():
    c = CallCorrelator()
    c.feed(oev("OriginateResponse", Response="Success", Reason="4"), 1.0)
    c.feed(oev("UserEvent", UserEvent="DialerResult", Result="callback", At="99"), 2.0)
    c.follow(OTHER, 3.0, answered=True)
    (ended,) = c.feed(oev("Hangup", Cause="16", ChannelState="6"), 4.0)
    assert isinstance(ended, CallEnded)
    assert ended.source is EndSource.EVENTS
    assert (ended.answered_at, ended.raw.dialplan_result) == (1.0, DialplanResult.CALLBACK)
    assert c.seen_end(OTHER, 4.0) is None


def test_calls_not_followed_that_were_live_at_a_disconnect_are_remembered_as_lost():
    """Answered -> Answered, cut; ringing -> a technical error; a Hangup seen after the
    reconnect (the PBX did not restart) replaces it."""
    c = CallCorrelator()
    c.feed(oev("OriginateResponse", Response="Success", Reason="4"), 1.0)
    ringing = Message((("Event", "UserEvent"), ("Uniqueid", "dlr-other-2"), ("UserEvent", "x")))
    c.feed(ringing, 1.0)
    c.disconnected(2.0)
    cut, rang = c.seen_end(OTHER, 2.0), c.seen_end("dlr-other-2", 2.0)
    assert cut is not None
    assert rang is not None
    assert (cut.source, classify(cut.raw).status) == (EndSource.LOST, CallStatus.ANSWERED_CUT)
    assert classify(rang.raw).status is CallStatus.TECHNICAL_ERROR
    c.feed(oev("Hangup", Cause="16", ChannelState="6"), 3.0)
    after = c.seen_end(OTHER, 3.0)
    assert after is not None
    assert after.source is EndSource.SEEN
