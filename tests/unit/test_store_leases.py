"""Leases: an expired one keeps its slot until settled; renew keeps it; adoption fences the
former owner off; orphans are reported."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus
from dialer.errors import LeaseLost
from dialer.store import RedisStore
from dialer.store.models import LOST, FinishItem, Renewal, Usage
from tests.unit.store_helpers import (
    claim,
    finish,
    inflight_calls,
    mark_originated,
    running_campaign,
)

pytestmark = pytest.mark.redis

C = CallStatus


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def test_expired_lease_keeps_its_slot_until_settled(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 5)
    crashed = await claim(store, cid, "crashed", lease_ms=300, max_channels=1)
    assert crashed.kind == "ok"
    blocked = await claim(store, cid, "next", lease_ms=300, max_channels=1)
    assert blocked.kind == "full"
    assert 0 < blocked.wait_ms <= 300
    await asyncio.sleep(0.35)
    # expired, but its call may still be up: the slot stays taken until an engine settles it
    still = await claim(store, cid, "next", lease_ms=300, max_channels=1)
    assert (still.kind, still.wait_ms) == ("full", 1)
    assert await store.orphaned_calls(cid) == ["crashed"]
    assert await inflight_calls(store, cid) == ["crashed"]
    call = await store.get_call("crashed")
    assert call is not None
    assert (call.state, call.contact, call.owner) == ("claimed", crashed.contact_id, "e1")
    # another engine may settle it only once it has adopted it (after a look at the PBX)
    with pytest.raises(LeaseLost):
        await store.release(cid, "trunk1", "crashed", crashed.contact_id, owner="e2")
    adoption = await store.adopt(cid, "trunk1", "crashed", 300, owner="e2")
    assert (adoption.verdict, adoption.state, adoption.previous) == ("adopted", "claimed", "e1")
    assert await store.orphaned_calls(cid) == []
    assert await store.release(cid, "trunk1", "crashed", crashed.contact_id, owner="e2")
    contact = await store.get_contact(cid, crashed.contact_id)
    assert (contact.status, contact.attempts) == (C.PENDING, 0)
    assert (await claim(store, cid, "next", lease_ms=300, max_channels=1)).kind == "ok"


async def test_expired_trunk_lease_is_held_too(store: RedisStore) -> None:
    a, _ = await running_campaign(store, 3, trunk="tk")
    b, _ = await running_campaign(store, 3, trunk="tk")
    first = await claim(store, a, "a1", trunk="tk", lease_ms=200, trunk_max_channels=1)
    assert first.kind == "ok"
    await asyncio.sleep(0.25)
    assert (
        await claim(store, b, "b1", trunk="tk", lease_ms=200, trunk_max_channels=1)
    ).kind == "full"
    assert await store.orphaned_calls(a) == ["a1"]
    assert (await store.adopt(a, "tk", "a1", 200, owner="e2")).verdict == "adopted"
    assert await finish(store, a, "a1", first.contact_id, trunk="tk", owner="e2")
    r = await claim(store, b, "b1", trunk="tk", lease_ms=200, trunk_max_channels=1)
    assert r.kind == "ok"


async def test_adoption_fences_the_former_owner(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 5)
    stalled = await claim(store, cid, "x", lease_ms=100, owner="e1")
    # a lease still running is not taken
    assert (await store.adopt(cid, "trunk1", "x", 5000, owner="e2")).verdict == "held"
    await asyncio.sleep(0.15)
    assert await store.orphaned_calls(cid) == ["x"]
    assert (await store.adopt(cid, "trunk1", "x", 5000, owner="e2")).verdict == "adopted"
    assert (await store.adopt(cid, "trunk1", "x", 5000, owner="e2")).verdict == "mine"
    assert (await store.adopt(cid, "trunk1", "x", 5000, owner="e3")).verdict == "held"
    # the stalled owner wakes up: everything it does with the call is refused
    assert await store.renew(cid, "trunk1", ["x"], 5000, owner="e1") == Renewal([], ["x"])
    with pytest.raises(LeaseLost):
        await mark_originated(store, "x", cid, owner="e1")
    with pytest.raises(LeaseLost):
        await finish(store, cid, "x", stalled.contact_id, owner="e1")
    with pytest.raises(LeaseLost):
        await store.release(cid, "trunk1", "x", stalled.contact_id, owner="e1")
    call = await store.get_call("x")
    assert call is not None
    assert (call.state, call.owner) == ("claimed", "e2")
    # the adopter acts on it
    assert await mark_originated(store, "x", cid, owner="e2")
    assert await store.renew(cid, "trunk1", ["x"], 5000, owner="e2") == Renewal([], [])
    assert await finish(store, cid, "x", stalled.contact_id, owner="e2")
    assert (await store.adopt(cid, "trunk1", "x", 5000, owner="e2")).verdict == "gone"
    # done by the adopter: the former owner still learns it lost the call
    assert await store.renew(cid, "trunk1", ["x"], 5000, owner="e1") == Renewal([], ["x"])
    assert await inflight_calls(store, cid) == []
    records = await store.records(cid)
    assert len(records) == 1


async def test_finish_batch_reports_a_lost_lease_per_item(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 5)
    mine = await claim(store, cid, "mine", owner="e1")
    theirs = await claim(store, cid, "theirs", owner="e2")
    items = [
        FinishItem(cid, "trunk1", call_id, r.contact_id, C.ANSWERED, 1, 0, None, {}, owner="e1")
        for call_id, r in (("mine", mine), ("theirs", theirs))
    ]
    written = await store.finish_batch(items)
    assert isinstance(written[0], Usage)
    assert written[1] == LOST
    assert await inflight_calls(store, cid) == ["theirs"]


async def test_renew_keeps_the_slot(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 5)
    held = await claim(store, cid, "held", lease_ms=300, max_channels=1)
    loop = asyncio.get_running_loop()
    end = loop.time() + 0.9
    while loop.time() < end:
        assert await store.renew(
            cid, "trunk1", ["held", "unknown-call"], 300, owner="e1"
        ) == Renewal([], [])
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
    assert await store.renew(cid, "trunk1", ["long", "done"], 1000, owner="e1") == Renewal([], [])
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
    assert await store.renew(cid, "trunk1", ["slow"], 5000, owner="e1") == Renewal(["slow"], [])
    assert await store.orphaned_calls(cid) == []
    assert await inflight_calls(store, cid) == ["slow"]
    assert (await store.queue_stats(cid)).claimed == 1
    assert await mark_originated(store, "slow", cid)
    assert await finish(store, cid, "slow", slow.contact_id)


async def test_originated_and_wait_claimed_empty(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 3)
    r = await claim(store, cid, "c1")
    assert await store.wait_claimed_empty(cid, 0.05) is False

    async def originate_soon() -> None:
        await asyncio.sleep(0.1)
        assert await mark_originated(store, "c1", cid)

    waited, _ = await asyncio.gather(store.wait_claimed_empty(cid, 5), originate_soon())
    assert waited is True
    call = await store.get_call("c1")
    assert call is not None
    assert call.state == "originated"
    assert call.originated_ms is not None
    assert call.originated_ms >= call.claimed_ms
    assert await mark_originated(store, "c1", cid) is False
    assert await inflight_calls(store, cid) == ["c1"]  # still holds its channel
    assert await finish(store, cid, "c1", r.contact_id)
    assert await mark_originated(store, "c1", cid) is False
