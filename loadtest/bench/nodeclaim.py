"""``python -m loadtest.bench.nodeclaim [--calls N]``: what claim.lua's node block costs Redis.

On a private redis-server (no stack needed): one claim of one contact and its finish, N times,
for a campaign without nodes (as before issue 17) and for one on a trunk group of ``--nodes``
nodes with node, group and global caps (channels and cps) -- in alternating blocks, so both see
the same machine. Prints Redis' own time in the scripts per claim + finish (``INFO
commandstats``, evalsha usec) and the client's time per round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from dialer.domain.nodes import GlobalCap, Node, TrunkGroup
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store.models import ContactInput
from dialer.store.nodes import NodeClaim, NodeStore
from dialer.store.redis_store import RedisStore
from ops.localstack.redis_server import RedisServer

BLOCK = 500


async def _usec(admin: aioredis.Redis) -> int:
    stats = (await admin.info("commandstats")).get("cmdstat_evalsha", {})
    return int(stats.get("usec", 0))


async def _campaign(store: RedisStore, n: int) -> int:
    cid = await store.create_campaign("bench", "carrier", "{}")
    list_id = await store.add_list(cid)
    contacts = [ContactInput(phone=f"+3361{i:07d}", vars={}) for i in range(n)]
    await store.add_contacts(cid, list_id, contacts)
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    return cid


async def _round(store: RedisStore, cid: int, spec: NodeClaim | None, i: int) -> None:
    call_id = f"b{cid}x{i}"
    batch = await store.claim_batch(
        cid,
        "carrier",
        [call_id],
        "bench",
        lease_ms=60_000,
        max_channels=1000,
        trunk_max_channels=1000,
        cps=5000.0,
        trunk_cps=5000.0,
        nodes=spec,
    )
    (claim,) = batch.claims
    await store.finish(
        cid,
        "carrier",
        call_id,
        claim.contact_id,
        contact_status=CallStatus.RETRY_SCHEDULED,
        attempts_used=0,
        tech_failures=0,
        retry_at_ms=0,
        record={},
    )


async def bench(calls: int, node_count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(workdir=Path(tmp), appendonly=False)
        server.start()
        try:
            admin = aioredis.Redis.from_url(server.admin_url)
            store = RedisStore.from_url(server.url, "dialer:bench")
            nodes = NodeStore(store.client, store.keys)
            ids = [f"n{i}" for i in range(node_count)]
            for n in ids:
                await nodes.put_node(Node(n, max_channels=5000, cps=2000.0))
                await nodes.mark_up(n, "bench", ttl_ms=3_600_000)
            await nodes.put_group(TrunkGroup("g", {"carrier": tuple(ids)}, None, 9000, 5000.0))
            await nodes.put_cap(GlobalCap(90_000, 9000.0))
            spec = (await nodes.config()).claim_for("carrier", ids)
            plain, noded = await _campaign(store, 100), await _campaign(store, 100)
            spent = {"without nodes": [0, 0.0], f"{node_count} nodes": [0, 0.0]}
            done = 0
            while done < calls:
                for name, cid, s in (
                    ("without nodes", plain, None),
                    (f"{node_count} nodes", noded, spec),
                ):
                    usec, t = await _usec(admin), time.perf_counter()
                    for i in range(BLOCK):
                        await _round(store, cid, s, done + i)
                    spent[name][1] += time.perf_counter() - t
                    spent[name][0] += await _usec(admin) - usec
                done += BLOCK
            for name, (usec, wall) in spent.items():
                print(
                    f"{name:>14}: Redis {usec / done:6.1f} us per claim + finish, "
                    f"client {wall / done * 1e6:6.0f} us per claim + finish ({done} each)"
                )
            await store.aclose()
            await admin.aclose()
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.nodeclaim")
    parser.add_argument("--calls", type=int, default=5000, help="claims of each kind")
    parser.add_argument("--nodes", type=int, default=4, help="nodes in the trunk group")
    args = parser.parse_args()
    asyncio.run(bench(args.calls, args.nodes))


if __name__ == "__main__":
    main()
