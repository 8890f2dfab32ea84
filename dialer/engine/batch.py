"""Group commit: what is submitted while a write is in flight goes out together in the next one.

The items that arrive while one write is in flight share the next one, and a write waits up
to ``linger`` seconds after its first item for more (items that came during the previous write
included), unless an item is urgent (somebody waits for it: a campaign at its channel cap waits
for a result to free a channel) or the batch is full. At hundreds of calls per second one round
trip then carries many results, so the per-call cost of a round trip (redis-py's packing, the
socket write, the event loop) shrinks with the load instead of growing with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from dialer.engine.cancel import checkpoint

log = logging.getLogger(__name__)

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """One writer task (:meth:`run`) writes the submitted items in batches, in order.

    ``write`` handles its own expected failures (the engine keeps unwritten results for a later
    retry); anything it raises is logged and given to the batch's waiters, and the writer goes on.
    """

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[None]],
        *,
        name: str,
        max_batch: int = 256,
        linger: float = 0.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if linger < 0:
            raise ValueError("linger must be >= 0")
        self.name = name
        self._write = write
        self._max = max_batch
        self._linger = linger
        self._items: list[tuple[T, asyncio.Future[None] | None]] = []
        self._ready = asyncio.Event()
        self._now = asyncio.Event()  # stop lingering
        self._first_at = 0.0  # loop time of the oldest queued item
        self.batches = 0  # writes made, for statistics and tests
        self.written = 0  # items written

    def __len__(self) -> int:
        return len(self._items)

    def submit(self, item: T, *, urgent: bool = False) -> None:
        """Queue ``item`` for the next write; do not wait for it."""
        if not self._items:
            self._first_at = asyncio.get_running_loop().time()
        self._items.append((item, None))
        self._ready.set()
        if urgent or len(self._items) >= self._max:
            self._now.set()

    def flush(self) -> None:
        """Write what is queued without lingering."""
        if self._items:
            self._now.set()

    async def submit_and_wait(self, item: T) -> None:
        """Queue ``item``, write it without lingering and return once the write that carried it
        is done (or raise its error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not self._items:
            self._first_at = loop.time()
        self._items.append((item, future))
        self._ready.set()
        self._now.set()
        await future

    async def run(self) -> None:
        """The writer; runs until cancelled (waiters of unwritten items are cancelled then)."""
        loop = asyncio.get_running_loop()
        batch: list[tuple[T, asyncio.Future[None] | None]] = []
        try:
            while True:
                await self._ready.wait()
                rest = self._first_at + self._linger - loop.time()
                if rest > 0 and not self._now.is_set():
                    try:
                        async with asyncio.timeout(rest):
                            await self._now.wait()
                    except TimeoutError:
                        pass
                self._ready.clear()
                self._now.clear()
                checkpoint()
                if not self._items:
                    continue
                batch = self._items[: self._max]
                del self._items[: self._max]
                if self._items:  # more than a full batch: the rest goes next, without lingering
                    self._ready.set()
                    self._now.set()
                error: Exception | None = None
                try:
                    await self._write([item for item, _ in batch])
                except Exception as exc:  # a bug in write: keep the engine dialing
                    log.exception("%s: a batch of %d failed", self.name, len(batch))
                    error = exc
                self.batches += 1
                self.written += len(batch)
                for _, future in batch:
                    if future is not None and not future.done():
                        if error is None:
                            future.set_result(None)
                        else:
                            future.set_exception(error)
                batch = []
        finally:
            for _, future in batch + self._items:
                if future is not None:
                    future.cancel()
