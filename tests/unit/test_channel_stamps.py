"""The switch's channel stamps the correlators hand to the CPS margin (ChannelCreated): one per
followed call, by the switch's clock (Asterisk's Newchannel ``Timestamp``, FreeSWITCH's
CHANNEL_CREATE ``Event-Date-Timestamp`` in µs), none without a stamp or for calls not
followed, and the outcome unchanged."""

from __future__ import annotations

import math

import pytest

from dialer.pbx.ami.codec import Message
from dialer.pbx.asterisk.correlate import CallCorrelator as AmiCorrelator
from dialer.pbx.base import CallAnswered, CallEnded, ChannelCreated, stamp_or_none
from dialer.pbx.esl.codec import EslEvent
from dialer.pbx.freeswitch.correlate import CallCorrelator as EslCorrelator

CID = "dlr-stamp-1"


def ami(name: str, uid: str = CID, **fields: str) -> Message:
    headers = [("Event", name), ("Uniqueid", uid), ("Channel", "PJSIP/carrier-00000001")]
    return Message(headers=tuple(headers + list(fields.items())))


def esl(name: str, uid: str = CID, **fields: str) -> EslEvent:
    return EslEvent((("Event-Name", name), ("Unique-ID", uid), *fields.items()))


def test_asterisk_newchannel_stamp_once_per_followed_call() -> None:
    c = AmiCorrelator()
    c.follow(CID, 100.0)
    out = c.feed(ami("Newchannel", Timestamp="1733500000.123456", ChannelState="0"), 200.0)
    assert out == [ChannelCreated(CID, 1733500000.123456)]  # Asterisk's clock, not ``now``
    assert c.feed(ami("Newchannel", Timestamp="1733500001.0"), 201.0) == []  # once
    assert c.feed(ami("Newchannel", "dlr-other", Timestamp="1733500000.2"), 201.0) == []
    out = c.feed(ami("OriginateResponse", Response="Success", Reason="4"), 202.0)
    assert [type(e) for e in out] == [CallAnswered]
    (ended,) = c.feed(ami("Hangup", Cause="16"), 203.0)
    assert isinstance(ended, CallEnded)
    assert (ended.raw.answered, ended.raw.q850_cause) == (True, 16)


def test_asterisk_newchannel_without_timestampevents_gives_no_stamp() -> None:
    c = AmiCorrelator()
    c.follow(CID, 100.0)
    assert c.feed(ami("Newchannel", ChannelState="0"), 100.1) == []
    (ended,) = c.feed(ami("Hangup", Cause="19"), 130.0)
    assert isinstance(ended, CallEnded)
    assert not ended.raw.originate_failed  # a channel was seen, stamp or not


def test_freeswitch_channel_create_stamp_in_microseconds() -> None:
    c = EslCorrelator()
    c.follow(CID, 100.0)
    out = c.feed(esl("CHANNEL_CREATE", **{"Event-Date-Timestamp": "1733500000123456"}), 200.0)
    (created,) = out
    assert isinstance(created, ChannelCreated)
    assert created.call_id == CID
    assert created.at == pytest.approx(1733500000.123456)
    assert c.feed(esl("CHANNEL_CREATE", **{"Event-Date-Timestamp": "1733500001000000"}), 1) == []
    assert c.feed(esl("CHANNEL_CREATE", "dlr-x", **{"Event-Date-Timestamp": "1"}), 1) == []
    c.follow("dlr-nostamp", 100.0)
    assert c.feed(esl("CHANNEL_CREATE", "dlr-nostamp"), 200.0) == []


@pytest.mark.parametrize(
    ("value", "scale", "expected"),
    [
        ("1733500000.5", 1.0, 1733500000.5),
        ("1733500000500000", 1e-6, 1733500000.5),
        (None, 1.0, None),
        ("", 1.0, None),
        ("soon", 1.0, None),
        ("nan", 1.0, None),
        ("inf", 1.0, None),
    ],
)
def test_stamp_or_none(value: str | None, scale: float, expected: float | None) -> None:
    got = stamp_or_none(value, scale)
    assert got == (pytest.approx(expected) if expected is not None else None)
    assert got is None or math.isfinite(got)
