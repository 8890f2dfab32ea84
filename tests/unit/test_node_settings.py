"""The PBX node: its setting (DIALER_NODE, or derived from the PBX URL), the node kept in each
call's hash by claim.lua (real redis-server), and which calls an engine's nodes may touch."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
import redis.asyncio as aioredis

from dialer.config import EngineSettings, default_node
from dialer.domain.campaign import CampaignSettings
from dialer.engine.control import CampaignControl
from dialer.engine.nodes import Nodes
from dialer.errors import ConfigError
from dialer.pbx.base import PbxAdapter
from dialer.store import RedisStore
from dialer.store.models import ContactInput


def test_the_node_is_derived_from_the_pbx_url() -> None:
    assert EngineSettings(ami_url="ami://u:s@127.0.0.1:5038").node == "asterisk-127.0.0.1-5038"
    assert EngineSettings(ami_url="ami://u:s@PBX-A.example:15038").node == (
        "asterisk-pbx-a.example-15038"
    )
    assert EngineSettings(esl_url="esl://:p@[::1]:8021").node == "freeswitch---1-8021"
    assert default_node("ami://u:s@10.0.0.2", None) == "asterisk-10.0.0.2-5038"
    assert EngineSettings().node == "local"  # no switch: tools and tests


def test_dialer_node_is_validated() -> None:
    assert EngineSettings.from_env({"DIALER_NODE": "pbx-b.1"}).node == "pbx-b.1"
    for bad in ("PBX", "-pbx", "pbx b", "a" * 64, "pbx/1", "ünï"):
        with pytest.raises(ConfigError, match="node must match"):
            EngineSettings.from_env({"DIALER_NODE": bad})


def test_an_engines_nodes_touch_their_own_calls_and_those_recorded_without_a_node() -> None:
    a, b = cast(PbxAdapter, object()), cast(PbxAdapter, object())
    nodes = Nodes({"pbx-a": a, "pbx-b": b})
    assert nodes.ours("pbx-a") == ["pbx-a"]
    assert nodes.ours("pbx-c") == []  # another node's call: left alone
    assert nodes.ours("") == ["pbx-a", "pbx-b"]  # recorded before nodes were kept: any node's
    assert nodes.adapter("pbx-b") is b
    with pytest.raises(KeyError):
        nodes.adapter("pbx-c")
    one = Nodes({"pbx-a": a})
    assert one.adapter("") is a  # an old call, one node: its adapter


@pytest.mark.redis
async def test_claim_keeps_the_node_in_the_call_hash(
    redis_client: aioredis.Redis, namespace: str
) -> None:
    store = RedisStore(redis_client, namespace)
    control = CampaignControl(store)
    cid = await control.create(CampaignSettings(name="n", trunk="t1", max_channels=5, cps=100.0))
    await control.add_list(cid, [ContactInput(phone=f"+3361000000{i}") for i in range(4)])
    await control.start(cid)

    async def claim(call_id: str, node: str = "", lease_ms: int = 10_000) -> list[str]:
        batch = await store.claim_batch(
            cid, "t1", [call_id], "e1/x", lease_ms=lease_ms, max_channels=5,
            trunk_max_channels=None, cps=None, trunk_cps=None, node=node,
        )  # fmt: skip
        return [c.call_id for c in batch.claims]

    assert await claim("c1", node="pbx-a") == ["c1"]
    assert await claim("c2") == ["c2"]  # no node said
    first, second = await store.get_call("c1"), await store.get_call("c2")
    assert first is not None
    assert first.node == "pbx-a"
    assert second is not None
    assert second.node == ""  # "": treated as any node's, as the calls claimed before nodes

    # adopted where a channel list showed it: an old call (no node) learns its node; a call
    # with a node keeps it
    assert await claim("c3", lease_ms=100) == ["c3"]
    assert await claim("c4", node="pbx-b", lease_ms=100) == ["c4"]
    await asyncio.sleep(0.15)
    assert sorted(await store.orphaned_calls(cid)) == ["c3", "c4"]
    for call_id in ("c3", "c4"):
        adoption = await store.adopt(cid, "t1", call_id, 5000, owner="e2/y", node="pbx-a")
        assert adoption.verdict == "adopted"
    third, fourth = await store.get_call("c3"), await store.get_call("c4")
    assert third is not None
    assert third.node == "pbx-a"
    assert fourth is not None
    assert fourth.node == "pbx-b"
