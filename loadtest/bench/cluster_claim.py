"""Claim cost on single-node Redis vs a 3-master Redis Cluster (README: Redis Cluster).

``python -m loadtest.bench.cluster_claim [--rounds N] [--campaigns C]`` (no stack, no root: it
starts its own redis-server and its own 3-master cluster on free loopback ports, and stops them).

For each of three set-ups, the engine's per-call Redis work, one call at a time:
``claim_batch`` of one call, then ``settle`` (the originate mark and the finish, one pipelined
round trip), for ``rounds`` calls spread over ``campaigns`` campaigns (on the cluster their
trunks are picked so that the campaigns cover every master). Printed per set-up:

- client-side latency of the claim and of the settle (p50 / p99, ms);
- Redis CPU per call (``INFO cpu`` used_cpu_user + used_cpu_sys, summed over every server,
  before and after), in µs: the figure the capacity model multiplies by calls per second;
  and the same less the servers' idle background (measured for 2 s before: a cluster's bus
  gossips between the masters), with the calls per second one client reached;
- the set-ups: ``single`` (untagged keys, as today), ``single-tagged`` (the Cluster's
  ``{ns}:{gK}:`` keys on one server: what the longer key names cost), ``cluster`` (3 masters).

Finishes re-queue the contact (Retry scheduled, due now), so the queues keep their size.
One client process drives the load: the figures are per call, not the cluster's throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store.keys import CLUSTER_SLOT_GROUPS, Keys
from dialer.store.models import ContactInput, FinishItem
from dialer.store.redis_store import RedisStore
from ops.localstack.redis_cluster import RedisClusterProcs
from ops.localstack.redis_server import RedisServer

RECORD = {"outcome_table": "1", "engine": "bench", "rule": "q850:16", "q850_cause": "16"}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _cpu_us(urls: list[str]) -> float:
    total = 0.0
    for url in urls:
        client = aioredis.Redis.from_url(url)
        try:
            info = await client.info("cpu")
        finally:
            await client.aclose()
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total * 1e6


def _trunks(keys: Keys, cluster: RedisClusterProcs | None, count: int) -> list[str]:
    """``count`` trunk names; on the cluster, spread over its masters in turn."""
    if cluster is None:
        return [f"carrier-{i}" for i in range(count)]
    by_node: dict[int, list[str]] = {}
    for i in range(200):
        name = f"carrier-{i}"
        by_node.setdefault(cluster.node_of_key(keys.trunk_inflight(name)), []).append(name)
    nodes = sorted(by_node)
    return [by_node[nodes[i % len(nodes)]][i // len(nodes)] for i in range(count)]


async def run_setup(
    name: str,
    store: RedisStore,
    cpu_urls: list[str],
    cluster: RedisClusterProcs | None,
    *,
    rounds: int,
    campaigns: int,
) -> dict[str, float | str]:
    lanes: list[tuple[int, str]] = []
    for trunk in _trunks(store.keys, cluster, campaigns):
        cid = await store.create_campaign("bench", trunk, json.dumps({"trunk": trunk}))
        list_id = await store.add_list(cid)
        await store.add_contacts(
            cid, list_id, [ContactInput(phone=f"+1555{i:07d}", vars={}) for i in range(200)]
        )
        await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
        lanes.append((cid, trunk))
    claims: list[float] = []
    settles: list[float] = []

    tag = uuid.uuid4().hex[:6]
    # the servers' own background (a cluster's bus: gossip between masters), per second
    idle0, t_idle = await _cpu_us(cpu_urls), time.perf_counter()
    await asyncio.sleep(2.0)
    idle_per_s = (await _cpu_us(cpu_urls) - idle0) / (time.perf_counter() - t_idle)
    cpu0, t_run = await _cpu_us(cpu_urls), time.perf_counter()
    for i in range(rounds):
        cid, trunk = lanes[i % len(lanes)]
        call_id = f"b{tag}-{i:x}"
        t0 = time.perf_counter()
        batch = await store.claim_batch(
            cid, trunk, [call_id], "bench", lease_ms=60_000, max_channels=None,
            trunk_max_channels=None, cps=None, trunk_cps=None,
        )  # fmt: skip
        claims.append((time.perf_counter() - t0) * 1000)
        if not batch.claims:
            raise RuntimeError(f"{name}: no claim ({batch.stop})")
        claim = batch.claims[0]
        item = FinishItem(
            cid=cid, trunk=trunk, call_id=call_id, contact_id=claim.contact_id,
            contact_status=CallStatus.RETRY_SCHEDULED, attempts_used=0, tech_failures=0,
            retry_at_ms=0, record=RECORD, owner="bench",
        )  # fmt: skip
        t0 = time.perf_counter()
        await store.settle({cid: [call_id]}, [item])
        settles.append((time.perf_counter() - t0) * 1000)
    cpu_all = await _cpu_us(cpu_urls) - cpu0
    elapsed = time.perf_counter() - t_run
    cpu = cpu_all / rounds
    return {
        "setup": name,
        "claim_p50_ms": round(_pct(claims, 0.5), 3),
        "claim_p99_ms": round(_pct(claims, 0.99), 3),
        "settle_p50_ms": round(_pct(settles, 0.5), 3),
        "settle_p99_ms": round(_pct(settles, 0.99), 3),
        "redis_cpu_us_per_call": round(cpu, 1),
        "idle_cpu_us_per_s": round(idle_per_s, 1),
        "less_idle_us_per_call": round((cpu_all - idle_per_s * elapsed) / rounds, 1),
        "calls_per_s": round(rounds / elapsed, 1),
    }


async def main_async(rounds: int, campaigns: int) -> list[dict[str, float | str]]:
    work = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    single = RedisServer(workdir=work / "single", appendonly=False)
    cluster = RedisClusterProcs(work / "cluster")
    results: list[dict[str, float | str]] = []
    try:
        single.start()
        cluster.start()
        plain = RedisStore.from_url(single.url, "dialer")
        tagged = RedisStore.from_url(single.url, "dialer:tagged")
        tagged.keys = Keys(tagged.keys.ns, CLUSTER_SLOT_GROUPS)  # Cluster names, one server
        sharded = RedisStore.from_url(cluster.url, "dialer")
        cluster_urls = [cluster.node_url(i) for i in range(cluster.masters)]
        try:
            for name, store, urls, procs in (
                ("single", plain, [single.url], None),
                ("single-tagged", tagged, [single.url], None),
                ("cluster", sharded, cluster_urls, cluster),
            ):
                await run_setup(name, store, urls, procs, rounds=rounds // 10, campaigns=campaigns)
                results.append(
                    await run_setup(name, store, urls, procs, rounds=rounds, campaigns=campaigns)
                )
        finally:
            for s in (plain, tagged, sharded):
                await s.aclose()
    finally:
        cluster.stop()
        single.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.cluster_claim")
    parser.add_argument("--rounds", type=int, default=5000, help="calls per set-up")
    parser.add_argument("--campaigns", type=int, default=6, help="campaigns (and trunks)")
    args = parser.parse_args()
    results = asyncio.run(main_async(args.rounds, args.campaigns))
    columns = list(results[0])
    print("  ".join(f"{c:>13}" for c in columns))
    for row in results:
        print("  ".join(f"{row[c]!s:>13}" for c in columns))
    print("RESULT " + json.dumps({"bench": "cluster_claim", "results": results}))


if __name__ == "__main__":
    main()
