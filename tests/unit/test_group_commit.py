"""GroupCommit: items submitted during a write share the next one; linger, urgency, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from dialer.engine.batch import GroupCommit


class Recorder:
    def __init__(self, delay: float = 0.0, fail_on: Callable[[list[int]], bool] | None = None):
        self.batches: list[list[int]] = []
        self.delay = delay
        self.fail_on = fail_on

    async def write(self, items: list[int]) -> None:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        if self.fail_on is not None and self.fail_on(items):
            raise RuntimeError(f"bad batch {items}")


@asynccontextmanager
async def running(commit: GroupCommit[int]) -> AsyncIterator[GroupCommit[int]]:
    task = asyncio.create_task(commit.run())
    try:
        yield commit
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_items_arriving_during_a_write_share_the_next_one() -> None:
    rec = Recorder(delay=0.02)
    async with running(GroupCommit(rec.write, name="t")) as commit:
        commit.submit(1)
        await asyncio.sleep(0.005)  # the first write is in flight
        for i in range(2, 6):
            commit.submit(i)
        await commit.submit_and_wait(6)
    assert rec.batches == [[1], [2, 3, 4, 5, 6]]
    assert (commit.batches, commit.written) == (2, 6)


async def test_linger_groups_until_urgent_or_full() -> None:
    rec = Recorder()
    loop = asyncio.get_running_loop()
    async with running(GroupCommit(rec.write, name="t", linger=10.0, max_batch=4)) as commit:
        commit.submit(1)
        commit.submit(2)
        await asyncio.sleep(0.01)
        assert rec.batches == []  # lingering
        started = loop.time()
        commit.submit(3, urgent=True)
        await asyncio.sleep(0.01)
        assert rec.batches == [[1, 2, 3]]
        for i in range(4, 8):  # the fourth fills a batch: written without lingering
            commit.submit(i)
        await asyncio.sleep(0.01)
        assert rec.batches == [[1, 2, 3], [4, 5, 6, 7]]
        commit.submit(8)
        commit.flush()
        await asyncio.sleep(0.01)
        assert rec.batches[-1] == [8]
        assert loop.time() - started < 5.0


async def test_linger_expires_on_its_own() -> None:
    rec = Recorder()
    async with running(GroupCommit(rec.write, name="t", linger=0.02)) as commit:
        commit.submit(1)
        await asyncio.sleep(0.005)
        assert rec.batches == []
        await asyncio.sleep(0.05)
        assert rec.batches == [[1]]


async def test_items_arriving_during_a_write_linger_too() -> None:
    # under steady load a write goes out every ``linger`` seconds, not back to back
    rec = Recorder(delay=0.02)
    loop = asyncio.get_running_loop()
    written_at: list[float] = []

    async def write(items: list[int]) -> None:
        written_at.append(loop.time())
        await rec.write(items)

    async with running(GroupCommit(write, name="t", linger=0.1)) as commit:
        commit.submit(1)
        await asyncio.sleep(0.11)  # the first write is in flight
        second = loop.time()
        commit.submit(2)
        commit.submit(3)
        await asyncio.sleep(0.03)
        assert rec.batches == [[1]]  # 2 and 3 linger after the write ended
        await asyncio.sleep(0.15)
    assert rec.batches == [[1], [2, 3]]
    assert written_at[1] - second >= 0.09


async def test_a_failed_write_reaches_its_waiters_and_the_writer_goes_on() -> None:
    rec = Recorder(fail_on=lambda items: 13 in items)
    async with running(GroupCommit(rec.write, name="t")) as commit:
        with pytest.raises(RuntimeError, match="bad batch"):
            await commit.submit_and_wait(13)
        await commit.submit_and_wait(14)
    assert rec.batches == [[13], [14]]


async def test_cancelling_the_writer_cancels_waiters_of_unwritten_items() -> None:
    rec = Recorder(delay=10.0)
    commit: GroupCommit[int] = GroupCommit(rec.write, name="t")
    task = asyncio.create_task(commit.run())
    first = asyncio.create_task(commit.submit_and_wait(1))
    await asyncio.sleep(0.01)  # 1 is being written (for 10 s)
    second = asyncio.create_task(commit.submit_and_wait(2))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for waiter in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await waiter


def test_bad_settings() -> None:
    rec = Recorder()
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(rec.write, name="t", max_batch=0)
    with pytest.raises(ValueError, match="linger"):
        GroupCommit(rec.write, name="t", linger=-1)
