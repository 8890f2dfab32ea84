"""Redis restarts: state persists through the AOF; the store reconnects by itself."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.errors import StoreError
from dialer.store import RedisStore
from ops.localstack.redis_server import RedisServer
from tests.unit.store_helpers import (
    claim,
    contacts,
    finish,
    inflight_calls,
    mark_originated,
    running_campaign,
)

pytestmark = pytest.mark.redis

C = CallStatus


async def snapshot(store: RedisStore, cid: int, n: int) -> dict[str, Any]:
    return {
        "campaign": await store.get_campaign(cid),
        "counts": await store.counts(cid),
        "lists": await store.list_status(cid),
        "queue": await store.queue_stats(cid),
        "contacts": [await store.get_contact(cid, i) for i in range(1, n + 1)],
        "records": await store.records(cid),
        "inflight": await inflight_calls(store, cid),
        "call": await store.get_call("c-live"),
    }


async def test_graceful_restart_keeps_everything(
    fresh_redis_server: RedisServer, namespace: str
) -> None:
    store = RedisStore.from_url(fresh_redis_server.url, namespace)
    try:
        n = 60
        cid, list_id = await running_campaign(store, n, extra=contacts(2, status=C.DO_NOT_CALL))
        for i in range(10):
            r = await claim(store, cid, f"c{i}")
            status = (C.ANSWERED, C.BUSY)[i % 2]
            retry = r.server_ms + 3_600_000 if status == C.BUSY else None
            await finish(
                store,
                cid,
                f"c{i}",
                r.contact_id,
                C.RETRY_SCHEDULED if retry else status,
                retry_at_ms=retry,
            )
        live = await claim(store, cid, "c-live", lease_ms=3_600_000)
        assert live.kind == "ok"
        await mark_originated(store, "c-live", cid)
        before = await snapshot(store, cid, n + 2)

        await asyncio.to_thread(fresh_redis_server.stop)
        await asyncio.to_thread(fresh_redis_server.start)

        after = await snapshot(store, cid, n + 2)
        assert after == before
        # scripts work again (EVALSHA -> NOSCRIPT -> load) and the state is coherent
        assert await finish(store, cid, "c-live", live.contact_id)
        nxt = await claim(store, cid, "after-restart")
        assert (nxt.kind, nxt.contact_id) == ("ok", 12)
        counts = await store.counts(cid)
        assert counts[C.ANSWERED] == 6
        assert counts[C.RETRY_SCHEDULED] == 5
        assert sum(counts.values()) == n + 2
        assert (await store.get_campaign(cid)).status == CampaignStatus.RUNNING
        assert list_id in await store.list_status(cid)
    finally:
        await store.aclose()


async def test_kill_raises_store_error_then_reconnects(
    fresh_redis_server: RedisServer, namespace: str
) -> None:
    store = RedisStore.from_url(fresh_redis_server.url, namespace)
    try:
        cid, _ = await running_campaign(store, 3)
        await store.ping()
        assert (await store.get_campaign(cid)).status == CampaignStatus.RUNNING

        fresh_redis_server.kill()
        started = time.monotonic()
        with pytest.raises(StoreError, match="ConnectionError"):
            await store.get_campaign(cid)
        with pytest.raises(StoreError):
            await claim(store, cid, "while-down")
        down_for = time.monotonic() - started
        assert down_for < 10

        await asyncio.to_thread(fresh_redis_server.start)
        await store.ping()
        fresh = await store.create_campaign("after", "trunk1", "{}")
        assert (await store.get_campaign(fresh)).name == "after"
        await store.transition(fresh, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
        assert (await claim(store, fresh, "c-after")).kind == "empty"
    finally:
        await store.aclose()


async def test_script_flush_is_survived(redis_client: aioredis.Redis, namespace: str) -> None:
    store = RedisStore(redis_client, namespace)
    cid, _ = await running_campaign(store, 2)
    assert (await claim(store, cid, "a")).kind == "ok"
    await redis_client.script_flush()
    assert (await claim(store, cid, "b")).kind == "ok"


async def test_a_redis_error_reply_is_a_script_error_not_a_connection_problem(
    redis_server, namespace
):
    from dialer.errors import ScriptError
    from dialer.store.redis_store import RedisStore

    store = RedisStore.from_url(redis_server.url, namespace=namespace)
    try:
        cid = await store.create_campaign("x", "carrier", "{}")
        await store.client.delete(store.keys.counts(cid))
        await store.client.set(store.keys.counts(cid), "not a hash")  # wrong type
        with pytest.raises(ScriptError, match="WRONGTYPE"):
            await store.counts(cid)
    finally:
        await store.aclose()
