"""Property tests of the ESL codec (the h11 fuzz idea, with Hypothesis).

* Any bytes, whole or one byte at a time: only PbxProtocolError escapes, and the chunking never
  changes the verdict or the messages.
* Messages written the way mod_event_socket writes them (tests/unit/esl_fake.py, independent of
  the codec), in any chunking, come back exactly.
* encode_command with any text either refuses (UnsafeValue) or writes bytes that FreeSWITCH's
  read_packet reads as exactly one command with exactly the given line and headers.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.errors import PbxProtocolError, UnsafeValue
from dialer.pbx.esl.codec import EslCodec, EslEvent, EslMessage, _lookup, encode_command
from tests.unit.esl_fake import _read_packets, serialize_json, serialize_plain
from tests.unit.esl_transcripts import all_transcripts, transcript

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = 512
Item = EslMessage | EslEvent

PROTOCOL_BITS = [
    b"\n",
    b"\n\n",
    b"\r",
    b"\r\n",
    b":",
    b": ",
    b"Content-Length: 5",
    b"Content-Length: 0",
    b"Content-Length: x",
    b"Content-Type: text/event-plain",
    b"Content-Type: text/event-json",
    b"Content-Type: command/reply",
    b"Content-Type: api/response",
    b"Reply-Text: +OK",
    b"Event-Name: CHANNEL_ANSWER",
    b"%20",
    b"%",
    b'{"Event-Name":"X"}',
    b"{",
    "Müller".encode(),
    b"\xc3",
    b"\xff",
    b"\x00",
]
wire_bytes = st.lists(
    st.one_of(st.binary(max_size=40), st.sampled_from(PROTOCOL_BITS)), max_size=40
).map(b"".join)


def feed(data: bytes, sizes: list[int] | None = None) -> tuple[list[Item], bool]:
    """Items and whether PbxProtocolError ended it; ``sizes`` None = one byte at a time."""
    codec = EslCodec(max_message_size=SMALL, max_header_size=SMALL)
    items: list[Item] = []
    pos = 0
    chunks = iter(sizes) if sizes is not None else None
    while pos < len(data):
        size = next(chunks, len(data)) if chunks is not None else 1
        try:
            items += codec.receive_data(data[pos : pos + max(size, 1)])
        except PbxProtocolError:
            return items, True
        pos += max(size, 1)
    return items, False


@FUZZ
@given(data=wire_bytes)
def test_arbitrary_bytes_whole_and_bytewise_agree(data: bytes) -> None:
    codec = EslCodec(max_message_size=SMALL, max_header_size=SMALL)
    try:
        whole, whole_failed = codec.receive_data(data), False
    except PbxProtocolError:
        whole, whole_failed = [], True
    bytewise, bytewise_failed = feed(data)
    assert whole_failed == bytewise_failed
    if not whole_failed:
        assert bytewise == whole


@FUZZ
@given(prefix=st.binary(max_size=200), name=st.sampled_from(all_transcripts()))
def test_garbage_before_a_real_transcript_never_raises_anything_else(
    prefix: bytes, name: str
) -> None:
    codec = EslCodec()
    try:
        codec.receive_data(prefix + transcript(name))
    except PbxProtocolError:
        pass


# -- round trip -----------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z][A-Za-z0-9_\-]{0,20}", fullmatch=True).filter(
    lambda n: n.lower() not in ("content-length", "content-type", "_body")
)
values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
bodies = st.text(st.characters(codec="utf-8"), max_size=60)


@st.composite
def server_frames(draw: st.DrawFn) -> tuple[bytes, Item]:
    kind = draw(st.sampled_from(["reply", "api", "plain", "json", "notice"]))
    if kind == "reply":
        text = draw(st.from_regex(r"[+\-][A-Za-z0-9 :.\-]{0,30}", fullmatch=True))
        raw = f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()
        headers = (("Content-Type", "command/reply"), ("Reply-Text", text))
        return raw, EslMessage("command/reply", headers, "")
    if kind in ("api", "notice"):
        ctype = "api/response" if kind == "api" else "text/disconnect-notice"
        body = draw(bodies)
        data = body.encode()
        raw = f"Content-Type: {ctype}\nContent-Length: {len(data)}\n\n".encode() + data
        headers = (("Content-Type", ctype), ("Content-Length", str(len(data))))
        return raw, EslMessage(ctype, headers, body if data else "")
    pairs = draw(st.lists(st.tuples(names, values), min_size=1, max_size=6))
    body = draw(bodies)
    if kind == "json":
        pairs = list(dict(pairs).items())  # JSON keys are unique
        text = serialize_json(pairs, body)
        expected = [*pairs, ("Content-Length", str(len(body.encode())))] if body else pairs
    else:
        text = serialize_plain(pairs, body)
        # an empty value travels as "_undef_" (switch_event_serialize)
        expected = [(k, v or "_undef_") for k, v in pairs]
        if body:
            expected.append(("Content-Length", str(len(body.encode()))))
    data = text.encode()
    envelope = f"Content-Length: {len(data)}\nContent-Type: text/event-{kind}\n\n".encode()
    return envelope + data, EslEvent(tuple(expected), body)


@FUZZ
@given(frames=st.lists(server_frames(), min_size=1, max_size=6), data=st.data())
def test_written_frames_come_back_in_any_chunking(
    frames: list[tuple[bytes, Item]], data: st.DataObject
) -> None:
    wire = b"".join(raw for raw, _ in frames)
    expected = [item for _, item in frames]
    sizes = data.draw(st.lists(st.integers(1, 64), max_size=len(wire)))
    codec = EslCodec()
    items: list[Item] = []
    pos = 0
    for size in [*sizes, len(wire)]:
        items += codec.receive_data(wire[pos : pos + size])
        pos += size
    assert items == expected
    assert codec.buffered == 0


def test_json_round_trip_keeps_unicode() -> None:
    pairs = [("Event-Name", "CUSTOM"), ("Caller-Caller-ID-Name", 'Müller, "Hans"')]
    text = serialize_json(pairs, "")
    data = text.encode()
    wire = f"Content-Length: {len(data)}\nContent-Type: text/event-json\n\n".encode() + data
    (event,) = EslCodec().receive_data(wire)
    assert isinstance(event, EslEvent)
    assert event["Caller-Caller-ID-Name"] == json.loads(text)["Caller-Caller-ID-Name"]


# -- hostile command arguments --------------------------------------------------------------

hostile = st.lists(
    st.one_of(
        st.characters(),
        st.sampled_from(["\n", "\r", "\x00", "\n\n", "\r\n", "api ", "exit", ":", " "]),
    ),
    max_size=20,
).map("".join)


@FUZZ
@given(args=st.lists(hostile, max_size=4), header_value=st.one_of(st.none(), hostile))
def test_hostile_arguments_never_make_a_second_command(
    args: list[str], header_value: str | None
) -> None:
    headers = [] if header_value is None else [("Job-UUID", header_value)]
    try:
        data = encode_command("bgapi", *args, headers=headers)
    except UnsafeValue:
        return
    packets = _read_packets(bytearray(data))
    assert len(packets) == 1  # exactly one command, nothing left over
    line, read_headers = packets[0]
    assert line == " ".join(["bgapi", *args]).rstrip("\r")
    assert "\r" not in line
    assert "\n" not in line
    assert "\x00" not in data.decode()
    if header_value is not None:
        assert read_headers == {"Job-UUID": header_value.lstrip(" ")}
    else:
        assert read_headers == {}


# -- header lookup --------------------------------------------------------------------------

# names that differ by case, that str.lower lengthens (İ), that it lowers by context (Σ), a LF
lookup_names = st.text(st.sampled_from("aAbBΣσςİi\n-_"), min_size=0, max_size=4)


@FUZZ
@given(
    pairs=st.lists(st.tuples(lookup_names, st.text(max_size=3)), max_size=8),
    wanted=st.lists(lookup_names, max_size=6),
)
def test_an_events_index_finds_what_a_scan_finds(
    pairs: list[tuple[str, str]], wanted: list[str]
) -> None:
    """EslEvent.get (dicts built once per event) answers as the linear scan: the exact
    spelling first, else the first header of any case; repeats: the first one."""
    headers = tuple(pairs)
    event = EslEvent(headers)
    for name in [*wanted, *(key for key, _ in headers), *(k.upper() for k, _ in headers)]:
        assert event.get(name) == _lookup(headers, name)
        assert (name in event) == (_lookup(headers, name) is not None)
