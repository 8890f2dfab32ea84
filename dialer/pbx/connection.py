"""The connection lifecycle shared by the AMI and ESL clients, written once.

:class:`StreamConnection` is one TCP connection around a sans-IO codec: it reads, frames and
closes. :class:`PbxClient` is the client's life around it: ``async with`` connects with a
timeout and runs the protocol's handshake (or raises PbxUnavailable), a supervisor
(:class:`~dialer.pbx.supervision.Supervised`) keeps it connected with backoff, the reader puts
events in one bounded queue with back-pressure (nothing is dropped), an idle connection is
pinged, and ``__aexit__`` says goodbye and closes.

A lost or closed session fails every action still awaiting its answer with PbxUnavailable and
never re-sends it (a re-sent originate dials the person twice): each client keeps its own table
of those actions (AMI by ActionID, ESL first in first out) and empties it in
:meth:`PbxClient._fail_pending`.

What stays in each client: the handshake (``_handshake``), the reader (``_read``), the ping
(``_ping``), the goodbye (``_goodbye``) and the in-flight table (``_fail_pending``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar
from urllib.parse import SplitResult, parse_qs, urlsplit

from dialer.errors import ActionFailed, ActionTimeout, ConfigError, PbxProtocolError, PbxUnavailable
from dialer.pbx.base import ConnectionState
from dialer.pbx.supervision import ReconnectSettings, SessionLost, Supervised, describe

READ_SIZE = 65536
CLOSE_TIMEOUT = 1.0

ItemT = TypeVar("ItemT")
ItemT_co = TypeVar("ItemT_co", covariant=True)


class Codec(Protocol[ItemT_co]):
    """A sans-IO codec's reading half: bytes in, completed items out."""

    def receive_data(self, data: bytes) -> Sequence[ItemT_co]: ...


@dataclass(slots=True, eq=False)
class StreamConnection(Generic[ItemT]):
    """One TCP connection read through a sans-IO codec."""

    peer: ClassVar[str] = "the PBX"  # who closed it, in the SessionLost reason

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    codec: Codec[ItemT]
    last_rx: float  # loop time of the last bytes read (the keepalive's idle measure)
    backlog: deque[ItemT] = field(default_factory=deque)
    stalled: bool = False  # the reader waits for room in the event queue
    stalls: int = 0

    async def next_item(self) -> ItemT:
        while not self.backlog:
            data = await self.reader.read(READ_SIZE)
            if not data:
                raise SessionLost(f"connection closed by {self.peer}")
            self.last_rx = asyncio.get_running_loop().time()
            self.backlog.extend(self.codec.receive_data(data))
        return self.backlog.popleft()

    async def close(self, *, abort: bool = False) -> None:
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()
        with suppress(OSError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.writer.wait_closed()


class ClientSettings(ReconnectSettings, Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def connect_timeout(self) -> float: ...
    @property
    def event_queue_size(self) -> int: ...
    @property
    def max_message_size(self) -> int: ...


def check_settings(protocol: str, settings: ClientSettings, reply_timeout: str) -> None:
    """The checks every client's settings pass (ConfigError); ``reply_timeout`` names the
    protocol's own timeout setting (action_timeout, command_timeout)."""
    if not 0 < settings.port < 65536:
        raise ConfigError(f"{protocol} port out of range: {settings.port}")
    for name in ("connect_timeout", reply_timeout, "reconnect_min"):
        if not getattr(settings, name) > 0:
            raise ConfigError(f"{protocol} {name} must be > 0")
    if settings.reconnect_max < settings.reconnect_min:
        raise ConfigError(f"{protocol} reconnect_max must be >= reconnect_min")
    if settings.keepalive_interval < 0:
        raise ConfigError(f"{protocol} keepalive_interval must be >= 0 (0 disables)")
    if settings.event_queue_size < 1 or settings.max_message_size < 1024:
        raise ConfigError(f"{protocol} event_queue_size must be >= 1, max_message_size >= 1024")


def url_settings(
    url: str,
    protocol: str,
    default_port: int,
    *,
    floats: Sequence[str],
    ints: Sequence[str],
    special: Mapping[str, Callable[[list[str]], tuple[str, object]]],
) -> tuple[SplitResult, dict[str, object]]:
    """The parts of a ``<protocol>://`` URL and the settings it gives: host, port and its
    query parameters (numbers by name; ``special`` maps other names to a setting)."""
    parts = urlsplit(url)
    scheme = protocol.lower()
    if parts.scheme != scheme:
        raise ConfigError(
            f"{protocol} URL must start with {scheme}://, got scheme {parts.scheme!r}"
        )
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ConfigError(f"{protocol} URL has a bad port: {exc}") from None
    values: dict[str, object] = {"host": parts.hostname or "127.0.0.1", "port": port}
    for key, found in parse_qs(parts.query, keep_blank_values=True).items():
        if key in special:
            name, value = special[key](found)
            values[name] = value
        elif key in floats or key in ints:
            kind = float if key in floats else int
            try:
                values[key] = kind(found[-1])
            except ValueError:
                raise ConfigError(f"{protocol} URL parameter {key} is not a number") from None
        else:
            raise ConfigError(f"unknown {protocol} URL parameter {key!r}")
    return parts, values


ConnT = TypeVar("ConnT", bound="StreamConnection[Any]")
EventT = TypeVar("EventT")


class PbxClient(Supervised[ConnT, EventT]):
    """Connects, runs the handshake, reconnects, streams events; the protocol fills in the
    hooks (see the module doc)."""

    _ping_what: ClassVar[str]  # e.g. "answer to Ping": what a dead peer did not send
    _settings: ClientSettings

    def __init__(self, settings: ClientSettings, *, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._clock = clock
        self._where = f"{settings.host}:{settings.port}"
        self._queue = asyncio.Queue(settings.event_queue_size)
        self._conn: ConnT | None = None
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._supervisor: asyncio.Task[None] | None = None
        self._entered = self._closing = self._closed = self._consuming = False
        self._connects = self._events_received = 0

    # -- hooks -------------------------------------------------------------------------------

    @property
    def _reply_limit(self) -> float:
        """Seconds an action waits for its answer unless told otherwise."""
        raise NotImplementedError

    def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, now: float
    ) -> ConnT:
        raise NotImplementedError

    async def _handshake(self, conn: ConnT, early: list[EventT]) -> str:
        """Log in on a fresh connection; events that came meanwhile go in ``early``. Returns
        what to add to the "connected" log line."""
        raise NotImplementedError

    async def _read(self, conn: ConnT) -> None:
        """Read the session until it ends: answers to their actions, events to the queue."""
        raise NotImplementedError

    async def _ping(self, conn: ConnT) -> None:
        """One keepalive request (ActionTimeout: no answer; ActionFailed: alive anyway)."""
        raise NotImplementedError

    async def _goodbye(self, conn: ConnT) -> None:
        """Log off politely before ``__aexit__`` closes the connection (errors suppressed)."""

    def _fail_pending(self, conn: ConnT | None, error: PbxUnavailable) -> None:
        """Fail, never re-send, every action still awaiting its answer."""
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError(f"an {type(self).__name__} can be entered only once")
        self._entered = True
        try:
            conn, early = await self._open()
        except PbxUnavailable:
            self._closed = True
            raise
        except (OSError, TimeoutError, PbxProtocolError, SessionLost) as exc:
            self._closed = True
            raise PbxUnavailable(
                f"cannot connect to {self._protocol} at {self._where}: {describe(exc)}"
            ) from exc
        await self._session_up(conn, early)
        self._supervisor = asyncio.create_task(
            self._supervise(conn), name=f"{self._protocol.lower()} {self._where}"
        )
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
                await self._goodbye(conn)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with suppress(asyncio.CancelledError):
                await self._supervisor
        if self._conn is not None:
            await self._conn.close()
        was_connected = self.connected
        self._mark_down(PbxUnavailable(f"{self._protocol} client for {self._where} closed"))
        self._closed = True
        with suppress(asyncio.QueueFull):
            if was_connected:
                self._queue.put_nowait(ConnectionState(False, "closed", self._clock()))
            self._queue.put_nowait(None)  # wakes a consumer waiting on an empty queue

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    async def wait_connected(self) -> None:
        """Return once logged in (at once if already); bound it with ``asyncio.timeout``."""
        if self._closed or self._closing:
            raise PbxUnavailable(f"{self._protocol} client for {self._where} is closed")
        await self._up.wait()

    async def wait_disconnected(self) -> None:
        """Return once the connection is lost or closed (at once if not connected)."""
        await self._down.wait()

    # -- sessions ----------------------------------------------------------------------------

    async def _open(self) -> tuple[ConnT, list[EventT]]:
        """Connect and run the handshake; return the connection and early events."""
        settings = self._settings
        async with asyncio.timeout(settings.connect_timeout):
            reader, writer = await asyncio.open_connection(settings.host, settings.port)
        conn = self._connection(reader, writer, asyncio.get_running_loop().time())
        early: list[EventT] = []
        try:
            detail = await self._handshake(conn, early)
        except BaseException:
            await conn.close(abort=True)
            raise
        self._logger.info("%s connected to %s%s", self._protocol, self._where, detail)
        return conn, early

    def _keep_early(self, early: list[EventT], event: EventT) -> None:
        """An event that came during the handshake, kept for the queue (bounded by it)."""
        if len(early) >= self._settings.event_queue_size - 1:
            raise PbxProtocolError(f"too many {self._protocol} events before the login completed")
        early.append(event)

    async def _session_up(self, conn: ConnT, early: list[EventT]) -> None:
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
        self._fail_pending(conn, error)

    async def _read_loop(self, conn: ConnT) -> None:
        try:
            await self._read(conn)
        except PbxProtocolError as exc:
            raise SessionLost(f"protocol error: {exc}") from exc
        except OSError as exc:
            raise SessionLost(f"connection error: {exc!r}") from exc

    def _offer(self, event: EventT) -> bool:
        """Count ``event`` and put it in the queue if there is room; False: the queue is full
        and the reader must ``await self._wait_for_room(conn, event)`` (no coroutine per event
        while there is room)."""
        self._events_received += 1
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    async def _wait_for_room(self, conn: ConnT, event: EventT) -> None:
        """Back-pressure: the event queue is full; hold the reader until ``event`` fits."""
        conn.stalled = True
        conn.stalls += 1
        try:
            await self._queue.put(event)
        finally:
            conn.stalled = False

    async def _keepalive(self, conn: ConnT) -> None:
        loop = asyncio.get_running_loop()
        interval = self._settings.keepalive_interval
        while True:
            delay = conn.last_rx + interval - loop.time()
            if delay > 0 or conn.stalled:
                await asyncio.sleep(max(delay, interval / 10))
                continue
            stalls = conn.stalls
            try:
                await self._ping(conn)
            except ActionTimeout:
                if conn.stalled or conn.stalls != stalls:
                    continue  # our own reader was held, not the peer
                raise SessionLost(f"no {self._ping_what} within {self._reply_limit} s") from None
            except ActionFailed:
                pass  # any answer proves the peer alive
            except PbxUnavailable as exc:
                raise SessionLost(str(exc)) from exc
