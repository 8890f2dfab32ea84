"""Property tests of the AMI codec (the h11 fuzz idea, with Hypothesis).

* Any bytes, whole or one byte at a time: only PbxProtocolError escapes, and the chunking
  never changes the verdict or the messages.
* Valid server messages, in any chunking, come back exactly.
* encode_action with any text either refuses (UnsafeValue) or writes exactly one action whose
  lines, read the way Asterisk reads them, are the given fields: no injection.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.errors import PbxProtocolError, UnsafeValue
from dialer.pbx.ami.codec import (
    MAX_ACTION_HEADERS,
    MAX_LINE_BYTES,
    AmiCodec,
    Banner,
    Message,
    _encode_checked,
    encode_action,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL_LIMIT = 512

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
PROTOCOL_BITS = [
    b"\r\n",
    b"\r\n\r\n",
    b"\r",
    b"\n",
    b":",
    b": ",
    b"Event: Newstate",
    b"Response: Follows",
    b"Response: Success",
    b"ActionID: 1",
    b"--END COMMAND--",
    "Müller".encode(),
    b"\xc3",
    b"\xff",
    b"\x00",
]
wire_bytes = st.lists(
    st.one_of(st.binary(max_size=40), st.sampled_from(PROTOCOL_BITS)), max_size=40
).map(b"".join)


def feed_whole(data: bytes, *, banner: bool) -> tuple[list[Banner | Message], bool]:
    codec = AmiCodec(SMALL_LIMIT, expect_banner=banner)
    try:
        return codec.receive_data(data), False
    except PbxProtocolError:
        return [], True


def feed_bytewise(data: bytes, *, banner: bool) -> tuple[list[Banner | Message], bool]:
    codec = AmiCodec(SMALL_LIMIT, expect_banner=banner)
    items: list[Banner | Message] = []
    for index in range(len(data)):
        try:
            items += codec.receive_data(data[index : index + 1])
        except PbxProtocolError:
            return items, True
    return items, False


@FUZZ
@given(data=wire_bytes, banner=st.booleans())
def test_arbitrary_bytes_whole_and_bytewise_agree(data: bytes, banner: bool) -> None:
    whole, whole_failed = feed_whole(data, banner=banner)
    bytewise, bytewise_failed = feed_bytewise(data, banner=banner)

    assert whole_failed == bytewise_failed
    if not whole_failed:
        assert bytewise == whole
    for item in bytewise:
        if isinstance(item, Message):
            assert item.headers  # never an empty message
            for key, value in item.headers:
                key.encode("utf-8")  # always valid text (bad bytes are replaced)
                value.encode("utf-8")


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_binary_only_raises_protocol_errors(data: bytes) -> None:
    for banner in (True, False):
        feed_whole(data, banner=banner)
        feed_bytewise(data, banner=banner)


# -- round trip of server messages -----------------------------------------------------------

keys = st.text(
    st.characters(exclude_characters="\r\n:", exclude_categories=["Cs"]), min_size=1, max_size=12
)
values = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=30)
server_messages = st.builds(
    lambda first, rest: Message((first, *rest)),
    st.tuples(st.sampled_from(["Event", "Response"]), values),
    st.lists(st.tuples(keys, values), max_size=8),
)


def server_frame(message: Message) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in message.headers) + b"\r\n"


@FUZZ
@given(
    batch=st.lists(server_messages, min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=10),
)
def test_valid_messages_survive_any_chunking(batch: list[Message], cuts: list[int]) -> None:
    data = BANNER + b"".join(server_frame(message) for message in batch)
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    codec = AmiCodec()
    items: list[Banner | Message] = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        items += codec.receive_data(data[start:end])

    assert items == [Banner("Asterisk Call Manager/11.0.0"), *batch]
    assert codec.buffered == 0


# -- encoding: no injection ------------------------------------------------------------------

HOSTILE_BITS = [
    "\r\n",
    "\r\nAction: Command\r\nCommand: core stop now\r\n\r\n",
    "\n",
    "\r",
    "\x00",
    ",",
    "=",
    '"',
    "\\",
    "(",
    ")",
    "[",
    "]",
    "\udcff",
    " ",
    "\t",
    "\x85",
    "\u2028",
    "é",
    "x" * 300,
]
any_text = st.lists(st.one_of(st.text(max_size=20), st.sampled_from(HOSTILE_BITS)), max_size=6).map(
    "".join
)
# Printable text with every character Asterisk's argument parser treats specially.
safe_text = st.text(
    st.one_of(
        st.characters(exclude_categories=["Cs", "Cc"]),
        st.sampled_from(list(',="\\()[] \t')),
    ),
    max_size=30,
)
valid_field_names = st.from_regex(r"[A-Za-z0-9_\-()]{1,12}", fullmatch=True).filter(
    lambda key: key.lower() not in {"action", "actionid", "variable"}
)
valid_variable_names = st.from_regex(
    r"[A-Za-z_][A-Za-z0-9_]{0,10}|[A-Z_]{1,8}\([A-Za-z0-9_]{0,5}\)", fullmatch=True
)
# Mostly acceptable input (so the success path is well explored), sometimes hostile.
field_names = st.one_of(valid_field_names, valid_field_names, any_text)
variable_names = st.one_of(valid_variable_names, valid_variable_names, any_text)
value_text = st.one_of(safe_text, safe_text, safe_text, any_text)


def asterisk_lines(data: bytes) -> list[str]:
    """Action lines as manager.c get_input() cuts them: it ends a line on CRLF or bare LF."""
    assert data.endswith(b"\r\n\r\n")
    return data[:-4].decode("utf-8").replace("\r\n", "\n").split("\n")


def asterisk_variable_pairs(header_value: str) -> list[tuple[str, str]]:
    """What Asterisk sets from one ``Variable:`` header: a port of man_do_variable_value()
    and __ast_app_separate_args(buf, ',', remove_chars=1) from main/manager.c, main/app.c."""
    text = header_value.lstrip("".join(chr(c) for c in range(33)))  # ast_skip_blanks
    args: list[str] = []
    current: list[str] = []
    paren = bracket = 0
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 1  # the backslash goes, the next character is literal
            if index < len(text):
                current.append(text[index])
        elif char == '"':
            quoted = not quoted  # quotes are removed
        elif char == "," and not (paren or bracket or quoted):
            args.append("".join(current))
            current = []
        else:
            if char == "(":
                paren += 1
            elif char == ")" and paren:
                paren -= 1
            elif char == "[":
                bracket += 1
            elif char == "]" and bracket:
                bracket -= 1
            current.append(char)
        index += 1
    if text:
        args.append("".join(current))
    pairs = []
    for arg in args:
        name, sep, value = arg.partition("=")
        if sep and name:
            pairs.append((name, value))
    return pairs


@FUZZ
@given(
    name=st.one_of(st.sampled_from(["Originate", "Ping", "Setvar"]), valid_field_names, any_text),
    action_id=st.one_of(st.from_regex(r"[a-z0-9\-]{1,20}", fullmatch=True), safe_text, any_text),
    fields=st.lists(st.tuples(field_names, value_text), max_size=5),
    variables=st.dictionaries(variable_names, value_text, max_size=5),
)
def test_encode_refuses_or_writes_exactly_the_given_fields(
    name: str, action_id: str, fields: list[tuple[str, str]], variables: dict[str, str]
) -> None:
    try:
        data = encode_action(name, action_id, fields, variables)
    except UnsafeValue:
        return

    # Exactly one frame, no bare CR or LF, no NUL anywhere.
    assert data.count(b"\r\n\r\n") == 1
    assert data.endswith(b"\r\n\r\n")
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\x00" not in data

    # Asterisk's view: the lines, each within its buffer, the header count within its array.
    lines = asterisk_lines(data)
    assert len(lines) <= MAX_ACTION_HEADERS
    assert all(len(line.encode()) <= MAX_LINE_BYTES for line in lines)
    assert [line.lower().startswith("action:") for line in lines].count(True) == 1
    assert [line.lower().startswith("actionid:") for line in lines].count(True) == 1

    # Our own parser reads back the same headers.
    (message,) = AmiCodec(expect_banner=False).receive_data(data)
    assert isinstance(message, Message)
    variable_values = message.get_all("Variable")
    plain = [(k, v) for k, v in message.headers if k != "Variable"]
    assert plain == [("Action", name), ("ActionID", action_id), *fields]

    # And each Variable line sets exactly one variable, to exactly the given value.
    assert len(variable_values) == len(variables)
    for (var_name, var_value), header in zip(variables.items(), variable_values, strict=True):
        assert asterisk_variable_pairs(header) == [(var_name, var_value)]


@FUZZ
@given(variables=st.dictionaries(valid_variable_names, safe_text, min_size=1, max_size=8))
def test_printable_variable_values_always_reach_asterisk_intact(
    variables: dict[str, str],
) -> None:
    data = encode_action("Originate", "id", [("Channel", "PJSIP/1@trunk")], variables)
    (message,) = AmiCodec(expect_banner=False).receive_data(data)
    assert isinstance(message, Message)
    set_by_asterisk = [
        pair for header in message.get_all("Variable") for pair in asterisk_variable_pairs(header)
    ]
    assert set_by_asterisk == list(variables.items())


def test_the_asterisk_emulation_splits_unescaped_commas() -> None:
    """The reason variable values are escaped: unescaped, a comma would set a second one."""
    assert asterisk_variable_pairs("NAME=Smith,EVIL=1") == [("NAME", "Smith"), ("EVIL", "1")]
    assert asterisk_variable_pairs('A="x,y"') == [("A", "x,y")]
    assert asterisk_variable_pairs("A=f(x,y)") == [("A", "f(x,y)")]
    assert asterisk_variable_pairs("A=x\\,y") == [("A", "x,y")]


_names = st.sampled_from(["Channel", "Context", "Exten", "Timeout", "ChannelId", "X-Y(z)"])
_var_names = st.sampled_from(["DIALER_CALL_ID", "DIALER_VAR_NAME", "CALLERID(num)", "_x"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=st.dictionaries(_names, st.text(max_size=300), max_size=5),
    variables=st.dictionaries(_var_names, st.text(max_size=300), max_size=4),
)
def test_common_path_builds_what_the_checked_path_builds(
    fields: dict[str, str], variables: dict[str, str]
) -> None:
    """encode_action's common path (known names, one scan) and the rule-by-rule path agree:
    the same bytes, or both refuse."""
    try:
        # the reference: every rule applied one by one
        expected: bytes | None = _encode_checked("Originate", "id-1", fields, variables)
    except UnsafeValue:
        expected = None
    for _ in range(2):  # the first call may teach the names to the common path
        try:
            got: bytes | None = encode_action("Originate", "id-1", fields, variables)
        except UnsafeValue:
            got = None
        assert got == expected


# names that differ by case, that str.lower lengthens (İ), that it lowers by context (Σ), a LF
lookup_names = st.text(st.sampled_from("aAbBΣσςİi\n-_"), min_size=0, max_size=4)


def _scan(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    """The lookup as a linear scan: the exact spelling first, else the first of any case."""
    for key, value in headers:
        if key == name:
            return value
    for key, value in headers:
        if len(key) == len(name) and key.lower() == name.lower():
            return value
    return None


@FUZZ
@given(
    pairs=st.lists(st.tuples(lookup_names, st.text(max_size=3)), max_size=8),
    wanted=st.lists(lookup_names, max_size=6),
)
def test_a_messages_index_finds_what_a_scan_finds(
    pairs: list[tuple[str, str]], wanted: list[str]
) -> None:
    headers = tuple(pairs)
    message = Message(headers)
    for name in [*wanted, *(key for key, _ in headers), *(k.upper() for k, _ in headers)]:
        found = _scan(headers, name)
        assert message.get(name) == found
        assert message.get(name, "default") == ("default" if found is None else found)
        assert (name in message) == (found is not None)
    assert message == Message(headers)  # the index is no part of equality
