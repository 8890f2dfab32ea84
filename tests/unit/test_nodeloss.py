"""The node-loss rule (dialer.engine.nodeloss) against a real redis-server: the grace on an
injected clock, the pause with its reason, the resume of only what the rule paused; and the
engine's heartbeat entry and node mark removed on a clean stop."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from dialer.domain import why as domain_why
from dialer.domain.campaign import CampaignSettings
from dialer.domain.nodes import Node, TrunkGroup
from dialer.domain.statuses import CampaignStatus
from dialer.domain.why import BlockerCode
from dialer.engine import control as engine_control
from dialer.engine.control import NODE_LOSS_REASON, CampaignControl
from dialer.engine.heartbeat import heartbeat
from dialer.engine.nodebeat import node_heartbeat
from dialer.engine.nodeloss import NODE_LOSS_GRACE_S, NodeLoss, NodeLossGrace
from dialer.store import RedisStore
from dialer.store.engines import EngineRegistry
from dialer.store.models import ContactInput
from dialer.store.nodes import NodeRouter, NodeStore
from dialer.store.why import explain

pytestmark = pytest.mark.redis

TRUNK = "carrier"


def test_the_grace_runs_only_while_the_group_stays_down() -> None:
    now = [100.0]
    grace = NodeLossGrace(clock=lambda: now[0])
    assert NODE_LOSS_GRACE_S == 6.0
    assert not grace.observe(False)
    assert not grace.observe(True)  # down: the grace starts
    now[0] += NODE_LOSS_GRACE_S - 0.5
    assert not grace.observe(True)
    assert not grace.observe(False)  # a node back (a reconnect): it starts again
    now[0] += 1.0
    assert not grace.observe(True)
    now[0] += NODE_LOSS_GRACE_S - 0.01
    assert not grace.observe(True)
    now[0] += 0.01
    assert grace.observe(True)  # down for the whole grace
    grace.reset()
    assert grace.down_since is None
    assert not grace.observe(True)


def test_the_engines_reason_is_the_one_the_why_view_knows() -> None:
    assert engine_control.NODE_LOSS_REASON == domain_why.NODE_LOSS_REASON


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def campaign(control: CampaignControl, trunk: str = TRUNK) -> int:
    cid = await control.create(CampaignSettings(name="loss", trunk=trunk, max_channels=2, cps=1))
    await control.add_list(cid, [ContactInput(phone="+15550100")])
    await control.start(cid)
    return cid


async def test_paused_when_no_node_is_up_and_resumed_only_by_the_rule(store: RedisStore) -> None:
    nodes = NodeStore(store.client, store.keys)
    for n in ("n1", "n2"):
        await nodes.put_node(Node(n))
    await nodes.put_group(TrunkGroup("g", {TRUNK: ("n1", "n2")}))
    control = CampaignControl(store)
    lost, person, other = (
        await campaign(control),
        await campaign(control),
        await campaign(control, "elsewhere"),
    )
    known = {lost: TRUNK, person: TRUNK, other: "elsewhere"}  # campaigns the engine ran
    loss = NodeLoss(NodeRouter(nodes, ("n1",), refresh_s=0), control, store, known=lambda: known)
    await nodes.mark_up("n2", "e2")
    assert not await loss.group_down(TRUNK)  # n2 is up (another engine's node)
    assert not await loss.group_down("elsewhere")  # a trunk of no group: the PBX rule's
    await nodes.mark_down("n2", "e2")
    assert await loss.group_down(TRUNK)
    assert await loss.pause(lost, TRUNK) is CampaignStatus.PAUSING
    assert await loss.pause(lost, TRUNK) is CampaignStatus.PAUSING  # another engine's: ends
    assert await control.drained(lost) is CampaignStatus.PAUSED  # nothing in flight
    record = await store.get_campaign(lost)
    assert record.status_reason == NODE_LOSS_REASON
    report = await explain(store, lost)
    assert [b.code for b in report.blockers][:1] == [BlockerCode.PBX_UNAVAILABLE]
    assert f"no PBX node of its trunk {TRUNK}'s group was up" in report.blockers[0].message
    await control.pause(person)  # a person's pause
    await control.pause(other, reason=NODE_LOSS_REASON)  # on a trunk n1 does not serve
    await nodes.mark_up("n1", "e1")
    await loss.node_up("n1")
    assert (await store.get_campaign(lost)).status is CampaignStatus.RUNNING
    assert (await store.get_campaign(person)).status is not CampaignStatus.RUNNING
    assert (await store.get_campaign(other)).status is not CampaignStatus.RUNNING
    # a node up between the runner's look and its pause: the pause is taken back at once
    assert await loss.pause(lost, TRUNK) is None
    assert (await store.get_campaign(lost)).status is CampaignStatus.RUNNING
    # a campaign this engine never ran, still Pausing (another engine's): resumed too
    await nodes.mark_down("n1", "e1")
    assert await loss.pause(lost, TRUNK) is CampaignStatus.PAUSING
    known.clear()
    await nodes.mark_up("n1", "e1")
    await loss.node_up("n1")
    assert (await store.get_campaign(lost)).status is CampaignStatus.RUNNING
    # DIALER_PBX_AUTO_RESUME off: left paused
    await nodes.mark_down("n1", "e1")
    assert await loss.pause(lost, TRUNK) is CampaignStatus.PAUSING
    await nodes.mark_up("n1", "e1")
    manual = NodeLoss(NodeRouter(nodes, ("n1",)), control, store, auto_resume=False)
    await manual.node_up("n1")
    assert (await store.get_campaign(lost)).status is CampaignStatus.PAUSING


async def test_a_clean_stop_removes_the_engine_and_its_node_mark(store: RedisStore) -> None:
    registry = EngineRegistry(store)
    nodes = NodeStore(store.client, store.keys)
    came_up: list[str] = []

    async def up(node: str) -> None:
        came_up.append(node)

    async with asyncio.TaskGroup() as tg:
        beat = tg.create_task(heartbeat(registry, "e1/x", lambda: True, {}, interval=0.05))
        marks = tg.create_task(
            node_heartbeat(nodes, "e1/x", "n1", lambda: True, on_up=up, poll=0.01)
        )
        async with asyncio.timeout(5):
            while not await registry.alive() or not came_up:
                await asyncio.sleep(0.01)
        assert (await nodes.statuses([Node("n1")]))[0].up
        beat.cancel()
        marks.cancel()
    assert await registry.alive() == []  # not left alive until its TTL
    assert await store.client.hlen(store.keys.engines) == 0
    assert not (await nodes.statuses([Node("n1")]))[0].up
    assert came_up == ["n1"]  # once: the refreshes of a node already up are not "up" again


async def test_a_crashed_engines_mark_still_expires_by_itself(store: RedisStore) -> None:
    nodes = NodeStore(store.client, store.keys)
    await nodes.mark_up("n1", "e1/x", ttl_ms=100)  # never removed: the engine died
    assert (await nodes.statuses([Node("n1")]))[0].up
    async with asyncio.timeout(5):
        while (await nodes.statuses([Node("n1")]))[0].up:
            await asyncio.sleep(0.02)
