"""The runner feeds the CPS margin's estimator (dialer.engine.pacing) one delay per claim
batch whose originates the switch accepted: the claim's Redis time to the originates' write.
(A refused batch feeds none: its results go to the engine's writer, not run here.) And one per
call whose channel the switch stamped: the claim's Redis time, kept on the call, to the
stamp."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import cast

import pytest
import redis.asyncio as aioredis

from dialer.config import EngineSettings
from dialer.domain.campaign import CampaignSettings
from dialer.engine.engine import Engine
from dialer.engine.runner import CampaignRunner
from dialer.errors import DialerError
from dialer.pbx.base import OriginateRequest, PbxAdapter
from dialer.store import ContactInput, RedisStore

pytestmark = pytest.mark.redis
TRUNK = "trunk1"


class Switch:
    """Accepts every originate; the clock moves by ``takes_s`` meanwhile."""

    connected = True

    def __init__(self, clock: list[float], takes_s: float) -> None:
        self.clock, self.takes_s = clock, takes_s

    async def originate_many(
        self, requests: Sequence[OriginateRequest]
    ) -> list[DialerError | None]:
        self.clock[0] += self.takes_s
        return [None for _ in requests]


@pytest.mark.parametrize(("granted", "samples"), [(True, 1), (False, 0)])
async def test_an_accepted_batch_feeds_its_delay(
    redis_client: aioredis.Redis, namespace: str, granted: bool, samples: int
) -> None:
    store = RedisStore(redis_client, namespace)
    now = [0.0]
    switch = Switch(now, takes_s=0.012)
    engine = Engine(EngineSettings(engine_id="e1"), store, cast(PbxAdapter, switch))
    settings = CampaignSettings(name="margin", trunk=TRUNK, max_channels=5, cps=100.0)
    cid = await engine.control.create(settings)
    await engine.control.add_list(cid, [ContactInput(phone="+33610000000")])
    await engine.control.start(cid)
    runner = CampaignRunner(engine, cid, settings, clock=lambda: now[0])
    engine._runners[cid] = runner
    batch = await store.claim_batch(
        cid, TRUNK, ["c1"], engine.owner, lease_ms=15_000, max_channels=5,
        trunk_max_channels=None, cps=None, trunk_cps=None,
    )  # fmt: skip
    now[0] = batch.server_ms / 1000 + 0.003  # written 3 ms after the grant
    (claim,) = batch.claims
    call = runner._follow(claim)
    await runner._dial([(call, claim)], batch.server_ms if granted else 0)  # 0: unknown
    stats = runner.grant_delay.statistics()
    assert stats.samples == samples
    if samples:
        assert stats.last_ms == pytest.approx(3.0, abs=0.01)  # not the switch's 12 ms
    assert runner.grant_delay.margin_ms() == 40  # too few batches yet: the former margin


async def test_a_channel_stamp_feeds_the_grant_to_channel_delay(
    redis_client: aioredis.Redis, namespace: str
) -> None:
    store = RedisStore(redis_client, namespace)
    now = [0.0]
    engine = Engine(EngineSettings(engine_id="e1"), store, cast(PbxAdapter, Switch(now, 0.0)))
    settings = CampaignSettings(name="stamps", trunk=TRUNK, max_channels=5, cps=100.0)
    cid = await engine.control.create(settings)
    await engine.control.add_list(cid, [ContactInput(phone="+33610000001")])
    await engine.control.start(cid)
    runner = CampaignRunner(engine, cid, settings, clock=lambda: now[0])
    batch = await store.claim_batch(
        cid, TRUNK, ["c2"], engine.owner, lease_ms=15_000, max_channels=5,
        trunk_max_channels=None, cps=None, trunk_cps=None,
    )  # fmt: skip
    (claim,) = batch.claims
    call = runner._follow(claim, granted_ms=batch.server_ms)
    assert call.granted_ms == batch.server_ms > 0
    runner.channel_created(call, (batch.server_ms + 25.0) / 1000)  # the switch's clock
    stats = runner.grant_delay.statistics()
    assert stats.switch_samples == 1
    assert stats.switch_spread_ms == 0.0  # one delay: no spread yet
    adopted = runner._follow(replace(claim, call_id="c3"))
    runner.channel_created(adopted, 1.0)  # no grant known (adopted): not fed
    assert runner.grant_delay.statistics().switch_samples == 1
