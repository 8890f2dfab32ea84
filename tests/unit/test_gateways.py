"""FreeSWITCH's own view of its gateways (dialer.pbx.freeswitch.gateways), from the
sofia::gateway_state events and ``sofia xmlstatus gateway`` outputs FreeSWITCH 1.10.12 gave on
the local stack (a gateway pinged every 5 s toward a port where a SIPp came and went)."""

from __future__ import annotations

from dialer.pbx.base import TrunkStatus
from dialer.pbx.esl.codec import EslEvent
from dialer.pbx.freeswitch.correlate import CallCorrelator
from dialer.pbx.freeswitch.gateways import GatewayView, parse_xmlstatus

GW = "carrier-dead-qualified"


def gateway_state(ping: str, status: str = "503", phrase: str = "Service Unavailable") -> EslEvent:
    return EslEvent(
        (
            ("Event-Subclass", "sofia::gateway_state"),
            ("Event-Name", "CUSTOM"),
            ("Event-Date-Timestamp", "1796575093071255"),
            ("Event-Sequence", "409"),
            ("Gateway", GW),
            ("State", "NOREG"),
            ("Ping-Status", ping),
            ("Phrase", phrase),
            ("Status", status),
        )
    )


def xmlstatus(status: str, name: str = GW) -> str:
    return f"""<?xml version="1.0" encoding="ISO-8859-1"?>
  <gateway>
    <name>{name}</name>
    <profile>dialer</profile>
    <proxy>sip:127.0.0.1:22459</proxy>
    <ping>1796575083</ping>
    <pingfreq>5</pingfreq>
    <pingmin>1</pingmin>
    <pingcount>0</pingcount>
    <pingmax>1</pingmax>
    <pinging>0</pinging>
    <state>NOREG</state>
    <status>{status}</status>
    <uptime-usec>8758707</uptime-usec>
  </gateway>
"""


DOWN = TrunkStatus(GW, False, "switch: gateway DOWN")
UP = TrunkStatus(GW, True, "switch: gateway UP")


def test_events_move_the_gateways_status() -> None:
    view = GatewayView()
    assert view.status(GW) is None
    assert view.feed(gateway_state("DOWN"))
    assert view.status(GW) == DOWN
    assert not view.feed(gateway_state("DOWN"))
    assert view.feed(gateway_state("UP", "200", "OK"))
    assert view.status(GW) == UP


def test_other_events_change_nothing() -> None:
    view = GatewayView()
    other = EslEvent((("Event-Name", "CUSTOM"), ("Event-Subclass", "sofia::register")))
    assert not view.feed(other)
    assert not view.feed(gateway_state("INVALID"))
    assert view.status(GW) is None


def test_xmlstatus() -> None:
    assert parse_xmlstatus(xmlstatus("DOWN")) == (GW, "DOWN")
    assert parse_xmlstatus("Invalid Gateway!\n") is None
    assert parse_xmlstatus("<profile><name>x</name><status>UP</status></profile>") is None
    view = GatewayView()
    assert view.load(xmlstatus("DOWN"))
    assert view.status(GW) == DOWN
    assert not view.load(xmlstatus("DOWN"))
    assert not view.load("-ERR no reply\n")
    assert view.load(xmlstatus("UP"))
    assert view.status(GW) == UP


def test_the_correlator_passes_custom_events_of_no_call_on() -> None:
    got: list[EslEvent] = []
    correlator = CallCorrelator(other=got.append)
    assert correlator.feed(gateway_state("DOWN"), 1.0) == []
    assert [e.subclass for e in got] == ["sofia::gateway_state"]
