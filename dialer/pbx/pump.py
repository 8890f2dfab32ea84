"""The event pump shared by the PBX adapters: protocol items in, PBX-neutral call events out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Protocol, TypeVar

from dialer.pbx.base import ConnectionState, PbxEvent, PbxState

ItemT = TypeVar("ItemT")
ItemT_contra = TypeVar("ItemT_contra", contravariant=True)


class Correlator(Protocol[ItemT_contra]):
    def feed(self, item: ItemT_contra, now: float) -> list[PbxEvent]: ...

    def expire(self, now: float) -> list[PbxEvent]: ...


async def correlated_events(
    stream: AsyncGenerator[ItemT | ConnectionState, None],
    correlator: Correlator[ItemT],
    *,
    tick: float,
    clock: Callable[[], float],
) -> AsyncGenerator[PbxEvent, None]:
    """Feed ``stream``'s items to ``correlator``; every ``tick`` s, also end the calls it expires.

    The next item is awaited in a task that survives the periodic wake-ups (cancelling an async
    generator's ``__anext__`` would close it). ``stream`` is closed when this generator is.
    """
    pending: asyncio.Task[ItemT | ConnectionState] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(stream))
            done, _ = await asyncio.wait({pending}, timeout=tick)
            now = clock()
            if pending in done:
                item, pending = pending.result(), None
                if isinstance(item, ConnectionState):
                    yield PbxState(connected=item.connected, reason=item.reason, at=now)
                else:
                    for event in correlator.feed(item, now):
                        yield event
            for event in correlator.expire(now):
                yield event
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        await stream.aclose()
