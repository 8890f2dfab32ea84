"""Sans-IO codec for the Asterisk Manager Interface (AMI): bytes in, messages out.

No sockets and no asyncio here (the h11 shape): :class:`AmiCodec` turns the bytes a PBX sends
into :class:`Banner` and :class:`Message` objects, and :func:`encode_action` turns an action
into the bytes to write.

Wire format (``include/asterisk/manager.h``): the server first sends one banner line
(``Asterisk Call Manager/11.0.0``), then messages; a message is ``Key: value`` lines (exactly
one space after the colon), each ended by CRLF, the message ended by an empty line.

Receiving:

* Framing is done on bytes (partition on CRLF CRLF); text is decoded only once a frame is
  complete, so a UTF-8 character split across two reads arrives intact.
* Bytes that are not valid UTF-8 are decoded with ``errors="replace"`` (U+FFFD). We chose
  ``replace`` over ``surrogateescape`` so that every value is valid text that can be stored,
  logged or sent back without a ``UnicodeEncodeError`` later; a bad byte never raises.
* Exactly one space after the colon is removed; the rest of the value is kept as sent
  (command output keeps its indentation, a trailing space stays). A key is the text before
  the first colon, as sent (it must not be empty).
* The unparsed buffer is bounded: a frame (or incomplete data) larger than
  ``max_message_size`` bytes raises :class:`~dialer.errors.PbxProtocolError`, the only
  exception the codec raises on input. After it the codec is broken for good: the
  connection must be dropped (as h11 does).
* Legacy ``Response: Follows`` (command output before Asterisk 14): once a line that is not
  ``Key: value`` appears, it and every later line become ``("Output", line)`` headers;
  a trailing ``--END COMMAND--`` marker is dropped. Asterisk 22 sends ``Output:`` headers.

Sending: see :func:`encode_action` for the checks that keep hostile values off the wire.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dialer.errors import PbxProtocolError, UnsafeValue

__all__ = [
    "MAX_ACTION_HEADERS",
    "MAX_LINE_BYTES",
    "AmiCodec",
    "Banner",
    "Message",
    "encode_action",
]

#: Asterisk reads an action line into ``char inbuf[1025]`` and silently discards a longer
#: line (``manager.c`` ``get_input``): ``Key: value`` must fit in 1022 bytes plus CRLF.
MAX_LINE_BYTES = 1022
#: Asterisk keeps the first ``AST_MAX_MANHEADERS`` (128) lines of an action, drops the rest.
MAX_ACTION_HEADERS = 128

_CRLF = b"\r\n"
_TERMINATOR = b"\r\n\r\n"
_END_COMMAND = "--END COMMAND--"
_REPR_LIMIT = 40

_KEY_RE = re.compile(r"[A-Za-z0-9_\-()]+")
_VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[A-Z_]+\([A-Za-z0-9_]*\)")
# C0 controls except TAB, and DEL: CR/LF (Asterisk also ends a line on a bare LF) and NUL
# would cut or forge lines; the others have no business in an AMI value.
_UNSAFE_CHARS_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Asterisk splits a ``Variable:`` value like application arguments (``AST_STANDARD_APP_ARGS``):
# ``,`` separates name=value pairs, quotes and backslashes are removed, brackets nest.
# A backslash makes the next character literal, so these are escaped, never refused.
_VARIABLE_SPECIALS_RE = re.compile(r'([\\",()\[\]])')


def _escape_variable(value: str) -> str:
    """``value`` with Asterisk's argument specials backslash-escaped."""
    if _VARIABLE_SPECIALS_RE.search(value) is None:  # the usual value: nothing to escape
        return value
    return _VARIABLE_SPECIALS_RE.sub(r"\\\1", value)


# Headers the encoder writes itself: a field may never repeat or replace them.
_RESERVED_FIELDS = frozenset({"action", "actionid", "variable"})
# Getvar's own ``Variable`` field: only the PJSIP read functions the switch view uses, of plain
# names (``PJSIP_CONTACT(<aor>@@<hash>,status)``): never free text, never another function (a
# Getvar evaluates its function: SHELL, ODBC or CURL would run whatever they were given)
_GETVAR_RE = re.compile(r"PJSIP_(?:ENDPOINT|AOR|CONTACT)\([A-Za-z0-9_.@\-]+(,[a-z_]+)?\)")


@dataclass(frozen=True, slots=True)
class Banner:
    """The first line the server sends, before any message."""

    text: str


@dataclass(frozen=True, slots=True)
class Message:
    """One AMI message (event or response): its headers in wire order, repeats kept."""

    headers: tuple[tuple[str, str], ...]
    # name -> first value, and every name lowered between LFs: built at the first lookup
    _exact: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)
    _folded: str | None = field(default=None, init=False, repr=False, compare=False)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first header called ``name``: spelled exactly so, else the first
        whose name matches ASCII case-insensitively (Asterisk's spelling is found at once).

        O(1): a dict of the names is built at the first lookup (a correlator asks an event for
        several headers, some absent); a miss looks for the lowered name among all the names
        lowered in one text, and scans only when some name matches in another case."""
        exact = self._exact
        if exact is None:
            # dict() keeps the last of a repeated key: fed backwards, the first one stays.
            exact = dict(reversed(self.headers))
            object.__setattr__(self, "_exact", exact)
        value = exact.get(name)
        if value is not None:
            return value
        folded = self._folded
        if folded is None:
            # a LF is neither cased nor case-ignorable: each name is lowered as it is alone
            folded = "\n" + "\n".join(exact).lower() + "\n"
            object.__setattr__(self, "_folded", folded)
        if f"\n{name.lower()}\n" not in folded:
            return default
        return _get_folded(self.headers, name, default)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def get_all(self, name: str) -> list[str]:
        """Every value of the headers called ``name`` (case-insensitive), in wire order."""
        size = len(name)
        lowered = name.lower()
        return [
            value
            for key, value in self.headers
            if len(key) == size and (key == name or key.lower() == lowered)
        ]

    @property
    def event(self) -> str | None:
        headers = self.headers
        if headers and headers[0][0] == "Event":  # where Asterisk puts it
            return headers[0][1]
        return self.get("Event")

    @property
    def response(self) -> str | None:
        headers = self.headers
        if headers and headers[0][0] == "Response":
            return headers[0][1]
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def is_event(self) -> bool:
        """An ``Event`` header is present (OriginateResponse also has a ``Response`` one)."""
        return self.event is not None

    @property
    def is_response(self) -> bool:
        """A ``Response`` header and no ``Event`` header: the answer to an action."""
        return self.response is not None and self.event is None


def _get_folded(headers: tuple[tuple[str, str], ...], name: str, default: str | None) -> str | None:
    size = len(name)
    lowered = name.lower()
    for key, value in headers:
        if len(key) == size and key.lower() == lowered:
            return value
    return default


class AmiCodec:
    """Turns the bytes an AMI server sends into :class:`Banner` and :class:`Message` items.

    ``expect_banner=False`` parses messages from the first byte (for a stream that has no
    banner, such as actions seen from the server side).
    """

    __slots__ = ("_banner_pending", "_broken", "_buffer", "_scanned", "max_message_size")

    def __init__(self, max_message_size: int = 65536, *, expect_banner: bool = True) -> None:
        if max_message_size < 16:
            raise ValueError("max_message_size must be at least 16 bytes")
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no terminator
        self._banner_pending = expect_banner
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> list[Banner | Message]:
        """Feed bytes; return every item completed by them, in order."""
        if self._broken:
            raise PbxProtocolError("the AMI codec already failed; the connection must be dropped")
        try:
            return self._receive(data)
        except PbxProtocolError:
            self._broken = True
            raise

    def _receive(self, data: bytes) -> list[Banner | Message]:
        buffer = self._buffer
        buffer += data
        items: list[Banner | Message] = []
        if self._banner_pending:
            end = buffer.find(_CRLF)
            if end + 2 > self.max_message_size:  # the same verdict whatever the chunking
                raise PbxProtocolError(f"AMI banner longer than {self.max_message_size} bytes")
            if end < 0:
                self._check_incomplete()
                return items
            text = bytes(buffer[:end]).decode("utf-8", "replace")
            if not text.strip():
                raise PbxProtocolError("empty AMI banner line")
            items.append(Banner(text))
            del buffer[: end + 2]
            self._banner_pending = False
            self._scanned = 0
        if buffer.find(_TERMINATOR, max(0, self._scanned - 3)) < 0:
            self._scanned = len(buffer)
            self._check_incomplete()
            return items
        # Split left to right (as a byte-at-a-time reader would): in "a\r\n\r\n\r\n" the
        # frame is "a" and "\r\n" waits for more, whatever the chunking.
        data = bytes(buffer)
        frames = data.split(_TERMINATOR)
        rest = len(frames.pop())
        consumed = len(data) - rest
        del buffer[:consumed]
        self._scanned = 0
        limit = self.max_message_size - 4
        if consumed > self.max_message_size:
            longest = max(map(len, frames))
            if longest > limit:
                raise PbxProtocolError(
                    f"AMI message of {longest + 4} bytes exceeds {self.max_message_size}"
                )
        # Frames end on ASCII CRLF CRLF and a replaced bad byte is never CR or LF, so
        # decoding all frames at once and splitting the text gives the same frames.
        text = data[: consumed - 4].decode("utf-8", "replace")
        for frame in text.split("\r\n\r\n"):
            message = _parse_frame(frame)
            if message is not None:
                items.append(message)
        self._check_incomplete()
        return items

    def _check_incomplete(self) -> None:
        if len(self._buffer) > self.max_message_size:
            raise PbxProtocolError(
                f"more than {self.max_message_size} bytes without a complete AMI message"
            )


def _parse_frame(frame: str) -> Message | None:
    lines = frame.split("\r\n")
    headers: list[tuple[str, str]] = []
    append = headers.append
    for line in lines:  # fast path: every line is "Key: value"
        key, sep, value = line.partition(": ")
        if sep and key and ":" not in key:
            append((key, value))
        else:
            return _parse_frame_slow(lines)
    return Message(tuple(headers))


def _parse_frame_slow(lines: list[str]) -> Message | None:
    headers: list[tuple[str, str]] = []
    for index, line in enumerate(lines):
        key, sep, value = line.partition(":")
        if sep and key:
            headers.append((key, value[1:] if value[:1] == " " else value))
            continue
        if not line and not headers:
            continue  # blank lines between frames
        if headers and headers[0][0].lower() == "response" and headers[0][1].lower() == "follows":
            headers.extend(_follows_output(lines[index:]))
            break
        raise PbxProtocolError(f"AMI line is not 'Key: value': {line[:_REPR_LIMIT]!r}")
    return Message(tuple(headers)) if headers else None


def _follows_output(lines: list[str]) -> list[tuple[str, str]]:
    output = [part for line in lines for part in line.split("\n")]
    if output and output[-1].endswith(_END_COMMAND):
        output[-1] = output[-1][: -len(_END_COMMAND)]
    while output and not output[-1]:
        output.pop()
    return [("Output", line) for line in output]


def encode_action(
    name: str,
    action_id: str,
    fields: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    variables: Mapping[str, str] | None = None,
) -> bytes:
    """The bytes of one AMI action: ``Action``, ``ActionID``, ``fields`` then ``variables``.

    Every key and value is checked before anything is built; a problem raises
    :class:`~dialer.errors.UnsafeValue` naming the field (a value is shown truncated):

    * keys and the action name match ``[A-Za-z0-9_\\-()]+``; ``Action``, ``ActionID`` and
      ``Variable`` cannot be passed as fields (use ``variables=``), except ``Getvar``'s
      ``Variable`` naming a dialplan function of plain names (``PJSIP_AOR(carrier,contact)``);
    * values are ``str``, valid text (no lone surrogate), without C0 control characters
      (CR, LF, NUL, ...; TAB is allowed) or DEL;
    * variable names match ``[A-Za-z_][A-Za-z0-9_]*`` or the function form
      ``[A-Z_]+\\([A-Za-z0-9_]*\\)`` (``CALLERID(num)``);
    * each line ``Key: value`` fits in :data:`MAX_LINE_BYTES` UTF-8 bytes (Asterisk discards
      longer lines), and there are at most :data:`MAX_ACTION_HEADERS` lines.

    Each variable becomes one ``Variable: NAME=value`` line. Asterisk splits that value like
    application arguments (a ``,`` would start another variable, quotes and backslashes are
    eaten), so ``\\ " , ( ) [ ]`` in a variable value are backslash-escaped: Asterisk sets
    exactly the given value.
    """
    fast = _encode_common(name, action_id, fields, variables)
    if fast is not None:
        return fast
    return _encode_checked(name, action_id, fields, variables)


# Names already checked by _encode_checked's rules (a dialer sends a handful of field and
# variable names over and over); bounded so that hostile names cannot grow it without end.
_KNOWN_KEYS: set[str] = set()
_KNOWN_VARIABLES: set[str] = set()
_KNOWN_LIMIT = 1024
# Every value shorter than this fits in a line whatever its key (4 UTF-8 bytes a character).
_SHORT_VALUE = (MAX_LINE_BYTES - 200) // 4


def _encode_common(
    name: str,
    action_id: str,
    fields: Mapping[str, str] | Sequence[tuple[str, str]],
    variables: Mapping[str, str] | None,
) -> bytes | None:
    """The usual action (dict fields and variables, known names, short plain values) built
    with one scan for unsafe characters; None: anything else, for :func:`_encode_checked`,
    which applies every rule one by one and names what it refuses."""
    if type(fields) is not dict or (variables is not None and type(variables) is not dict):
        return None
    if name not in _KNOWN_KEYS or type(action_id) is not str:
        return None
    parts = [f"Action: {name}\r\nActionID: {action_id}\r\n"]
    values = [action_id]
    for key, value in fields.items():
        if key not in _KNOWN_KEYS or type(value) is not str or len(value) > _SHORT_VALUE:
            return None
        parts.append(f"{key}: {value}\r\n")
        values.append(value)
    for var_name, var_value in (variables or {}).items():
        if var_name not in _KNOWN_VARIABLES or type(var_value) is not str:
            return None
        if len(var_value) > _SHORT_VALUE // 2:  # escaping may double it
            return None
        escaped = _escape_variable(var_value)
        parts.append(f"Variable: {var_name}={escaped}\r\n")
        values.append(var_value)
    if len(parts) > MAX_ACTION_HEADERS or _UNSAFE_CHARS_RE.search("".join(values)):
        return None
    parts.append("\r\n")
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the checked path names it
        return None


def _getvar(name: str, key: str, value: object) -> bool:
    """``Getvar``'s ``Variable`` naming a dialplan function of plain names (the switch view's
    PJSIP_ENDPOINT / PJSIP_AOR / PJSIP_CONTACT reads)."""
    return (
        name == "Getvar"
        and key == "Variable"
        and isinstance(value, str)
        and _GETVAR_RE.fullmatch(value) is not None
    )


def _remember(known: set[str], name: str) -> None:
    if len(known) < _KNOWN_LIMIT:
        known.add(name)


def _encode_checked(
    name: str,
    action_id: str,
    fields: Mapping[str, str] | Sequence[tuple[str, str]],
    variables: Mapping[str, str] | None,
) -> bytes:
    pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
    if not isinstance(name, str) or not _KEY_RE.fullmatch(name):
        raise UnsafeValue(f"AMI action name not allowed: {_short(name)}")
    lines = [_line("Action", name), _line("ActionID", action_id)]
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise UnsafeValue(f"AMI field is not a (key, value) pair: {_short(pair)}")
        key, value = pair
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise UnsafeValue(f"AMI field name not allowed: {_short(key)}")
        if key.lower() in _RESERVED_FIELDS and not _getvar(name, key, value):
            raise UnsafeValue(f"AMI field {key!r} is reserved (use variables= for Variable)")
        lines.append(_line(key, value))
    for var_name, var_value in (variables or {}).items():
        if not isinstance(var_name, str) or not _VARIABLE_RE.fullmatch(var_name):
            raise UnsafeValue(f"AMI variable name not allowed: {_short(var_name)}")
        label = f"variable {var_name}"
        escaped = _escape_variable(_checked_value(label, var_value))
        lines.append(_line("Variable", f"{var_name}={escaped}", label))
    if len(lines) > MAX_ACTION_HEADERS:
        raise UnsafeValue(f"AMI action has {len(lines)} lines; Asterisk keeps {MAX_ACTION_HEADERS}")
    lines.append(b"\r\n")
    # every name passed the rules: later actions with them take the common path
    _remember(_KNOWN_KEYS, name)
    for key, _ in pairs:
        if key.lower() not in _RESERVED_FIELDS:
            _remember(_KNOWN_KEYS, key)
    for var_name in variables or {}:
        _remember(_KNOWN_VARIABLES, var_name)
    return b"".join(lines)


def _checked_value(label: str, value: object) -> str:
    if not isinstance(value, str):
        raise UnsafeValue(f"AMI value of {label} is not a str: {type(value).__name__}")
    bad = _UNSAFE_CHARS_RE.search(value)
    if bad is not None:
        raise UnsafeValue(
            f"AMI value of {label} has control character {bad.group()!r}: {_short(value)}"
        )
    return value


def _line(key: str, value: object, label: str | None = None) -> bytes:
    text = f"{key}: {_checked_value(label or key, value)}"
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeValue(f"AMI value of {label or key} is not valid text") from None
    if len(encoded) > MAX_LINE_BYTES:
        raise UnsafeValue(
            f"AMI line for {label or key} is {len(encoded)} bytes; Asterisk allows {MAX_LINE_BYTES}"
        )
    return encoded + _CRLF


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."
