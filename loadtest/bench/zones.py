"""Local hours: the claim's cost with 1,000,000 contacts spread over time zones, against all
of them in one zone (issue 18 item 1; target: within 1.2x).

Runs on a private redis-server of its own (no stack, no switch; about 2-3 min):

    .venv/bin/python -m loadtest.bench.zones            # 1,000,000 contacts per campaign
    .venv/bin/python -m loadtest.bench.zones --quick    # 50,000, to try it

Two campaigns of ``contacts`` pending contacts each, bulk-loaded by a Lua script
(zones_load.lua: the state add_contacts.lua leaves, without the CSV path): every contact in
one zone group, or the contacts spread round-robin over 24 groups. Five ways of claiming:

``1 zone, no local hours``    the one-zone campaign, the claim as before (ARGV[18] empty)
``1 zone``                    local hours, its one group open: the reference of the ratio
``24 zones, no local hours``  the spread campaign, the claim as before (what the data alone
                              costs)
``24 zones, all open``        local hours, every group open
``24 zones, 12 open``         half of the groups closed: the head of pending soon holds only
                              closed groups' contacts, so every pick goes through the open
                              groups' queues (the worst case of claim.lua's zone pick)

Then ``blocks`` rounds of claims of ``batch`` call ids (``store.claim_batch``, the engine's
call), no channel or rate limit, nothing finished (the leases pile up alike in every
campaign). Each round runs ``calls`` claims of each way in a block of its own (Redis'
time in the script from ``INFO commandstats`` evalsha usec, Redis' CPU from ``used_cpu_user +
used_cpu_sys`` deltas, which include the INFO calls themselves, and the client's round trip),
then ``calls`` claims of every way in turn (the order rotating), each script's time read
from ``INFO commandstats`` around it: on a machine shared with other work the interleaved
figures compare the ways at the same moments, and they give the ratio. Medians of the
rounds, per claimed contact.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

from dialer.domain.statuses import CampaignStatus
from dialer.domain.zones import ZoneGroup
from dialer.store.models import ZoneClaim
from dialer.store.redis_store import RedisStore
from loadtest.bench.common import emit, table, verdict
from ops.localstack.redis_server import RedisServer

TARGET_RATIO = 1.2
LOAD_CHUNK = 20_000
FAR_MS = 2**50
ZONES = (
    "America/Los_Angeles America/Denver America/Chicago America/New_York America/Halifax "
    "America/Sao_Paulo Atlantic/Azores Europe/London Europe/Paris Europe/Helsinki "
    "Europe/Moscow Asia/Dubai Asia/Karachi Asia/Kolkata Asia/Dhaka Asia/Bangkok "
    "Asia/Shanghai Asia/Tokyo Australia/Brisbane Australia/Sydney Pacific/Noumea "
    "Pacific/Auckland Pacific/Honolulu America/Anchorage"
).split()
SETTINGS = '{"name":"zones","trunk":"t","max_channels":100000,"cps":10000,"local_hours":true}'


@dataclass(frozen=True, slots=True)
class Params:
    contacts: int = 1_000_000
    blocks: int = 30
    calls: int = 100  # claim calls per block and campaign
    batch: int = 10  # call ids per claim

    @classmethod
    def quick(cls) -> Params:
        return cls(contacts=50_000, blocks=6, calls=50)


@dataclass(slots=True)
class Case:
    name: str
    groups: int  # zone groups the contacts are spread over (one campaign per number)
    open_groups: int | None  # None: no local hours (ARGV[18] empty)
    trunk: str = ""
    cid: int = 0
    usec: list[float] = field(default_factory=list)  # per claimed contact, one per block
    cpu: list[float] = field(default_factory=list)
    rtt: list[float] = field(default_factory=list)
    interleaved: list[float] = field(default_factory=list)  # script usec per contact
    claimed: int = 0

    @property
    def zones(self) -> ZoneClaim | None:
        if self.open_groups is None:
            return None
        opened = range(1, self.groups + 1, 2 if self.open_groups < self.groups else 1)
        return ZoneClaim(tuple((g, FAR_MS) for g in opened), None)


CASES = (
    ("1 zone, no local hours", 1, None),
    ("1 zone", 1, 1),
    ("24 zones, no local hours", 24, None),
    ("24 zones, all open", 24, 24),
    ("24 zones, 12 open", 24, 12),
)
BASE = "1 zone"


async def _load(store: RedisStore, groups: int, count: int) -> tuple[int, float]:
    """A Running campaign of ``count`` contacts spread over ``groups`` zone groups: its id
    and the load's seconds."""
    r, k = store.client, store.keys
    cid = await store.create_campaign(f"{groups} zones", "t", SETTINGS)
    await store.add_list(cid)
    for gid in range(1, groups + 1):  # the registry, as add_contacts.lua fills it
        await r.hset(k.zones(cid), ZoneGroup("", (ZONES[gid - 1],)).key, gid)
    await r.hset(k.zones(cid), "#", groups)
    script = r.register_script((Path(__file__).parent / "zones_load.lua").read_text())
    keys = [k.pending(cid), k.counts(cid), k.zone_prefix(cid), k.contact_prefix(cid)]
    now_ms = int(time.time() * 1000) - 60_000
    started = time.perf_counter()
    for first in range(1, count + 1, LOAD_CHUNK):
        n = min(LOAD_CHUNK, count + 1 - first)
        await script(keys=keys, args=[first, n, groups, now_ms])
    await r.set(k.contact_seq(cid), count)
    elapsed = time.perf_counter() - started
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    return cid, elapsed


async def _evalsha_usec(r: aioredis.Redis) -> float:
    return float((await r.info("commandstats")).get("cmdstat_evalsha", {}).get("usec", 0))


async def _cpu(r: aioredis.Redis) -> float:
    info = await r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _claim(store: RedisStore, case: Case, p: Params, tag: str) -> tuple[int, float]:
    ids = [f"{tag}-{case.trunk}-{j}" for j in range(p.batch)]  # never a replay
    started = time.perf_counter()
    batch = await store.claim_batch(
        case.cid,
        case.trunk,
        ids,
        "bench",
        lease_ms=600_000,
        max_channels=None,
        trunk_max_channels=None,
        cps=None,
        trunk_cps=None,
        zones=case.zones,
    )
    return len(batch.claims), time.perf_counter() - started


async def _block(store: RedisStore, case: Case, p: Params, tag: str) -> None:
    """``calls`` claims of one campaign: Redis' script time and CPU per claimed contact."""
    r = store.client
    usec0, cpu0 = await _evalsha_usec(r), await _cpu(r)
    claimed, rtt = 0, 0.0
    for i in range(p.calls):
        n, took = await _claim(store, case, p, f"{tag}-{i}")
        claimed, rtt = claimed + n, rtt + took
    usec1, cpu1 = await _evalsha_usec(r), await _cpu(r)
    if claimed:
        case.usec.append((usec1 - usec0) / claimed)
        case.cpu.append((cpu1 - cpu0) * 1e6 / claimed)
        case.rtt.append(rtt * 1e6 / claimed)
        case.claimed += claimed


async def _interleaved(store: RedisStore, cases: list[Case], p: Params, tag: str) -> None:
    """One claim of each campaign in turn (the order rotating), ``calls`` times, each one's
    script time read from ``INFO commandstats`` around it: every campaign meets the same
    moments of a machine shared with other work."""
    r = store.client
    spent: dict[str, list[float]] = {c.name: [] for c in cases}
    for i in range(p.calls):
        k = i % len(cases)
        for case in cases[k:] + cases[:k]:
            usec0 = await _evalsha_usec(r)
            n, _ = await _claim(store, case, p, f"{tag}-{i}")
            usec1 = await _evalsha_usec(r)
            if n:
                spent[case.name].append((usec1 - usec0) / n)
    for case in cases:
        if spent[case.name]:
            case.interleaved.append(statistics.median(spent[case.name]))


async def run(p: Params, url: str) -> dict[str, object]:
    client = aioredis.Redis.from_url(url)
    store = RedisStore(client, "benchzones")
    cases = [Case(name, g, opened, f"t{i}") for i, (name, g, opened) in enumerate(CASES)]
    loads: dict[int, float] = {}
    try:
        for groups in sorted({c.groups for c in cases}):
            cid, loads[groups] = await _load(store, groups, p.contacts)
            for case in cases:
                if case.groups == groups:
                    case.cid = cid
        memory = int((await client.info("memory"))["used_memory"])
        for b in range(p.blocks):
            order = cases[b % len(cases) :] + cases[: b % len(cases)]
            for case in order:
                await _block(store, case, p, f"b{b}")
            await _interleaved(store, order, p, f"i{b}")
    finally:
        await client.aclose()
    base = next(c for c in cases if c.name == BASE)
    rows, figures = [], {}
    for case in cases:
        load_s = loads[case.groups]
        usec, inter = statistics.median(case.usec), statistics.median(case.interleaved)
        ratio = inter / statistics.median(base.interleaved)
        rows.append(
            [
                case.name,
                case.claimed,
                round(p.contacts / load_s),
                inter,
                usec,
                statistics.median(case.cpu),
                statistics.median(case.rtt),
                ratio,
            ]
        )
        figures[case.name] = {
            "script_usec_per_contact_interleaved": round(inter, 2),
            "script_usec_per_contact": round(usec, 2),
            "redis_cpu_usec_per_contact": round(statistics.median(case.cpu), 2),
            "rtt_usec_per_contact": round(statistics.median(case.rtt), 2),
            "vs_1_zone": round(ratio, 3),
        }
    table(
        f"claim cost, {p.contacts:,} pending contacts per campaign, batches of {p.batch} "
        f"(medians of {p.blocks} blocks of {p.calls} claims)",
        [
            "campaign",
            "claimed",
            "load contacts/s",
            "script us/contact (interleaved)",
            "script us/contact",
            "Redis CPU us/contact",
            "client us/contact",
            "vs 1 zone (interleaved)",
        ],
        rows,
    )
    print(f"Redis used_memory with the two campaigns: {memory / 2**20:.0f} MiB")
    worst = max(float(v["vs_1_zone"]) for k, v in figures.items() if "no local" not in k)
    print(f"worst spread/one-zone ratio {worst:.3f}: {verdict(worst, TARGET_RATIO, at_most=True)}")
    return {"contacts": p.contacts, "batch": p.batch, "cases": figures, "worst_ratio": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--contacts", type=int)
    parser.add_argument("--batch", type=int)
    args = parser.parse_args()
    p = Params.quick() if args.quick else Params()
    p = Params(
        contacts=args.contacts or p.contacts,
        blocks=p.blocks,
        calls=p.calls,
        batch=args.batch or p.batch,
    )
    with tempfile.TemporaryDirectory(prefix="bench-zones-") as workdir:
        server = RedisServer(workdir=Path(workdir), appendonly=False)
        server.start()
        try:
            figures = asyncio.run(run(p, server.url))
        finally:
            server.stop()
    emit("zones", args.quick, figures)


if __name__ == "__main__":
    main()
