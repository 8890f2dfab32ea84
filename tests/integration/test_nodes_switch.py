"""PBX nodes against the real stack.

- An engine attached to node n1 (Asterisk and FreeSWITCH) marks it up, its claims carry n1,
  and the switch itself never holds more channels than n1's cap, although the campaign and
  the trunk group allow more; a node of the group that nobody drives (n2, never up) gets no
  call.
- Node loss (Asterisk): two engines, as nodes n1 and n2 of one group (both on the stack's one
  Asterisk: n2's engine reaches it through a TCP forwarder the test cuts, so n2's PBX is gone
  for it). While n2 is down the campaign keeps dialing on n1 (not paused), only within n1's
  cap; when n2 is back it gets calls again; every contact is dialed once, none is lost.
- The last node lost (Asterisk): one engine as the only node of the group, its AMI cut
  mid-campaign: the campaign is paused with the node-loss reason once the grace has passed
  (not before: a reconnect pauses nothing), resumed when the node is back, and completes with
  every contact dialed once by the switch's count; the stopped engine leaves no heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from dialer.app import pbx_adapter
from dialer.domain.campaign import CampaignSettings
from dialer.domain.nodes import Node, TrunkGroup
from dialer.domain.statuses import CampaignStatus
from dialer.domain.why import BlockerCode
from dialer.engine.control import NODE_LOSS_REASON
from dialer.engine.engine import Engine
from dialer.engine.nodeloss import NODE_LOSS_GRACE_S
from dialer.store.engines import EngineRegistry
from dialer.store.nodes import NodeStore
from dialer.store.redis_store import RedisStore
from dialer.store.why import explain
from ops.localstack.numberplan import Behaviour, number
from tests.integration.engine_helpers import engine_settings, new_campaign, wait_status
from tests.integration.monitor import watch_switch

pytestmark = [pytest.mark.integration, pytest.mark.redis]

NODE_CAP = 3
log = logging.getLogger(__name__)


@pytest.fixture
async def store(stack: Any, namespace: str) -> AsyncIterator[RedisStore]:
    s = RedisStore.from_url(stack.redis_url, namespace=namespace)
    yield s
    await s.aclose()


async def test_an_engine_on_a_node_holds_the_node_cap_on_the_switch(
    stack: Any, namespace: str, store: RedisStore, pbx: str
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
    settings = engine_settings(stack, namespace, pbx=pbx)
    engine_store = RedisStore.from_url(stack.redis_url, namespace=namespace)
    try:
        async with pbx_adapter(settings) as adapter, watch_switch(stack, pbx) as seen:
            engine = Engine(settings, engine_store, {"n1": adapter})
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


async def until(check: Any, within: float) -> float:
    """Seconds until ``await check()`` is true (polled; fails past ``within``)."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < within
        await asyncio.sleep(0.05)
    return time.monotonic() - start


class Cuttable:
    """A TCP forwarder to ``host:port`` that a test can cut (every connection closed, none
    accepted) and restore on the same local port."""

    def __init__(self, host: str, port: int) -> None:
        self._to = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._to)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(pipe(reader, up_writer))
                tg.create_task(pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        self._server = None

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()


async def test_a_node_lost_mid_campaign_leaves_the_others_dialing(
    stack: Any, namespace: str, store: RedisStore
) -> None:
    nodes = NodeStore(store.client, store.keys)
    for n in ("n1", "n2"):
        await nodes.put_node(Node(n, max_channels=NODE_CAP))
    await nodes.put_group(TrunkGroup("g", {stack.trunk: ("n1", "n2")}))
    phones = [number(Behaviour.HOLD, i, hold_s=1) for i in range(50)]
    campaign = CampaignSettings(
        name="loss", trunk=stack.trunk, max_channels=20, cps=20.0, ring_timeout=3.0, amd=False
    )
    control, cid = await new_campaign(store, campaign, phones)
    base = engine_settings(stack, namespace)
    proxy = Cuttable(stack.ami_host, stack.ami_port)
    await proxy.start()
    url_b = f"ami://{stack.ami_username}:{stack.ami_secret}@127.0.0.1:{proxy.port}"
    settings_a = replace(base, engine_id="node-a")
    settings_b = replace(base, engine_id="node-b", ami_url=url_b)
    stores = [RedisStore.from_url(stack.redis_url, namespace=namespace) for _ in range(2)]

    async def calls_on(node: str, since_ms: int = 0) -> int:
        n = 0
        for _, r in await store.records(cid, count=1000):
            if int(r["claimed_ms"]) >= since_ms:
                n += await store.client.hget(store.keys.call(r["call_id"]), "node") == node.encode()
        return n

    try:
        async with (
            pbx_adapter(settings_a) as pbx_a,
            pbx_adapter(settings_b) as pbx_b,
            watch_switch(stack, "asterisk") as seen,
        ):
            engine_a = Engine(settings_a, stores[0], {"n1": pbx_a})
            engine_b = Engine(settings_b, stores[1], {"n2": pbx_b})
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(e.run()) for e in (engine_a, engine_b)]
                await control.start(cid)

                async def both_dial() -> bool:
                    return await calls_on("n2") > 0 and await calls_on("n1") > 0

                await until(both_dial, 20)
                await proxy.cut()  # n2's PBX is gone (for its engine)
                cut_ms = int(time.time() * 1000)

                async def n2_down() -> bool:
                    return not (await nodes.statuses([Node("n2")]))[0].up

                down_s = await until(n2_down, 2)
                live_at_cut = len(seen.created_at)
                await asyncio.sleep(2.0)
                during = len(seen.created_at) - live_at_cut
                assert during > 0  # the campaign kept dialing on n1
                record = await store.get_campaign(cid)
                assert record.status is CampaignStatus.RUNNING  # not paused: n1 is left
                await proxy.start()  # n2 is back: its engine reconnects
                back_ms = int(time.time() * 1000)

                async def n2_dials() -> bool:
                    return await calls_on("n2", since_ms=back_ms) > 0

                recover_s = await until(n2_dials, 15)
                await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=90)
                await seen.wait_until(lambda o: len(o.ended_at) >= len(seen.created_at))
                for t in tasks:
                    t.cancel()
    finally:
        await proxy.close()
        for s in stores:
            await s.aclose()
    records = [r for _, r in await store.records(cid, count=1000)]
    assert len({r["contact"] for r in records}) == len(phones)  # none lost
    assert len(seen.created_at) == len(phones)  # nobody dialed twice, by the switch
    assert sum(1 for r in records if r["status"] == "answered") == len(phones)
    assert await calls_on("n2", since_ms=cut_ms) == await calls_on("n2", since_ms=back_ms)
    log.warning(
        "node n2 down %.0f ms after its cut, dialing %.1f s after its return",
        down_s * 1000,
        recover_s,
    )


async def test_the_last_node_lost_pauses_the_campaign_until_it_is_back(
    stack: Any, namespace: str, store: RedisStore
) -> None:
    nodes = NodeStore(store.client, store.keys)
    await nodes.put_node(Node("n1", max_channels=NODE_CAP))
    await nodes.put_group(TrunkGroup("g", {stack.trunk: ("n1",)}))
    phones = [number(Behaviour.HOLD, i, hold_s=1) for i in range(20)]
    campaign = CampaignSettings(
        name="last", trunk=stack.trunk, max_channels=10, cps=10.0, ring_timeout=3.0, amd=False
    )
    control, cid = await new_campaign(store, campaign, phones)
    proxy = Cuttable(stack.ami_host, stack.ami_port)
    await proxy.start()
    url = f"ami://{stack.ami_username}:{stack.ami_secret}@127.0.0.1:{proxy.port}"
    settings = replace(engine_settings(stack, namespace), engine_id="last-node", ami_url=url)
    engine_store = RedisStore.from_url(stack.redis_url, namespace=namespace)
    registry = EngineRegistry(store)

    async def status_in(*wanted: CampaignStatus) -> bool:
        return (await store.get_campaign(cid)).status in wanted

    try:
        async with pbx_adapter(settings) as adapter, watch_switch(stack, "asterisk") as seen:
            engine = Engine(settings, engine_store, {"n1": adapter})
            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(engine.run())
                await control.start(cid)

                async def dialing() -> bool:
                    return len(seen.created_at) >= NODE_CAP

                await until(dialing, 20)
                await proxy.cut()  # n1, the group's only node, is gone
                paused_s = await until(
                    lambda: status_in(CampaignStatus.PAUSING, CampaignStatus.PAUSED), 20
                )
                created_at_pause = len(seen.created_at)
                record = await store.get_campaign(cid)
                assert record.status_reason == NODE_LOSS_REASON
                report = await explain(store, cid)
                assert [b.code for b in report.blockers] == [BlockerCode.PBX_UNAVAILABLE]
                assert "'s group was up" in report.summary, report.summary
                assert engine.owner in {b.owner for b in await registry.alive()}
                await proxy.start()  # n1 is back: the engine reconnects

                async def n1_up() -> bool:
                    return (await nodes.statuses([Node("n1")]))[0].up

                up_s = await until(n1_up, 20)  # (the AMI reconnect's backoff)
                after_up_s = await until(lambda: status_in(CampaignStatus.RUNNING), 10)
                await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
                await seen.wait_until(lambda o: len(o.ended_at) >= len(o.created_at))
                task.cancel()
    finally:
        await proxy.close()
        await engine_store.aclose()
    # the grace is counted from when the runner saw no node (after the cut): never shorter
    assert paused_s >= NODE_LOSS_GRACE_S, paused_s
    assert created_at_pause < len(phones)  # paused mid-campaign: contacts were left
    records = [r for _, r in await store.records(cid, count=1000)]
    assert len({r["contact"] for r in records}) == len(phones)  # none lost
    assert len(seen.created_at) == len(phones)  # nobody dialed twice, by the switch
    phone_of = {r["call_id"]: r["phone"] for r in records}
    assert set(seen.answered_per(phone_of).values()) == {1}
    assert sum(1 for r in records if r["status"] == "answered") == len(phones)
    assert await registry.alive() == []  # the stopped engine is not left "alive"
    log.warning(
        "last node cut: paused %.1f s after the cut (grace %.0f s); after its return: up "
        "again in %.1f s, the campaign Running %.2f s later",
        paused_s,
        NODE_LOSS_GRACE_S,
        up_s,
        after_up_s,
    )
