"""Leases: a crashed worker cannot hold a slot; renew keeps it; orphans are reported."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus
from dialer.store import RedisStore
from tests.unit.store_helpers import claim, claim_when_ok, finish, running_campaign

pytestmark = pytest.mark.redis

C = CallStatus


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def test_expired_lease_frees_the_slot(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 5)
    crashed = await claim(store, cid, "crashed", lease_ms=300, max_channels=1)
    assert crashed.kind == "ok"
    blocked = await claim(store, cid, "next", lease_ms=300, max_channels=1)
    assert blocked.kind == "full"
    assert 0 < blocked.wait_ms <= 300
    r = await claim_when_ok(store, cid, "next", lease_ms=300, max_channels=1)
    assert r.server_ms >= crashed.server_ms + 300
    # the crashed call is an orphan: reported until someone finishes or releases it
    assert await store.orphaned_calls(cid) == ["crashed"]
    assert await store.inflight_calls(cid) == ["next"]
    call = await store.get_call("crashed")
    assert call is not None
    assert (call.state, call.contact) == ("claimed", crashed.contact_id)
    assert await store.release(cid, "trunk1", "crashed", crashed.contact_id)
    assert await store.orphaned_calls(cid) == []
    contact = await store.get_contact(cid, crashed.contact_id)
    assert (contact.status, contact.attempts) == (C.PENDING, 0)


async def test_trunk_lease_expires_too(store: RedisStore) -> None:
    a, _ = await running_campaign(store, 3, trunk="tk")
    b, _ = await running_campaign(store, 3, trunk="tk")
    first = await claim(store, a, "a1", trunk="tk", lease_ms=200, trunk_max_channels=1)
    assert first.kind == "ok"
    assert (
        await claim(store, b, "b1", trunk="tk", lease_ms=200, trunk_max_channels=1)
    ).kind == "full"
    r = await claim_when_ok(store, b, "b1", trunk="tk", lease_ms=200, trunk_max_channels=1)
    assert r.server_ms >= first.server_ms + 200


async def test_renew_keeps_the_slot(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 5)
    held = await claim(store, cid, "held", lease_ms=300, max_channels=1)
    loop = asyncio.get_running_loop()
    end = loop.time() + 0.9
    while loop.time() < end:
        assert await store.renew(cid, "trunk1", ["held", "unknown-call"], 300) == []
        assert (await claim(store, cid, "other", lease_ms=300, max_channels=1)).kind == "full"
        await asyncio.sleep(0.1)
    assert await store.orphaned_calls(cid) == []
    assert await finish(store, cid, "held", held.contact_id)
    assert (await claim(store, cid, "other", lease_ms=300, max_channels=1)).kind == "ok"


async def test_renew_never_shortens_and_skips_finished(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    cid, _ = await running_campaign(store, 5)
    long = await claim(store, cid, "long", lease_ms=60_000)
    done = await claim(store, cid, "done", lease_ms=60_000)
    assert await finish(store, cid, "done", done.contact_id)
    assert await store.renew(cid, "trunk1", ["long", "done"], 1000) == []
    assert await redis_client.zscore(store.keys.inflight(cid), "long") == long.server_ms + 60_000
    assert await redis_client.zscore(store.keys.inflight(cid), "done") is None
    assert await redis_client.zscore(store.keys.trunk_inflight("trunk1"), "done") is None


async def test_stalled_owner_gets_its_lease_back(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 5)
    slow = await claim(store, cid, "slow", lease_ms=100)
    await asyncio.sleep(0.15)
    assert await store.orphaned_calls(cid) == ["slow"]
    assert (await store.queue_stats(cid)).claimed == 0
    # the owner was only slow: its renewal reports the loss and re-takes the lease
    assert await store.renew(cid, "trunk1", ["slow"], 5000) == ["slow"]
    assert await store.orphaned_calls(cid) == []
    assert await store.inflight_calls(cid) == ["slow"]
    assert (await store.queue_stats(cid)).claimed == 1
    assert await store.mark_originated("slow", cid)
    assert await finish(store, cid, "slow", slow.contact_id)


async def test_originated_and_wait_claimed_empty(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 3)
    r = await claim(store, cid, "c1")
    assert await store.wait_claimed_empty(cid, 0.05) is False

    async def originate_soon() -> None:
        await asyncio.sleep(0.1)
        assert await store.mark_originated("c1", cid)

    waited, _ = await asyncio.gather(store.wait_claimed_empty(cid, 5), originate_soon())
    assert waited is True
    call = await store.get_call("c1")
    assert call is not None
    assert call.state == "originated"
    assert call.originated_ms is not None
    assert call.originated_ms >= call.claimed_ms
    assert await store.mark_originated("c1", cid) is False
    assert await store.inflight_calls(cid) == ["c1"]  # still holds its channel
    assert await finish(store, cid, "c1", r.contact_id)
    assert await store.mark_originated("c1", cid) is False
