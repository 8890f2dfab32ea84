"""A claim too old to dial (the engine stalled between the claim and its originate) is given
back, never dialed: another engine may have released it and claimed the contact again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import pytest
import redis.asyncio as aioredis

from dialer.config import EngineSettings
from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CallStatus
from dialer.engine.engine import Engine
from dialer.engine.runner import CampaignRunner
from dialer.errors import DialerError
from dialer.pbx.base import OriginateRequest, PbxAdapter
from dialer.store import ContactInput, RedisStore

pytestmark = pytest.mark.redis
TRUNK = "trunk1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class RecordingPbx:
    connected = True

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def originate_many(
        self, requests: Sequence[OriginateRequest]
    ) -> list[DialerError | None]:
        self.sent.extend(r.call_id for r in requests)
        return [None] * len(requests)


@pytest.mark.parametrize(("stalled_s", "dialed"), [(0.2, True), (1.5, False)])
async def test_a_claim_older_than_half_the_lease_is_given_back(
    redis_client: aioredis.Redis, namespace: str, stalled_s: float, dialed: bool
) -> None:
    store = RedisStore(redis_client, namespace)
    pbx = RecordingPbx()
    engine = Engine(EngineSettings(engine_id="e1", lease_ms=2000), store, cast(PbxAdapter, pbx))
    settings = CampaignSettings(name="stale", trunk=TRUNK, max_channels=5, cps=100.0)
    cid = await engine.control.create(settings)
    await engine.control.add_list(cid, [ContactInput(phone="+33610000000")])
    await engine.control.start(cid)
    clock = Clock()
    runner = CampaignRunner(engine, cid, settings, clock=clock)
    engine._runners[cid] = runner
    batch = await store.claim_batch(
        cid,
        TRUNK,
        ["c1"],
        engine.owner,
        lease_ms=2000,
        max_channels=5,
        trunk_max_channels=None,
        cps=None,
        trunk_cps=None,
    )
    (claim,) = batch.claims
    call = runner._follow(claim)
    clock.now += stalled_s  # the engine was frozen (SIGSTOP) or starved this long
    await runner._dial([(call, claim)])
    assert pbx.sent == (["c1"] if dialed else [])
    contact = await store.get_contact(cid, claim.contact_id)
    if dialed:
        assert contact.status is CallStatus.IN_PROGRESS
    else:
        assert contact.status is CallStatus.PENDING  # back in the queue, no attempt used
        assert (contact.attempts, runner.calls, engine.statistics().live_calls) == (0, {}, 0)
