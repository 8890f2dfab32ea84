"""A thin asyncio client for FreeSWITCH's Event Socket, around :mod:`dialer.pbx.esl.codec`.

Written from FreeSWITCH's source (mod_event_socket.c) and tested against an in-test fake
server; **no real FreeSWITCH was used** (none can be installed where this was written).

One TCP connection in inbound mode. ``async with EslClient(settings) as esl`` connects and
authenticates (or raises :class:`~dialer.errors.PbxUnavailable`); a supervisor task owned by
the client keeps it connected until ``__aexit__``.

Handshake on every (re)connect: wait for ``auth/request``, ``auth <password>``, one
``filter <header> <value>`` per configured filter, then ``event plain|json <names...>``.

Guarantees:

* A command is written at most once. ESL has no request ids: FreeSWITCH answers the commands
  of a connection one at a time, in order, each with exactly one ``command/reply`` or
  ``api/response``. Replies are matched first in, first out; a command whose wait timed out
  (:class:`~dialer.errors.ActionTimeout`) keeps its place, so its late reply is never taken
  for the next command's. If the connection is lost before the reply, the command fails with
  :class:`~dialer.errors.PbxUnavailable` and is never re-sent after the reconnect (a re-sent
  ``bgapi originate`` dials the person twice).
* Events go to one bounded queue read through :meth:`EslClient.events`; when it is full the
  reader waits (back-pressure; nothing is dropped, replies wait too).
* Every change of connection shows in that stream as a :class:`ConnectionState`.
  ``events(tick=s)`` also yields :data:`~dialer.pbx.supervision.TICK` at least every ``s``
  seconds, for a consumer's periodic work (no task or timer per event).

When idle for ``keepalive_interval`` seconds the client sends ``api uptime``; no answer within
``command_timeout`` drops the connection (unless the reader itself was held by back-pressure).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

from dialer.errors import (
    ActionFailed,
    ActionTimeout,
    ConfigError,
    PbxProtocolError,
    PbxUnavailable,
    UnsafeValue,
)
from dialer.pbx.base import ConnectionState
from dialer.pbx.esl.codec import (
    AUTH_REQUEST,
    DISCONNECT_NOTICE,
    RUDE_REJECTION,
    EslCodec,
    EslEvent,
    EslMessage,
    encode_command,
)
from dialer.pbx.supervision import TICK, SessionLost, Supervised, Tick, describe

__all__ = ["TICK", "ConnectionState", "EslClient", "EslSettings", "EslStatistics", "Tick"]

logger = logging.getLogger(__name__)

_READ_SIZE = 65536
_CLOSE_TIMEOUT = 1.0
_NO_REPLY = "-ERR no reply"  # what mod_event_socket answers when an API printed nothing
_FLOAT_PARAMS = (
    "connect_timeout",
    "command_timeout",
    "reconnect_min",
    "reconnect_max",
    "keepalive_interval",
)
_INT_PARAMS = ("event_queue_size", "max_message_size")

Headers = Mapping[str, str] | Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class EslSettings:
    """Where and how to reach mod_event_socket (inbound mode)."""

    host: str = "127.0.0.1"
    port: int = 8021
    password: str = field(default="", repr=False)
    events: tuple[str, ...] = ()  # e.g. ("CHANNEL_ANSWER", "CUSTOM", "avmd::beep"); CUSTOM last
    event_format: str = "plain"  # "plain" or "json"
    filters: tuple[tuple[str, str], ...] = ()  # ("Event-Name", "BACKGROUND_JOB"), ...
    connect_timeout: float = 5.0
    command_timeout: float = 10.0
    reconnect_min: float = 0.2
    reconnect_max: float = 5.0
    keepalive_interval: float = 5.0  # "api uptime" after this many idle seconds; 0 disables
    event_queue_size: int = 10000
    max_message_size: int = 16 << 20

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"ESL port out of range: {self.port}")
        for name in ("connect_timeout", "command_timeout", "reconnect_min"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"ESL {name} must be > 0")
        if self.reconnect_max < self.reconnect_min:
            raise ConfigError("ESL reconnect_max must be >= reconnect_min")
        if self.keepalive_interval < 0:
            raise ConfigError("ESL keepalive_interval must be >= 0 (0 disables)")
        if self.event_queue_size < 1 or self.max_message_size < 1024:
            raise ConfigError("ESL event_queue_size must be >= 1, max_message_size >= 1024")
        if self.event_format not in ("plain", "json"):
            raise ConfigError(f"ESL event_format must be plain or json, not {self.event_format!r}")
        if isinstance(self.events, str) or isinstance(self.filters, str):
            raise ConfigError("ESL events and filters must be tuples, not strings")
        try:
            encode_command("event", self.event_format, *self.events)
            for header, value in self.filters:
                encode_command("filter", header, value)
        except (UnsafeValue, ValueError, TypeError) as exc:
            raise ConfigError(f"ESL setting cannot be sent: {exc}") from None
        try:
            encode_command("auth", self.password)
        except UnsafeValue:  # never echo the password
            raise ConfigError(
                "ESL password cannot be sent (control character or not text)"
            ) from None

    @classmethod
    def from_url(cls, url: str) -> EslSettings:
        """``esl://:password@host:port?format=json&event=CHANNEL_ANSWER&command_timeout=3``.

        ``event`` repeats (one name per parameter, in order); the password is percent-decoded.
        """
        parts = urlsplit(url)
        if parts.scheme != "esl":
            raise ConfigError(f"ESL URL must start with esl://, got scheme {parts.scheme!r}")
        try:
            port = parts.port or 8021
        except ValueError as exc:
            raise ConfigError(f"ESL URL has a bad port: {exc}") from None
        values: dict[str, object] = {
            "host": parts.hostname or "127.0.0.1",
            "port": port,
            "password": unquote(parts.password or parts.username or ""),
        }
        for key, found in parse_qs(parts.query, keep_blank_values=True).items():
            if key == "event":
                values["events"] = tuple(found)
            elif key == "format":
                values["event_format"] = found[-1]
            elif key in _FLOAT_PARAMS or key in _INT_PARAMS:
                kind = float if key in _FLOAT_PARAMS else int
                try:
                    values[key] = kind(found[-1])
                except ValueError:
                    raise ConfigError(f"ESL URL parameter {key} is not a number") from None
            else:
                raise ConfigError(f"unknown ESL URL parameter {key!r}")
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class EslStatistics:
    connected: bool
    connects: int  # successful authentications, the first one included
    reconnects: int
    commands_sent: int  # by command/api/bgapi (not the handshake, keepalive or exit)
    events_received: int  # events put in the event queue
    pending_replies: int
    queue_size: int


@dataclass(slots=True, eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    codec: EslCodec
    last_rx: float
    backlog: deque[EslMessage | EslEvent] = field(default_factory=deque)
    waiting: deque[asyncio.Future[EslMessage]] = field(default_factory=deque)  # FIFO replies
    stalled: bool = False  # the reader waits for room in the event queue
    stalls: int = 0

    async def next_item(self) -> EslMessage | EslEvent:
        while not self.backlog:
            data = await self.reader.read(_READ_SIZE)
            if not data:
                raise SessionLost("connection closed by FreeSWITCH")
            self.last_rx = asyncio.get_running_loop().time()
            self.backlog.extend(self.codec.receive_data(data))
        return self.backlog.popleft()

    def send(self, data: bytes) -> asyncio.Future[EslMessage]:
        """Write one command and take its place in the reply queue (no await in between)."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        self.writer.write(data)
        return future

    def on_reply(self, message: EslMessage) -> None:
        if not self.waiting:
            logger.debug("ESL reply without a command dropped: %s", message.reply_text)
            return
        future = self.waiting.popleft()
        if not future.done():  # done: its command timed out; the reply is consumed here
            future.set_result(message)

    def fail_all(self, error: Exception) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)

    async def close(self, *, abort: bool = False) -> None:
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()
        with suppress(OSError, TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await self.writer.wait_closed()


class EslClient(Supervised["_Connection", EslEvent]):
    """Connects, authenticates, reconnects; sends commands and streams events (module doc)."""

    _protocol = "ESL"
    _unanswered = "the reply; the command"
    _logger = logger
    _settings: EslSettings

    def __init__(self, settings: EslSettings, *, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._clock = clock
        self._where = f"{settings.host}:{settings.port}"
        self._queue: asyncio.Queue[EslEvent | ConnectionState | Tick | None] = asyncio.Queue(
            settings.event_queue_size
        )
        self._conn: _Connection | None = None
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._supervisor: asyncio.Task[None] | None = None
        self._entered = self._closing = self._closed = self._consuming = False
        self._connects = self._commands_sent = self._events_received = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> EslClient:
        if self._entered:
            raise RuntimeError("an EslClient can be entered only once")
        self._entered = True
        try:
            conn, early = await self._open()
        except PbxUnavailable:
            self._closed = True
            raise
        except (OSError, TimeoutError, PbxProtocolError, SessionLost) as exc:
            self._closed = True
            raise PbxUnavailable(
                f"cannot connect to ESL at {self._where}: {describe(exc)}"
            ) from exc
        await self._session_up(conn, early)
        self._supervisor = asyncio.create_task(self._supervise(conn), name=f"esl {self._where}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        conn = self._conn
        if conn is not None and self.connected:
            with suppress(PbxUnavailable, ActionFailed, ActionTimeout, OSError):
                await self._request(conn, encode_command("exit"), "exit", _CLOSE_TIMEOUT)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with suppress(asyncio.CancelledError):
                await self._supervisor
        if self._conn is not None:
            await self._conn.close()
        was_connected = self.connected
        self._mark_down(PbxUnavailable(f"ESL client for {self._where} closed"))
        self._closed = True
        with suppress(asyncio.QueueFull):
            if was_connected:
                self._queue.put_nowait(ConnectionState(False, "closed", self._clock()))
            self._queue.put_nowait(None)  # wakes a consumer waiting on an empty queue

    # -- public API --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    async def wait_connected(self) -> None:
        """Return once authenticated (at once if already); bound it with ``asyncio.timeout``."""
        if self._closed or self._closing:
            raise PbxUnavailable(f"ESL client for {self._where} is closed")
        await self._up.wait()

    async def wait_disconnected(self) -> None:
        """Return once the connection is lost or closed (at once if not connected)."""
        await self._down.wait()

    async def command(
        self,
        command: str,
        *args: str,
        headers: Headers = (),
        timeout: float | None = None,  # noqa: ASYNC109 (expiry raises ActionTimeout)
    ) -> EslMessage:
        """Send one command; its reply. ``Reply-Text: -ERR ...`` raises ActionFailed."""
        data = encode_command(command, *args, headers=headers)  # UnsafeValue before anything
        reply = await self._send(data, command, timeout)
        text = reply.reply_text
        if reply.content_type == "command/reply" and text is not None and text.startswith("-"):
            raise ActionFailed(f"ESL {command} failed: {text}")
        return reply

    async def api(
        self,
        command: str,
        *args: str,
        check: bool = True,
        timeout: float | None = None,  # noqa: ASYNC109 (expiry raises ActionTimeout)
    ) -> str:
        """``api <command> <args>``: the API's output. With ``check``, ``-ERR ...`` raises."""
        reply = await self.command("api", " ".join((command, *args)), timeout=timeout)
        body = reply.body
        if body.rstrip("\n") == _NO_REPLY:
            return ""
        if check and body.startswith("-ERR"):
            raise ActionFailed(f"ESL api {command} failed: {body.strip()[:200]}")
        return body

    async def bgapi(
        self,
        command: str,
        *args: str,
        job_uuid: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (expiry raises ActionTimeout)
    ) -> str:
        """``bgapi``: returns the Job-UUID once FreeSWITCH accepted the job.

        The result comes later as a ``BACKGROUND_JOB`` event with that ``Job-UUID`` (in
        :meth:`events`). ``job_uuid`` is sent as the ``Job-UUID`` header, which FreeSWITCH uses
        instead of a fresh one (``parse_command``); the returned id is the one it reported.
        """
        job = job_uuid or str(uuid.uuid4())
        line = " ".join((command, *args))
        reply = await self.command("bgapi", line, headers=[("Job-UUID", job)], timeout=timeout)
        reported = reply.job_uuid or job
        if reported != job:
            logger.warning("ESL bgapi: FreeSWITCH chose Job-UUID %s instead of %s", reported, job)
        return reported

    def statistics(self) -> EslStatistics:
        conn = self._conn
        return EslStatistics(
            connected=self.connected,
            connects=self._connects,
            reconnects=max(self._connects - 1, 0),
            commands_sent=self._commands_sent,
            events_received=self._events_received,
            pending_replies=len(conn.waiting) if conn is not None else 0,
            queue_size=self._queue.qsize(),
        )

    # -- commands ----------------------------------------------------------------------------

    async def _send(self, data: bytes, what: str, limit: float | None) -> EslMessage:
        conn = self._conn
        if conn is None or not self.connected or self._closing:
            raise PbxUnavailable(f"not connected to ESL at {self._where}; {what} not sent")
        self._commands_sent += 1
        return await self._request(conn, data, what, limit)

    async def _request(
        self, conn: _Connection, data: bytes, what: str, limit: float | None
    ) -> EslMessage:
        if limit is None:
            limit = self._settings.command_timeout
        future = conn.send(data)
        try:
            async with asyncio.timeout(limit):
                await conn.writer.drain()
                # On expiry the future is cancelled but keeps its place in conn.waiting:
                # the late reply is then consumed by it, not given to the next command.
                return await future
        except TimeoutError:
            raise ActionTimeout(
                f"ESL {what} got no reply within {limit} s; it may have run and is not re-sent"
            ) from None
        except OSError as exc:
            raise PbxUnavailable(f"ESL connection to {self._where} failed during {what}") from exc

    # -- connection --------------------------------------------------------------------------

    async def _open(self) -> tuple[_Connection, list[EslEvent]]:
        settings = self._settings
        async with asyncio.timeout(settings.connect_timeout):
            reader, writer = await asyncio.open_connection(settings.host, settings.port)
        loop = asyncio.get_running_loop()
        conn = _Connection(reader, writer, EslCodec(settings.max_message_size), loop.time())
        early: list[EslEvent] = []
        try:
            async with asyncio.timeout(settings.connect_timeout):
                greeting = await conn.next_item()
            if not isinstance(greeting, EslMessage) or greeting.content_type != AUTH_REQUEST:
                raise PbxUnavailable(
                    f"ESL at {self._where} did not ask to authenticate: {_explain(greeting)}"
                )
            await self._exchange(conn, encode_command("auth", settings.password), early, "auth")
            for header, value in settings.filters:
                command = encode_command("filter", header, value)
                await self._exchange(conn, command, early, f"filter {header}")
            if settings.events:
                command = encode_command("event", settings.event_format, *settings.events)
                await self._exchange(conn, command, early, "event subscription")
        except BaseException:
            await conn.close(abort=True)
            raise
        logger.info("ESL connected to %s", self._where)
        return conn, early

    async def _exchange(
        self, conn: _Connection, data: bytes, early: list[EslEvent], what: str
    ) -> EslMessage:
        """One handshake command, answered before the reader runs; events are kept in order."""
        future = conn.send(data)
        async with asyncio.timeout(self._settings.command_timeout):
            await conn.writer.drain()
            while not future.done():
                item = await conn.next_item()
                if isinstance(item, EslEvent):
                    if len(early) >= self._settings.event_queue_size - 1:
                        raise PbxProtocolError("too many ESL events before the handshake ended")
                    early.append(item)
                elif item.is_reply:
                    conn.on_reply(item)
                elif item.content_type in (DISCONNECT_NOTICE, RUDE_REJECTION):
                    raise PbxUnavailable(
                        f"ESL at {self._where} refused the {what}: {_explain(item)}"
                    )
        reply = future.result()
        text = reply.reply_text or ""
        if not text.startswith("+OK"):
            raise PbxUnavailable(f"ESL at {self._where} refused the {what}: {text or 'no text'}")
        return reply

    async def _session_up(self, conn: _Connection, early: list[EslEvent]) -> None:
        self._conn = conn
        self._connects += 1
        self._down.clear()
        self._up.set()
        await self._queue.put(ConnectionState(True, "connected", self._clock()))
        for event in early:
            self._events_received += 1
            await self._queue.put(event)

    def _mark_down(self, error: PbxUnavailable) -> None:
        conn, self._conn = self._conn, None
        self._up.clear()
        self._down.set()
        if conn is not None:
            conn.fail_all(error)

    async def _read_loop(self, conn: _Connection) -> None:
        try:
            while True:
                item = await conn.next_item()
                if isinstance(item, EslEvent):
                    await self._deliver(conn, item)
                elif item.is_reply:
                    conn.on_reply(item)
                elif item.content_type in (DISCONNECT_NOTICE, RUDE_REJECTION):
                    raise SessionLost(f"FreeSWITCH disconnected: {_explain(item)}")
                else:
                    logger.debug("ESL message ignored: %s", item.content_type)
        except PbxProtocolError as exc:
            raise SessionLost(f"protocol error: {exc}") from exc
        except OSError as exc:
            raise SessionLost(f"connection error: {exc!r}") from exc

    async def _deliver(self, conn: _Connection, event: EslEvent) -> None:
        self._events_received += 1
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            conn.stalled = True
            conn.stalls += 1
            try:
                await self._queue.put(event)
            finally:
                conn.stalled = False

    async def _keepalive(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        interval = self._settings.keepalive_interval
        while True:
            delay = conn.last_rx + interval - loop.time()
            if delay > 0 or conn.stalled:
                await asyncio.sleep(max(delay, interval / 10))
                continue
            stalls = conn.stalls
            try:
                await self._request(conn, encode_command("api", "uptime"), "keepalive", None)
            except ActionTimeout:
                if conn.stalled or conn.stalls != stalls:
                    continue  # our own reader was held, not the peer
                raise SessionLost(
                    f"no reply to keepalive within {self._settings.command_timeout} s"
                ) from None
            except PbxUnavailable as exc:
                raise SessionLost(str(exc)) from exc


def _explain(item: EslMessage | EslEvent) -> str:
    if isinstance(item, EslEvent):
        return f"event {item.name}"
    text = item.body.strip().splitlines()[0] if item.body.strip() else ""
    return f"{item.content_type or 'no Content-Type'} {text}".strip()[:200]
