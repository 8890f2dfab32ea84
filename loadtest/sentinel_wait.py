"""What ``WAIT 1 <ms>`` costs the engine (README "Redis Sentinel"): a real master and replica
on loopback, the engine's own round trips (a claim of one contact, then its "originated" mark,
as ``settle_and_claim`` sends them), with and without the WAIT that a ``redis+sentinel://`` URL
adds. Prints the round trip's median and p99 and the master's CPU per call, then one
``RESULT {json}`` line.

    .venv/bin/python -m loadtest.sentinel_wait [--calls 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from dialer.domain.campaign import CampaignSettings
from dialer.engine.control import CampaignControl
from dialer.store.connection import ReplicaWait
from dialer.store.models import ContactInput
from dialer.store.redis_store import RedisStore
from ops.localstack.redis_server import RedisServer
from ops.localstack.wait import wait_until

ROUNDS = 3


def _cpu(port: int) -> float:
    with redis.Redis(port=port) as c:
        info = c.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def _run(store: RedisStore, port: int, calls: int) -> dict[str, float]:
    control = CampaignControl(store)
    cid = await control.create(
        CampaignSettings(name="wait", trunk="bench", max_channels=10**5, cps=10**4)
    )
    await control.add_list(cid, [ContactInput(phone=f"+1555{i:07d}") for i in range(calls)])
    await control.start(cid)
    laps: list[float] = []
    cpu = _cpu(port)
    for i in range(calls):
        command = store.claim_command(
            cid, "bench", [f"w{i}"], "bench", lease_ms=60_000, max_channels=None,
            trunk_max_channels=None, cps=None, trunk_cps=None,
        )  # fmt: skip
        started = time.perf_counter()
        reply = await store.settle_and_claim({}, [], [command], owner="bench")
        await store.settle_and_claim({cid: [f"w{i}"]}, [], owner="bench")
        laps.append(time.perf_counter() - started)
        assert not isinstance(reply.claims[0], Exception), reply.claims[0]
    cpu = _cpu(port) - cpu
    laps.sort()
    return {
        "median_us": statistics.median(laps) * 1e6,
        "p99_us": laps[int(len(laps) * 0.99)] * 1e6,
        "redis_cpu_us_per_call": cpu / calls * 1e6,
    }


def _start_replica(work: Path, master_port: int) -> subprocess.Popen[bytes]:
    replica = RedisServer(workdir=work / "replica", appendonly=False)
    argv = [*replica.argv(), "--replicaof", "127.0.0.1", str(master_port)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    with redis.Redis(port=replica.port) as c:
        wait_until(
            lambda: c.info("replication").get("master_link_status") == "up",
            timeout=20,
            what="replica",
        )
    return proc


async def main(calls: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="sentinel-wait-"))
    master = RedisServer(workdir=work / "master", appendonly=False)
    master.start()
    proc = _start_replica(work, master.port)
    try:
        runs: dict[str, list[dict[str, float]]] = {"no_wait": [], "wait_1": []}
        for rnd in range(ROUNDS):  # alternated: the machine's load drifts between runs
            for name, wait in (("no_wait", None), ("wait_1", ReplicaWait(1, 200))):
                client = redis.asyncio.Redis(port=master.port)
                store = RedisStore(client, namespace=f"dialer:bench{name}{rnd}", replicas=wait)
                runs[name].append(await _run(store, master.port, calls))
                await client.aclose()
        out = {
            name: {k: statistics.median(r[k] for r in results) for k in results[0]}
            for name, results in runs.items()
        }
        for name, figures in out.items():
            print(f"{name:8s} " + "  ".join(f"{k} {v:8.1f}" for k, v in figures.items()))
        with redis.Redis(port=master.port) as c:
            wait_stats = c.info("commandstats").get("cmdstat_wait", {})
        wait_us = float(wait_stats.get("usec_per_call", 0.0))
        print(
            f"WAIT adds {out['wait_1']['median_us'] - out['no_wait']['median_us']:.1f} us per "
            f"call (claim + mark: 2 round trips, each with its WAIT); the master spends "
            f"{wait_us:.2f} us of CPU per WAIT ({ROUNDS} rounds of {calls} calls, medians)"
        )
        print(
            "RESULT "
            + json.dumps({"bench": "sentinel_wait", "calls": calls, "wait_cpu_us": wait_us, **out})
        )
    finally:
        proc.terminate()
        proc.wait(10)
        master.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    asyncio.run(main(parser.parse_args().calls))
