"""A PBX node's caps against the real stack (Asterisk): an engine attached to node n1 marks it
up, its claims carry n1, and the switch itself never holds more channels than n1's cap,
although the campaign and the trunk group allow more; a node of the group that nobody drives
(n2, never up) gets no call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialer.app import pbx_adapter
from dialer.domain.campaign import CampaignSettings
from dialer.domain.nodes import Node, TrunkGroup
from dialer.domain.statuses import CampaignStatus
from dialer.engine.engine import Engine
from dialer.store.nodes import NodeStore
from dialer.store.redis_store import RedisStore
from ops.localstack.numberplan import Behaviour, number
from tests.integration.engine_helpers import engine_settings, new_campaign, wait_status
from tests.integration.monitor import watch_switch

pytestmark = [pytest.mark.integration, pytest.mark.redis]

NODE_CAP = 3


@pytest.fixture
async def store(stack: Any, namespace: str) -> AsyncIterator[RedisStore]:
    s = RedisStore.from_url(stack.redis_url, namespace=namespace)
    yield s
    await s.aclose()


async def test_an_engine_on_a_node_holds_the_node_cap_on_the_switch(
    stack: Any, namespace: str, store: RedisStore
) -> None:
    nodes = NodeStore(store.client, store.keys)
    await nodes.put_node(Node("n1", max_channels=NODE_CAP))
    await nodes.put_node(Node("n2"))
    await nodes.put_group(TrunkGroup("g", {stack.trunk: ("n1", "n2")}, max_channels=10))
    phones = [number(Behaviour.HOLD, i, hold_s=1) for i in range(12)]
    campaign = CampaignSettings(
        name="nodes", trunk=stack.trunk, max_channels=10, cps=20.0, ring_timeout=3.0, amd=False
    )
    control, cid = await new_campaign(store, campaign, phones)
    settings = engine_settings(stack, namespace)
    engine_store = RedisStore.from_url(stack.redis_url, namespace=namespace)
    try:
        async with pbx_adapter(settings) as pbx, watch_switch(stack, "asterisk") as seen:
            engine = Engine(settings, engine_store, pbx, node="n1")
            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(engine.run())
                await control.start(cid)
                await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
                await seen.wait_until(lambda o: len(o.ended_at) >= len(phones))
                task.cancel()
    finally:
        await engine_store.aclose()
    assert len(seen.created_at) == len(phones)
    assert seen.max_live <= NODE_CAP, seen.max_live  # by the switch's own event times
    assert seen.max_live == NODE_CAP  # the cap was reached: it is what held the campaign
    records = [r for _, r in await store.records(cid, count=1000)]
    assert {r["call_id"] for r in records} == set(seen.created_at)
    on = [await store.client.hget(store.keys.call(r["call_id"]), "node") for r in records]
    assert set(on) == {b"n1"}  # n2 was never up: no call went to it
    assert await store.client.zcard(store.keys.node_inflight("n1")) == 0  # all given back
