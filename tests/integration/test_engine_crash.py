"""An engine process killed (SIGKILL) with calls in flight: another engine settles them."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest

from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store.redis_store import RedisStore
from ops.localstack.numberplan import Behaviour, number
from tests.integration.engine_helpers import (
    engine_processes,
    engine_settings,
    new_campaign,
    nonzero,
    running_engine,
    wait_status,
)

pytestmark = [pytest.mark.integration, pytest.mark.redis]


async def test_killed_engine_calls_are_adopted_and_nobody_is_dialed_twice(
    stack: Any, namespace: str
) -> None:
    store = RedisStore.from_url(stack.redis_url, namespace=namespace)
    phones = [number(Behaviour.HOLD, i, hold_s=4) for i in range(12)]
    settings = CampaignSettings(
        name="crash", trunk=stack.trunk, max_channels=6, cps=50.0, ring_timeout=5.0
    )
    control, cid = await new_campaign(store, settings, phones)
    fast = engine_settings(stack, namespace, lease_ms=1500)
    with engine_processes(fast, 1) as (victim,):
        await asyncio.sleep(1.0)
        await control.start(cid)
        async with asyncio.timeout(10):
            while (await store.queue_stats(cid)).inflight < 6:
                await asyncio.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)  # 6 answered calls in flight, owner gone
        victim.wait(5)
    counts = nonzero(await store.counts(cid))
    assert counts.get(CallStatus.IN_PROGRESS) == 6
    async with running_engine(fast):
        await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
    records = [r for _, r in await store.records(cid, count=100)]
    final_counts = nonzero(await store.counts(cid))
    await store.aclose()
    assert len(records) == 12
    assert len({r["contact"] for r in records}) == 12  # none dialed twice, none lost
    assert final_counts == {CallStatus.ANSWERED: 12}
    adopted = [r for r in records if r["engine"] != "proc-0"]
    assert len(adopted) >= 6  # the orphans were followed to their end by the survivor
