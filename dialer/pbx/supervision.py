"""Connection supervision shared by the AMI and ESL clients.

A client keeps one session (a connection plus its reader and keepalive tasks) under a
supervisor task: when the session ends, every action still awaiting its answer fails with
PbxUnavailable (it is never re-sent: a re-sent originate dials the person twice), a
ConnectionState(False) goes into the event stream, and the client reconnects with jittered
exponential backoff, then announces ConnectionState(True) again.

The event stream is shared too: the reader puts events and connection changes in one bounded
queue, and :meth:`Supervised.events` hands them to the single consumer, in order. With
``tick=`` it also yields :data:`TICK` at least every ``tick`` seconds, busy or idle, so that a
consumer can run periodic work (ending calls whose last event never came) without a task or a
timeout per item: queued items are taken with ``get_nowait``; only an empty queue is awaited,
under a timeout that ends at the next tick (cancelling ``Queue.get`` loses nothing).

How to open and log in (``_open``), what to do once a session is up (``_session_up``), how
to fail what is pending (``_mark_down``), the reader (``_read_loop``) and the keepalive
(``_keepalive``) are :class:`dialer.pbx.connection.PbxClient`'s, written once for both
clients on top of their protocol hooks.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Callable
from enum import Enum
from typing import ClassVar, Generic, Protocol, TypeVar, overload

from dialer.errors import PbxProtocolError, PbxUnavailable
from dialer.pbx.base import ConnectionState


class SessionLost(Exception):
    """The session ended; ``reason`` says why (logged and put in the ConnectionState)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Tick(Enum):
    """The type of :data:`TICK`, what an event stream yields when a tick is due."""

    TICK = "tick"


#: Yielded by ``events(tick=...)`` at least every ``tick`` seconds (never by ``events()``).
TICK = Tick.TICK
_TICK_RETRY = 0.01


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or repr(exc)


class ReconnectSettings(Protocol):
    @property
    def reconnect_min(self) -> float: ...
    @property
    def reconnect_max(self) -> float: ...
    @property
    def keepalive_interval(self) -> float: ...


class Closable(Protocol):
    async def close(self, *, abort: bool = False) -> None: ...


ConnT = TypeVar("ConnT", bound=Closable)
EventT = TypeVar("EventT")


class Supervised(Generic[ConnT, EventT]):
    """Mixin: ``_supervise`` runs sessions until the client closes, reconnecting in between;
    :meth:`events` streams what the reader queued."""

    _protocol: ClassVar[str]  # "AMI", "ESL": for logs and error messages
    _unanswered: ClassVar[str]  # e.g. "the response; the action": what a lost session fails
    _logger: ClassVar[logging.Logger]

    _settings: ReconnectSettings
    _where: str
    _closing: bool
    _closed: bool
    _consuming: bool
    _clock: Callable[[], float]
    # events, connection changes and ticks; None wakes a waiting consumer once the client is
    # closed
    _queue: asyncio.Queue[EventT | ConnectionState | Tick | None]

    @overload
    def events(self) -> AsyncGenerator[EventT | ConnectionState, None]: ...

    @overload
    def events(self, tick: float) -> AsyncGenerator[EventT | ConnectionState | Tick, None]: ...

    async def events(
        self, tick: float | None = None
    ) -> AsyncGenerator[EventT | ConnectionState | Tick, None]:
        """Events and connection changes, in order; ends after the client is closed.

        With ``tick`` (seconds), :data:`TICK` is also yielded every ``tick`` seconds on the
        event loop's clock, whether items flow or not: one timer puts it in the queue, in order
        with the events (when the queue is full, as soon as it has room). An idle stream waits
        without polling.

        One consumer at a time; wrap it in ``contextlib.aclosing`` so that a consumer that
        stops early releases it at once.
        """
        batches = self._batches(tick)
        try:
            async for batch in batches:
                for item in batch:
                    yield item
        finally:
            await batches.aclose()

    def event_batches(
        self, tick: float
    ) -> AsyncGenerator[list[EventT | ConnectionState | Tick], None]:
        """:meth:`events` (with ticks) a list at a time: everything queued when the consumer
        asks, in order (one resumption of the consumer for many events, not one per event)."""
        return self._batches(tick)

    async def _batches(
        self, tick: float | None
    ) -> AsyncGenerator[list[EventT | ConnectionState | Tick], None]:
        if tick is not None and not 0 < tick < float("inf"):
            raise ValueError(f"tick must be a positive number of seconds, not {tick!r}")
        if self._consuming:
            raise RuntimeError(f"{type(self).__name__}.events() has a single consumer")
        self._consuming = True
        queue = self._queue
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None

        def put_tick() -> None:
            # one timer per tick period (not one per wait): TICK goes in the queue, in order
            nonlocal timer
            try:
                queue.put_nowait(TICK)
            except asyncio.QueueFull:  # the reader waits for room too: retry soon
                timer = loop.call_later(min(period, _TICK_RETRY), put_tick)
            else:
                timer = loop.call_later(period, put_tick)

        period = tick or 0.0
        if tick is not None:
            timer = loop.call_later(period, put_tick)
        try:
            while True:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    if self._closed:
                        return
                    item = await queue.get()
                batch: list[EventT | ConnectionState | Tick] = []
                while True:
                    if item is None:
                        if batch:
                            yield batch
                        return
                    if item is not TICK or tick is not None:  # else: an earlier consumer's
                        batch.append(item)
                    try:
                        item = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                if batch:
                    yield batch
        finally:
            if timer is not None:
                timer.cancel()
            self._consuming = False

    async def _open(self) -> tuple[ConnT, list[EventT]]:
        raise NotImplementedError

    async def _session_up(self, conn: ConnT, early: list[EventT]) -> None:
        raise NotImplementedError

    def _mark_down(self, error: PbxUnavailable) -> None:
        raise NotImplementedError

    async def _read_loop(self, conn: ConnT) -> None:
        raise NotImplementedError

    async def _keepalive(self, conn: ConnT) -> None:
        raise NotImplementedError

    async def _supervise(self, conn: ConnT) -> None:
        while True:
            reason = await self._run_session(conn)
            await conn.close(abort=True)
            if self._closing:
                return
            self._logger.warning(
                "%s connection to %s lost: %s", self._protocol, self._where, reason
            )
            self._mark_down(
                PbxUnavailable(
                    f"{self._protocol} connection to {self._where} lost ({reason}) before "
                    f"{self._unanswered} is not re-sent"
                )
            )
            await self._queue.put(ConnectionState(False, reason, self._clock()))
            conn, early = await self._reconnect()
            await self._session_up(conn, early)

    async def _reconnect(self) -> tuple[ConnT, list[EventT]]:
        delay = self._settings.reconnect_min
        while True:
            await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))
            try:
                return await self._open()
            except (OSError, TimeoutError, PbxUnavailable, PbxProtocolError, SessionLost) as exc:
                self._logger.warning(
                    "%s reconnect to %s failed: %s", self._protocol, self._where, describe(exc)
                )
            delay = min(delay * 2, self._settings.reconnect_max)

    async def _run_session(self, conn: ConnT) -> str:
        reason = "connection lost"
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read_loop(conn))
                if self._settings.keepalive_interval > 0:
                    group.create_task(self._keepalive(conn))
        except* SessionLost as lost:
            first = lost.exceptions[0]
            reason = first.reason if isinstance(first, SessionLost) else str(first)
        except* Exception as failure:  # a bug must not end the supervision: log, reconnect
            self._logger.error(
                "%s session to %s failed", self._protocol, self._where, exc_info=failure
            )
            reason = f"internal error: {failure.exceptions[0]!r}"
        return reason
