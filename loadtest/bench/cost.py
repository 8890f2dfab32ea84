"""Engine cost: CPU time of the engine process per call, against the switch's, in one run.

One engine process (``python -m dialer engine``) dials HOLD calls at the highest clean rate
(the engine's, from the throughput benchmark; or found here: short raw steps, then the engine
steps down from the raw capacity until a run is clean). CPU time (utime + stime
from ``/proc/<pid>/stat``) of the engine, Asterisk, SIPp and Redis is read over the steady
window (calls start and end at the same rate) and divided by the calls claimed in it: the
cost of one call's whole life (claim, DNC check, originate, its AMI events, result, usage).
Target: engine / Asterisk (or FreeSWITCH, ``pbx``) <= 0.10.

Events per call are counted in a second, small campaign by a separate AMI session of the same
(filtered) user, so that this session's own cost stays out of the CPU figures.
"""

from __future__ import annotations

import pstats
from dataclasses import dataclass
from pathlib import Path

from dialer.pbx.freeswitch.correlate import FOLLOWED_EVENTS
from loadtest.bench import fswatch, throughput
from loadtest.bench.common import Figures, ami_settings, emit, table, verdict
from loadtest.bench.enginerun import EngineRun, engine_clean_rate, engine_run
from loadtest.bench.watch import watch
from ops.localstack.stack import StackInfo

TARGET_RATIO = 0.10
REDIS_TARGET_US = 50.0  # Redis CPU per call (issue 17)


@dataclass(frozen=True, slots=True)
class Params:
    duration_s: float = 15.0
    hold_s: int = 1
    events_calls: int = 200  # calls of the small campaign whose events are counted
    tries: int = 3  # runs stepping down (x0.85) while a run is not clean
    search: throughput.Params = throughput.Params.quick()  # when no rate is given

    @classmethod
    def quick(cls) -> Params:
        return cls(duration_s=6.0, events_calls=60)

    @classmethod
    def freeswitch(cls, *, quick: bool = False) -> Params:
        search = throughput.Params.freeswitch(quick=True)
        if quick:
            return cls(duration_s=6.0, events_calls=60, search=search)
        return cls(search=search)


async def events_per_call(
    info: StackInfo, calls: int, hold_s: int, pbx: str = "asterisk"
) -> tuple[float, dict[str, int]]:
    """Events the engine's session receives per call (and per event name, for all calls):
    on Asterisk a session of the dialer's filtered AMI user, on FreeSWITCH an ESL session
    subscribed to what the adapter subscribes to."""
    rate = min(50.0, float(calls))
    if pbx == "freeswitch":
        async with fswatch.watch(info, "dlr-", events=FOLLOWED_EVENTS) as fs_seen:
            run = await engine_run(info, rate, calls / rate, hold_s=hold_s, pbx=pbx)
        return fs_seen.events_all / max(1, run.outcomes.records), dict(fs_seen.by_event)
    async with watch(ami_settings(info, watch=False), "dlr-") as seen:
        run = await engine_run(info, rate, calls / rate, hold_s=hold_s)
    return seen.events_all / max(1, run.outcomes.records), dict(seen.by_event)


async def run(
    info: StackInfo,
    params: Params,
    *,
    rate: float | None = None,
    quick: bool = False,
    profile: Path | None = None,
    pbx: str = "asterisk",
) -> Figures:
    # with a rate given, as after the throughput benchmark, the switch is not restarted
    stack = throughput.Stack(info, fresh=rate is None and params.search.fresh, pbx=pbx)
    processes = ("engine", pbx, "sipp", "redis")
    if rate is None:
        print("cost: finding the highest clean rate with short raw steps ...", flush=True)
        rate, _ = await throughput.find_capacity(stack, params.search)
    if rate <= 0:
        raise RuntimeError("no clean rate found: the stack failed even the lowest step")
    print(f"cost: one engine from {rate:g} CPS, {params.duration_s:g} s per run", flush=True)
    runs = await engine_clean_rate(
        stack.ready,
        rate,
        params.duration_s,
        hold_s=params.hold_s,
        tries=params.tries,
        profile=profile,
        pbx=pbx,
    )
    main = runs[-1]
    rate = main.target_cps
    events, by_event = await events_per_call(
        stack.info, params.events_calls, params.hold_s, pbx=pbx
    )
    steady = {p: main.steady_us(p) for p in processes}
    whole = {p: main.per_call_us(p) for p in processes}
    ratio = steady["engine"] / steady[pbx] if steady[pbx] else None
    table(
        f"CPU per call at {rate:g} CPS ({main.steady_calls} calls in the steady window, "
        f"{main.outcomes.records} in the run)",
        ["process", "steady us/call", "whole run us/call", "CPU s (run)"],
        [[p, round(steady[p]), round(whole[p]), round(main.cpu_s[p], 2)] for p in processes],
    )
    per_call = {
        k: round(v / max(1, main.steady_calls), 2) for k, v in main.steady_redis_calls.items()
    }
    redis_usec = {
        k: round(v / max(1, main.steady_calls), 2) for k, v in main.steady_redis_usec.items()
    }
    table(
        f"engine / {pbx} and what the engine handles per call",
        ["figure", "value", "target", "verdict"],
        [
            [f"engine / {pbx} CPU", ratio, f"<= {TARGET_RATIO}",
             verdict(ratio, TARGET_RATIO, at_most=True)],
            [f"{'ESL' if pbx == 'freeswitch' else 'AMI'} events per call (the engine's session)",
             round(events, 2), None, None],
            ["Redis commands per call (all)", round(sum(per_call.values()), 1), None, None],
            ["Redis CPU us per call (/proc)", round(steady["redis"], 1), f"<= {REDIS_TARGET_US}",
             verdict(steady["redis"], REDIS_TARGET_US, at_most=True)],
            ["Redis script us per call (evalsha)", redis_usec.get("evalsha"), None, None],
            ["engine failures", main.failed, "0", verdict(main.failed, 0, at_most=True)],
        ],
    )  # fmt: skip
    print(f"  events by name ({params.events_calls} calls): {by_event}")
    print(f"  Redis commands per call (scripts' inner commands included): {per_call}")
    if profile is not None:
        _print_profile(profile)
    return emit(
        "cost",
        quick,
        {
            "pbx": pbx,
            "rate_cps": rate,
            "tried_cps": [r.target_cps for r in runs],
            "engine_cps": round(main.cps, 1),
            "calls": main.outcomes.records,
            "steady_calls": main.steady_calls,
            "steady_us_per_call": {k: round(v) for k, v in steady.items()},
            "whole_run_us_per_call": {k: round(v) for k, v in whole.items()},
            "ratio": round(ratio, 3) if ratio is not None else None,
            "target_ratio": TARGET_RATIO,
            "ratio_met": ratio is not None and ratio <= TARGET_RATIO,
            "events_per_call": round(events, 2),
            "events_by_name": by_event,
            "redis_commands_per_call": per_call,
            "redis_usec_per_call": redis_usec,
            "redis_cpu_us_per_call": round(steady["redis"], 1),
            "redis_target_us": REDIS_TARGET_US,
            "engine_failures": main.failed,
        },
    )


def _print_profile(prefix: Path) -> None:
    path = Path(f"{prefix}-0.pstats")
    if not path.is_file():
        print(f"  (no profile written at {path})")
        return
    print(f"\nengine profile (cProfile, {path}), top 25 by internal time:")
    pstats.Stats(str(path)).sort_stats("tottime").print_stats(25)


__all__ = ["EngineRun", "Params", "run"]
