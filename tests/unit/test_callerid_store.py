"""Lists' caller-ID settings and the pools' rotation, on a real redis-server."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from dialer.domain.callerid import CallerIdPool, CallerIdSource, PoolMode
from dialer.engine.callerid import CallerIdChooser
from dialer.errors import NotFound
from dialer.store import ContactInput, RedisStore
from dialer.store.callerid import contact_lists, list_caller_ids, set_list_caller_id, take_turns
from ops.localstack.redis_server import RedisServer

pytestmark = pytest.mark.redis

NJ, CHICAGO, SF = "+12015550100", "+13125550100", "+14155550100"


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


@pytest.fixture
async def stores(redis_server: RedisServer, namespace: str) -> AsyncIterator[list[RedisStore]]:
    """Five stores (five engines), each with its own connection pool."""
    made = [RedisStore.from_url(redis_server.url, namespace) for _ in range(5)]
    yield made
    for s in made:
        await s.aclose()


async def _campaign_with_lists(store: RedisStore, *phones: list[str]) -> tuple[int, list[int]]:
    cid = await store.create_campaign("c", "trunk1", "{}")
    lids = []
    for numbers in phones:
        lid = await store.add_list(cid)
        await store.add_contacts(cid, lid, [ContactInput(p) for p in numbers])
        lids.append(lid)
    return cid, lids


async def test_list_settings_are_set_read_and_cleared(store: RedisStore) -> None:
    cid, (l1, l2) = await _campaign_with_lists(store, ["+12015600001"], ["+13125550199"])
    assert await list_caller_ids(store, cid) == {}
    local = CallerIdSource(None, CallerIdPool((NJ, CHICAGO), PoolMode.LOCAL, fallback=SF))
    await set_list_caller_id(store, cid, l2, local)
    await set_list_caller_id(store, cid, l1, CallerIdSource('"Sales" <+15005550001>'))
    assert await list_caller_ids(store, cid) == {
        l1: CallerIdSource('"Sales" <+15005550001>'),
        l2: local,
    }
    await set_list_caller_id(store, cid, l1, CallerIdSource())  # empty: cleared
    assert await list_caller_ids(store, cid) == {l2: local}
    assert await contact_lists(store, cid, [1, 2, 99]) == [l1, l2, 0]
    with pytest.raises(NotFound):
        await set_list_caller_id(store, cid, 42, local)
    with pytest.raises(NotFound):
        await set_list_caller_id(store, cid + 1000, l1, local)
    await store.delete_campaign(cid)
    assert not await store.client.exists(store.keys.list_caller_ids(cid))


async def test_turns_are_atomic_across_engines(stores: list[RedisStore]) -> None:
    """5 engines x 40 batches of 1-7 calls, all at once: every turn is taken exactly once."""
    cid = await stores[0].create_campaign("c", "trunk1", "{}")
    rng = random.Random(18)
    sizes = [[rng.randint(1, 7) for _ in range(40)] for _ in stores]

    async def engine(store: RedisStore, batches: list[int]) -> list[int]:
        taken: list[int] = []
        for n in batches:
            first = await take_turns(store, cid, {"campaign": n, "list:1": 1})
            taken += range(first["campaign"], first["campaign"] + n)
        return taken

    results = await asyncio.gather(*(engine(s, b) for s, b in zip(stores, sizes, strict=True)))
    total = sum(map(sum, sizes))
    turns = [t for r in results for t in r]
    assert sorted(turns) == list(range(total))  # no gap, no repeat
    raw = await stores[0].client.hgetall(stores[0].keys.caller_id_turns(cid))
    assert raw == {b"campaign": str(total).encode(), b"list:1": b"200"}


async def test_two_engines_share_one_rotation(stores: list[RedisStore]) -> None:
    callees = [f"+1201560{i:04d}" for i in range(30)]
    cid, _ = await _campaign_with_lists(stores[0], callees)
    campaign = CallerIdSource(None, CallerIdPool((NJ, CHICAGO, SF)))
    engines = [CallerIdChooser(s, cid) for s in stores[:2]]
    batches = [
        engines[i % 2].choose(campaign, [(k + 1, callees[k]) for k in range(i * 3, i * 3 + 3)])
        for i in range(10)
    ]
    chosen = [c for batch in await asyncio.gather(*batches) for c in batch]
    assert Counter(chosen) == {NJ: 10, CHICAGO: 10, SF: 10}


async def test_chooser_applies_each_lists_settings(store: RedisStore) -> None:
    cid, (l1, l2, l3) = await _campaign_with_lists(
        store,
        ["+12015600001", "+12015600002", "+12015600003"],  # campaign's rotation
        ["+12015600004", "+13125550005", "+16175550006"],  # local pool
        ["+12015600007"],  # a fixed caller id
    )
    await set_list_caller_id(
        store,
        cid,
        l2,
        CallerIdSource(None, CallerIdPool((CHICAGO, NJ), PoolMode.LOCAL, fallback=SF)),
    )
    await set_list_caller_id(store, cid, l3, CallerIdSource('"Support" <+15005550009>'))
    campaign = CallerIdSource("+15005550000", CallerIdPool(("+15005550001", "+15005550002")))
    chooser = CallerIdChooser(store, cid)
    phones = {1: "+12015600001", 2: "+12015600002", 3: "+12015600003", 4: "+12015600004"}
    phones |= {5: "+13125550005", 6: "+16175550006", 7: "+12015600007"}
    chosen = await chooser.choose(campaign, sorted(phones.items()))
    assert chosen == [
        "+15005550001",
        "+15005550002",
        "+15005550001",
        NJ,
        CHICAGO,
        SF,
        '"Support" <+15005550009>',
    ]
    assert l1 == 1
    # lists' settings are cached for `refresh` seconds; a fresh chooser sees a change at once
    await set_list_caller_id(store, cid, l3, CallerIdSource())
    again = await CallerIdChooser(store, cid).choose(campaign, [(7, phones[7])])
    assert again == ["+15005550002"]  # the campaign's rotation, turn 3


async def test_chooser_falls_back_to_the_campaign_when_redis_fails(
    redis_server: RedisServer, namespace: str
) -> None:
    dead = RedisStore(
        aioredis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0)), namespace
    )
    campaign = CallerIdSource(None, CallerIdPool((NJ, CHICAGO)))
    chooser = CallerIdChooser(dead, 1)
    chosen = await chooser.choose(campaign, [(1, "+12015600001"), (2, "+12015600002")])
    chosen += await chooser.choose(campaign, [(3, "+12015600003")])
    assert chosen == [NJ, CHICAGO, NJ]
    await dead.aclose()
