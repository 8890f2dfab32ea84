"""Connection supervision shared by the AMI and ESL clients.

A client keeps one session (a connection plus its reader and keepalive tasks) under a
supervisor task: when the session ends, every action still awaiting its answer fails with
PbxUnavailable (it is never re-sent: a re-sent originate dials the person twice), a
ConnectionState(False) goes into the event stream, and the client reconnects with jittered
exponential backoff, then announces ConnectionState(True) again.

The protocol-specific parts stay in each client: how to open and log in (``_open``), what to
do once a session is up (``_session_up``), how to fail what is pending (``_mark_down``), the
reader (``_read_loop``) and the keepalive (``_keepalive``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from dialer.errors import PbxProtocolError, PbxUnavailable
from dialer.pbx.base import ConnectionState


class SessionLost(Exception):
    """The session ended; ``reason`` says why (logged and put in the ConnectionState)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
EarlyT = TypeVar("EarlyT")


class Supervised(Generic[ConnT, EarlyT]):
    """Mixin: ``_supervise`` runs sessions until the client closes, reconnecting in between."""

    _protocol: ClassVar[str]  # "AMI", "ESL": for logs and error messages
    _unanswered: ClassVar[str]  # e.g. "the response; the action": what a lost session fails
    _logger: ClassVar[logging.Logger]

    _settings: ReconnectSettings
    _where: str
    _closing: bool
    _clock: Callable[[], float]
    _queue: asyncio.Queue[Any]

    async def _open(self) -> tuple[ConnT, list[EarlyT]]:
        raise NotImplementedError

    async def _session_up(self, conn: ConnT, early: list[EarlyT]) -> None:
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

    async def _reconnect(self) -> tuple[ConnT, list[EarlyT]]:
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
