"""Sans-IO codec for FreeSWITCH's Event Socket (mod_event_socket, "ESL"): bytes in, messages out.

Written from FreeSWITCH's source (``src/mod/event_handlers/mod_event_socket/mod_event_socket.c``,
``src/switch_event.c``) and tested against recorded transcripts (``tests/data/esl/``) and an
in-test fake server. **No real FreeSWITCH was used**: none can be installed on the machines this
was written on.

Server to client (what :class:`EslCodec` reads):

* A message is a block of ``Name: value`` lines, each ended by LF, the block ended by an empty
  line. When the block has ``Content-Length: N``, exactly N bytes of body follow.
* ``Content-Type`` says what it is: ``auth/request`` (the greeting), ``command/reply``
  (``Reply-Text: +OK ...`` / ``-ERR ...``; the reply to ``bgapi`` also has ``Job-UUID``),
  ``api/response`` (the output of ``api`` as body), ``text/event-plain`` / ``text/event-json``
  (one event as body), ``text/disconnect-notice``, ``text/rude-rejection`` (refused by the
  ACL), ``log/data``.
* A ``text/event-plain`` body is ``switch_event_serialize()``: ``Name: value`` lines with
  URL-encoded values, an empty line, and, when the event has a body (a ``BACKGROUND_JOB``'s
  result), a ``Content-Length`` among the headers and the body after the empty line. Values are
  URL-decoded here. A ``text/event-json`` body is one JSON object of string values (a
  multi-value header is an array; it is joined back into FreeSWITCH's ``ARRAY::a|:b`` form)
  with the event body under ``_body``.

Framing is done on bytes; text is decoded only from complete frames (``errors="replace"``, so
a bad byte never raises). The unparsed buffer is bounded: a header block longer than
``max_header_size`` or a Content-Length above ``max_message_size`` raises
:class:`~dialer.errors.PbxProtocolError`, the only exception the codec raises on input; after
it the codec is broken for good and the connection must be dropped (as h11 does). The reader
is an explicit two-state machine (headers, then body), after Otoru/Genesis ``reader_fsm.py``.

Client to server: :func:`encode_command`. FreeSWITCH reads a command up to two LFs (CR is
ignored in that count), takes the first line as the command and later lines as headers, and
cuts the command at the first CR or LF (``read_packet``, ``strip_cr``); a NUL ends a C string.
So a CR, LF or NUL inside an argument would forge headers or a second command: they (and the
other C0 control characters) are refused with :class:`~dialer.errors.UnsafeValue`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import unquote

from dialer.errors import PbxProtocolError, UnsafeValue

__all__ = [
    "MAX_COMMAND_BYTES",
    "EslCodec",
    "EslEvent",
    "EslMessage",
    "encode_command",
    "parse_event_json",
    "parse_event_plain",
]

#: The longest command :func:`encode_command` writes (an originate with its variables is a few
#: KB; FreeSWITCH itself reads up to 10 MB).
MAX_COMMAND_BYTES = 65536

AUTH_REQUEST = "auth/request"
COMMAND_REPLY = "command/reply"
API_RESPONSE = "api/response"
EVENT_PLAIN = "text/event-plain"
EVENT_JSON = "text/event-json"
DISCONNECT_NOTICE = "text/disconnect-notice"
RUDE_REJECTION = "text/rude-rejection"

_LF2 = b"\n\n"
_REPR_LIMIT = 40
_DIGITS = re.compile(r"[0-9]{1,12}")
_COMMAND_RE = re.compile(r"[a-z_]{1,32}")
_HEADER_NAME_RE = re.compile(r"[A-Za-z0-9_\-]{1,128}")
# C0 controls except TAB, and DEL: CR, LF and NUL would cut or forge lines and commands.
_UNSAFE_CHARS_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

Headers = tuple[tuple[str, str], ...]


def _lookup(headers: Headers, name: str) -> str | None:
    """The first header spelled exactly ``name``, else the first that matches it ASCII
    case-insensitively (the exact pass is the cheap one: FreeSWITCH's spelling is fixed).
    A scan: for the few headers of a reply; an event looks up through its :class:`_Index`."""
    for key, value in headers:
        if key == name:
            return value
    size = len(name)
    lowered = name.lower()
    for key, value in headers:
        if len(key) == size and key.lower() == lowered:
            return value
    return None


class _Index:
    """:func:`_lookup` in O(1): a dict of the exact names, built once per event.

    A channel event carries ~240-310 headers (every channel variable) and the correlator asks
    for several it lacks: two scans of them cost ~9 us per miss. On a miss, the name is looked
    for, lowered, among all the names lowered in one text (built at the first miss, in C):
    absent there, no header matches it in any case; present (rare: FreeSWITCH's spelling is
    fixed), :func:`_lookup` decides. The first header of a repeated name wins, as there.
    """

    __slots__ = ("_exact", "_folded", "headers")

    def __init__(self, headers: Headers, exact: dict[str, str] | None = None) -> None:
        """``exact``: the headers as a dict already (names unique; it is not copied)."""
        self.headers = headers
        # dict() keeps the last of a repeated key: fed backwards, the first one stays.
        self._exact = dict(reversed(headers)) if exact is None else exact
        self._folded: str | None = None

    def get(self, name: str) -> str | None:
        value = self._exact.get(name)
        if value is not None:
            return value
        folded = self._folded
        if folded is None:
            # LF-separated: a name lowered alone is lowered the same in here (a LF is neither
            # cased nor case-ignorable: it ends the context of a final sigma).
            folded = self._folded = "\n" + "\n".join(self._exact).lower() + "\n"
        if f"\n{name.lower()}\n" not in folded:
            return None
        return _lookup(self.headers, name)


@dataclass(frozen=True, slots=True)
class EslMessage:
    """A message that is not an event: greeting, reply, api response, notice."""

    content_type: str
    headers: Headers
    body: str = ""

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first header called ``name`` (exact spelling first, else ASCII case-insensitive)."""
        value = _lookup(self.headers, name)
        return default if value is None else value

    @property
    def reply_text(self) -> str | None:
        return self.get("Reply-Text")

    @property
    def is_reply(self) -> bool:
        """The answer to a command (FreeSWITCH answers every command with exactly one)."""
        return self.content_type in (COMMAND_REPLY, API_RESPONSE)

    @property
    def job_uuid(self) -> str | None:
        return self.get("Job-UUID")


@dataclass(frozen=True, slots=True)
class EslEvent:
    """One event: its headers (decoded, wire order, repeats kept) and its body."""

    headers: Headers
    body: str = ""
    _index: _Index = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", _Index(self.headers))

    @classmethod
    def _indexed(cls, index: _Index, body: str) -> EslEvent:
        """An event whose index the parser already built."""
        event = object.__new__(cls)
        object.__setattr__(event, "headers", index.headers)
        object.__setattr__(event, "body", body)
        object.__setattr__(event, "_index", index)
        return event

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first header called ``name`` (exact spelling first, else ASCII case-insensitive)."""
        value = self._index.get(name)
        return default if value is None else value

    def __getitem__(self, name: str) -> str:
        value = self._index.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._index.get(name) is not None

    @property
    def name(self) -> str | None:
        return self.get("Event-Name")

    @property
    def subclass(self) -> str | None:
        return self.get("Event-Subclass")

    @property
    def unique_id(self) -> str | None:
        return self.get("Unique-ID")

    @property
    def job_uuid(self) -> str | None:
        return self.get("Job-UUID")


class _State(Enum):
    HEADERS = 1
    BODY = 2
    BROKEN = 3


class EslCodec:
    """Turns the bytes mod_event_socket sends into :class:`EslMessage` and :class:`EslEvent`."""

    __slots__ = (
        "_buffer",
        "_content_length",
        "_headers",
        "_scanned",
        "_state",
        "max_header_size",
        "max_message_size",
    )

    def __init__(self, max_message_size: int = 16 << 20, max_header_size: int = 65536) -> None:
        if max_header_size < 16 or max_message_size < 16:
            raise ValueError("max_header_size and max_message_size must be at least 16 bytes")
        self.max_message_size = max_message_size
        self.max_header_size = max_header_size
        self._buffer = bytearray()
        self._scanned = 0  # bytes of a header block known to hold no LF LF
        self._state = _State.HEADERS
        self._headers: Headers = ()
        self._content_length = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> list[EslMessage | EslEvent]:
        """Feed bytes; return every message completed by them, in order."""
        if self._state is _State.BROKEN:
            raise PbxProtocolError("the ESL codec already failed; the connection must be dropped")
        try:
            return self._receive(data)
        except PbxProtocolError:
            self._state = _State.BROKEN
            raise

    def _receive(self, data: bytes) -> list[EslMessage | EslEvent]:
        buffer = self._buffer
        buffer += data
        items: list[EslMessage | EslEvent] = []
        while True:
            if self._state is _State.HEADERS:
                if not self._take_headers(items):
                    return items
            elif len(buffer) >= self._content_length:
                body = bytes(buffer[: self._content_length])
                del buffer[: self._content_length]
                self._state = _State.HEADERS
                items.append(_decode(self._headers, body))
            else:
                return items

    def _take_headers(self, items: list[EslMessage | EslEvent]) -> bool:
        buffer = self._buffer
        start = 0
        while start < len(buffer) and buffer[start] in b"\r\n":
            start += 1  # blank lines between messages
        if start:
            del buffer[:start]
            self._scanned = 0
        end = buffer.find(_LF2, max(0, self._scanned - 1))
        if end < 0:
            self._scanned = len(buffer)
            # The shortest block the buffered bytes can still become (the same verdict,
            # whatever the chunking).
            shortest = len(buffer) - 1 if buffer.endswith(b"\n") else len(buffer)
            if shortest > self.max_header_size:
                raise PbxProtocolError(f"ESL header block longer than {self.max_header_size} bytes")
            return False
        if end > self.max_header_size:
            raise PbxProtocolError(
                f"ESL header block of {end} bytes exceeds {self.max_header_size}"
            )
        block = bytes(buffer[:end])
        del buffer[: end + 2]
        self._scanned = 0
        headers = _parse_lines(block.decode("utf-8", "replace"), decode_values=False)
        length = _content_length(headers, self.max_message_size)
        if length:
            self._headers = headers
            self._content_length = length
            self._state = _State.BODY
        else:
            items.append(_decode(headers, b""))
        return True


def _content_length(headers: Headers, limit: int) -> int:
    raw = _lookup(headers, "Content-Length")
    if raw is None:
        return 0
    value = raw.strip()
    if not _DIGITS.fullmatch(value):
        raise PbxProtocolError(f"ESL Content-Length is not a number: {_short(raw)}")
    length = int(value)
    if length > limit:
        raise PbxProtocolError(f"ESL Content-Length {length} exceeds {limit}")
    return length


def _parse_lines(text: str, *, decode_values: bool) -> Headers:
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line.endswith("\r"):
            line = line[:-1]
        key, sep, value = line.partition(":")
        if not sep or not key:
            raise PbxProtocolError(f"ESL line is not 'Name: value': {_short(line)}")
        if value.startswith(" "):
            value = value[1:]
        if decode_values and "%" in value:
            value = unquote(value, errors="replace")
        headers.append((key, value))
    return tuple(headers)


def _decode(headers: Headers, body: bytes) -> EslMessage | EslEvent:
    content_type = (_lookup(headers, "Content-Type") or "").strip()
    if content_type == EVENT_PLAIN:
        return parse_event_plain(body)
    if content_type == EVENT_JSON:
        return parse_event_json(body)
    return EslMessage(content_type, headers, body.decode("utf-8", "replace"))


def parse_event_plain(body: bytes) -> EslEvent:
    """The event of a ``text/event-plain`` body (``switch_event_serialize`` with encoding)."""
    head, _, rest = body.partition(_LF2)
    headers = _parse_lines(head.decode("utf-8", "replace"), decode_values=True)
    index = _Index(headers)
    raw_length = index.get("Content-Length")
    if raw_length is None:
        return EslEvent._indexed(index, rest.decode("utf-8", "replace"))
    if not _DIGITS.fullmatch(raw_length.strip()):
        raise PbxProtocolError(f"ESL event Content-Length is not a number: {_short(raw_length)}")
    length = int(raw_length)
    if len(rest) < length:
        raise PbxProtocolError(f"ESL event body of {len(rest)} bytes, Content-Length {length}")
    return EslEvent._indexed(index, rest[:length].decode("utf-8", "replace"))


def parse_event_json(body: bytes) -> EslEvent:
    """The event of a ``text/event-json`` body (``switch_event_serialize_json``)."""
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except (ValueError, RecursionError) as exc:
        raise PbxProtocolError(f"ESL JSON event does not parse: {_short(str(exc))}") from None
    if not isinstance(data, dict):
        raise PbxProtocolError("ESL JSON event is not an object")
    event_body = data.pop("_body", "")
    if not isinstance(event_body, str):
        raise PbxProtocolError("ESL JSON event _body is not a string")
    if set(map(type, data.values())) - {str}:  # in C; FreeSWITCH's values are strings but
        for key, value in data.items():  # a multi-value header's (a list)
            if type(value) is not str:
                data[key] = _json_value(key, value)
    # A JSON object's names are unique (json keeps the last of a repeated one): ``data`` maps
    # each header name to its value, in the object's order.
    return EslEvent._indexed(_Index(tuple(data.items()), data), event_body)


def _json_value(key: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "ARRAY::" + "|:".join(value)  # how the plain format writes a multi-value header
    raise PbxProtocolError(f"ESL JSON event header {_short(key)} has a {type(value).__name__}")


def encode_command(
    command: str,
    *args: str,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
) -> bytes:
    """The bytes of one command: ``command arg...`` then ``Name: value`` header lines, then LF LF.

    Everything is checked before anything is built; a problem raises
    :class:`~dialer.errors.UnsafeValue` naming the part (a value is shown truncated):

    * ``command`` is a lowercase ESL command word (``api``, ``bgapi``, ``event``, ``auth``...);
    * arguments and header values are ``str``, valid text (no lone surrogate), without C0
      control characters (CR, LF, NUL...; TAB is allowed) or DEL; header names match
      ``[A-Za-z0-9_-]+``;
    * the whole command fits in :data:`MAX_COMMAND_BYTES`.

    Arguments are joined with single spaces: an argument may contain spaces (``api`` passes
    the rest of the line to the API command), but never a line break, so the bytes always
    hold exactly one command.
    """
    if not isinstance(command, str) or not _COMMAND_RE.fullmatch(command):
        raise UnsafeValue(f"ESL command not allowed: {_short(command)}")
    parts = [command]
    for index, arg in enumerate(args, start=1):
        parts.append(_checked(f"argument {index} of {command}", arg))
    lines = [" ".join(parts)]
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise UnsafeValue(f"ESL header is not a (name, value) pair: {_short(pair)}")
        name, value = pair
        if not isinstance(name, str) or not _HEADER_NAME_RE.fullmatch(name):
            raise UnsafeValue(f"ESL header name not allowed: {_short(name)}")
        lines.append(f"{name}: {_checked(f'header {name}', value)}")
    text = "\n".join(lines) + "\n\n"
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeValue(f"ESL command {command} is not valid text") from None
    if len(data) > MAX_COMMAND_BYTES:
        raise UnsafeValue(f"ESL command {command} is {len(data)} bytes; limit {MAX_COMMAND_BYTES}")
    return data


def _checked(label: str, value: object) -> str:
    if not isinstance(value, str):
        raise UnsafeValue(f"ESL {label} is not a str: {type(value).__name__}")
    bad = _UNSAFE_CHARS_RE.search(value)
    if bad is not None:
        raise UnsafeValue(f"ESL {label} has control character {bad.group()!r}: {_short(value)}")
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."
