"""A protocol-faithful fake of FreeSWITCH's mod_event_socket (inbound mode), for tests.

No real FreeSWITCH can run on these machines, so this fake follows the source
(src/mod/event_handlers/mod_event_socket/mod_event_socket.c, src/switch_event.c) and its own
serializer, independent of the codec under test:

* greeting ``Content-Type: auth/request``; ``auth`` -> ``+OK accepted`` or ``-ERR invalid``
  followed by a disconnect notice and close (parse_command, listener_run);
* a command is read up to two LFs (CR ignored), first line the command, later lines headers
  (read_packet); every command gets exactly one reply, in order;
* ``api`` -> ``api/response`` with Content-Length body; ``bgapi`` -> ``+OK Job-UUID: <id>``
  with a ``Job-UUID`` header (the client's ``Job-UUID`` header is used when given), then a
  BACKGROUND_JOB event whose body is the API's output;
* events: ``Content-Length: N\\nContent-Type: text/event-<fmt>\\n\\n`` + the event, plain
  (``Name: url-encoded value`` lines, ``Content-Length`` + body when the event has one) or json
  (cJSON_PrintUnformatted of the headers plus ``_body``), only those subscribed with ``event``;
* ``exit`` -> ``+OK bye``, then ``text/disconnect-notice`` and close.

Outcomes follow mod_sofia's SIP -> cause mapping (sofia_glue_sip_cause_to_freeswitch): 486 ->
USER_BUSY (17), 480 -> NO_USER_RESPONSE (18), 404 -> UNALLOCATED_NUMBER (1), 503 ->
NORMAL_TEMPORARY_FAILURE (41), 603 -> CALL_REJECTED (21); an originate timeout is NO_ANSWER
(19) with no SIP final response of the callee.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

WAIT = 3.0
PASSWORD = "ClueCon-test"
CORE_UUID = "6d2375b0-5183-11e1-b24c-f527b57af954"
DISCONNECT = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
# switch_url_encode(): these, control characters and non-ASCII bytes become %XX.
_URL_UNSAFE = set(b'\r\n #%&+:;<=>?@[\\]^`{|}"')


def url_encode(value: str) -> str:
    out = []
    for byte in value.encode("utf-8"):
        if byte in _URL_UNSAFE or byte < 0x20 or byte >= 0x7F:
            out.append(f"%{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


def serialize_plain(headers: list[tuple[str, str]], body: str = "") -> str:
    """switch_event_serialize(event, &str, SWITCH_TRUE)."""
    text = "".join(f"{k}: {url_encode(v) or '_undef_'}\n" for k, v in headers)
    if body:
        return text + f"Content-Length: {len(body.encode())}\n\n{body}"
    return text + "\n"


def serialize_json(headers: list[tuple[str, str]], body: str = "") -> str:
    """switch_event_serialize_json (cJSON_PrintUnformatted)."""
    data: dict[str, str] = {}
    for key, value in headers:
        data.setdefault(key, value)
    if body:
        data["Content-Length"] = str(len(body.encode()))
        data["_body"] = body
    return json.dumps(data, separators=(",", ":"))


def reply(text: str) -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def api_response(body: str) -> bytes:
    data = body.encode()
    return f"Content-Type: api/response\nContent-Length: {len(data)}\n\n".encode() + data


def disconnect_notice() -> bytes:
    data = DISCONNECT.encode()
    return f"Content-Type: text/disconnect-notice\nContent-Length: {len(data)}\n\n".encode() + data


@dataclass
class Scenario:
    """What the callee of a number does (``kind``: answer, fail, timeout, no_channel, drop...)."""

    kind: str
    cause: str = "NORMAL_CLEARING"
    q850: int = 16
    sip: int | None = None
    job_first: bool = False  # BACKGROUND_JOB before CHANNEL_HANGUP_COMPLETE
    no_hangup: bool = False  # never send CHANNEL_HANGUP_COMPLETE
    beep: bool = False  # CUSTOM avmd::beep after the answer
    hold: float | None = None  # answered call hung up by the callee after this many seconds
    variables: dict[str, str] = field(default_factory=dict)  # on the hang-up event


@dataclass
class Command:
    session: int
    line: str
    headers: dict[str, str]


@dataclass
class Session:
    index: int
    writer: asyncio.StreamWriter
    authed: bool = False
    fmt: str = "plain"
    events: set[str] = field(default_factory=set)
    subclasses: set[str] = field(default_factory=set)

    def wants(self, name: str, subclass: str | None) -> bool:
        if name == "CUSTOM":
            return "CUSTOM" in self.events and (subclass in self.subclasses)
        return name in self.events or "ALL" in self.events

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def drop(self) -> None:
        self.writer.transport.abort()


@dataclass
class Channel:
    uuid: str
    number: str
    variables: dict[str, str]
    answered_at: float | None = None
    created_at: float = field(default_factory=time.time)


class FakeFreeSwitch:
    """A tiny mod_event_socket: auth, event, filter, api, bgapi originate, exit."""

    def __init__(self, password: str = PASSWORD) -> None:
        self.password = password
        self.port = 0
        self.sessions: list[Session] = []
        self.commands: list[Command] = []
        self.scenarios: dict[str, Scenario] = {}
        self.channels: dict[str, Channel] = {}
        self.step = 0.02  # seconds between the events of a call
        self.reject_acl = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.fired: list[dict[str, str]] = []  # every event fired, as a dict of its headers
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()
        self._stopped = asyncio.Event()
        self._handlers: set[asyncio.Task[object]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self._stopped.set()  # ends a slow "msleep" API at once
        for session in self.sessions:
            session.drop()
        if self._handlers:  # connection handlers end by themselves, never cancelled
            await asyncio.wait(self._handlers, timeout=WAIT)
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with suppress(asyncio.CancelledError):
                await task
        await self._server.wait_closed()

    # -- observation --------------------------------------------------------------------------

    def named(self, prefix: str) -> list[Command]:
        return [c for c in self.commands if c.line.startswith(prefix)]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_command(self, prefix: str, count: int = 1) -> Command:
        await self.wait_for(lambda: len(self.named(prefix)) >= count)
        return self.named(prefix)[count - 1]

    async def wait_sessions(self, count: int) -> Session:
        await self.wait_for(lambda: len([s for s in self.sessions if s.events]) >= count)
        return [s for s in self.sessions if s.events][count - 1]

    # -- events -------------------------------------------------------------------------------

    def fire(self, headers: list[tuple[str, str]], body: str = "") -> None:
        """Deliver one event to every subscribed session (event_handler)."""
        values = dict(headers)
        self.fired.append(values)
        self._changed.set()
        name, subclass = values["Event-Name"], values.get("Event-Subclass")
        for session in self.sessions:
            if not session.authed or not session.wants(name, subclass):
                continue
            if session.fmt == "json":
                text = serialize_json(headers, body)
            else:
                text = serialize_plain(headers, body)
            data = text.encode()
            envelope = f"Content-Length: {len(data)}\nContent-Type: text/event-{session.fmt}\n\n"
            session.send(envelope.encode() + data)

    def channel_event(self, name: str, channel: Channel, *extra: tuple[str, str]) -> None:
        now = time.time()
        headers = [
            ("Event-Name", name),
            ("Core-UUID", CORE_UUID),
            ("FreeSWITCH-Hostname", "fake-fs"),
            ("Event-Date-Local", time.strftime("%Y-%m-%d %H:%M:%S")),
            ("Event-Date-Timestamp", str(int(now * 1e6))),
            ("Channel-Name", f"sofia/gateway/carrier/{channel.number}"),
            ("Unique-ID", channel.uuid),
            ("Call-Direction", "outbound"),
            ("Answer-State", "answered" if channel.answered_at else "ringing"),
            ("Caller-Destination-Number", channel.number),
            ("variable_uuid", channel.uuid),
        ]
        headers += [(f"variable_{k}", v) for k, v in channel.variables.items()]
        self.fire(headers + list(extra))

    def hangup_complete(self, channel: Channel, scenario: Scenario, cause: str, q850: int) -> None:
        self.channels.pop(channel.uuid, None)
        answered = channel.answered_at
        extra = [
            ("Hangup-Cause", cause),
            ("variable_hangup_cause", cause),
            ("variable_hangup_cause_q850", str(q850)),
            ("variable_answer_epoch", str(int(answered)) if answered else "0"),
            ("variable_answer_uepoch", str(int(answered * 1e6)) if answered else "0"),
        ]
        if scenario.sip is not None:
            extra += [
                ("variable_sip_term_status", str(scenario.sip)),
                ("variable_proto_specific_hangup_cause", f"sip:{scenario.sip}"),
            ]
        extra += [(f"variable_{k}", v) for k, v in scenario.variables.items()]
        self.channel_event("CHANNEL_HANGUP_COMPLETE", channel, *extra)

    def background_job(self, job: str, command: str, arg: str, output: str) -> None:
        headers = [
            ("Event-Name", "BACKGROUND_JOB"),
            ("Core-UUID", CORE_UUID),
            ("Event-Calling-File", "mod_event_socket.c"),
            ("Event-Calling-Function", "api_exec"),
            ("Job-UUID", job),
            ("Job-Command", command),
            ("Job-Command-Arg", arg),
        ]
        self.fire(headers, output)

    # -- connection ---------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        session = Session(len(self.sessions) + 1, writer)
        self.sessions.append(session)
        self._changed.set()
        with suppress(ConnectionError):
            if self.reject_acl:
                msg = "Access Denied, go away.\n"
                head = f"Content-Type: text/rude-rejection\nContent-Length: {len(msg)}\n\n"
                writer.write((head + msg).encode())
                await writer.drain()
                writer.close()
                return
            writer.write(b"Content-Type: auth/request\n\n")
            buffer = bytearray()
            while data := await reader.read(65536):
                buffer += data
                for line, headers in _read_packets(buffer):
                    self.commands.append(Command(session.index, line, headers))
                    self._changed.set()
                    if not await self._handle(session, line, headers):
                        return
                await writer.drain()
        writer.close()

    async def _handle(self, session: Session, line: str, headers: dict[str, str]) -> bool:
        if line.startswith("exit"):
            session.send(reply("+OK bye") + disconnect_notice())
            session.writer.close()
            return False
        if not session.authed:
            if line == f"auth {self.password}":
                session.authed = True
                session.send(reply("+OK accepted"))
                return True
            session.send(reply("-ERR invalid") + disconnect_notice())
            session.writer.close()
            return False
        word, _, rest = line.partition(" ")
        if word == "event":
            self._subscribe(session, rest.split(" "))
        elif word == "filter":
            name, _, value = rest.partition(" ")
            session.send(reply(f"+OK filter added. [{name}]=[{value}]"))
        elif word == "api" and rest.startswith("msleep "):
            with suppress(TimeoutError):  # a slow API holds the listener (until stop)
                async with asyncio.timeout(int(rest.split(" ")[1]) / 1000):
                    await self._stopped.wait()
            session.send(api_response("+OK\n"))
        elif word == "api":
            session.send(api_response(self._api(rest)))
        elif word == "bgapi":
            return self._bgapi(session, rest, headers)
        else:
            session.send(reply("-ERR command not found"))
        return True

    def _subscribe(self, session: Session, words: list[str]) -> None:
        if words and words[0] in ("plain", "json", "xml"):
            session.fmt = words.pop(0)
        custom = False
        for word in words:
            if custom:
                session.subclasses.add(word)
            elif word.isupper():
                session.events.add(word)
                custom = custom or word == "CUSTOM"
        session.send(reply(f"+OK event listener enabled {session.fmt}"))
        self._changed.set()

    def _api(self, line: str) -> str:
        command, _, arg = line.partition(" ")
        if command == "uptime":
            return "4242\n"
        if command == "show" and arg == "channels as json":
            if not self.channels:
                return '{"row_count":0}'
            rows = [
                {
                    "uuid": ch.uuid,
                    "direction": "outbound",
                    "created_epoch": str(int(ch.created_at)),
                    "name": f"sofia/gateway/carrier/{ch.number}",
                    "state": "CS_EXECUTE",
                    "callstate": "ACTIVE" if ch.answered_at else "RINGING",
                }
                for ch in self.channels.values()
            ]
            return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))
        if command == "uuid_kill":
            channel = self.channels.get(arg.split(" ")[0])
            if channel is None:
                return "-ERR No such channel!\n"
            self.hangup_complete(channel, Scenario("answer", sip=200), "NORMAL_CLEARING", 16)
            return "+OK\n"
        return f"-ERR {command} Command not found!\n"

    def _bgapi(self, session: Session, line: str, headers: dict[str, str]) -> bool:
        command, _, arg = line.partition(" ")
        scenario = self._scenario(arg) if command == "originate" else None
        if scenario is not None and scenario.kind == "drop":
            session.drop()  # the connection dies before the reply
            return False
        if scenario is not None and scenario.kind == "refuse":
            session.send(reply("-ERR permission denied"))
            return True
        job = headers.get("Job-UUID") or headers.get("job-uuid") or "fs-chosen-job-uuid"
        # parse_command: "~Reply-Text: +OK Job-UUID: %s\nJob-UUID: %s\n\n"
        text = f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n"
        session.send(text.encode())
        task = asyncio.ensure_future(self._run_job(job, command, arg, scenario))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    def _scenario(self, arg: str) -> Scenario:
        number = arg.split(" ")[0].rsplit("/", 1)[-1]
        return self.scenarios.get(number, Scenario("answer", sip=200))

    async def _run_job(self, job: str, command: str, arg: str, scenario: Scenario | None) -> None:
        if scenario is None:
            self.background_job(job, command, arg, f"-ERR {command} Command not found!\n")
            return
        endpoint = arg.split(" ")[0]
        block, _, dial = endpoint[1:].partition("}")
        variables = dict(pair.split("=", 1) for pair in block.split(","))
        uuid = variables["origination_uuid"]
        number = dial.rsplit("/", 1)[-1]
        if scenario.kind == "no_channel":
            await asyncio.sleep(self.step)
            self.background_job(job, command, arg, f"-ERR {scenario.cause}\n")
            return
        channel = Channel(uuid, number, variables)
        self.channels[uuid] = channel
        self.channel_event("CHANNEL_CREATE", channel)
        await asyncio.sleep(self.step)
        if scenario.kind == "answer":
            channel.answered_at = time.time()
            self.channel_event("CHANNEL_ANSWER", channel)
            self.background_job(job, command, arg, f"+OK {uuid}\n")
            if scenario.beep:
                await asyncio.sleep(self.step)
                headers = [
                    ("Event-Subclass", "avmd::beep"),
                    ("Event-Name", "CUSTOM"),
                    ("Unique-ID", uuid),
                    ("Beep-Status", "DETECTED"),
                    ("call-command", "avmd"),
                ]
                self.fire(headers)
            if scenario.hold is not None:
                await asyncio.sleep(scenario.hold)
                if uuid in self.channels:
                    self.hangup_complete(channel, scenario, scenario.cause, scenario.q850)
            return
        if scenario.job_first:
            self.background_job(job, command, arg, f"-ERR {scenario.cause}\n")
            await asyncio.sleep(self.step)
        if not scenario.no_hangup:
            self.hangup_complete(channel, scenario, scenario.cause, scenario.q850)
        if not scenario.job_first:
            await asyncio.sleep(self.step)
            self.background_job(job, command, arg, f"-ERR {scenario.cause}\n")


def _read_packets(buffer: bytearray) -> list[tuple[str, dict[str, str]]]:
    """read_packet(): a command ends at the second LF (CR does not count, other bytes reset)."""
    packets: list[tuple[str, dict[str, str]]] = []
    while True:
        count = 0
        end = -1
        for index, byte in enumerate(buffer):
            if byte == 0x0A:
                count += 1
                if count == 2:
                    end = index
                    break
            elif byte != 0x0D:
                count = 0
        if end < 0:
            return packets
        raw = bytes(buffer[: end + 1]).decode()
        del buffer[: end + 1]
        lines = [line.rstrip("\r") for line in raw.split("\n") if line.strip("\r")]
        if not lines:
            continue
        headers = {}
        for extra in lines[1:]:
            name, _, value = extra.partition(":")
            headers[name] = value.lstrip(" ")
        packets.append((lines[0], headers))
