"""A thin asyncio AMI client around the sans-IO :mod:`dialer.pbx.ami.codec`.

One TCP connection, one reader, one writer. ``async with AmiClient(settings) as ami`` connects
and logs in (or raises :class:`~dialer.errors.PbxUnavailable`), then a supervisor task owned by
the client keeps it connected until ``__aexit__``.

Guarantees:

* An action is written at most once. If the connection is lost while it awaits its response,
  it fails with :class:`~dialer.errors.PbxUnavailable` and is never re-sent after the reconnect
  (a re-sent Originate dials the person twice). No answer within the timeout raises
  :class:`~dialer.errors.ActionTimeout`; the action may have run.
* Events go to one bounded queue read through :meth:`AmiClient.events`. When it is full the
  reader waits (back-pressure, nothing is dropped); while it waits no response is read
  either, so a consumer that stops reading makes actions time out.
* Every change of connection shows in that stream as a :class:`ConnectionState`, in order
  with the events. ``events(tick=s)`` also yields :data:`~dialer.pbx.supervision.TICK` at
  least every ``s`` seconds, for a consumer's periodic work (no task or timer per event).

Handshake on every (re)connect: banner, ``Login`` with ``Events: off``, one ``Filter`` action
per configured filter, then ``Events`` with the configured mask. Events are switched on last so
that no unfiltered burst arrives between the login and the filters. A refused login or filter
fails the first connect with :class:`~dialer.errors.PbxUnavailable`; later, the supervisor
keeps retrying with exponential backoff.

When idle for ``keepalive_interval`` seconds the client sends ``Ping``; no answer within
``action_timeout`` drops the connection (unless the reader itself was held by back-pressure).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import unquote

from dialer.errors import (
    ActionFailed,
    ActionTimeout,
    ConfigError,
    DialerError,
    PbxProtocolError,
    PbxUnavailable,
    UnsafeValue,
)
from dialer.pbx.ami.codec import AmiCodec, Banner, Message, encode_action
from dialer.pbx.base import ConnectionState
from dialer.pbx.connection import (
    READ_SIZE,
    PbxClient,
    StreamConnection,
    check_settings,
    url_settings,
)
from dialer.pbx.supervision import TICK, SessionLost, Tick

__all__ = [
    "TICK",
    "AmiClient",
    "AmiSettings",
    "AmiStatistics",
    "ConnectionState",
    "Fields",
    "Tick",
]

logger = logging.getLogger(__name__)

_RATE_PERIOD = 0.1  # s: the event rate that switches read coalescing on is measured over this
_EXPIRY_SLACK = 0.01  # actions' deadlines within this of each other share one timer firing
_WRITE_HIGH_WATER = 256 * 1024
_LOGOFF_TIMEOUT = 1.0

Fields = Mapping[str, str] | Sequence[tuple[str, str]]

_FLOAT_PARAMS = (
    "connect_timeout",
    "action_timeout",
    "reconnect_min",
    "reconnect_max",
    "keepalive_interval",
    "read_coalesce",
    "coalesce_above",
)
_INT_PARAMS = ("event_queue_size", "max_message_size")


@dataclass(frozen=True, slots=True)
class AmiSettings:
    """Where and how to reach AMI. ``filters`` are regexes for ``Action: Filter``."""

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: str = field(default="", repr=False)
    events: str = "on"  # "on", "off" or a class mask such as "call,user"
    filters: tuple[str, ...] = ()  # e.g. "Event: Hangup"; applied after every login
    connect_timeout: float = 5.0
    action_timeout: float = 10.0
    reconnect_min: float = 0.2
    reconnect_max: float = 5.0
    event_queue_size: int = 10000
    keepalive_interval: float = 5.0  # Ping after this many idle seconds; 0 disables
    max_message_size: int = 65536
    # Under load (more than ``coalesce_above`` events per second over the last 0.1 s), read at
    # most every ``read_coalesce`` seconds: events that come meanwhile wait in the socket and
    # are read together (one wake-up and one recv for many; on a virtual machine a wake-up
    # costs tens of microseconds; 20 ms instead of 10 saved 5-10 % of the engine's CPU at 400
    # CPS). Below that rate every event is read as it comes, so this latency is only paid
    # under load. ``?read_coalesce=0.01`` in the AMI URL halves it, 0 disables it.
    read_coalesce: float = 0.020
    coalesce_above: float = 250.0

    def __post_init__(self) -> None:
        check_settings("AMI", self, "action_timeout")
        if not 0 <= self.read_coalesce <= 0.1:
            raise ConfigError("AMI read_coalesce must be between 0 and 0.1 s")
        if not self.coalesce_above >= 0:
            raise ConfigError("AMI coalesce_above must be >= 0 (events per second)")
        if isinstance(self.filters, str):
            raise ConfigError("AMI filters must be a tuple of strings, not a string")
        checks = [("Username", self.username), ("EventMask", self.events)]
        checks += [("Filter", expression) for expression in self.filters]
        for key, value in checks:
            try:
                encode_action("Check", "x", [(key, value)])
            except UnsafeValue as exc:
                raise ConfigError(f"AMI setting cannot be sent: {exc}") from None
        try:
            encode_action("Login", "x", [("Secret", self.secret)])
        except UnsafeValue:  # never echo the secret
            raise ConfigError("AMI secret cannot be sent (control character or too long)") from None

    @classmethod
    def from_url(cls, url: str) -> AmiSettings:
        """``ami://user:secret@host:port?events=call,user&filter=Event:%20Hangup&...``.

        Query parameters: ``events``, ``filter`` (repeatable) and any numeric setting
        (``action_timeout=3``...). User and secret are percent-decoded.
        """
        parts, values = url_settings(
            url,
            "AMI",
            5038,
            floats=_FLOAT_PARAMS,
            ints=_INT_PARAMS,
            special={
                "filter": lambda found: ("filters", tuple(found)),
                "events": lambda found: ("events", found[-1]),
            },
        )
        values["username"] = unquote(parts.username or "")
        values["secret"] = unquote(parts.password or "")
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class AmiStatistics:
    connected: bool
    connects: int  # successful logins, the first one included
    reconnects: int  # successful logins after a lost connection
    actions_sent: int  # by send_action / send_action_list (not login, Ping, Logoff)
    events_received: int  # events put in the event queue
    pending_actions: int
    queue_size: int


@dataclass(slots=True, eq=False)
class _Pending:
    """An action written and awaiting its response (and, for a list, its events)."""

    name: str
    future: asyncio.Future[Message]
    items: list[Message] | None = None  # not None: collect the EventList items
    deadline: float = math.inf  # loop time; no answer by then: ActionTimeout
    limit: float = 0.0  # the timeout the deadline came from (for the error message)

    def on_response(self, message: Message) -> None:
        if self.future.done():
            return
        if (message.response or "").lower() == "error":
            text = message.get("Message") or "error"
            self.future.set_exception(ActionFailed(f"AMI action {self.name} failed: {text}"))
        elif self.items is None or (message.get("EventList") or "").lower() != "start":
            self.future.set_result(message)  # a plain action, or a list action without a list

    def on_list_item(self, message: Message) -> None:
        if self.future.done() or self.items is None:
            return
        event_list = message.get("EventList")
        if event_list is not None:
            done = event_list.lower() == "complete"
        else:
            done = (message.event or "").endswith("Complete")
        if done:
            self.future.set_result(message)
        else:
            self.items.append(message)

    def fail(self, error: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(error)


@dataclass(slots=True, eq=False)
class _Connection(StreamConnection[Banner | Message]):
    outgoing: list[bytes] = field(default_factory=list)  # actions written this loop turn

    async def write(self, data: bytes) -> None:
        """Queue ``data``; what is written in one turn of the event loop goes in one send.

        A burst of Originates (a claim's batch) then costs one system call and wakes Asterisk
        once, not once per action. Waits only when the socket's buffer is full.
        """
        self.queue(data)
        await self.drain()

    def queue(self, data: bytes) -> None:
        """Queue ``data`` for this loop turn's send (see :meth:`write`), without waiting."""
        if not self.outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self.outgoing.append(data)

    async def drain(self) -> None:
        """Wait while the socket's buffer is full."""
        if self.writer.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
            await self.writer.drain()

    def _flush(self) -> None:
        data, self.outgoing = b"".join(self.outgoing), []
        if not self.writer.transport.is_closing():
            self.writer.write(data)  # a failure shows in the reader: the session ends


class AmiClient(PbxClient[_Connection, Message]):
    """Connects, logs in, reconnects; sends actions and streams events. See the module doc."""

    _protocol = "AMI"
    _unanswered = "the response; the action"
    _ping_what = "answer to Ping"
    _logger = logger
    _settings: AmiSettings

    def __init__(self, settings: AmiSettings, *, clock: Callable[[], float] = time.monotonic):
        super().__init__(settings, clock=clock)
        self._pending: dict[str, _Pending] = {}
        self._expiry: asyncio.TimerHandle | None = None
        self._list_actions = 0  # pending send_action_list calls
        self._id_prefix = f"dialer-{secrets.token_hex(4)}-"
        self._ids = itertools.count(1)
        self._actions_sent = 0

    # -- public API --------------------------------------------------------------------------

    async def send_action(
        self,
        name: str,
        fields: Fields = (),
        *,
        variables: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (expiry raises ActionTimeout)
    ) -> Message:
        """Write one action and return its response (``Response: Error`` -> ActionFailed)."""
        return await self._request(name, fields, variables, limit=timeout)

    async def send_actions(
        self,
        actions: Sequence[tuple[str, Fields, Mapping[str, str] | None]],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (expiry raises ActionTimeout)
    ) -> list[Message | DialerError]:
        """Write several actions at once (one send) and return, in order, each one's response
        or its error (UnsafeValue, ActionFailed, ActionTimeout, PbxUnavailable), as
        :meth:`send_action` would have raised it. Cheaper than one ``send_action`` per action:
        no task or coroutine per action, one write. Each action is written at most once."""
        conn = self._conn
        loop = asyncio.get_running_loop()
        limit = self._settings.action_timeout if timeout is None else timeout
        sent: list[tuple[str, _Pending] | DialerError] = []
        for name, fields, variables in actions:
            action_id = f"{self._id_prefix}{next(self._ids)}"
            try:
                data = encode_action(name, action_id, fields, variables)
            except UnsafeValue as exc:
                sent.append(exc)
                continue
            if conn is None or not self.connected or self._closing:
                sent.append(
                    PbxUnavailable(f"not connected to AMI at {self._where}; {name} not sent")
                )
                continue
            pending = _Pending(name, loop.create_future(), None, loop.time() + limit, limit)
            self._pending[action_id] = pending
            self._arm_expiry(pending.deadline)
            conn.queue(data)
            self._actions_sent += 1
            sent.append((action_id, pending))
        results: list[Message | DialerError] = []
        try:
            if conn is not None and len(sent) > 0:
                try:
                    await conn.drain()
                except OSError as exc:
                    lost = PbxUnavailable(
                        f"AMI connection to {self._where} failed while sending: {exc!r}"
                    )
                    for item in sent:
                        if not isinstance(item, DialerError):
                            item[1].fail(lost)
            for item in sent:
                if isinstance(item, DialerError):
                    results.append(item)
                    continue
                try:
                    results.append(await item[1].future)
                except (ActionFailed, ActionTimeout, PbxUnavailable) as exc:
                    results.append(exc)
        finally:
            for item in sent:
                if not isinstance(item, DialerError):
                    self._pending.pop(item[0], None)
        return results

    async def send_action_list(
        self,
        name: str,
        fields: Fields = (),
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (expiry raises ActionTimeout)
    ) -> list[Message]:
        """Write a list action (CoreShowChannels, Status...) and return its EventList items."""
        items: list[Message] = []
        await self._request(name, fields, None, limit=timeout, items=items)
        return items

    def statistics(self) -> AmiStatistics:
        return AmiStatistics(
            connected=self.connected,
            connects=self._connects,
            reconnects=max(self._connects - 1, 0),
            actions_sent=self._actions_sent,
            events_received=self._events_received,
            pending_actions=len(self._pending),
            queue_size=self._queue.qsize(),
        )

    # -- actions -----------------------------------------------------------------------------

    async def _request(
        self,
        name: str,
        fields: Fields,
        variables: Mapping[str, str] | None,
        *,
        limit: float | None,
        items: list[Message] | None = None,
        conn: _Connection | None = None,
        counted: bool = True,
    ) -> Message:
        action_id = f"{self._id_prefix}{next(self._ids)}"
        data = encode_action(name, action_id, fields, variables)  # UnsafeValue before anything
        if conn is None:
            conn = self._conn
            if conn is None or not self.connected or self._closing:
                raise PbxUnavailable(f"not connected to AMI at {self._where}; {name} not sent")
        if limit is None:
            limit = self._settings.action_timeout
        loop = asyncio.get_running_loop()
        pending = _Pending(name, loop.create_future(), items, loop.time() + limit, limit)
        self._pending[action_id] = pending
        self._list_actions += items is not None
        self._arm_expiry(pending.deadline)
        try:
            await conn.write(data)
            if counted:
                self._actions_sent += 1
            return await pending.future
        except OSError as exc:
            raise PbxUnavailable(
                f"AMI connection to {self._where} failed while sending {name}: {exc!r}"
            ) from exc
        finally:
            del self._pending[action_id]
            self._list_actions -= items is not None

    def _arm_expiry(self, deadline: float) -> None:
        """One timer for all pending actions (not one per action): it fires at the earliest
        deadline, fails what is overdue with ActionTimeout and re-arms for the next one."""
        timer = self._expiry
        if timer is not None and timer.when() <= deadline + _EXPIRY_SLACK:
            return
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_at(deadline + _EXPIRY_SLACK, self._expire_actions)

    def _expire_actions(self) -> None:
        self._expiry = None
        now = asyncio.get_running_loop().time()
        earliest = math.inf
        for action_id, pending in list(self._pending.items()):
            if pending.future.done():
                continue
            if pending.deadline <= now:
                pending.fail(
                    ActionTimeout(
                        f"AMI action {pending.name} (ActionID {action_id}) got no response "
                        f"within {pending.limit} s; it may have run and is not re-sent"
                    )
                )
            else:
                earliest = min(earliest, pending.deadline)
        if earliest < math.inf:
            self._arm_expiry(earliest)

    # -- the shared layer's hooks -------------------------------------------------------------

    @property
    def _reply_limit(self) -> float:
        return self._settings.action_timeout

    def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, now: float
    ) -> _Connection:
        return _Connection(reader, writer, AmiCodec(self._settings.max_message_size), now)

    async def _handshake(self, conn: _Connection, early: list[Message]) -> str:
        settings = self._settings
        async with asyncio.timeout(settings.connect_timeout):
            banner = await conn.next_item()
        if not isinstance(banner, Banner):
            raise PbxProtocolError("AMI server sent no banner")
        login = [("Username", settings.username), ("Secret", settings.secret)]
        await self._exchange(conn, "Login", [*login, ("Events", "off")], early, "login")
        for expression in settings.filters:
            fields = [("Operation", "Add"), ("Filter", expression)]
            await self._exchange(conn, "Filter", fields, early, f"filter {expression!r}")
        if settings.events.lower() != "off":
            fields = [("EventMask", settings.events)]
            await self._exchange(conn, "Events", fields, early, "event mask")
        return f" ({banner.text})"

    async def _exchange(
        self, conn: _Connection, name: str, fields: Fields, early: list[Message], what: str
    ) -> Message:
        """One handshake action, answered before the reader runs; events are kept in order."""
        action_id = f"{self._id_prefix}{next(self._ids)}"
        await conn.write(encode_action(name, action_id, fields))
        async with asyncio.timeout(self._settings.action_timeout):
            while True:
                item = await conn.next_item()
                if not isinstance(item, Message):
                    continue
                if item.is_response and item.action_id == action_id:
                    break
                if item.is_event:
                    self._keep_early(early, item)
        if (item.response or "").lower() != "success":
            text = item.get("Message") or item.response or "no message"
            raise PbxUnavailable(f"AMI at {self._where} refused the {what}: {text}")
        return item

    def _fail_pending(self, conn: _Connection | None, error: PbxUnavailable) -> None:
        for pending in list(self._pending.values()):
            pending.fail(error)
        if self._expiry is not None:  # nothing left to expire
            self._expiry.cancel()
            self._expiry = None

    async def _ping(self, conn: _Connection) -> None:
        await self._request("Ping", (), None, limit=None, conn=conn, counted=False)

    async def _goodbye(self, conn: _Connection) -> None:
        await self._request("Logoff", (), None, limit=_LOGOFF_TIMEOUT, conn=conn, counted=False)

    async def _read(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        coalesce = self._settings.read_coalesce
        # a socket transport reads too (asyncio's and uvloop's; the latter is no asyncio.Transport)
        transport = cast(asyncio.ReadTransport, conn.writer.transport)
        if not callable(getattr(transport, "pause_reading", None)):
            coalesce = 0.0
        busy_rate = self._settings.coalesce_above
        busy = False  # the event rate of the last measured period was above ``busy_rate``
        period_start = loop.time()
        period_items = 0
        items: Sequence[Banner | Message] = list(conn.backlog)
        conn.backlog.clear()
        while True:
            for item in items:
                if isinstance(item, Message) and not self._route(item):
                    if not self._offer(item):
                        await self._wait_for_room(conn, item)
            if coalesce:
                now = loop.time()
                period_items += len(items)
                elapsed = now - period_start
                if elapsed >= _RATE_PERIOD:
                    busy = period_items > busy_rate * elapsed
                    period_start, period_items = now, 0
                rest = conn.last_rx + coalesce - now
                if busy and rest > 0:
                    # let the next events gather in the socket for the rest of the interval
                    # instead of waking for each one
                    transport.pause_reading()
                    try:
                        await asyncio.sleep(rest)
                    finally:
                        if not transport.is_closing():
                            transport.resume_reading()
            data = await conn.reader.read(READ_SIZE)
            if not data:
                raise SessionLost("connection closed by the PBX")
            conn.last_rx = loop.time()
            items = conn.codec.receive_data(data)

    def _route(self, message: Message) -> bool:
        """Give a response (or a list item) to its action; False: an event for the queue."""
        if message.is_event:
            if self._list_actions:  # only then can an event belong to an action
                pending = self._pending.get(message.action_id or "")
                if pending is not None and pending.items is not None:
                    pending.on_list_item(message)
                    return True
            return False  # OriginateResponse of an Async Originate included
        action_id = message.action_id
        pending = None if action_id is None else self._pending.get(action_id)
        if pending is not None and message.is_response:
            pending.on_response(message)
        else:
            logger.debug("AMI message dropped (no pending action): %s", action_id)
        return True
