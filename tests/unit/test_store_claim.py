"""claim.lua: the atomicity proofs (tasks on many connections, and separate processes)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.errors import NotFound, StoreError
from dialer.store import RedisStore
from ops.localstack.redis_server import RedisServer
from tests.unit.store_helpers import claim, finish, inflight_calls, running_campaign

pytestmark = pytest.mark.redis

C = CallStatus


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


@pytest.fixture
async def stores(redis_server: RedisServer, namespace: str) -> AsyncIterator[list[RedisStore]]:
    """Five stores, each with its own client and connection pool."""
    made = [RedisStore.from_url(redis_server.url, namespace) for _ in range(5)]
    yield made
    for s in made:
        await s.aclose()


async def test_claim_ok_sets_everything(store: RedisStore, redis_client: aioredis.Redis) -> None:
    cid, _ = await running_campaign(store, 2)
    r = await claim(store, cid, "call-1", owner="engine-a", lease_ms=5000)
    assert (r.kind, r.contact_id, r.phone, r.vars, r.attempts) == (
        "ok",
        1,
        "+33610000000",
        {"n": "0"},
        0,
    )
    call = await store.get_call("call-1")
    assert call is not None
    assert (call.cid, call.contact, call.trunk, call.state, call.owner) == (
        cid,
        1,
        "trunk1",
        "claimed",
        "engine-a",
    )
    assert call.claimed_ms == r.server_ms
    contact = await store.get_contact(cid, 1)
    assert (contact.status, contact.last_call) == (C.IN_PROGRESS, "call-1")
    assert (await store.counts(cid))[C.IN_PROGRESS] == 1
    assert await inflight_calls(store, cid) == ["call-1"]
    expiry = await redis_client.zscore(store.keys.trunk_inflight("trunk1"), "call-1")
    assert expiry == r.server_ms + 5000
    stats = await store.queue_stats(cid)
    assert (stats.pending_total, stats.inflight, stats.claimed) == (1, 1, 1)
    assert await store.get_call("nope") is None


async def test_claim_replay_returns_same_contact(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 3)
    first = await claim(store, cid, "call-1")
    again = await claim(store, cid, "call-1")
    assert (again.kind, again.contact_id) == ("ok", first.contact_id)
    assert (await store.counts(cid))[C.IN_PROGRESS] == 1
    assert await finish(store, cid, "call-1", first.contact_id)
    with pytest.raises(StoreError, match="already used"):
        await claim(store, cid, "call-1")


async def test_claim_refused_unless_running(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 3)
    await store.transition(cid, {CampaignStatus.RUNNING}, CampaignStatus.PAUSING)
    r = await claim(store, cid, "c1")
    assert (r.kind, r.status) == ("status", CampaignStatus.PAUSING)
    assert (await store.counts(cid))[C.PENDING] == 3
    await store.delete_campaign(cid)
    with pytest.raises(NotFound):
        await claim(store, cid, "c2")


async def test_empty_reports_next_due(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 1)
    r = await claim(store, cid, "c1")
    assert await finish(
        store, cid, "c1", r.contact_id, C.RETRY_SCHEDULED, retry_at_ms=r.server_ms + 60_000
    )
    e = await claim(store, cid, "c2")
    assert (e.kind, e.next_due_ms) == ("empty", r.server_ms + 60_000)
    assert 59_000 < e.wait_ms <= 60_000
    assert (await store.get_contact(cid, r.contact_id)).next_due_ms == r.server_ms + 60_000
    await store.mark_undialed(cid, C.NOT_DIALED)
    e = await claim(store, cid, "c3")
    assert (e.kind, e.next_due_ms, e.wait_ms) == ("empty", None, -1)


async def test_50_concurrent_claimers_10_channels(stores: list[RedisStore]) -> None:
    cid, _ = await running_campaign(stores[0], 100)
    results = await asyncio.gather(
        *(
            claim(
                stores[i % len(stores)], cid, f"call-{i}", max_channels=10, trunk_max_channels=None
            )
            for i in range(50)
        )
    )
    kinds = Counter(r.kind for r in results)
    assert kinds == {"ok": 10, "full": 40}
    assert len({r.contact_id for r in results if r.kind == "ok"}) == 10
    assert (await stores[0].counts(cid))[C.IN_PROGRESS] == 10
    assert len(await inflight_calls(stores[0], cid)) == 10


async def test_trunk_limit_shared_by_campaigns(stores: list[RedisStore]) -> None:
    a, _ = await running_campaign(stores[0], 20, trunk="shared")
    b, _ = await running_campaign(stores[0], 20, trunk="shared")
    results = await asyncio.gather(
        *(
            claim(
                stores[i % 5],
                (a, b)[i % 2],
                f"c{i}",
                trunk="shared",
                max_channels=10,
                trunk_max_channels=7,
            )
            for i in range(40)
        )
    )
    assert Counter(r.kind for r in results) == {"ok": 7, "full": 33}


async def test_claim_finish_release_storm_no_contact_twice_none_lost(
    stores: list[RedisStore],
) -> None:
    """1000 contacts, 40 workers on 5 connections pools: claim, then finish, retry or release."""
    total = 1000
    cid, _ = await running_campaign(stores[0], total)
    rng = random.Random(7)
    held: set[int] = set()
    finals: Counter[int] = Counter()
    dialed: Counter[int] = Counter()
    seq = iter(range(10**9))

    async def worker(store: RedisStore) -> None:
        while sum(finals.values()) < total:
            call_id = f"call-{next(seq)}"
            r = await claim(store, cid, call_id, max_channels=25)
            if r.kind != "ok":
                await asyncio.sleep(0.001)
                continue
            assert r.contact_id not in held, f"contact {r.contact_id} claimed twice"
            held.add(r.contact_id)
            await asyncio.sleep(rng.random() * 0.002)  # others claim meanwhile
            roll = rng.random()
            held.discard(r.contact_id)
            if roll < 0.1:
                assert await store.release(cid, "trunk1", call_id, r.contact_id)
            elif roll < 0.25 and r.attempts < 2:
                dialed[r.contact_id] += 1
                assert await finish(
                    store, cid, call_id, r.contact_id, C.RETRY_SCHEDULED, retry_at_ms=r.server_ms
                )
            else:
                dialed[r.contact_id] += 1
                assert await finish(store, cid, call_id, r.contact_id, C.ANSWERED)
                finals[r.contact_id] += 1

    async with asyncio.timeout(30):
        await asyncio.gather(*(worker(stores[i % 5]) for i in range(40)))

    assert sorted(finals) == list(range(1, total + 1))
    assert set(finals.values()) == {1}
    counts = await stores[0].counts(cid)
    assert {s: n for s, n in counts.items() if n} == {C.ANSWERED: total}
    stats = await stores[0].queue_stats(cid)
    assert (stats.pending_total, stats.inflight, stats.claimed) == (0, 0, 0)
    for contact_id in rng.sample(range(1, total + 1), 50):
        assert (await stores[0].get_contact(cid, contact_id)).attempts == dialed[contact_id]
    records = await stores[0].records(cid, count=10_000)
    assert len(records) == sum(dialed.values())


# ---------------------------------------------------------------- separate processes


def _claim_burst(url: str, ns: str, cid: int, worker: int, n: int, barrier: Any, out: Any) -> None:
    async def main() -> list[str]:
        store = RedisStore.from_url(url, ns)
        await store.ping()
        await asyncio.to_thread(barrier.wait, 30)
        results = await asyncio.gather(
            *(claim(store, cid, f"p{worker}-{i}", max_channels=10) for i in range(n))
        )
        await store.aclose()
        return [r.kind for r in results]

    out.put(asyncio.run(main()))


def _claim_finish_loop(url: str, ns: str, cid: int, worker: int, barrier: Any, out: Any) -> None:
    async def main() -> tuple[list[int], list[int]]:
        store = RedisStore.from_url(url, ns)
        await store.ping()
        await asyncio.to_thread(barrier.wait, 30)
        claimed: list[int] = []
        finished: list[int] = []

        async def loop(task: int) -> None:
            i = 0
            while True:
                call_id = f"p{worker}-{task}-{i}"
                i += 1
                r = await claim(store, cid, call_id, max_channels=20)
                if r.kind == "ok":
                    claimed.append(r.contact_id)
                    if await finish(store, cid, call_id, r.contact_id):
                        finished.append(r.contact_id)
                elif r.kind == "empty" and r.wait_ms == -1:
                    return
                else:
                    await asyncio.sleep(0.001)

        await asyncio.gather(*(loop(t) for t in range(8)))
        await store.aclose()
        return claimed, finished

    out.put(asyncio.run(main()))


def _run_processes(target: Any, args: list[tuple[Any, ...]]) -> list[Any]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(args))
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, barrier, out)) for a in args]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    return results


def test_three_processes_50_claimers_10_channels(redis_server: RedisServer, namespace: str) -> None:
    async def setup() -> int:
        store = RedisStore.from_url(redis_server.url, namespace)
        cid, _ = await running_campaign(store, 100)
        await store.aclose()
        return cid

    cid = asyncio.run(setup())
    sizes = [17, 17, 16]
    results = _run_processes(
        _claim_burst, [(redis_server.url, namespace, cid, w, n) for w, n in enumerate(sizes)]
    )
    kinds = Counter(k for kinds in results for k in kinds)
    assert kinds == {"ok": 10, "full": 40}


def test_three_processes_claim_finish_each_contact_once(
    redis_server: RedisServer, namespace: str
) -> None:
    total = 1000

    async def setup() -> int:
        store = RedisStore.from_url(redis_server.url, namespace)
        cid, _ = await running_campaign(store, total)
        await store.aclose()
        return cid

    async def check(cid: int) -> dict[CallStatus, int]:
        store = RedisStore.from_url(redis_server.url, namespace)
        counts = await store.counts(cid)
        await store.aclose()
        return counts

    cid = asyncio.run(setup())
    results = _run_processes(
        _claim_finish_loop, [(redis_server.url, namespace, cid, w) for w in range(3)]
    )
    claimed = [c for r in results for c in r[0]]
    finished = [c for r in results for c in r[1]]
    assert sorted(claimed) == list(range(1, total + 1))  # each contact claimed exactly once
    assert sorted(finished) == list(range(1, total + 1))
    assert all(r[0] for r in results)  # every process got a share
    counts = asyncio.run(check(cid))
    assert {s: n for s, n in counts.items() if n} == {C.ANSWERED: total}
