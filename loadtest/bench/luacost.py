"""Lua cost: Redis's time and commands per call in each script of a call's life, two versions of
the scripts side by side in one Redis.

A call's Redis work, batched as the engine batches it (``batch`` calls per round trip, the calls
of one 50-ms pacing step at ``batch * 20`` CPS): one claim (claim.lua), the "originated" marks
(originated.lua), one lease renewal (renew.lua: the engine renews every live call every 5 s, so
a call of a few seconds is renewed about once) and the results (finish.lua: retry due at once,
so the queue keeps its size, as in the scale benchmark). Two stores run the same cycle on
campaigns of their own, one with the scripts of this checkout (``new``) and one with those of
git revision ``base`` (``base``; a script missing there is this checkout's), in alternating
blocks. Per script and version: Redis's own time in it (``INFO commandstats`` ``evalsha``
usec, read around each step) and the commands run inside it (the inner commands' counts), per
call; and Redis's whole CPU per call (``INFO cpu``: sockets, parsing and scripts).

Target (issue 17): <= 50 us of Redis CPU per call. The engine's own figure at a steady rate is
the cost benchmark's (Redis CPU by ``/proc`` and commands per call).
"""

from __future__ import annotations

import subprocess
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

from dialer.domain.campaign import CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus
from dialer.engine.control import CampaignControl
from dialer.store.models import FinishItem
from dialer.store.redis_store import RedisStore
from dialer.store.scripts import SCRIPT_NAMES, Scripts, load_source
from loadtest.bench.common import Figures, emit, namespace, table, verdict
from loadtest.bench.scale import RECORD, contacts
from ops.localstack.stack import StackInfo

REPO = Path(__file__).resolve().parents[2]
TARGET_US = 50.0
STEPS = ("claim", "originated", "renew", "finish")
OWNER = "luacost"


@dataclass(frozen=True, slots=True)
class Params:
    base: str = "main"  # the git revision whose scripts are compared with this checkout's
    batch: int = 15  # calls per round trip (300 CPS in 50-ms steps)
    pending: int = 2_000
    cycles: int = 400  # batches per version
    block: int = 50

    @classmethod
    def quick(cls) -> Params:
        return cls(cycles=60, block=20)


@dataclass
class Tally:
    calls: int = 0
    usec: Counter[str] = field(default_factory=Counter)  # step -> evalsha usec
    inner: Counter[str] = field(default_factory=Counter)  # step -> inner commands
    by_command: Counter[str] = field(default_factory=Counter)  # inner command -> calls
    cpu_s: float = 0.0  # Redis's used_cpu_user + used_cpu_sys


def base_source(rev: str, name: str) -> str | None:
    """``name``.lua at git revision ``rev`` (None if it has none)."""
    done = subprocess.run(
        ["git", "show", f"{rev}:dialer/store/lua/{name}.lua"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


def _scripts(client: aioredis.Redis, rev: str | None) -> Scripts:
    sources = {n: (base_source(rev, n) if rev else None) or load_source(n) for n in SCRIPT_NAMES}
    return Scripts(**{n: client.register_script(s) for n, s in sources.items()})


async def _stats(admin: aioredis.Redis) -> dict[str, tuple[int, int]]:
    info = await admin.info("commandstats")
    return {
        str(k).removeprefix("cmdstat_"): (int(v["calls"]), int(v.get("usec", 0)))
        for k, v in info.items()
        if isinstance(v, dict)
    }


async def _cpu(admin: aioredis.Redis) -> float:
    info = await admin.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


Stats = dict[str, tuple[int, int]]


def _add(tally: Tally, step: str, before: Stats, after: Stats) -> None:
    for name, (calls, usec) in after.items():
        c0, u0 = before.get(name, (0, 0))
        if name == "evalsha":
            tally.usec[step] += usec - u0
        elif name not in ("info",) and calls > c0:
            tally.inner[step] += calls - c0
            tally.by_command[name] += calls - c0


def versions(params: Params) -> tuple[tuple[str, str | None], ...]:
    """The two versions: ``base`` (git revision ``params.base``) and ``new`` (this checkout)."""
    return (("base", params.base), ("new", None))


class Lane:
    """One version's store and campaign, and the calls it has claimed."""

    def __init__(self, redis_url: str, trunk: str, label: str, rev: str | None) -> None:
        self.label = label
        self.store = RedisStore.from_url(redis_url, namespace=namespace(f"lua{label}"))
        self.store._lua = _scripts(self.store.client, rev)  # the version under test
        self.trunk = trunk
        self.cid = 0
        self.tally = Tally()
        self._run = uuid.uuid4().hex[:8]
        self._seq = 0

    async def setup(self, pending: int) -> None:
        control = CampaignControl(self.store)
        settings = CampaignSettings(
            name="luacost",
            trunk=self.trunk,
            max_channels=100_000,
            cps=10_000.0,
            amd=False,
            retry=RetryPolicy(max_attempts=1, technical_retry_limit=0),
        )
        self.cid = await control.create(settings)
        list_id = await self.store.add_list(self.cid)
        await self.store.add_contacts(self.cid, list_id, contacts(pending))
        await control.start(self.cid)

    async def cycle(self, admin: aioredis.Redis, batch: int, measure: bool) -> None:
        store, cid = self.store, self.cid
        ids = [f"{self._run}-{self._seq + i}" for i in range(batch)]
        self._seq += batch
        command = store.claim_command(
            cid, self.trunk, ids, OWNER, lease_ms=60_000, max_channels=100_000,
            trunk_max_channels=None, cps=10_000.0, trunk_cps=None, rate_margin_ms=4,
            pace_ms=0,
        )  # fmt: skip
        s0 = await _stats(admin) if measure else {}
        reply = await store.settle_and_claim({}, [], [command])
        s1 = await _stats(admin) if measure else {}
        claimed = reply.claims[0]
        if isinstance(claimed, Exception):
            raise claimed
        got = [(c.call_id, c.contact_id) for c in claimed.claims]
        if len(got) != batch:
            raise RuntimeError(f"{self.label}: claimed {len(got)} of {batch} ({claimed.stop})")
        await store.settle_and_claim({cid: [c for c, _ in got]}, [], owner=OWNER)
        s2 = await _stats(admin) if measure else {}
        await store.renew(cid, self.trunk, [c for c, _ in got], 60_000, owner=OWNER)
        s3 = await _stats(admin) if measure else {}
        items = [
            FinishItem(
                cid=cid, trunk=self.trunk, call_id=call_id, contact_id=contact,
                contact_status=CallStatus.RETRY_SCHEDULED, attempts_used=1, tech_failures=0,
                retry_at_ms=claimed.server_ms, record=RECORD, usage_attempts=1,
                talk_seconds=1.0, owner=OWNER,
            )
            for call_id, contact in got
        ]  # fmt: skip
        await store.settle_and_claim({}, items)
        if measure:
            s4 = await _stats(admin)
            for step, before, after in zip(STEPS, (s0, s1, s2, s3), (s1, s2, s3, s4), strict=True):
                _add(self.tally, step, before, after)
            self.tally.calls += batch


async def run(info: StackInfo, params: Params, *, quick: bool = False) -> Figures:
    print(
        f"luacost: scripts of this checkout (new) vs {params.base} (base), batches of "
        f"{params.batch}, {params.cycles} per version in blocks of {params.block}",
        flush=True,
    )
    admin = aioredis.Redis.from_url(info.redis_admin_url)
    lanes = [Lane(info.redis_url, info.trunk, label, rev) for label, rev in versions(params)]
    try:
        for lane in lanes:
            await lane.setup(params.pending)
            for _ in range(5):  # scripts loaded, connection made
                await lane.cycle(admin, params.batch, measure=False)
        # Redis's CPU per call: blocks without INFO commandstats in between
        cpu: dict[str, list[float]] = {lane.label: [0.0, 0.0] for lane in lanes}
        done = 0
        while done < params.cycles:
            n = min(params.block, params.cycles - done)
            for lane in lanes:
                for _ in range(n):
                    await lane.cycle(admin, params.batch, measure=True)
                c0 = await _cpu(admin)
                for _ in range(n):
                    await lane.cycle(admin, params.batch, measure=False)
                cpu[lane.label][0] += await _cpu(admin) - c0
                cpu[lane.label][1] += n * params.batch
            done += n
        for lane in lanes:
            await lane.store.delete_campaign(lane.cid)
    finally:
        for lane in lanes:
            await lane.store.aclose()
        await admin.aclose()
    return _report(params, lanes, cpu, quick)


def _report(params: Params, lanes: list[Lane], cpu: dict[str, list[float]], quick: bool) -> Figures:
    rows: list[list[object]] = []
    per: dict[str, Figures] = {}
    for lane in lanes:
        t = lane.tally
        n = max(1, t.calls)
        us = {s: round(t.usec[s] / n, 2) for s in STEPS}
        inner = {s: round(t.inner[s] / n, 2) for s in STEPS}
        cpu_us = cpu[lane.label][0] / max(1, cpu[lane.label][1]) * 1e6
        per[lane.label] = {
            "script_us_per_call": us,
            "script_us_total": round(sum(us.values()), 1),
            "inner_commands_per_call": inner,
            "inner_commands_total": round(sum(inner.values()), 1),
            "redis_cpu_us_per_call": round(cpu_us, 1),
            "commands_per_call": {k: round(v / n, 2) for k, v in t.by_command.most_common()},
        }
        rows.append([lane.label, *(us[s] for s in STEPS), round(sum(us.values()), 1),
                     *(inner[s] for s in STEPS), round(cpu_us, 1)])  # fmt: skip
    table(
        f"Redis per call, batches of {params.batch} (script us: evalsha time; cmds: inside)",
        ["scripts", *(f"{s} us" for s in STEPS), "scripts us", *(f"{s} cmds" for s in STEPS),
         "Redis CPU us"],
        rows,
    )  # fmt: skip
    for label, figures in per.items():
        print(f"  {label}: commands per call inside the scripts: {figures['commands_per_call']}")
    new = per["new"]["redis_cpu_us_per_call"]
    assert isinstance(new, float)
    print(f"  Redis CPU per call (new): {new} us, target <= {TARGET_US}: "
          f"{verdict(new, TARGET_US, at_most=True)}")  # fmt: skip
    return emit(
        "luacost",
        quick,
        {
            "base": params.base,
            "batch": params.batch,
            "cycles": params.cycles,
            **per,
            "target_us": TARGET_US,
            "target_met": new <= TARGET_US,
        },
    )
