"""What the Asterisk and FreeSWITCH adapters share, written once: the protocol client's
lifecycle, the registry of followed calls (follow, forget, adopt, the ends remembered of calls
not followed) and the correlated event stream, one event or one batch at a time.

Each adapter adds what is its switch's own: how to originate, hang up, list live channels,
read the switch's record of a call and the state of its trunks (``refresh_trunks``). The switch's
view of its trunks (:class:`~dialer.pbx.base.TrunkWatch`) is kept here: a sans-IO view fed by
the events the correlator passes on (those of no call), and a wake-up for the engine's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from dialer.domain.calls import RawOutcome
from dialer.pbx.base import CallEnded, ConnectionState, PbxEvent, TrunkStatus
from dialer.pbx.ends import EndMemory
from dialer.pbx.pump import Correlator, correlated_batches, correlated_events
from dialer.pbx.supervision import Tick

ItemT = TypeVar("ItemT")
ItemT_contra = TypeVar("ItemT_contra", contravariant=True)


class EventClient(Protocol[ItemT]):
    """A protocol client (:class:`~dialer.pbx.connection.PbxClient`) as an adapter uses it."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    @property
    def connected(self) -> bool: ...

    def events(self, tick: float) -> AsyncGenerator[ItemT | ConnectionState | Tick, None]: ...

    def event_batches(
        self, tick: float
    ) -> AsyncGenerator[list[ItemT | ConnectionState | Tick], None]: ...


class CallRegistry(Correlator[ItemT_contra], Protocol[ItemT_contra]):
    """A correlator and the calls it follows."""

    memory: EndMemory

    def follow(self, call_id: str, now: float, *, answered: bool = False) -> None: ...

    def forget(self, call_id: str) -> RawOutcome | None: ...

    def seen_end(self, call_id: str, now: float) -> CallEnded | None: ...

    def __len__(self) -> int: ...


class TrunkView(Protocol[ItemT_contra]):
    """A sans-IO view of the switch's trunks (Asterisk: contacts; FreeSWITCH: gateways)."""

    def feed(self, item: ItemT_contra) -> bool: ...

    def status(self, trunk: str) -> TrunkStatus | None: ...


class SwitchAdapter(Generic[ItemT]):
    """The part of :class:`dialer.pbx.base.PbxAdapter` both switches do the same way."""

    name: str

    def __init__(
        self,
        client: EventClient[ItemT],
        correlator: CallRegistry[ItemT],
        *,
        failure_grace: float,
        clock: Callable[[], float],
        trunks: TrunkView[ItemT],
    ) -> None:
        self._trunks = trunks
        self._trunks_changed = asyncio.Event()
        self._client = client
        self._correlator = correlator
        self._clock = clock
        # calls whose closing event never came are ended at least this often
        self._tick = failure_grace / 2

    async def __aenter__(self) -> Self:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, tb)

    @property
    def connected(self) -> bool:
        return self._client.connected

    # -- the switch's view of its trunks (TrunkWatch; refresh_trunks is each adapter's) --------

    def trunk_status(self, trunk: str) -> TrunkStatus | None:
        return self._trunks.status(trunk)

    async def wait_trunks_changed(self) -> None:
        await self._trunks_changed.wait()
        self._trunks_changed.clear()

    def _trunk_item(self, item: ItemT) -> None:
        """An event of no call, passed on by the correlator."""
        if self._trunks.feed(item):
            self._trunks_changed.set()

    def _trunks_read(self, changed: bool) -> None:
        if changed:
            self._trunks_changed.set()

    @property
    def followed_calls(self) -> int:
        return len(self._correlator)

    def forget(self, call_id: str) -> RawOutcome | None:
        return self._correlator.forget(call_id)

    def adopt(self, call_id: str, *, answered: bool) -> None:
        self._correlator.follow(call_id, self._clock(), answered=answered)

    def seen_end(self, call_id: str) -> CallEnded | None:
        return self._correlator.seen_end(call_id, self._clock())

    @property
    def remembered_ends(self) -> EndMemory:
        return self._correlator.memory

    def events(self) -> AsyncGenerator[PbxEvent, None]:
        """Correlated call events; also ends calls whose closing hang-up never came."""
        return correlated_events(
            self._client.events, self._correlator, tick=self._tick, clock=self._clock
        )

    def event_batches(self) -> AsyncGenerator[list[PbxEvent], None]:
        """:meth:`events` a list at a time (what came in one read of the connection)."""
        return correlated_batches(
            self._client.event_batches, self._correlator, tick=self._tick, clock=self._clock
        )
