"""Contact data on its way to the PBX: escaped, reduced, and then still checked by the codec."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dialer.pbx.ami.codec import AmiCodec, Message, encode_action
from dialer.pbx.sanitize import MAX_VALUE_BYTES, channel_variables, safe_name, safe_value

INJECTION = "Müller\r\nAction: Command\r\nCommand: core stop now\r\n\r\n"


def test_injection_attempt_becomes_a_harmless_value():
    value = safe_value(INJECTION)
    assert "\r" not in value
    assert "\n" not in value
    assert value.startswith("Müller")


def test_names_are_reduced_to_a_safe_alphabet():
    assert safe_name("first name") == "first_name"
    assert safe_name("1st") == "_1st"
    assert safe_name("\r\n") is None
    assert channel_variables({"x\r\nAction": "v", "": "dropped"}) == {"DIALER_VAR_x__Action": "v"}


def test_long_values_are_cut_on_a_character_boundary():
    value = safe_value("é" * 1000)
    assert len(value.encode()) <= MAX_VALUE_BYTES
    assert value == "é" * (MAX_VALUE_BYTES // 2)


@given(st.dictionaries(st.text(max_size=30), st.text(max_size=600), max_size=5))
def test_any_contact_variables_encode_into_exactly_one_action(variables):
    safe = channel_variables(variables)
    wire = encode_action("Originate", "a1", {"Channel": "PJSIP/1@carrier"}, variables=safe)
    codec = AmiCodec(expect_banner=False)
    (msg,) = codec.receive_data(wire)
    assert isinstance(msg, Message)
    assert msg.get("Action") == "Originate"
    assert len(msg.get_all("Variable")) == len(safe)
