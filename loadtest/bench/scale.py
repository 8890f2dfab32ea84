"""Scale: importing a large list, its Redis memory, and whether scheduling slows down with it.

1. ``store.add_contacts`` imports ``contacts`` (1,000,000; 20,000 with ``--quick``) into one
   list: wall time and Redis ``used_memory`` growth per contact (``INFO memory``).
2. Scheduling cost: one ``store.claim`` + ``store.finish`` round trip (the engine's per-call
   Redis work on the queue), against a campaign of ``small`` pending contacts and against the
   big one, in alternating blocks so that both see the same machine. ``finish`` schedules the
   contact again (Retry scheduled, due now), so the queue keeps its size. Client-side time per
   round trip, and Redis' own time in the scripts (``INFO commandstats``, evalsha usec).
   Target: big / small <= 1.2.

Nothing is extrapolated: ``--quick`` measures 20,000 and says so.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from dialer.domain.statuses import CallStatus
from dialer.engine.control import CampaignControl
from dialer.store.models import ContactInput
from dialer.store.redis_store import RedisStore
from loadtest.bench.common import Figures, emit, namespace, percentile, poll, table, verdict
from loadtest.bench.engines import campaign_settings
from ops.localstack.stack import StackInfo

TARGET_RATIO = 1.2
# A finish writes a call record like the engine's (dialer.engine.calls.call_record).
RECORD = {
    "campaign": "1", "phone": "+15550000000", "trunk": "carrier", "attempt": "1", "dial": "1",
    "contact_status": "retry_scheduled", "rule": "q850:16", "q850_cause": "16", "sip_code": "",
    "amd_status": "", "amd_cause": "", "dialplan_result": "", "dial_status": "ANSWER",
    "originate_reason": "4", "originate_failed": "0", "claimed_ms": "1700000000000",
    "answered_ms": "1700000000100", "ended_ms": "1700000001100", "duration_s": "1.000",
    "retry_at_ms": "", "engine": "bench", "outcome_table": "1",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Params:
    contacts: int = 1_000_000
    small: int = 1_000
    rounds: int = 5_000  # claim + finish round trips per queue size
    block: int = 500
    flush_after: bool = True  # FLUSHDB + BGREWRITEAOF at the end (the bench stack's own Redis)

    @classmethod
    def quick(cls) -> Params:
        return cls(contacts=20_000, rounds=1_000, block=250)


def contacts(count: int) -> Iterator[ContactInput]:
    for i in range(count):
        yield ContactInput(phone=f"+1555{i % 10_000_000:07d}", vars={"serial": str(i)})


# INFO, FLUSHDB and BGREWRITEAOF are the admin user's (``admin``: the stack's redis_admin_url)


async def _memory(admin: aioredis.Redis) -> int:
    return int((await admin.info("memory"))["used_memory"])


async def _script_usec(admin: aioredis.Redis) -> tuple[int, int]:
    stats = (await admin.info("commandstats")).get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


async def _campaign(
    store: RedisStore, admin: aioredis.Redis, info: StackInfo, size: int
) -> tuple[int, float, int]:
    """A Running campaign of ``size`` pending contacts: (cid, import seconds, memory bytes)."""
    control = CampaignControl(store)
    cid = await control.create(campaign_settings(info, max_channels=1, cps=1.0, name="scale"))
    list_id = await store.add_list(cid)
    before = await _memory(admin)
    started = time.perf_counter()
    added = await store.add_contacts(cid, list_id, contacts(size))
    took = time.perf_counter() - started
    grown = await _memory(admin) - before
    if added != size:
        raise RuntimeError(f"imported {added} of {size} contacts")
    await control.start(cid)
    return cid, took, grown


async def _rounds(store: RedisStore, cid: int, trunk: str, count: int) -> list[float]:
    """``count`` claim + finish round trips; seconds each."""
    times: list[float] = []
    run = uuid.uuid4().hex[:8]
    for i in range(count):
        started = time.perf_counter()
        res = await store.claim(
            cid, trunk, f"scale-{run}-{i}", "bench", lease_ms=60_000,
            max_channels=None, trunk_max_channels=None, cps=None, trunk_cps=None,
        )  # fmt: skip
        if res.kind != "ok":
            raise RuntimeError(f"claim answered {res.kind} on campaign {cid}")
        await store.finish(
            cid, trunk, f"scale-{run}-{i}", res.contact_id,
            contact_status=CallStatus.RETRY_SCHEDULED, attempts_used=0, tech_failures=0,
            retry_at_ms=res.server_ms, record=RECORD,
        )  # fmt: skip
        times.append(time.perf_counter() - started)
    return times


async def _aof_idle(admin: aioredis.Redis) -> bool:
    info = await admin.info("persistence")
    return not int(info.get("aof_rewrite_in_progress", 0)) and not int(
        info.get("rdb_bgsave_in_progress", 0)
    )


async def run(info: StackInfo, params: Params, *, quick: bool = False) -> Figures:
    print(
        f"scale: import {params.contacts:,} contacts; claim+finish at {params.small:,} vs "
        f"{params.contacts:,} pending",
        flush=True,
    )
    store = RedisStore.from_url(info.redis_url, namespace=namespace("scale"))
    admin = aioredis.Redis.from_url(info.redis_admin_url)
    try:
        big, took, grown = await _campaign(store, admin, info, params.contacts)
        small, _, _ = await _campaign(store, admin, info, params.small)
        await poll(lambda: _aof_idle(admin), within=120.0, every=0.5)  # AOF rewrite after import
        sizes = {"small": (small, params.small), "big": (big, params.contacts)}
        client: dict[str, list[float]] = {"small": [], "big": []}
        server: dict[str, list[int]] = {"small": [0, 0], "big": [0, 0]}
        await _rounds(store, small, info.trunk, 50)  # warm up: scripts loaded, connection made
        done = 0
        while done < params.rounds:
            n = min(params.block, params.rounds - done)
            for name, (cid, _) in sizes.items():
                calls0, usec0 = await _script_usec(admin)
                client[name] += await _rounds(store, cid, info.trunk, n)
                calls1, usec1 = await _script_usec(admin)
                server[name][0] += calls1 - calls0
                server[name][1] += usec1 - usec0
            done += n
        if params.flush_after:
            await admin.flushdb()
            await _rewrite_aof(admin)
        else:
            for cid in (small, big):
                await store.delete_campaign(cid)
    finally:
        await store.aclose()
        await admin.aclose()
    return _report(params, took, grown, client, server, quick)


async def _rewrite_aof(admin: aioredis.Redis, within: float = 60.0) -> None:
    """Compact the append-only file after the flush (the next benchmarks start from a small
    one). Redis may already be rewriting it on its own (``auto-aof-rewrite``): then wait for
    that rewrite to end and ask again, as the flush came after it started."""
    deadline = time.monotonic() + within
    while True:
        try:
            await admin.bgrewriteaof()
            return
        except ResponseError as exc:
            if "already in progress" not in str(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.5)


def _report(
    params: Params,
    took: float,
    grown: int,
    client: dict[str, list[float]],
    server: dict[str, list[int]],
    quick: bool,
) -> Figures:
    def us(values: list[float], p: float) -> float:
        return round((percentile(values, p) or 0.0) * 1e6, 1)

    mean = {k: round(sum(v) / len(v) * 1e6, 1) for k, v in client.items()}
    p50 = {k: us(v, 50) for k, v in client.items()}
    p99 = {k: us(v, 99) for k, v in client.items()}
    # two scripts (claim, finish) per round trip
    script = {k: round(u / max(1, c) * 2, 1) for k, (c, u) in server.items()}
    ratio_p50 = p50["big"] / p50["small"] if p50["small"] else None
    ratio_mean = mean["big"] / mean["small"] if mean["small"] else None
    ratio_script = script["big"] / script["small"] if script["small"] else None
    per_contact = grown / params.contacts
    table(
        f"import of {params.contacts:,} contacts (store.add_contacts, batches of 1000)",
        ["seconds", "contacts/s", "Redis memory MB", "bytes per contact"],
        [[round(took, 1), round(params.contacts / took), round(grown / 2**20, 1),
          round(per_contact)]],
    )  # fmt: skip
    table(
        f"claim + finish round trip ({params.rounds:,} per size, alternating blocks)",
        ["pending", "p50 us", "mean us", "p99 us", "Redis script us"],
        [
            [f"{params.small:,}", p50["small"], mean["small"], p99["small"], script["small"]],
            [f"{params.contacts:,}", p50["big"], mean["big"], p99["big"], script["big"]],
            ["ratio", ratio_p50, ratio_mean, None, ratio_script],
        ],
    )
    met_p50 = verdict(ratio_p50, TARGET_RATIO, at_most=True)
    met_script = verdict(ratio_script, TARGET_RATIO, at_most=True)
    print(f"  target big/small <= {TARGET_RATIO}: p50 {met_p50}, Redis script time {met_script}")
    return emit(
        "scale",
        quick,
        {
            "contacts": params.contacts,
            "import_s": round(took, 2),
            "import_per_s": round(params.contacts / took),
            "redis_bytes_per_contact": round(per_contact, 1),
            "redis_mb": round(grown / 2**20, 1),
            "small": params.small,
            "rounds": params.rounds,
            "round_trip_us": {"p50": p50, "mean": mean, "p99": p99},
            "script_us": script,
            "ratio_p50": round(ratio_p50, 3) if ratio_p50 else None,
            "ratio_mean": round(ratio_mean, 3) if ratio_mean else None,
            "ratio_script": round(ratio_script, 3) if ratio_script else None,
            "target_ratio": TARGET_RATIO,
            "ratio_met": ratio_p50 is not None and ratio_p50 <= TARGET_RATIO,
        },
    )
