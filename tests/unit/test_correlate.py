"""The AMI call correlator, fed with event sequences in the orders seen on Asterisk 22.

manager.conf lets through OriginateResponse, Hangup and UserEvent to the dialer's user (the
"lean" sequences); an AMI user without those filters also receives Newchannel, Newstate and
DialEnd, which must give the same outcomes.
"""

from __future__ import annotations

import itertools

import pytest

from dialer.domain.calls import AmdStatus, DialplanResult, RawOutcome
from dialer.domain.outcome import classify
from dialer.engine.calls import lost_outcome
from dialer.pbx.ami.codec import Message
from dialer.pbx.asterisk.correlate import CallCorrelator
from dialer.pbx.base import CallAnswered, CallEnded

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
    assert (raw.originate_failed, raw.originate_reason, raw.answered) == (True, 4, True)
    assert raw.amd_status is AmdStatus.HUMAN
    assert classify(raw).reason == "originate_failed"
    # an adopted call this engine never saw originate: nothing to keep
    assert lost_outcome(None, answered=False) == RawOutcome(False, originate_failed=True)
