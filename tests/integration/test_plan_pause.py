"""A plan-limit pause of one campaign does not stall the others (issue 14, item 3).

Campaign A has a small attempt plan; campaign B dials at 200 CPS on the same engine. When A's
plan runs out, A pauses while B keeps originating: B's channels, timed by Asterisk's own
Newchannel ``Timestamp``, never stop for longer than two pacing steps. Before the pause left
the results writer's path, the writer waited up to a second for the pause to settle, and B's
claims (sent in the writer's round trips) waited with it: a gap of about a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from dialer.domain.campaign import CampaignSettings, PlanLimits
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CampaignStatus
from dialer.engine.control import PLAN_LIMIT_REASON
from dialer.store.redis_store import RedisStore
from ops.localstack.numberplan import Behaviour, number
from tests.integration.conftest import ami_settings
from tests.integration.engine_helpers import (
    engine_settings,
    new_campaign,
    running_engine,
    wait_status,
)
from tests.integration.monitor import watch_asterisk

pytestmark = [pytest.mark.integration, pytest.mark.redis]
log = logging.getLogger(__name__)

PLAN = 20  # A's attempts
B_CPS = 200.0
PACE_MS = 50  # EngineSettings.pace_ms's default, set here so the bound below follows it


def busy_campaign(stack: Any, name: str, **kw: Any) -> CampaignSettings:
    """486 Busy callees: each call ends within milliseconds, one attempt per contact."""
    return CampaignSettings(
        name=name,
        trunk=stack.trunk,
        ring_timeout=5.0,
        amd=False,
        retry=RetryPolicy(max_attempts=1),
        **kw,
    )


@pytest.fixture
async def store(stack: Any, namespace: str):
    s = RedisStore.from_url(stack.redis_url, namespace=namespace)
    yield s
    await s.aclose()


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest time between consecutive ``times`` over [start, end] (its edges included:
    a stall from before ``start`` into the window counts from the last channel before it)."""
    inside = sorted(t for t in times if start <= t <= end)
    before = [t for t in times if t < start]
    after = [t for t in times if t > end]
    points = [max(before, default=start), *inside, min(after, default=end)]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


async def test_plan_limit_pause_does_not_stall_another_campaign(stack, store, namespace):
    _, a = await new_campaign(
        store,
        busy_campaign(
            stack, "plan-A", max_channels=20, cps=50.0, limits=PlanLimits(max_attempts_total=PLAN)
        ),
        [number(Behaviour.BUSY, i) for i in range(200)],
    )
    control, b = await new_campaign(
        store,
        busy_campaign(stack, "busy-B", max_channels=200, cps=B_CPS),
        [number(Behaviour.BUSY, i) for i in range(1000, 3400)],  # 12 s of dialing at 200 CPS
    )
    watch = ami_settings(stack, events="call")
    async with (
        running_engine(engine_settings(stack, namespace, pace_ms=PACE_MS)),
        watch_asterisk(watch) as seen,
    ):
        await control.start(b)
        while len(seen.created_at) < 200:  # B at its pace for about a second
            await asyncio.sleep(0.02)
        steady = time.time()
        await asyncio.sleep(0.5)  # B alone: its gaps without A, for comparison
        a_started = time.time()
        await control.start(a)
        await wait_status(store, a, {CampaignStatus.PAUSED}, within=15)
        a_paused = time.time()
        await asyncio.sleep(0.3)
        window_end = time.time()
        await asyncio.sleep(0.3)  # B's channels after the window show it was still dialing
        await control.stop(b)
        await wait_status(store, b, {CampaignStatus.CANCELLED}, within=20)

    campaign_a = await store.get_campaign(a)
    assert campaign_a.status_reason == PLAN_LIMIT_REASON
    a_ids = {rec["call_id"] for _, rec in await store.records(a, count=10_000)}
    attempts = (await store.usage(a)).attempts
    assert attempts == len(a_ids)  # every attempt of A has its record (A drained)
    b_times = [t for call_id, t in seen.created_at.items() if call_id not in a_ids]
    a_created = sorted(seen.created_at[c] for c in a_ids if c in seen.created_at)
    a_ended = sorted(seen.ended_at[c] for c in a_ids if c in seen.ended_at)
    # the moment A's plan was used up, on Asterisk's clock: the PLAN-th of A's hang-ups
    exhausted_at = a_ended[PLAN - 1]
    after_exhaustion = sum(1 for t in a_created if t > exhausted_at)
    gap = longest_gap(b_times, a_started, window_end)
    alone = longest_gap(b_times, steady, a_started)
    log.warning(
        "B's longest gap %.0f ms (bound %d ms; %.0f ms in the 0.5 s before A started) over "
        "%.2f s while A was exhausted and paused "
        "(A paused %.2f s after its start); A: %d attempts for a plan of %d (+%d), %d of its "
        "channels created after its %d-th hang-up",
        gap * 1000,
        2 * PACE_MS,
        alone * 1000,
        window_end - a_started,
        a_paused - a_started,
        attempts,
        PLAN,
        attempts - PLAN,
        after_exhaustion,
        PLAN,
    )
    assert max(b_times) > window_end  # B was still dialing when the window closed
    # Two pacing steps: B's claims are paced in 50-ms steps, so a gap of one step is normal and
    # one more allows for a loaded machine (2 shared cores; measured 53-92 ms over 16 runs);
    # the stall this guards against was about 1,050 ms.
    assert gap <= 2 * PACE_MS / 1000, (
        f"B stalled {gap * 1000:.0f} ms while A paused ({alone * 1000:.0f} ms before A started)"
    )
