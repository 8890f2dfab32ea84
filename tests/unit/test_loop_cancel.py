"""The engine's background loops end on a cancel that redis-py swallowed.

On Python 3.11 redis-py can lose a ``Task.cancel()`` that lands while it sends a command
(dialer.engine.cancel): the command returns, ``Task.cancelling()`` still says a cancel is
pending, and a loop that never looks again runs on, and the engine's shutdown with it (a switch
crash test once hung 300 s in the engine's exit). The stand-ins below swallow the cancel the
way redis-py does; that is the one thing a real Redis cannot be made to do on demand.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from dialer.engine.heartbeat import heartbeat
from dialer.engine.nodebeat import node_heartbeat


class _Swallowing:
    """Every call waits a moment and swallows a cancel that lands meanwhile."""

    def __init__(self) -> None:
        self.calls = 0
        self.swallowed = 0
        self.inside = asyncio.Event()
        self.swallowing = True

    async def _command(self) -> None:
        self.calls += 1
        self.inside.set()
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            if not self.swallowing:
                raise
            self.swallowed += 1  # lost, as in redis-py's timeout handling

    async def beat(self, *args: object, **kwargs: object) -> None:
        await self._command()

    async def leave(self, *args: object) -> None:
        await self._command()

    async def mark_up(self, *args: object) -> None:
        await self._command()

    async def mark_down(self, *args: object) -> None:
        await self._command()


async def _cancel_inside(store: _Swallowing, task: asyncio.Task[None]) -> None:
    await asyncio.wait_for(store.inside.wait(), 5)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)  # without the checkpoint: runs on
    store.swallowing = False  # a loop that ran on ends now, and the test fails below
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=5)
    assert done, "the loop ran on after its cancel"
    assert store.swallowed >= 1  # the cancel was really lost inside the command


async def test_heartbeat_ends_on_a_swallowed_cancel() -> None:
    store = _Swallowing()
    loop = heartbeat(cast(Any, store), "e1", lambda: True, {}, interval=0.001)
    await _cancel_inside(store, asyncio.create_task(loop))


async def test_node_marks_end_on_a_swallowed_cancel() -> None:
    store = _Swallowing()
    loop = node_heartbeat(cast(Any, store), "e1", "n1", lambda: True, refresh=0.0, poll=0.001)
    await _cancel_inside(store, asyncio.create_task(loop))
