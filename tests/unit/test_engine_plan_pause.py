"""A plan-limit pause never holds up the results writer (issue 14, item 3), against a real Redis.

The integration twin (tests/integration/test_plan_pause.py) shows another campaign's originates
going on while the pause runs; here the pause is made as slow as wanted and the writer is timed.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

import pytest
import redis.asyncio as aioredis

from dialer.config import EngineSettings
from dialer.domain.calls import RawOutcome
from dialer.domain.campaign import CampaignSettings, PlanLimits
from dialer.domain.statuses import CampaignStatus
from dialer.engine.calls import LiveCall
from dialer.engine.control import PLAN_LIMIT_REASON
from dialer.engine.engine import Engine, _Claim, _Ended
from dialer.engine.runner import CampaignRunner
from dialer.pbx.base import CallEnded, PbxAdapter
from dialer.store import RedisStore
from dialer.store.models import ClaimCommand, ContactInput

pytestmark = pytest.mark.redis

TRUNK = "trunk1"


async def test_writer_returns_while_the_plan_pause_is_slow(
    redis_client: aioredis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisStore(redis_client, namespace)
    engine = Engine(EngineSettings(engine_id="e1"), store, cast(PbxAdapter, None))
    settings = CampaignSettings(
        name="plan", trunk=TRUNK, max_channels=5, cps=100.0, limits=PlanLimits(max_attempts_total=1)
    )
    cid = await engine.control.create(settings)
    await engine.control.add_list(cid, [ContactInput(phone=f"+3361000000{i}") for i in range(3)])
    await engine.control.start(cid)
    runner = CampaignRunner(engine, cid, settings)
    engine._runners[cid] = runner

    def claim_command(call_id: str) -> ClaimCommand:
        return store.claim_command(
            cid,
            TRUNK,
            [call_id],
            engine.owner,  # the engine's lease token: its results are fenced by it
            lease_ms=10_000,
            max_channels=5,
            trunk_max_channels=None,
            cps=None,
            trunk_cps=None,
        )

    first = _Claim(claim_command("c1"))
    await engine._write_batch([first])
    assert first.result is not None
    assert not isinstance(first.result, Exception)
    (claim,) = first.result.claims
    call = LiveCall(
        "c1", cid, TRUNK, claim.contact_id, claim.phone, 0, 0, time.time(), engine_id="e1"
    )
    ended = CallEnded("c1", RawOutcome(answered=False, sip_code=486), ended_at=time.time())

    gate = asyncio.Event()  # the pause's status change waits for it: as slow as the test likes
    pause_nowait = engine.control.pause_nowait

    async def slow_pause(cid: int, reason: str = "") -> CampaignStatus:
        await gate.wait()
        return await pause_nowait(cid, reason)

    monkeypatch.setattr(engine.control, "pause_nowait", slow_pause)
    async with asyncio.TaskGroup() as tg:
        followup = tg.create_task(engine.followup.run())
        started = time.perf_counter()
        # the result that uses the plan up, and a claim sent in the same round trip after it
        late = _Claim(claim_command("c2"))
        await engine._write_batch([_Ended(call, ended, runner), late])
        took = time.perf_counter() - started
        assert took < 0.2, f"the writer waited {took:.3f} s for the pause"
        assert runner.plan_used_up  # the runner claims no more, before the pause lands
        assert late.result is not None
        assert not isinstance(late.result, Exception)
        assert late.result.claims == []  # withheld: the result before it used the plan up
        assert (await store.get_campaign(cid)).status == CampaignStatus.RUNNING
        await asyncio.sleep(0)  # the follow-up loop takes the request ...
        assert engine.followup.statistics().pauses_waiting == 0
        gate.set()  # ... and pauses once its status change may go through
        async with asyncio.timeout(5):
            while (await store.get_campaign(cid)).status != CampaignStatus.PAUSED:
                await asyncio.sleep(0.01)
        followup.cancel()
    campaign = await store.get_campaign(cid)
    assert campaign.status_reason == PLAN_LIMIT_REASON
    assert (await store.usage(cid)).attempts == 1
    assert engine.followup.statistics().paused == 1
