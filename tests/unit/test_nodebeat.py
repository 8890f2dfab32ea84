"""The node mark loop against a real redis-server: a node is up while its engine sees the
PBX, down at once when the connection drops, and up again when it returns."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from dialer.domain.nodes import Node, TrunkGroup
from dialer.engine.nodebeat import node_heartbeat
from dialer.store import RedisStore
from dialer.store.nodes import NodeRouter, NodeStore
from tests.unit.store_helpers import running_campaign

pytestmark = pytest.mark.redis


async def wait_for(check: Callable[[], Awaitable[bool]], within: float = 2.0) -> float:
    """Seconds until ``await check()`` is true (polled)."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < within, "not within the time allowed"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_the_node_follows_the_pbx_connection(
    redis_client: aioredis.Redis, namespace: str
) -> None:
    store = RedisStore(redis_client, namespace)
    nodes = NodeStore(redis_client, store.keys)
    await nodes.put_node(Node("n1"))
    await nodes.put_group(TrunkGroup("g", {"trunk1": ("n1",)}))
    router = NodeRouter(nodes, ("n1",), refresh_s=0)
    cid, _ = await running_campaign(store, 100)
    connected = True
    seq = iter(range(1000))

    async def stop() -> str:
        ids = [f"call-{next(seq)}"]
        spec = await router.claim_for("trunk1")
        batch = await store.claim_batch(
            cid,
            "trunk1",
            ids,
            "e1",
            lease_ms=30_000,
            max_channels=None,
            trunk_max_channels=None,
            cps=None,
            trunk_cps=None,
            nodes=spec,
        )
        assert all(c.node == "n1" for c in batch.claims)
        return batch.stop

    async def is_up() -> bool:
        return await stop() == "max"

    async def is_down() -> bool:
        return await stop() == "node"

    assert await is_down()  # nobody marks it yet
    beat = node_heartbeat(nodes, "e1", "n1", lambda: connected, refresh=0.1, poll=0.01, ttl_ms=400)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(beat)
        await wait_for(is_up)
        connected = False
        lost = await wait_for(is_down)
        assert lost < 0.5  # at once, not after the mark's TTL
        connected = True
        await wait_for(is_up)
        await asyncio.sleep(0.5)  # refreshed: still up past the first mark's TTL
        assert await is_up()
        task.cancel()
    await wait_for(is_down, within=1.0)  # a stopped engine's mark goes (a silent one's expires)
