"""The AMI codec: framing on bytes, decoding after framing, bounded buffer, safe encoding."""

from __future__ import annotations

import pytest

from dialer.errors import PbxProtocolError, UnsafeValue, ValidationError
from dialer.pbx.ami.codec import (
    MAX_ACTION_HEADERS,
    MAX_LINE_BYTES,
    AmiCodec,
    Banner,
    Message,
    encode_action,
)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
# The answer of Asterisk 22 to an Async Originate, then the start of the call (TESTBED.md).
ORIGINATE_ACK = (
    b"Response: Success\r\nActionID: a1\r\nMessage: Originate successfully queued\r\n\r\n"
)
NEWSTATE = (
    b"Event: Newstate\r\nPrivilege: call,all\r\nChannel: PJSIP/carrier-00000001\r\n"
    b"ChannelState: 5\r\nChannelStateDesc: Ringing\r\nCallerIDNum: 33612345678\r\n"
    b"CallerIDName: M\xc3\xbcller\r\nAccountCode: \r\nUniqueid: 1700000000.1\r\n\r\n"
)


def messages(items: list[Banner | Message]) -> list[Message]:
    return [item for item in items if isinstance(item, Message)]


def parse_one(data: bytes) -> Message:
    """The single message of ``data`` (no banner)."""
    (message,) = messages(AmiCodec(expect_banner=False).receive_data(data))
    return message


def test_banner_then_messages_in_one_chunk() -> None:
    items = AmiCodec().receive_data(BANNER + ORIGINATE_ACK + NEWSTATE)

    assert items[0] == Banner("Asterisk Call Manager/11.0.0")
    first, second = messages(items)
    assert first.is_response
    assert not first.is_event
    assert first.response == "Success"
    assert first.action_id == "a1"
    assert first["Message"] == "Originate successfully queued"
    assert second.event == "Newstate"
    assert second.is_event
    assert not second.is_response
    assert second.get("callerIDname") == "Müller"
    assert second.get("AccountCode") == ""  # an empty value is a value


def test_banner_split_across_reads() -> None:
    codec = AmiCodec()
    assert codec.receive_data(b"Asterisk Call Man") == []
    assert codec.receive_data(b"ager/11.0.0\r") == []
    assert codec.receive_data(b"\n") == [Banner("Asterisk Call Manager/11.0.0")]


def test_without_banner_first_line_is_a_header() -> None:
    message = parse_one(ORIGINATE_ACK)
    assert message.response == "Success"


def test_many_frames_per_chunk_keep_order() -> None:
    codec = AmiCodec()
    codec.receive_data(BANNER)
    data = b"".join(b"Event: Test\r\nSeq: %d\r\n\r\n" % i for i in range(50))
    assert [m["Seq"] for m in messages(codec.receive_data(data))] == [str(i) for i in range(50)]


def test_a_frame_split_at_every_byte() -> None:
    whole = messages(AmiCodec().receive_data(BANNER + ORIGINATE_ACK + NEWSTATE))
    data = BANNER + ORIGINATE_ACK + NEWSTATE
    for cut in range(1, len(data)):
        codec = AmiCodec()
        items = codec.receive_data(data[:cut]) + codec.receive_data(data[cut:])
        assert messages(items) == whole, cut
        assert codec.buffered == 0


def test_byte_at_a_time() -> None:
    codec = AmiCodec()
    items: list[Banner | Message] = []
    for byte in BANNER + NEWSTATE + ORIGINATE_ACK:
        items += codec.receive_data(bytes([byte]))
    assert [type(i).__name__ for i in items] == ["Banner", "Message", "Message"]
    assert messages(items)[0]["CallerIDName"] == "Müller"


def test_utf8_split_inside_a_character_is_intact() -> None:
    codec = AmiCodec()
    frame = "Event: Hangup\r\nCallerIDName: Müller Zoë 日本\r\n\r\n".encode()
    cut = frame.index(b"\xc3") + 1  # between the two bytes of "ü"
    assert codec.receive_data(BANNER + frame[:cut]) == [Banner("Asterisk Call Manager/11.0.0")]
    (message,) = messages(codec.receive_data(frame[cut:]))
    assert message["CallerIDName"] == "Müller Zoë 日本"


def test_invalid_utf8_is_replaced_never_raised() -> None:
    message = parse_one(b"Event: X\r\nName: a\xff\xc3b\r\nCut: \xe6\x97\r\n\r\n")
    assert message["Name"] == "a\ufffd\ufffdb"
    assert message["Cut"] == "\ufffd"
    message["Name"].encode("utf-8")  # always valid text downstream


def test_repeated_headers_are_kept_in_order() -> None:
    frame = (
        b"Event: Hangup\r\nChanVariable: A=1\r\nUniqueid: 1.1\r\nChanVariable: B=x=y\r\n"
        b"chanvariable: C=\r\n\r\n"
    )
    message = parse_one(frame)
    assert message.get_all("ChanVariable") == ["A=1", "B=x=y", "C="]
    assert message.get("CHANVARIABLE") == "A=1"
    assert message.headers[2] == ("Uniqueid", "1.1")
    assert message.get_all("Missing") == []


def test_get_prefers_the_exact_spelling_then_any_case() -> None:
    message = Message((("uniqueid", "lower"), ("Uniqueid", "exact"), ("UNIQUEID", "upper")))
    assert message.get("Uniqueid") == "exact"
    assert message.get("UNIQUEID") == "upper"
    assert message.get("UniqueID") == "lower"  # no exact match: the first of any case
    assert message.get("Unique") is None
    assert message.get_all("uniqueID") == ["lower", "exact", "upper"]


def test_get_default_getitem_contains() -> None:
    message = Message((("Event", "X"),))
    assert message.get("Nope") is None
    assert message.get("Nope", "d") == "d"
    assert "event" in message
    assert "Nope" not in message
    assert message.response is None
    assert message.action_id is None
    with pytest.raises(KeyError):
        message["Nope"]


def test_exactly_one_space_after_the_colon_is_removed() -> None:
    frame = b"Response: Success\r\nOutput:   indented  \r\nTight:value\r\nColon: a: b\r\n\r\n"
    message = parse_one(frame)
    assert message.get("Output") == "  indented  "
    assert message.get("Tight") == "value"
    assert message.get("Colon") == "a: b"


def test_command_output_headers_of_asterisk_22() -> None:
    frame = (
        b"Response: Success\r\nActionID: c1\r\nMessage: Command output follows\r\n"
        b"Output: Channel              Location             State   Application(Data)\r\n"
        b"Output: 0 active channels\r\nOutput: \r\n\r\n"
    )
    message = parse_one(frame)
    assert message.get_all("Output")[1:] == ["0 active channels", ""]


def test_legacy_follows_response_lines_become_output() -> None:
    frame = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: c2\r\n"
        b"Channel (Context Extension Pri ) State Appl.\n0 active channels\n"
        b"1 of 10 max\n--END COMMAND--\r\n\r\n"
    )
    message = parse_one(frame)
    assert message.action_id == "c2"
    assert message.get_all("Output") == [
        "Channel (Context Extension Pri ) State Appl.",
        "0 active channels",
        "1 of 10 max",
    ]


def test_blank_lines_between_frames_are_ignored() -> None:
    codec = AmiCodec()
    items = codec.receive_data(BANNER + b"\r\n\r\n" + NEWSTATE + b"\r\n" + ORIGINATE_ACK)
    assert [m.event or m.response for m in messages(items)] == ["Newstate", "Success"]


def test_line_without_colon_is_a_protocol_error_and_breaks_the_codec() -> None:
    codec = AmiCodec()
    with pytest.raises(PbxProtocolError, match="not 'Key: value'"):
        codec.receive_data(BANNER + b"Event: X\r\ngarbage line\r\n\r\n")
    with pytest.raises(PbxProtocolError, match="already failed"):
        codec.receive_data(ORIGINATE_ACK)


def test_empty_key_is_a_protocol_error() -> None:
    with pytest.raises(PbxProtocolError):
        AmiCodec(expect_banner=False).receive_data(b"Event: X\r\n: value\r\n\r\n")


def test_empty_banner_is_a_protocol_error() -> None:
    with pytest.raises(PbxProtocolError, match="banner"):
        AmiCodec().receive_data(b"\r\n")


def test_unterminated_data_over_the_bound_raises() -> None:
    codec = AmiCodec(max_message_size=1024)
    codec.receive_data(BANNER)
    codec.receive_data(b"Event: X\r\nData: " + b"a" * 1000)  # 1016 bytes
    codec.receive_data(b"a" * 8)  # 1024 bytes: still fine
    with pytest.raises(PbxProtocolError, match="without a complete"):
        codec.receive_data(b"a")


def test_banner_without_line_end_over_the_bound_raises() -> None:
    with pytest.raises(PbxProtocolError):
        AmiCodec(max_message_size=1024).receive_data(b"A" * 1025)


def test_banner_over_the_bound_raises_even_when_complete() -> None:
    assert AmiCodec(max_message_size=1024).receive_data(b"A" * 1022 + b"\r\n")
    with pytest.raises(PbxProtocolError, match="banner"):
        AmiCodec(max_message_size=1024).receive_data(b"A" * 1023 + b"\r\n")


def test_frame_size_limit_does_not_depend_on_chunking() -> None:
    frame = b"Event: X\r\nData: " + b"a" * (1024 - 20) + b"\r\n\r\n"
    assert len(frame) == 1024
    assert len(AmiCodec(1024, expect_banner=False).receive_data(frame)) == 1
    big = frame[:-4] + b"b\r\n\r\n"  # 1025 bytes in one chunk
    with pytest.raises(PbxProtocolError, match="exceeds"):
        AmiCodec(1024, expect_banner=False).receive_data(big)
    codec = AmiCodec(1024, expect_banner=False)
    for byte in big[:1024]:
        codec.receive_data(bytes([byte]))
    with pytest.raises(PbxProtocolError):
        codec.receive_data(big[1024:])


def test_empty_data_is_a_no_op() -> None:
    codec = AmiCodec()
    assert codec.receive_data(b"") == []
    assert codec.receive_data(BANNER) == [Banner("Asterisk Call Manager/11.0.0")]


# -- encoding ------------------------------------------------------------------------------


def test_encode_action_exact_bytes() -> None:
    data = encode_action(
        "Originate",
        "dialer-1",
        [("Channel", "PJSIP/0612345678@carrier"), ("Context", "dialer"), ("Async", "true")],
        {"DIALER_CALL_ID": "c-42", "CALLERID(num)": "0033"},
    )
    assert data == (
        b"Action: Originate\r\nActionID: dialer-1\r\n"
        b"Channel: PJSIP/0612345678@carrier\r\nContext: dialer\r\nAsync: true\r\n"
        b"Variable: DIALER_CALL_ID=c-42\r\nVariable: CALLERID(num)=0033\r\n\r\n"
    )


def test_encode_accepts_mapping_and_utf8() -> None:
    data = encode_action("Setvar", "x", {"Variable_Name": "ignored"} | {"Value": "Zoë"})
    assert data.endswith("Value: Zoë\r\n\r\n".encode())


def test_variable_values_are_escaped_for_asterisk_argument_parsing() -> None:
    data = encode_action("Originate", "x", variables={"NAME": 'Smith, John "JJ" (a\\b) [c]'})
    assert b'Variable: NAME=Smith\\, John \\"JJ\\" \\(a\\\\b\\) \\[c\\]\r\n' in data


HOSTILE = [
    "x\r\nAction: Command\r\nCommand: core stop now",
    "\r\nAction: Command\r\nCommand: core stop now",
    "line\nbreak",
    "carriage\rreturn",
    "nul\x00byte",
    "escape\x1b[31m",
    "del\x7f",
    "\x0b",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_field_values_are_refused(value: str) -> None:
    with pytest.raises(UnsafeValue, match="Exten") as caught:
        encode_action("Originate", "x", [("Channel", "PJSIP/1"), ("Exten", value)])
    text = str(caught.value)
    assert "\r" not in text
    assert "\n" not in text
    assert "\x00" not in text


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_variable_values_are_refused(value: str) -> None:
    with pytest.raises(UnsafeValue, match="variable NAME"):
        encode_action("Originate", "x", variables={"NAME": value})


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_action_id_is_refused(value: str) -> None:
    with pytest.raises(UnsafeValue, match="ActionID"):
        encode_action("Ping", value)


def test_tab_is_allowed_in_values() -> None:
    assert b"Data: a\tb\r\n" in encode_action("UserEvent", "x", [("Data", "a\tb")])


def test_error_message_truncates_the_hostile_value() -> None:
    value = "a" * 5000 + "\r\n"
    with pytest.raises(UnsafeValue) as caught:
        encode_action("Ping", "x", [("Data", value)])
    assert len(str(caught.value)) < 200
    assert isinstance(caught.value, ValidationError)


def test_over_long_line_is_refused() -> None:
    room = MAX_LINE_BYTES - len("Data: ")
    assert encode_action("UserEvent", "x", [("Data", "a" * room)])
    with pytest.raises(UnsafeValue, match="bytes"):
        encode_action("UserEvent", "x", [("Data", "a" * (room + 1))])
    with pytest.raises(UnsafeValue, match="bytes"):  # the limit is in UTF-8 bytes
        encode_action("UserEvent", "x", [("Data", "é" * (room // 2 + 1))])


def test_too_many_lines_are_refused() -> None:
    fields = [(f"F{i}", "v") for i in range(MAX_ACTION_HEADERS - 2)]
    assert encode_action("UserEvent", "x", fields)
    with pytest.raises(UnsafeValue, match="lines"):
        encode_action("UserEvent", "x", [*fields, ("One", "more")])


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(UnsafeValue, match="not valid text"):
        encode_action("UserEvent", "x", [("Data", "bad \udcff")])
    with pytest.raises(UnsafeValue, match="not valid text"):
        encode_action("UserEvent", "x", variables={"V": "\ud800"})


@pytest.mark.parametrize("value", [3, None, b"bytes", 1.5])
def test_non_str_values_are_refused(value: object) -> None:
    with pytest.raises(UnsafeValue, match="not a str"):
        encode_action("UserEvent", "x", [("Data", value)])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "key",
    ["", "Bad Key", "Bad:Key", "Key\r\nAction: Command", "Tab\tKey", "ünïcode", "a=b", "K\x00"],
)
def test_field_names_are_validated(key: str) -> None:
    with pytest.raises(UnsafeValue, match="field name"):
        encode_action("UserEvent", "x", [(key, "v")])


@pytest.mark.parametrize("key", ["Action", "actionid", "ACTIONID", "Variable"])
def test_reserved_field_names_are_refused(key: str) -> None:
    with pytest.raises(UnsafeValue, match="reserved"):
        encode_action("UserEvent", "x", [(key, "v")])


@pytest.mark.parametrize("name", ["", "Core Stop", "Ping\r\nAction: Command", "Ping:"])
def test_action_names_are_validated(name: str) -> None:
    with pytest.raises(UnsafeValue, match="action name"):
        encode_action(name, "x")


@pytest.mark.parametrize(
    "name", ["X", "_X", "__INHERITED", "lower_9", "CALLERID(num)", "CDR(userfield)", "FUNC()"]
)
def test_valid_variable_names(name: str) -> None:
    assert f"Variable: {name}=v\r\n".encode() in encode_action(
        "Originate", "x", variables={name: "v"}
    )


@pytest.mark.parametrize(
    "name",
    ["", "9X", "A-B", "A=B", "A B", "A,B", "callerid(num)", "F(a,b)", "F(a", "SHELL(rm -rf)"],
)
def test_invalid_variable_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeValue, match="variable name"):
        encode_action("Originate", "x", variables={name: "v"})


def test_malformed_field_pairs_are_refused() -> None:
    with pytest.raises(UnsafeValue, match="pair"):
        encode_action("UserEvent", "x", [("only-one",)])  # type: ignore[list-item]


def test_an_event_with_a_response_header_is_an_event() -> None:
    message = parse_one(
        b"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: a1\r\n"
        b"Response: Success\r\nChannel: PJSIP/carrier-00000001\r\nReason: 4\r\n\r\n"
    )
    assert message.is_event
    assert not message.is_response
    assert message.response == "Success"
