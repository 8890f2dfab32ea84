"""Drain latency: pause a running campaign, how long until nothing more is dialed and until
nothing is in flight; over many pause/resume cycles of one campaign (``CampaignControl``).

The campaign dials 1-s HOLD calls at 50 CPS (about 50 calls alive). The rate window grants
its calls in bursts (50 at once, then none until the window slides), so a pause at a random
moment would mostly fall between bursts and find nothing to stop. Each cycle therefore lets
the campaign run a random 0.6-1.6 s, waits until the watcher sees a new channel (the engine is
originating), and pauses right then; then it waits for Paused and resumes. On Asterisk's
clock (Newchannel / Hangup Timestamps, separate AMI session):

- pause -> last originate: the last channel created after the pause command was issued
  (0 when none was); the command's own return is shown too;
- pause -> zero in flight: the last Hangup of the calls alive at the pause (they end
  normally, so this is about the hold time plus the ring time);
- pause -> Paused: when the status says the drain is complete.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from dialer.domain.statuses import CampaignStatus
from dialer.store.redis_store import RedisStore
from loadtest.bench.common import (
    Figures,
    ami_settings,
    emit,
    hold_numbers,
    ms,
    namespace,
    percentile,
    poll,
    table,
    wait_quiet,
)
from loadtest.bench.enginerun import SETTLE_S
from loadtest.bench.engines import campaign_settings, engine_processes, new_campaign, wait_status
from loadtest.bench.watch import Observed, watch
from ops.localstack.stack import StackInfo

STATUS_WITHIN = 20.0


@dataclass(frozen=True, slots=True)
class Params:
    pauses: int = 20
    cps: float = 50.0
    max_channels: int = 200
    hold_s: int = 1
    run_s: tuple[float, float] = (0.6, 1.6)
    seed: int = 7

    @classmethod
    def quick(cls) -> Params:
        return cls(pauses=5)


@dataclass(frozen=True, slots=True)
class Cycle:
    command_s: float  # pause() returned
    last_originate_s: float  # 0 when nothing was originated after the command
    late_originates: int
    zero_inflight_s: float
    paused_s: float


async def _next_originate(seen: Observed, *, within: float) -> bool:
    """Return as soon as the watcher sees one more channel (True) or ``within`` s pass."""
    count = len(seen.created)

    async def grew() -> bool:
        return len(seen.created) > count

    return await poll(grew, within=within, every=0.001)


def _cycle(seen: Observed, issued: float, returned: float, paused: float) -> Cycle:
    """What the watcher saw of the pause issued at ``issued`` (epoch seconds)."""
    late = [t for t in seen.created.values() if t > issued]
    now = time.time()
    ends = [seen.ended.get(uid, now) for uid in seen.created]
    after = [t for t in ends if t > issued]  # calls alive at the pause, and later ones
    return Cycle(
        command_s=returned - issued,
        last_originate_s=max(late) - issued if late else 0.0,
        late_originates=len(late),
        zero_inflight_s=max(after) - issued if after else 0.0,
        paused_s=paused - issued,
    )


async def run(info: StackInfo, params: Params, *, quick: bool = False) -> Figures:
    print(
        f"drain: {params.pauses} pause/resume cycles, {params.cps:g} CPS, "
        f"{params.hold_s}-s HOLD calls",
        flush=True,
    )
    rng = random.Random(params.seed)
    ns = namespace("drain")
    store = RedisStore.from_url(info.redis_url, namespace=ns)
    cycles: list[Cycle] = []
    try:
        contacts = round(params.cps * (params.run_s[1] + 1.5) * params.pauses) + 100
        settings = campaign_settings(info, max_channels=params.max_channels, cps=params.cps)
        control, cid = await new_campaign(store, settings, hold_numbers(contacts, params.hold_s))
        await wait_quiet(info, within=SETTLE_S)  # not against the previous run's tail
        async with watch(ami_settings(info), "dlr-") as seen, engine_processes(info, ns):
            await control.start(cid)
            for _ in range(params.pauses):
                await asyncio.sleep(rng.uniform(*params.run_s))
                await _next_originate(seen, within=3.0)
                issued = time.time()
                await control.pause(cid)
                returned = time.time()
                status = await wait_status(
                    store, cid, {CampaignStatus.PAUSED}, within=STATUS_WITHIN
                )
                paused = time.time()
                if status is None:
                    raise RuntimeError(f"campaign not Paused {STATUS_WITHIN:g} s after pause")

                async def nothing_live() -> bool:
                    return seen.live() == 0

                await poll(nothing_live, within=5.0)  # the watcher's Hangup events
                cycles.append(_cycle(seen, issued, returned, paused))
                await control.resume(cid)
            await control.stop(cid)
    finally:
        await store.aclose()
    return _report(cycles, params, quick)


def _report(cycles: list[Cycle], params: Params, quick: bool) -> Figures:
    def stats(values: list[float]) -> tuple[float | None, float | None, float | None]:
        return ms(percentile(values, 50)), ms(percentile(values, 99)), ms(max(values, default=0))

    rows = {
        "pause() returned": stats([c.command_s for c in cycles]),
        "pause -> last originate": stats([c.last_originate_s for c in cycles]),
        "pause -> zero in flight": stats([c.zero_inflight_s for c in cycles]),
        "pause -> status Paused": stats([c.paused_s for c in cycles]),
    }
    late = [c.late_originates for c in cycles]
    table(
        f"drain latency over {len(cycles)} pauses (ms)",
        ["", "p50", "p99", "max"],
        [[name, *values] for name, values in rows.items()],
    )
    print(
        f"  originates after the pause command: {sum(late)} in {sum(1 for n in late if n)} "
        f"of {len(cycles)} pauses (max {max(late, default=0)} in one)"
    )
    keys = ("command", "last_originate", "zero_inflight", "paused")
    figures: Figures = {"pauses": len(cycles), "cps": params.cps, "hold_s": params.hold_s}
    for key, (p50, p99, top) in zip(keys, rows.values(), strict=True):
        figures[f"{key}_ms"] = {"p50": p50, "p99": p99, "max": top}
    figures["late_originates"] = sum(late)
    figures["pauses_with_late_originates"] = sum(1 for n in late if n)
    return emit("drain", quick, figures)
