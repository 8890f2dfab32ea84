"""Calling hours on the real stack, measured on Asterisk's clock.

The windows are a few seconds long (windows take seconds for this): a window whose end comes
before its start is open from its start to its end the next day, so ``start = t + 8 s,
end = t + 4 s`` is open now, closed from t + 4 s to t + 8 s, then open again. The engine and
Redis run on the real clock; what counts is when Asterisk created each channel (the
Newchannel event's Timestamp).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dialer.domain.campaign import CallingWindow, CampaignSettings
from dialer.domain.hours import END_DATE_PASSED, OUTSIDE_HOURS
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store.redis_store import RedisStore
from ops.localstack.numberplan import Behaviour, number
from tests.integration.conftest import ami_settings
from tests.integration.engine_helpers import (
    engine_settings,
    new_campaign,
    nonzero,
    running_engine,
    wait_status,
)
from tests.integration.monitor import watch_asterisk

pytestmark = [pytest.mark.integration, pytest.mark.redis]
S = CampaignStatus


@pytest.fixture
async def store(stack: Any, namespace: str):
    s = RedisStore.from_url(stack.redis_url, namespace=namespace)
    yield s
    await s.aclose()


def utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


async def record_statuses(
    store: RedisStore, cid: int, seen: list[tuple[float, CampaignStatus]]
) -> None:
    while True:
        status = (await store.get_campaign(cid)).status
        if not seen or seen[-1][1] is not status:
            seen.append((time.time(), status))
        await asyncio.sleep(0.02)


async def until(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_no_call_starts_while_the_hours_are_closed_and_dialing_goes_on_at_the_opening(
    stack: Any, store: RedisStore, namespace: str
) -> None:
    t0 = math.ceil(time.time()) + 1
    close, reopen = t0 + 4, t0 + 8
    window = CallingWindow("UTC", utc(reopen).time(), utc(close).time())
    phones = [number(Behaviour.HOLD, i, hold_s=1) for i in range(70)]
    phones += [number(Behaviour.BUSY, 70 + i) for i in range(10)]
    settings = CampaignSettings(
        name="hours",
        trunk=stack.trunk,
        max_channels=20,
        cps=10.0,
        ring_timeout=5.0,
        window=window,
        retry=RetryPolicy(max_attempts=2, delays={CallStatus.BUSY: 1.0}),
    )
    control, cid = await new_campaign(store, settings, phones)
    statuses: list[tuple[float, CampaignStatus]] = []
    async with (
        running_engine(engine_settings(stack, namespace)),
        watch_asterisk(ami_settings(stack)) as seen,
        asyncio.TaskGroup() as tg,
    ):
        watcher = tg.create_task(record_statuses(store, cid, statuses))
        await until(lambda: time.time() >= t0, 2)
        assert (await control.start(cid)).status is S.RUNNING
        await wait_status(store, cid, {S.SCHEDULED}, within=close - time.time() + 3)
        record = await store.get_campaign(cid)
        assert record.status_reason == OUTSIDE_HOURS
        assert record.opens_at_ms == reopen * 1000
        # a pause and a resume while closed: Scheduled again, not Running
        await control.pause(cid)
        assert (await control.resume(cid)).status is S.SCHEDULED
        assert time.time() < reopen, "the closed period passed before the resume was checked"
        await wait_status(store, cid, {S.COMPLETED}, within=90)
        watcher.cancel()

    created = sorted(seen.created_at.values())
    before = [t for t in created if t < close]
    during = [t for t in created if close <= t < reopen]
    after = [t for t in created if t >= reopen]
    print(  # noqa: T201 - the figures the closing note quotes
        f"\nchannels before the close {len(before)}, while closed {len(during)}, after the "
        f"opening {len(after)}; last {close - before[-1]:.3f} s before the close, first "
        f"{after[0] - reopen:.3f} s after the opening"
    )
    assert during == [], [utc(t).isoformat() for t in during]
    assert before, "nothing was dialed before the close"
    assert after, "dialing did not go on at the opening"
    assert len(created) == 80 + 10  # every contact once, and every busy one again
    busy_twice = CallStatus.COMPLETED_NO_ANSWER  # busy on both attempts
    assert nonzero(await store.counts(cid)) == {CallStatus.ANSWERED: 70, busy_twice: 10}
    # Running -> Scheduled at the close, Running again at the opening (by the engine)
    moves = [(round(t - t0, 2), s.value) for t, s in statuses]
    closed_at = next(t for t, s in statuses if s is S.SCHEDULED)
    reopened_at = next(t for t, s in statuses if s is S.RUNNING and t > closed_at)
    assert close - 1.5 <= closed_at < close + 1.0, moves
    assert reopen <= reopened_at < reopen + 1.0, moves


async def test_the_end_date_stops_dialing_and_ends_the_campaign(
    stack: Any, store: RedisStore, namespace: str
) -> None:
    ends = math.ceil(time.time()) + 4
    phones = [number(Behaviour.HOLD, i, hold_s=2) for i in range(60)]
    settings = CampaignSettings(
        name="ends",
        trunk=stack.trunk,
        max_channels=10,
        cps=5.0,
        ends_at=utc(ends),
    )
    control, cid = await new_campaign(store, settings, phones)
    async with (
        running_engine(engine_settings(stack, namespace)),
        watch_asterisk(ami_settings(stack)) as seen,
    ):
        await control.start(cid)
        await wait_status(store, cid, {S.CANCELLED}, within=30)
    record = await store.get_campaign(cid)
    assert record.status_reason == END_DATE_PASSED
    created = sorted(seen.created_at.values())
    late = [t for t in created if t >= ends]
    print(  # noqa: T201
        f"\n{len(created)} channels, the last {ends - created[-1]:.3f} s before the end date"
    )
    assert late == []
    counts = nonzero(await store.counts(cid))
    assert counts[CallStatus.ANSWERED] == len(created)
    assert counts[CallStatus.NOT_DIALED] == 60 - len(created)
    assert sum(counts.values()) == 60
    assert utc(ends) - timedelta(seconds=5) < utc(created[0])
