"""Refill latency: at the concurrency cap, from a Hangup to the next originate.

A campaign of 1-s HOLD calls with ``max_channels`` 20 and a rate limit far above what 20
channels can use, so the channel cap is the only limit: every hang-up frees a slot that the
engine refills. A separate AMI session records Newchannel and Hangup Timestamps (Asterisk's
clock). The originates of the ramp-up (the first ``cap``) refill nothing. Two matchings:

- next: each Hangup to the first Newchannel at or after it (the brief's definition; hangups
  that come together share the same next originate);
- one-to-one: each Hangup in time order to the first *not yet matched* Newchannel at or after
  it: the wait of every freed slot, so when many calls end together the last refill of the
  burst shows how long the engine takes to refill them all one after the other.

Either way the gap is: the engine sees the Hangup, writes the result, frees the slot, claims
and originates, and Asterisk creates the channel. Hangups after the last originate (queue
empty) match nothing. Target: p50 <= 5 ms.
"""

from __future__ import annotations

import bisect
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
    table,
    verdict,
    wait_quiet,
)
from loadtest.bench.enginerun import SETTLE_S
from loadtest.bench.engines import (
    campaign_settings,
    engine_processes,
    new_campaign,
    outcomes,
    wait_status,
)
from loadtest.bench.watch import watch
from ops.localstack.stack import StackInfo

TARGET_P50_MS = 5.0


@dataclass(frozen=True, slots=True)
class Params:
    contacts: int = 600  # 30 s at the cap
    cap: int = 20
    hold_s: int = 1
    cps: float = 1000.0  # not binding

    @classmethod
    def quick(cls) -> Params:
        return cls(contacts=120)


def refill_gaps(
    hangups: list[float], originates: list[float], cap: int, *, one_to_one: bool
) -> list[float]:
    """Seconds from each Hangup to the next originate (``one_to_one``: not yet matched)."""
    later = sorted(originates)[cap:]  # the ramp-up's originates refill nothing
    gaps: list[float] = []
    start = 0
    for h in sorted(hangups):
        i = bisect.bisect_left(later, h, lo=start)
        if i >= len(later):
            break
        gaps.append(later[i] - h)
        if one_to_one:
            start = i + 1
    return gaps


async def run(info: StackInfo, params: Params, *, quick: bool = False) -> Figures:
    print(
        f"refill: cap {params.cap} channels, {params.hold_s}-s HOLD calls, "
        f"{params.contacts} contacts",
        flush=True,
    )
    ns = namespace("refill")
    store = RedisStore.from_url(info.redis_url, namespace=ns)
    try:
        settings = campaign_settings(info, max_channels=params.cap, cps=params.cps)
        phones = hold_numbers(params.contacts, params.hold_s)
        control, cid = await new_campaign(store, settings, phones)
        within = params.contacts / params.cap * (params.hold_s + 1) * 2 + 30
        await wait_quiet(info, within=SETTLE_S)  # not against the previous run's tail
        async with watch(ami_settings(info), "dlr-") as seen, engine_processes(info, ns):
            await control.start(cid)
            status = await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=within)
        done = await outcomes(store, cid, hold_s=params.hold_s)
    finally:
        await store.aclose()
    hangups, created = list(seen.ended.values()), list(seen.created.values())
    figures: Figures = {"cap": params.cap, "hold_s": params.hold_s}
    rows = []
    for label, one_to_one in (("next", False), ("one_to_one", True)):
        gaps = refill_gaps(hangups, created, params.cap, one_to_one=one_to_one)
        p50, p90, p99 = (ms(percentile(gaps, p)) for p in (50, 90, 99))
        top = ms(max(gaps, default=0.0))
        met = verdict(p50, TARGET_P50_MS, at_most=True)
        rows.append([label, len(gaps), p50, p90, p99, top, f"<= {TARGET_P50_MS:g}", met])
        figures[label] = {
            "refills": len(gaps), "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": top,
            "p50_met": met == "met",
        }  # fmt: skip
    table(
        f"refill latency, Hangup -> Newchannel ({done.records} calls, "
        f"{params.contacts - done.clean} failed)",
        ["matching", "refills", "p50 ms", "p90 ms", "p99 ms", "max ms", "target p50", "verdict"],
        rows,
    )
    figures.update(
        target_p50_ms=TARGET_P50_MS,
        calls=done.records,
        failed=params.contacts - done.clean,
        completed=status is CampaignStatus.COMPLETED,
    )
    return emit("refill", quick, figures)
