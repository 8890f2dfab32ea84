"""The ESL codec against recorded transcripts (tests/data/esl) and hand-made edge cases.

No real FreeSWITCH was used: the transcripts were recorded by other projects (sources in each
file's header) or quoted from FreeSWITCH's source.
"""

from __future__ import annotations

import json

import pytest

from dialer.errors import PbxProtocolError, UnsafeValue, ValidationError
from dialer.pbx.esl.codec import (
    MAX_COMMAND_BYTES,
    EslCodec,
    EslEvent,
    EslMessage,
    encode_command,
    parse_event_json,
    parse_event_plain,
)
from tests.unit.esl_transcripts import all_transcripts, transcript

Item = EslMessage | EslEvent


def parse_whole(data: bytes) -> list[Item]:
    codec = EslCodec()
    items = codec.receive_data(data)
    assert codec.buffered == 0
    return items


def parse_bytewise(data: bytes) -> list[Item]:
    codec = EslCodec()
    items: list[Item] = []
    for index in range(len(data)):
        items += codec.receive_data(data[index : index + 1])
    assert codec.buffered == 0
    return items


@pytest.mark.parametrize("name", all_transcripts())
def test_every_transcript_parses_the_same_whole_and_byte_by_byte(name: str) -> None:
    wire = transcript(name)
    whole = parse_whole(wire)
    assert whole
    assert parse_bytewise(wire) == whole


def test_recorded_session_around_a_failed_bgapi_originate() -> None:
    greeting, accepted, subscribed, job_reply, job = parse_whole(
        transcript("neventsocket_bgapi_originate_failure.txt")
    )
    assert isinstance(greeting, EslMessage)
    assert greeting.content_type == "auth/request"
    assert not greeting.is_reply
    assert isinstance(accepted, EslMessage)
    assert accepted.is_reply
    assert accepted.reply_text == "+OK accepted"
    assert isinstance(subscribed, EslMessage)
    assert subscribed.reply_text == "+OK event listener enabled plain"
    assert isinstance(job_reply, EslMessage)
    assert job_reply.reply_text == "+OK Job-UUID: 43e14ab9-38b1-4187-9f08-e13f35136bb2"
    assert job_reply.job_uuid == "43e14ab9-38b1-4187-9f08-e13f35136bb2"
    assert isinstance(job, EslEvent)
    assert job.name == "BACKGROUND_JOB"
    assert job.job_uuid == job_reply.job_uuid
    assert job.body == "-ERR RECOVERY_ON_TIMER_EXPIRE\n"
    assert job["Job-Command"] == "originate"
    # URL-decoded: %40 @, %3A :, %20 space, %26 &, %5C backslash
    assert job["Job-Command-Arg"] == (
        "sofia/external/1000@10.10.10.108:5070 &playback(C:\\\\temp\\\\"
        "misc-freeswitch_is_state_of_the_art.wav"
    )
    assert job["FreeSWITCH-IPv6"] == "2001:0:5ef5:79fd:815:1a92:3f57:fff9"
    assert job["Event-Date-GMT"] == "Thu, 06 Jun 2013 16:24:02 GMT"
    assert job.get("event-name") == "BACKGROUND_JOB"  # case-insensitive


def test_get_prefers_the_exact_spelling_then_any_case() -> None:
    event = EslEvent((("unique-id", "lower"), ("Unique-ID", "exact"), ("UNIQUE-ID", "upper")))
    assert event.unique_id == "exact"
    assert event.get("UNIQUE-ID") == "upper"
    assert event.get("Unique-Id") == "lower"  # no exact match: the first of any case
    assert event.get("Unique") is None
    assert "unique-ID" in event


def test_recorded_outbound_session_tail() -> None:
    event, bye, notice = parse_whole(transcript("neventsocket_outbound_session_tail.txt"))
    assert isinstance(event, EslEvent)
    assert event.name == "CHANNEL_EXECUTE_COMPLETE"
    assert event.unique_id == "78b86350-4fb8-4d2b-a629-1eeafd7d2f74"
    assert event["Hangup-Cause"] == "NORMAL_CLEARING"
    assert event["Answer-State"] == "hangup"
    assert event["variable_sip_term_status"] == "200"
    assert event["Caller-Caller-ID-Name"] == "Dan X-Lite"
    assert event["Application-Data"] == "127.0.0.1:8084 async full"
    assert (
        event["variable_ringback"]
        == "tone_stream://%(400,200,400,450);%(400,2000,400,450);loops=-1"
    )
    assert event["variable_switch_r_sdp"].startswith("v=0\r\no=- 13065030757513622 1 IN IP4")
    assert event.body == ""
    assert isinstance(bye, EslMessage)
    assert bye.reply_text == "+OK bye"
    assert isinstance(notice, EslMessage)
    assert notice.content_type == "text/disconnect-notice"
    assert notice.get("Controlled-Session-UUID") == event.unique_id
    assert notice.body == "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def test_recorded_channel_hangup_complete() -> None:
    (event,) = parse_whole(transcript("cgrates_channel_hangup_complete.txt"))
    assert isinstance(event, EslEvent)
    assert event.name == "CHANNEL_HANGUP_COMPLETE"
    assert [v for k, v in event.headers if k == "Hangup-Cause"] == ["NORMAL_CLEARING"] * 2
    assert event["variable_hangup_cause_q850"] == "16"
    assert event["variable_sip_term_status"] == "200"
    assert event["variable_answer_epoch"] == "1436280728"
    assert event["variable_execute_on_answer"] == "sched_hangup +3120 alloted_timeout"
    assert event["variable_caller_id"] == '"1001" <1001>'
    assert event["variable_cgr_reqtype"] == "*prepaid"
    assert event["FreeSWITCH-IPv6"] == "::1"


def test_recorded_show_channels_as_json() -> None:
    (response,) = parse_whole(transcript("webitel_show_channels_json.txt"))
    assert isinstance(response, EslMessage)
    assert response.content_type == "api/response"
    assert response.is_reply
    data = json.loads(response.body)
    assert data["row_count"] == 1
    assert data["rows"][0]["callstate"] == "ACTIVE"


def test_recorded_json_heartbeat() -> None:
    subscribed, heartbeat = parse_whole(transcript("gist_heartbeat_event_json.txt"))
    assert isinstance(subscribed, EslMessage)
    assert subscribed.reply_text == "+OK event listener enabled json"
    assert isinstance(heartbeat, EslEvent)
    assert heartbeat.name == "HEARTBEAT"
    assert heartbeat["FreeSWITCH-IPv6"] == "::1"  # JSON values are not URL-encoded
    assert heartbeat["Event-Info"] == "System Ready"
    assert heartbeat.body == ""


def test_frames_quoted_from_the_freeswitch_source() -> None:
    greeting, refused, rude, notice = parse_whole(transcript("freeswitch_source_frames.txt"))
    assert isinstance(greeting, EslMessage)
    assert greeting.content_type == "auth/request"
    assert isinstance(refused, EslMessage)
    assert refused.reply_text == "-ERR invalid"
    assert isinstance(rude, EslMessage)
    assert rude.content_type == "text/rude-rejection"
    assert rude.body == "Access Denied, go away.\n"
    assert isinstance(notice, EslMessage)
    assert notice.content_type == "text/disconnect-notice"
    assert len(notice.body) == 67


def test_json_event_with_body_and_array_header() -> None:
    body = json.dumps(
        {
            "Event-Name": "BACKGROUND_JOB",
            "Job-UUID": "j1",
            "variable_DP_MATCH": ["3", "3"],
            "Event-Sequence": 534,
            "Content-Length": "14",
            "_body": "+OK dlr-1234\n",
        }
    ).encode()
    event = parse_event_json(body)
    assert event.name == "BACKGROUND_JOB"
    assert event.body == "+OK dlr-1234\n"
    assert event["variable_DP_MATCH"] == "ARRAY::3|:3"
    assert event["Event-Sequence"] == "534"
    assert "_body" not in event


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"Event-Name": {"nested": "x"}}',
        b'{"Event-Name": true}',
        b'{"_body": 3}',
        b"[" * 100000,
        b'{"a": 1' + b"0" * 5000 + b"}",
    ],
)
def test_bad_json_events_are_protocol_errors(body: bytes) -> None:
    with pytest.raises(PbxProtocolError):
        parse_event_json(body)


def test_plain_event_with_body_and_its_content_length() -> None:
    event = parse_event_plain(
        b"Event-Name: BACKGROUND_JOB\nJob-UUID: j\nContent-Length: 6\n\n+OK x\nleft over"
    )
    assert event.body == "+OK x\n"
    with pytest.raises(PbxProtocolError):
        parse_event_plain(b"Event-Name: X\nContent-Length: 60\n\nshort")
    with pytest.raises(PbxProtocolError):
        parse_event_plain(b"Event-Name: X\nContent-Length: six\n\nshort")
    with pytest.raises(PbxProtocolError):
        parse_event_plain(b"Event-Name: X\nno colon here\n\n")


def test_url_decoding_keeps_malformed_escapes_and_replaces_bad_utf8() -> None:
    event = parse_event_plain(b"A: 100%25%20sure\nB: 50%\nC: %C3%BC%FF\nD: \xff\n\n")
    assert event["A"] == "100% sure"
    assert event["B"] == "50%"
    assert event["C"] == "\u00fc\ufffd"
    assert event["D"] == "\ufffd"


def test_blank_lines_between_messages_and_cr_are_tolerated() -> None:
    data = b"\n\nContent-Type: command/reply\r\nReply-Text: +OK\n\n\n"
    (item,) = EslCodec().receive_data(data)
    assert isinstance(item, EslMessage)
    assert item.reply_text == "+OK"


def test_unknown_content_types_are_messages() -> None:
    data = b"Content-Type: text/event-xml\nContent-Length: 9\n\n<event/>\n"
    (item,) = EslCodec().receive_data(data)
    assert item == EslMessage("text/event-xml", item.headers, "<event/>\n")


@pytest.mark.parametrize(
    "data",
    [
        b"Content-Type: api/response\nContent-Length: x1\n\n",
        b"Content-Type: api/response\nContent-Length: -1\n\n",
        b"Content-Type: api/response\nContent-Length: 9999999999999\n\n",
        b"Content-Type: api/response\nno colon\n\n",
        b": empty name\n\n",
        b"Content-Length: 5\nContent-Type: text/event-plain\n\nnope\n",
        b"Content-Length: 4\nContent-Type: text/event-json\n\n[1]\n",
    ],
)
def test_malformed_messages_are_protocol_errors(data: bytes) -> None:
    codec = EslCodec()
    with pytest.raises(PbxProtocolError):
        codec.receive_data(data)
    with pytest.raises(PbxProtocolError, match="already failed"):
        codec.receive_data(b"Content-Type: auth/request\n\n")


def test_buffer_is_bounded_for_headers_and_bodies() -> None:
    codec = EslCodec(max_message_size=100, max_header_size=64)
    assert codec.receive_data(b"X: " + b"a" * 61) == []
    with pytest.raises(PbxProtocolError, match="header block"):
        codec.receive_data(b"a")
    codec = EslCodec(max_message_size=100, max_header_size=64)
    with pytest.raises(PbxProtocolError, match="exceeds 100"):
        codec.receive_data(b"Content-Type: api/response\nContent-Length: 101\n\n")
    codec = EslCodec(max_message_size=100, max_header_size=64)
    (item,) = codec.receive_data(
        b"Content-Type: api/response\nContent-Length: 100\n\n" + b"x" * 100
    )
    assert isinstance(item, EslMessage)
    assert item.body == "x" * 100


def test_body_split_across_reads_keeps_utf8() -> None:
    body = "Müller".encode()
    data = b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body
    codec = EslCodec()
    assert codec.receive_data(data[:-4]) == []
    (item,) = codec.receive_data(data[-4:])
    assert isinstance(item, EslMessage)
    assert item.body == "Müller"


def test_encode_command_bytes() -> None:
    assert encode_command("auth", "ClueCon") == b"auth ClueCon\n\n"
    assert encode_command("api", "show channels as json") == b"api show channels as json\n\n"
    assert encode_command("bgapi", "originate {a=1}x &park()", headers={"Job-UUID": "j-1"}) == (
        b"bgapi originate {a=1}x &park()\nJob-UUID: j-1\n\n"
    )
    assert encode_command("event", "plain", "CUSTOM", "avmd::beep") == (
        b"event plain CUSTOM avmd::beep\n\n"
    )
    assert encode_command("api", "echo M\u00fcller\tx") == "api echo M\u00fcller\tx\n\n".encode()


@pytest.mark.parametrize(
    ("args", "headers"),
    [
        (("a\nb",), ()),
        (("a\rb",), ()),
        (("a\x00b",), ()),
        (("a\x1bb",), ()),
        (("a\x7fb",), ()),
        (("ok",), (("Job-UUID", "x\ny"),)),
        (("ok",), (("Job-UUID", "x\r"),)),
        (("ok",), (("Bad Name", "x"),)),
        (("ok",), (("Bad:Name", "x"),)),
        (("ok",), (("", "x"),)),
        (("\ud800",), ()),
        ((3,), ()),
        (("x" * MAX_COMMAND_BYTES,), ()),
    ],
)
def test_encode_command_refuses_what_would_break_framing(
    args: tuple[object, ...], headers: tuple[tuple[str, str], ...]
) -> None:
    with pytest.raises(UnsafeValue) as caught:
        encode_command("api", *args, headers=headers)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValidationError)  # UnsafeValue is a ValidationError too


@pytest.mark.parametrize("command", ["", "API", "api show", "api\n", "bg-api", 7])
def test_encode_command_refuses_bad_command_words(command: object) -> None:
    with pytest.raises(UnsafeValue):
        encode_command(command)  # type: ignore[arg-type]


def test_encode_command_refuses_malformed_header_pairs() -> None:
    with pytest.raises(UnsafeValue):
        encode_command("api", "x", headers=[("a", "b", "c")])  # type: ignore[list-item]
