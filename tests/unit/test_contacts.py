"""The switch's own view of its PJSIP trunks (dialer.pbx.asterisk.contacts), from the
ContactStatus events as Asterisk 22 sent them on the local stack, and Getvar's narrow exception
to the codec's reserved fields."""

from __future__ import annotations

import pytest

from dialer.errors import UnsafeValue
from dialer.pbx.ami.codec import Message, encode_action
from dialer.pbx.asterisk.contacts import ContactView
from dialer.pbx.asterisk.correlate import CallCorrelator
from dialer.pbx.base import TrunkStatus

TRUNK = "carrier-dead-qualified"
URI = "sip:127.0.0.1:21227"


def contact(status: str, uri: str = URI, endpoint: str = TRUNK) -> Message:
    """A ContactStatus event as recorded from Asterisk 22.10 (PJSIP qualify every 2 s)."""
    return Message(
        headers=(
            ("Event", "ContactStatus"),
            ("Privilege", "system,all"),
            ("Timestamp", "1796574489.352788"),
            ("URI", uri),
            ("ContactStatus", status),
            ("AOR", TRUNK),
            ("EndpointName", endpoint),
            ("RoundtripUsec", "0"),
        )
    )


DOWN = TrunkStatus(TRUNK, False, "switch: contact Unreachable")
UP = TrunkStatus(TRUNK, True, "switch: contact Reachable")


def test_unreachable_and_reachable() -> None:
    view = ContactView()
    assert view.status(TRUNK) is None  # never heard of
    assert view.feed(contact("Unreachable"))
    assert view.status(TRUNK) == DOWN
    assert not view.feed(contact("Unreachable"))  # no change
    assert view.feed(contact("Reachable"))
    assert view.status(TRUNK) == UP
    assert view.trunks() == [TRUNK]


def test_one_reachable_contact_keeps_the_trunk_up() -> None:
    view = ContactView()
    view.feed(contact("Reachable", uri="sip:10.0.0.1"))
    assert not view.feed(contact("Unreachable", uri="sip:10.0.0.2"))
    assert view.status(TRUNK) == UP
    assert view.feed(contact("Unreachable", uri="sip:10.0.0.1"))
    assert view.status(TRUNK) == DOWN


def test_unknown_gives_no_opinion_and_removed_the_last_is_down() -> None:
    view = ContactView()
    view.feed(contact("Created"))
    assert view.status(TRUNK) is None
    view.feed(contact("Unknown"))
    assert view.status(TRUNK) is None
    view.feed(contact("NonQualified"))
    assert view.status(TRUNK) == UP  # not qualified: Asterisk dials it blindly
    view.feed(contact("Removed"))
    assert view.status(TRUNK) == TrunkStatus(TRUNK, False, "switch: contact Removed")


def test_load_replaces_what_the_events_said() -> None:
    view = ContactView()
    view.feed(contact("Reachable"))
    assert view.load(TRUNK, {URI: "Unreachable"})
    assert view.status(TRUNK) == DOWN
    assert not view.load(TRUNK, {URI: "Unreachable"})


@pytest.mark.parametrize(
    "msg",
    [
        Message(headers=(("Event", "Hangup"), ("Cause", "16"))),
        Message(headers=(("Event", "ContactStatus"), ("URI", URI))),  # no status
        Message(headers=(("Event", "ContactStatus"), ("ContactStatus", "Reachable"))),
    ],
)
def test_other_or_partial_events_change_nothing(msg: Message) -> None:
    view = ContactView()
    assert not view.feed(msg)
    assert view.trunks() == []


def test_the_correlator_passes_events_of_no_call_on() -> None:
    got: list[Message] = []
    correlator = CallCorrelator(other=got.append)
    assert correlator.feed(contact("Unreachable"), 1.0) == []
    assert [m.event for m in got] == ["ContactStatus"]


def test_getvar_may_name_a_plain_dialplan_function() -> None:
    data = encode_action("Getvar", "a1", [("Variable", "PJSIP_AOR(carrier,contact)")])
    assert b"Variable: PJSIP_AOR(carrier,contact)\r\n" in data
    contact_id = "carrier@@326a21c57cbb5a8669fc29923e379d94"
    encode_action("Getvar", "a2", [("Variable", f"PJSIP_CONTACT({contact_id},status)")])


@pytest.mark.parametrize(
    ("action", "value"),
    [
        ("Getvar", "SHELL(rm -rf /)"),
        ("Getvar", "SHELL(reboot)"),
        ("Getvar", "CURL(evil.example)"),
        ("Getvar", "PJSIP_AOR(a,contact)=x"),
        ("Getvar", "X(a)\r\nAction: Command"),
        ("Getvar", "PJSIP_AOR(a,b,c)"),
        ("Getvar", "plain"),
        ("Originate", "PJSIP_AOR(carrier,contact)"),
    ],
)
def test_other_variable_fields_stay_reserved(action: str, value: str) -> None:
    with pytest.raises(UnsafeValue, match="reserved"):
        encode_action(action, "x", [("Variable", value)])
    # and an accepted Getvar does not open the fast path to others
    encode_action("Getvar", "y", [("Variable", "PJSIP_AOR(carrier,contact)")])
    with pytest.raises(UnsafeValue, match="reserved"):
        encode_action("Originate", "z", {"Variable": "PJSIP_AOR(carrier,contact)"})
