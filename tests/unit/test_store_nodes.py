"""claim.lua's node block against a real redis-server: node, trunk-group and global caps held
by leases across several engines claiming at once, node liveness, leases given back."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from dialer.domain.nodes import GlobalCap, Node, TrunkGroup
from dialer.store import RedisStore
from dialer.store.keys import Keys
from dialer.store.models import ClaimBatch
from dialer.store.nodes import NodeClaim, NodeConfig, NodeStore
from ops.localstack.redis_server import RedisServer
from tests.unit.store_helpers import finish, running_campaign

pytestmark = pytest.mark.redis

ALL = ("n1", "n2", "n3", "n4", "n5")  # the nodes the tests' engines are attached to
LIMITS: dict[str, Any] = {
    "lease_ms": 30_000,
    "max_channels": None,
    "trunk_max_channels": None,
    "cps": None,
    "trunk_cps": None,
}


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


@pytest.fixture
def nodes(redis_client: aioredis.Redis, namespace: str) -> NodeStore:
    return NodeStore(redis_client, RedisStore(redis_client, namespace).keys)


@pytest.fixture
async def engines(redis_server: RedisServer, namespace: str) -> AsyncIterator[list[RedisStore]]:
    """Four engines' stores, each with its own connection pool."""
    made = [RedisStore.from_url(redis_server.url, namespace) for _ in range(4)]
    yield made
    for s in made:
        await s.aclose()


async def configure(
    nodes: NodeStore,
    caps: dict[str, tuple[int | None, float | None]],
    *,
    group: tuple[int | None, float | None] = (None, None),
    trunk: str = "trunk1",
    cap: GlobalCap | None = None,
    up: bool = True,
) -> NodeConfig:
    for node_id, (channels, cps) in caps.items():
        await nodes.put_node(Node(node_id, max_channels=channels, cps=cps))
        if up:
            await nodes.mark_up(node_id, "engine-x")
    await nodes.put_group(TrunkGroup("g1", {trunk: tuple(caps)}, None, *group))
    if cap is not None:
        await nodes.put_cap(cap)
    return await nodes.config()


async def claim(
    store: RedisStore, cid: int, spec: NodeClaim | None, n: int, *, owner: str = "e1", **kw: Any
) -> ClaimBatch:
    ids = [f"c{random.getrandbits(48):012x}" for _ in range(n)]
    return await store.claim_batch(cid, "trunk1", ids, owner, **{**LIMITS, **kw}, nodes=spec)


async def test_claims_spread_over_the_least_loaded_nodes(
    store: RedisStore, nodes: NodeStore, redis_client: aioredis.Redis
) -> None:
    cfg = await configure(nodes, {"n1": (None, None), "n2": (None, None)})
    cid, _ = await running_campaign(store, 20)
    batch = await claim(store, cid, cfg.claim_for("trunk1", ALL), 10)
    assert batch.stop == "max"
    assert Counter(c.node for c in batch.claims) == {"n1": 5, "n2": 5}
    first = batch.claims[0]
    call = await redis_client.hgetall(store.keys.call(first.call_id))
    assert (call[b"node"], call[b"group"]) == (first.node.encode(), b"g1")
    assert await redis_client.zcard(store.keys.node_inflight("n1")) == 5
    assert await redis_client.zcard(store.keys.group_inflight("g1")) == 10
    assert await redis_client.zcard(store.keys.global_inflight) == 10
    # a node with a smaller cap fills in proportion: n3 (cap 2) vs n4 (cap 6)
    cfg = await configure(nodes, {"n3": (2, None), "n4": (6, None)}, trunk="trunk2")
    spec = cfg.claim_for("trunk2", ALL)
    assert spec is not None
    ids = [f"d{i}" for i in range(4)]
    b = await store.claim_batch(cid, "trunk2", ids, "e1", **LIMITS, nodes=spec)
    assert Counter(c.node for c in b.claims) == {"n3": 1, "n4": 3}


async def test_replay_answers_the_same_nodes(store: RedisStore, nodes: NodeStore) -> None:
    cfg = await configure(nodes, {"n1": (None, None), "n2": (None, None)})
    cid, _ = await running_campaign(store, 5)
    ids = ["r1", "r2", "r3"]
    spec = cfg.claim_for("trunk1", ALL)
    first = await store.claim_batch(cid, "trunk1", ids, "e1", **LIMITS, nodes=spec)
    again = await store.claim_batch(cid, "trunk1", ids, "e1", **LIMITS, nodes=spec)
    assert [(c.call_id, c.node) for c in again.claims] == [
        (c.call_id, c.node) for c in first.claims
    ]


@pytest.mark.parametrize(
    ("caps", "group", "cap", "most", "per_node"),
    [
        ({"n1": (3, None), "n2": (5, None)}, (None, None), None, 8, {"n1": 3, "n2": 5}),
        ({"n1": (3, None), "n2": (5, None)}, (6, None), None, 6, {"n1": 3, "n2": 5}),
        ({"n1": (None, None), "n2": (4, None)}, (None, None), GlobalCap(7), 7, {"n2": 4}),
    ],
    ids=["node caps", "group cap", "global cap"],
)
async def test_caps_hold_with_several_engines_claiming_at_once(
    store: RedisStore,
    nodes: NodeStore,
    engines: list[RedisStore],
    redis_client: aioredis.Redis,
    caps: dict[str, tuple[int | None, float | None]],
    group: tuple[int | None, float | None],
    cap: GlobalCap | None,
    most: int,
    per_node: dict[str, int],
) -> None:
    """Four engines' claim loops at once on two campaigns of the group, each finishing some of
    its calls as it goes: the leases never pass a cap (sampled after every claim, and by
    the claims themselves), and the capacity is used up to the cap."""
    cfg = await configure(nodes, caps, group=group, cap=cap)
    spec = cfg.claim_for("trunk1", ALL)
    cids = [(await running_campaign(store, 300))[0] for _ in range(2)]
    live: dict[str, tuple[int, str, int]] = {}  # call id -> campaign, node, contact
    mine: dict[str, set[str]] = {}  # engine -> its calls
    peak: Counter[str] = Counter()
    peak_total = 0
    k = store.keys

    async def engine(s: RedisStore, name: str) -> None:
        nonlocal peak_total
        rnd = random.Random(name)
        for _ in range(40):
            cid = rnd.choice(cids)
            batch = await claim(s, cid, spec, rnd.randint(1, 4), owner=name)
            for c in batch.claims:
                live[c.call_id] = (cid, c.node, c.contact_id)
                mine.setdefault(name, set()).add(c.call_id)
            now = Counter(node for _, node, _ in live.values())
            for node, n in now.items():
                peak[node] = max(peak[node], n)
            peak_total = max(peak_total, len(live))
            async with redis_client.pipeline(transaction=False) as pipe:
                for node in caps:
                    pipe.zcard(k.node_inflight(node))
                pipe.zcard(k.group_inflight("g1"))
                pipe.zcard(k.global_inflight)
                counts = await pipe.execute()
            for node, n in zip(caps, counts, strict=False):
                if (limit := caps[node][0]) is not None:
                    assert n <= limit
            assert counts[-2] <= most
            assert counts[-1] <= most
            ending = [c for c in sorted(mine.get(name, ())) if rnd.random() < 0.3]
            for call_id in ending:
                mine[name].discard(call_id)
                cid_, _, contact = live.pop(call_id)
                await finish(s, cid_, call_id, contact)
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as tg:
        for i, s in enumerate(engines):
            tg.create_task(engine(s, f"engine-{i}"))
    assert peak_total == most  # the capacity was used up to the cap, and never beyond
    for node, limit in per_node.items():
        assert peak[node] <= limit
    # everything finished: every lease is given back
    for call_id, (cid, _, contact) in list(live.items()):
        await finish(store, cid, call_id, contact)
    for node in caps:
        assert await redis_client.zcard(k.node_inflight(node)) == 0
    assert await redis_client.zcard(k.group_inflight("g1")) == 0
    assert await redis_client.zcard(k.global_inflight) == 0


async def test_node_cps_is_a_hard_limit(store: RedisStore, nodes: NodeStore) -> None:
    cfg = await configure(nodes, {"n1": (None, 2.0), "n2": (None, 1.0)})
    cid, _ = await running_campaign(store, 20)
    batch = await claim(store, cid, cfg.claim_for("trunk1", ALL), 10)
    assert Counter(c.node for c in batch.claims) == {"n1": 2, "n2": 1}
    assert batch.stop == "rate"
    assert batch.wait_ms > 0
    again = await claim(store, cid, cfg.claim_for("trunk1", ALL), 10)
    assert (again.claims, again.stop) == ([], "rate")
    # a group or global rate binds the same way
    await nodes.put_cap(GlobalCap(cps=1.0))
    cfg = await configure(nodes, {"n5": (None, None)}, trunk="trunk5")
    spec = cfg.claim_for("trunk5", ALL)
    b = await store.claim_batch(cid, "trunk5", ["x1", "x2"], "e1", **LIMITS, nodes=spec)
    assert (len(b.claims), b.stop) == (1, "rate")
    b = await store.claim_batch(cid, "trunk5", ["x3"], "e1", **LIMITS, nodes=spec)
    assert (len(b.claims), b.stop) == (0, "rate")


async def test_a_node_down_gets_no_claim_and_its_return_restores_it(
    store: RedisStore, nodes: NodeStore
) -> None:
    cfg = await configure(nodes, {"n1": (None, None), "n2": (None, None)})
    spec = cfg.claim_for("trunk1", ALL)
    cid, _ = await running_campaign(store, 50)
    await nodes.mark_down("n1", "engine-x")
    batch = await claim(store, cid, spec, 6)
    assert {c.node for c in batch.claims} == {"n2"}  # the campaign dials on the other node
    await nodes.mark_down("n2", "engine-x")
    gone = await claim(store, cid, spec, 6)
    assert (gone.claims, gone.stop) == ([], "node")  # the PBX is unavailable for the trunk
    await nodes.mark_up("n1", "engine-y")
    back = await claim(store, cid, spec, 4)
    assert {c.node for c in back.claims} == {"n1"}
    # a mark not refreshed expires by itself (an engine that died without a word)
    await nodes.mark_up("n2", "engine-z", ttl_ms=150)
    await nodes.mark_down("n1", "engine-y")
    assert {c.node for c in (await claim(store, cid, spec, 2)).claims} == {"n2"}
    await asyncio.sleep(0.2)
    assert (await claim(store, cid, spec, 2)).stop == "node"
    statuses = {s.node.id: s for s in await nodes.statuses((await nodes.config()).nodes.values())}
    assert not statuses["n1"].up
    assert statuses["n1"].channels == 4
    assert statuses["n2"].channels == 6 + 2


async def test_release_gives_back_the_node_leases(
    store: RedisStore, nodes: NodeStore, redis_client: aioredis.Redis
) -> None:
    cfg = await configure(nodes, {"n1": (1, None)})
    spec = cfg.claim_for("trunk1", ALL)
    cid, _ = await running_campaign(store, 5)
    (c,) = (await claim(store, cid, spec, 3)).claims
    assert (await claim(store, cid, spec, 1)).stop == "full"
    assert await store.release(cid, "trunk1", c.call_id, c.contact_id)
    assert await redis_client.zcard(store.keys.node_inflight("n1")) == 0
    assert len((await claim(store, cid, spec, 1)).claims) == 1


async def test_without_nodes_the_claim_is_as_before(
    store: RedisStore, nodes: NodeStore, redis_client: aioredis.Redis
) -> None:
    """A DIALER_TRUNKS trunk and no node configured: no node block, no node keys."""
    cfg = await nodes.config()
    assert cfg.claim_for("trunk1", ("n1",)) is None
    cid, _ = await running_campaign(store, 3)
    batch = await claim(store, cid, None, 2)
    assert [c.node for c in batch.claims] == ["", ""]
    assert await redis_client.zcard(store.keys.global_inflight) == 0


def test_claim_for_picks_the_candidates() -> None:
    n = {i: Node(i, max_channels=10) for i in ("n1", "n2", "n3")}
    n["n3"] = Node("n3", enabled=False)
    groups = {"g": TrunkGroup("g", {"t": ("n1", "n2", "n3"), "b": ("n2",)}, "b", 20, 5.0)}
    cfg = NodeConfig(n, groups, GlobalCap(100, 50.0))
    spec = cfg.claim_for("t", ("n2", "n3"))
    assert spec == NodeClaim("g", (("n2", 10, None, True),), 20, 5.0, 100, 50.0)
    every = cfg.claim_for("t", ("n1", "n2", "n3"))
    assert every is not None
    assert [x[0] for x in every.nodes] == ["n1", "n2"]  # n3 is disabled
    none = cfg.claim_for("t")  # an engine attached to no node of the group dials none of it
    assert none is not None
    assert none.nodes == ()
    # an environment trunk: a group of its own on the engine's node
    env = cfg.claim_for("carrier", ("n1",))
    assert env == NodeClaim("carrier", (("n1", 10, None, True),), None, None, 100, 50.0)
    bare = NodeConfig({}, {}, GlobalCap(cps=3.0)).claim_for("carrier", ())
    assert bare == NodeClaim("carrier", (("local", None, None, False),), None, None, None, 3.0)


def test_node_claim_arg_layout() -> None:
    spec = NodeClaim("g", (("n1", 3, 2.5, True), ("n2", None, None, False)), 5, None, None, 10)
    arg: dict[str, Any] = json.loads(spec.arg(21, 40))
    assert (arg["k"], arg["g"], arg["gc"], arg["gl"]) == (21, "g", 5, 0)
    assert arg["n"] == [["n1", 3, 3, 1200 + 40, 1], ["n2", 0, 0, 0, 0]]
    assert (arg["ac"], arg["al"], arg["aw"]) == (0, 10, 1040)
    keys = spec.keys(Keys("dialer"))
    assert len(keys) == 4 + 3 * 2
    assert keys[4] == "dialer:n:n1:up"
