"""The event pump shared by the PBX adapters: protocol items in, PBX-neutral call events out."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Protocol, TypeVar

from dialer.pbx.base import ConnectionState, PbxEvent, PbxState
from dialer.pbx.supervision import TICK, Tick

ItemT = TypeVar("ItemT")
ItemT_contra = TypeVar("ItemT_contra", contravariant=True)


class Correlator(Protocol[ItemT_contra]):
    def feed(self, item: ItemT_contra, now: float) -> list[PbxEvent]: ...

    def expire(self, now: float) -> list[PbxEvent]: ...

    def disconnected(self, now: float) -> None:
        """The connection to the PBX dropped (before its PbxState goes out)."""


async def correlated_batches(
    batches: Callable[[float], AsyncGenerator[list[ItemT | ConnectionState | Tick], None]],
    correlator: Correlator[ItemT],
    *,
    tick: float,
    clock: Callable[[], float],
) -> AsyncGenerator[list[PbxEvent], None]:
    """:func:`correlated_events` a list at a time: the call events of each batch of the
    client's ``event_batches(tick)`` (one resumption per batch, not per event)."""
    stream = batches(tick)
    try:
        async for batch in stream:
            now = clock()
            out: list[PbxEvent] = []
            for item in batch:
                if item is TICK:
                    out += correlator.expire(now)
                elif isinstance(item, ConnectionState):
                    if not item.connected:
                        correlator.disconnected(now)
                    out.append(PbxState(connected=item.connected, reason=item.reason, at=now))
                else:
                    out += correlator.feed(item, now)
            if out:
                yield out
    finally:
        await stream.aclose()


async def correlated_events(
    events: Callable[[float], AsyncGenerator[ItemT | ConnectionState | Tick, None]],
    correlator: Correlator[ItemT],
    *,
    tick: float,
    clock: Callable[[], float],
) -> AsyncGenerator[PbxEvent, None]:
    """Feed the items of ``events(tick)`` to ``correlator``; on every :data:`TICK`, also end
    the calls it expires.

    ``events`` is a client's ``events`` method: its stream yields ``TICK`` at least every
    ``tick`` seconds whether items flow or not, so ``correlator.expire`` runs that often without
    a task or a timeout per item. A :class:`ConnectionState` becomes a :class:`PbxState`, in
    order with the calls' events. The stream is closed when this generator is.
    """
    stream = events(tick)
    try:
        async for item in stream:
            now = clock()
            if item is TICK:
                for event in correlator.expire(now):
                    yield event
            elif isinstance(item, ConnectionState):
                if not item.connected:
                    correlator.disconnected(now)
                yield PbxState(connected=item.connected, reason=item.reason, at=now)
            else:
                for event in correlator.feed(item, now):
                    yield event
    finally:
        await stream.aclose()
