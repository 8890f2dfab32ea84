"""Pacing accuracy: limits below capacity, as Asterisk itself sees them, with 1 and 3 engines.

A campaign of 3-s HOLD calls with ``max_channels`` 50 and ``cps`` 20: at 20 calls a second
of ~3 s each, about 60 channels would be wanted, so both limits bind. A separate AMI session
samples ``CoreShowChannels`` every 20 ms (the most channels alive at once) and takes every
``Newchannel`` event's Timestamp (the most originates in any 1-second window, on Asterisk's
clock). Targets: never above either limit, with one engine process and with three.

The rate is granted in Redis at claim time; Asterisk creates the channel a little later. The
engine holds each rate window a margin longer to absorb that delay (the measured
grant-to-switch delay, ``dialer.engine.pacing``; ``DIALER_RATE_MARGIN_MS`` fixes it), so the
claim -> Newchannel delay (p99, max) is shown next to the originates per second.

Also shown: the most calls alive by the events (between a call's Newchannel and its Hangup
Timestamps), and for each CoreShowChannels sample above the limit, that event count at the
sample's time: a channel whose Hangup was already sent can still be listed for a moment
while the engine, having seen the Hangup, already refilled its slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialer.domain.statuses import CampaignStatus
from dialer.store.redis_store import RedisStore
from loadtest.bench.common import (
    Figures,
    ami_settings,
    emit,
    hold_numbers,
    max_in_window,
    ms,
    namespace,
    percentile,
    rate,
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


@dataclass(frozen=True, slots=True)
class Params:
    contacts: int = 600  # per engine count: 30 s of dialing at 20 CPS
    max_channels: int = 50
    cps: float = 20.0
    hold_s: int = 3
    engine_counts: tuple[int, ...] = (1, 3)
    sample_every: float = 0.02  # the gap between samples must stay <= 50 ms

    @classmethod
    def quick(cls) -> Params:
        return cls(contacts=160)


@dataclass(frozen=True, slots=True)
class PacingRun:
    engines: int
    calls: int
    failed: int
    completed: bool
    max_channels: int
    max_live_by_events: int
    over_limit_samples: int
    live_by_events_when_over: int  # the most, by events, at the samples above the limit
    max_per_second: int
    lag_p99_ms: float | None  # claim (engine) -> Newchannel (Asterisk)
    lag_max_ms: float | None
    cps: float  # achieved, on Asterisk's clock
    samples: int
    max_gap_ms: float


async def pacing_run(info: StackInfo, params: Params, engines: int) -> PacingRun:
    ns = namespace("pacing")
    store = RedisStore.from_url(info.redis_url, namespace=ns)
    try:
        settings = campaign_settings(info, max_channels=params.max_channels, cps=params.cps)
        phones = hold_numbers(params.contacts, params.hold_s)
        control, cid = await new_campaign(store, settings, phones)
        within = params.contacts / params.cps * 2 + params.hold_s + 30
        await wait_quiet(info, within=SETTLE_S)  # not against the previous run's tail
        async with (
            watch(ami_settings(info), "dlr-", sample_every=params.sample_every) as seen,
            engine_processes(info, ns, engines),
        ):
            await control.start(cid)
            status = await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=within)
        done = await outcomes(store, cid, hold_s=params.hold_s)
    finally:
        await store.aclose()
    created = list(seen.created.values())
    over = [(a, b) for a, b, n in seen.samples if n > params.max_channels]
    lags = [t - done.claimed[c] for c, t in seen.created.items() if c in done.claimed]
    return PacingRun(
        engines=engines,
        calls=done.records,
        failed=params.contacts - done.clean,
        completed=status is CampaignStatus.COMPLETED,
        max_channels=seen.max_channels,
        max_live_by_events=seen.max_live_by_events(),
        over_limit_samples=len(over),
        live_by_events_when_over=max((seen.max_live_by_events(a, b) for a, b in over), default=0),
        max_per_second=max_in_window(created, 1.0),
        lag_p99_ms=ms(percentile(lags, 99)),
        lag_max_ms=ms(max(lags, default=0.0)),
        cps=rate(created),
        samples=len(seen.samples),
        max_gap_ms=round(seen.max_sample_gap() * 1000, 1),
    )


async def run(info: StackInfo, params: Params, *, quick: bool = False) -> Figures:
    print(
        f"pacing: max_channels {params.max_channels}, cps {params.cps:g}, "
        f"{params.hold_s}-s HOLD calls, {params.contacts} contacts per run",
        flush=True,
    )
    runs = []
    for engines in params.engine_counts:
        runs.append(await pacing_run(info, params, engines))
        r = runs[-1]
        print(
            f"  {engines} engine(s): {r.calls} calls, at most {r.max_channels} channels "
            f"listed, {r.max_per_second} originates in 1 s",
            flush=True,
        )
    limit_ch, limit_cps = params.max_channels, params.cps
    table(
        "what Asterisk saw (limits: channels "
        f"{limit_ch}, originates per 1-s window {limit_cps:g})",
        ["engines", "max channels", "verdict", "by events", "max per 1 s", "verdict",
         "lag p99 ms", "lag max ms", "CPS", "calls", "failed", "samples", "max gap ms"],
        [
            [r.engines, r.max_channels, verdict(r.max_channels, limit_ch, at_most=True),
             r.max_live_by_events, r.max_per_second,
             verdict(r.max_per_second, limit_cps, at_most=True), r.lag_p99_ms, r.lag_max_ms,
             r.cps, r.calls, r.failed, r.samples, r.max_gap_ms]
            for r in runs
        ],
    )  # fmt: skip
    for r in runs:
        if r.over_limit_samples:
            why = (
                "a channel already hung up was still listed"
                if r.live_by_events_when_over <= limit_ch
                else "more calls were really alive than the limit"
            )
            print(
                f"  {r.engines} engine(s): {r.over_limit_samples} of {r.samples} samples above "
                f"{limit_ch}; calls alive by the events at those moments: at most "
                f"{r.live_by_events_when_over} ({why})"
            )
    return emit(
        "pacing",
        quick,
        {
            "max_channels_limit": limit_ch,
            "cps_limit": limit_cps,
            "hold_s": params.hold_s,
            "runs": [
                {
                    "engines": r.engines,
                    "max_channels": r.max_channels,
                    "max_live_by_events": r.max_live_by_events,
                    "over_limit_samples": r.over_limit_samples,
                    "live_by_events_when_over": r.live_by_events_when_over,
                    "max_per_second": r.max_per_second,
                    "claim_to_channel_ms": {"p99": r.lag_p99_ms, "max": r.lag_max_ms},
                    "cps": round(r.cps, 2),
                    "calls": r.calls,
                    "failed": r.failed,
                    "completed": r.completed,
                    "samples": r.samples,
                    "max_sample_gap_ms": r.max_gap_ms,
                }
                for r in runs
            ],
            "channels_met": all(r.max_channels <= limit_ch for r in runs),
            "channels_by_events_met": all(r.max_live_by_events <= limit_ch for r in runs),
            "cps_met": all(r.max_per_second <= limit_cps for r in runs),
        },
    )
