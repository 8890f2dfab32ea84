"""Throughput: the highest clean CPS of the raw AMI loop, then the engine at that rate.

1. The raw loop (:mod:`loadtest.bench.rawami`) steps the rate up; a step is clean when every
   call was answered and ended normally *and* Asterisk created the channels at >= 95 % of the
   asked rate (past its knee it queues originates: no failure, but the rate collapses). After
   the first unclean step one step halfway between is tried. The highest clean rate is the
   stack's capacity.
2. One engine process dials a campaign at ``cps = capacity`` (channel limit far above what
   the rate needs). Engine CPS / raw CPS should be >= 0.95, with no failure.
3. If that run is not clean (the engine's own CPU added to Asterisk's can overload a small
   machine), the engine steps down (x0.85, at most 3 runs) to its own highest clean rate,
   which the cost benchmark then uses.

On FreeSWITCH (``pbx="freeswitch"``) the raw loop is :mod:`loadtest.bench.rawesl`, the
engine's runs are watched by FreeSWITCH's own events (:mod:`loadtest.bench.fswatch`: its
failures count too, and rates are also compared on its clock), and a step or run whose channels
came more than ``max_lag_s`` (p99) after their originates is not clean.

Every raw step and every engine run starts on a freshly started Asterisk (``fresh``): an
overloaded step leaves Asterisk slower for minutes (its CPU per call up to 40 % higher, now and
then a channel created 50-90 ms late), so whatever ran after the first unclean step (the step
halfway, the engine runs) was measured against a worse PBX than the steps before it, and
the raw loop and the engine were not compared on the same stack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loadtest.bench import fswatch, rawesl
from loadtest.bench.common import (
    Figures,
    ami_settings,
    emit,
    fresh_asterisk,
    ms,
    table,
    verdict,
    wait_quiet,
)
from loadtest.bench.enginerun import STEP_DOWN, EngineRun, engine_clean_rate, engine_run
from loadtest.bench.rawami import StepResult, raw_step
from loadtest.bench.watch import wait_no_channels
from ops.localstack.stack import StackInfo

TARGET_RATIO = 0.95
SETTLE_S = 60.0  # after a step, the switch must be back to no channel within this
SWITCH = {"asterisk": "Asterisk", "freeswitch": "FreeSWITCH"}
# Past its knee FreeSWITCH accepts every bgapi and creates the channels later and later (2-3 s
# p99 at 100-125 CPS in a step it still "kept up" with, creating 104/s); such a step is not
# clean. Healthy steps here: 4-175 ms p99.
FS_MAX_LAG_S = 0.5


@dataclass(frozen=True, slots=True)
class Params:
    # steps of 100 past 200: an overloaded step leaves SIPp with calls that never end, so a
    # step far past the knee is not tried (Asterisk itself is restarted before each step)
    rates: tuple[float, ...] = (50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200)
    # as long as the engine's run: near the knee a longer run is likelier to tip over (900 CPS
    # was clean for 10 s and failed in 3 of 3 15-s steps), and both should carry the same load
    step_s: float = 15.0
    engine_s: float = 15.0
    hold_s: int = 1
    refine: bool = True  # one more step halfway between the last clean and the first unclean
    step_down: bool = True  # engine unclean at the raw capacity: find its own clean rate
    fresh: bool = True  # restart Asterisk before every raw step and every engine run
    # FreeSWITCH: a clean step or run also had its channels created within this many seconds
    # of their originates (p99); None for Asterisk (its figures were taken without it)
    max_lag_s: float | None = None

    @classmethod
    def quick(cls) -> Params:
        return cls(rates=(100, 200, 300, 400, 500, 600), step_s=5.0, engine_s=6.0)

    @classmethod
    def freeswitch(cls, *, quick: bool = False) -> Params:
        """Steps of 25-50 CPS: FreeSWITCH's knee on these 2 cores is 80-250 CPS (it spends
        ~7-9 ms of CPU per call on the contract's dialplan, 4-5x Asterisk's)."""
        rates = (50.0, 75.0, 100.0, 125.0, 150.0, 175.0, 200.0, 250.0, 300.0, 400.0)
        if quick:
            return cls(rates=rates[::2], step_s=5.0, engine_s=6.0, max_lag_s=FS_MAX_LAG_S)
        return cls(rates=rates, max_lag_s=FS_MAX_LAG_S)


class Stack:
    """The stack's info, renewed by each restart of the switch (its pid changes)."""

    def __init__(self, info: StackInfo, fresh: bool, pbx: str = "asterisk") -> None:
        self.info = info
        self.fresh = fresh
        self.pbx = pbx

    async def ready(self) -> StackInfo:
        """The stack for the next measured run: the switch restarted if ``fresh``."""
        if self.fresh:
            if self.pbx == "freeswitch":
                self.info = await fswatch.fresh_freeswitch(self.info)
            else:
                self.info = await fresh_asterisk(self.info)
        return self.info


async def find_capacity(stack: Stack, params: Params) -> tuple[float, list[StepResult]]:
    """The highest clean rate of the raw loop (0 if none) and every step run."""
    steps: list[StepResult] = []
    best, failed_at = 0.0, None
    for target in params.rates:
        step = await measure_step(await stack.ready(), target, params, stack.pbx)
        steps.append(step)
        if not step.ok:
            failed_at = target
            break
        best = target
    if failed_at is None and best > 0:
        print(f"  (clean up to the last step: the stack's limit is {best:g} CPS or more)")
    if params.refine and failed_at is not None and best > 0:
        middle = round((best + failed_at) / 2 / 10) * 10
        if best < middle < failed_at:
            step = await measure_step(await stack.ready(), middle, params, stack.pbx)
            steps.append(step)
            if step.ok:
                best = middle
    return best, steps


async def measure_step(info: StackInfo, target: float, params: Params, pbx: str) -> StepResult:
    await wait_quiet(info, within=SETTLE_S, pbx=pbx)
    if pbx == "freeswitch":
        step = await rawesl.raw_step(
            info, target, params.step_s, hold_s=params.hold_s, max_lag=params.max_lag_s
        )
        gone = await fswatch.wait_no_channels(info, "raw-", within=SETTLE_S)
    else:
        step = await raw_step(info, target, params.step_s, hold_s=params.hold_s)
        gone = await wait_no_channels(ami_settings(info), "raw-", within=SETTLE_S)
    print(
        f"  raw {target:g} CPS: {step.clean}/{step.calls} clean, {SWITCH[pbx]} created "
        f"{step.created_cps:.1f}/s, failures {step.failures or 'none'}",
        flush=True,
    )
    if not gone:
        print(
            f"  ({SWITCH[pbx]} still had channels {SETTLE_S:g} s after the step: the runs "
            "after it share the stack with them)",
            flush=True,
        )
    return step


def _switch_us(step: StepResult) -> int:
    """The switch's CPU microseconds per call in a raw step."""
    seconds = step.cpu_s.get("asterisk", step.cpu_s.get("freeswitch", 0.0))
    return round(seconds / step.calls * 1e6)


def step_figures(step: StepResult) -> Figures:
    switch = "freeswitch" if "freeswitch" in step.cpu_s else "asterisk"
    return {
        "target_cps": step.target_cps,
        "calls": step.calls,
        "sent_cps": round(step.sent_cps, 1),
        "created_cps": round(step.created_cps, 1),
        "failed": step.failed,
        "failures": step.failures,
        "lag_p99_ms": ms(step.lag_p99),
        f"{switch}_us_per_call": _switch_us(step),
        "loop_us_per_call": round(step.cpu_s["loop"] / step.calls * 1e6),
        "clean": step.ok,
        **({"max_per_second": step.max_per_second} if step.max_per_second is not None else {}),
    }


async def run(
    info: StackInfo, params: Params, *, quick: bool = False, pbx: str = "asterisk"
) -> Figures:
    loop = "ESL" if pbx == "freeswitch" else "AMI"
    print(
        f"throughput on {SWITCH[pbx]}: raw {loop} loop, {params.hold_s}-s HOLD calls, "
        f"{params.step_s:g}-s steps"
    )
    stack = Stack(info, params.fresh, pbx)
    watch = pbx == "freeswitch"  # FreeSWITCH's own events judge the engine's calls too
    capacity, steps = await find_capacity(stack, params)
    engine: EngineRun | None = None
    lower: list[EngineRun] = []
    if capacity > 0:
        print(f"  engine at {capacity:g} CPS for {params.engine_s:g} s ...", flush=True)
        engine = await engine_run(
            await stack.ready(), capacity, params.engine_s, hold_s=params.hold_s, pbx=pbx,
            watch=watch, max_lag=params.max_lag_s,
        )  # fmt: skip
        if engine.switch_cps is not None:
            print(
                f"  engine at {capacity:g} CPS: {engine.outcomes.clean}/{engine.calls} clean, "
                f"{engine.cps:.1f} CPS, FreeSWITCH created {engine.switch_cps:.1f}/s, lag p99 "
                f"{(engine.switch_lag_p99 or 0) * 1000:.0f} ms, its failures "
                f"{engine.switch_failures or 'none'}",
                flush=True,
            )
        if not engine.ok and params.step_down:
            print("  engine unclean at the raw capacity; stepping down ...", flush=True)
            start = max(10.0, round(capacity * STEP_DOWN / 10) * 10)
            lower = await engine_clean_rate(
                stack.ready, start, params.engine_s, hold_s=params.hold_s, pbx=pbx, watch=watch,
                max_lag=params.max_lag_s,
            )  # fmt: skip
    _print_steps(steps, loop)
    best = next((s for s in steps if s.target_cps == capacity and s.ok), None)
    raw_cps = best.sent_cps if best else 0.0
    ratio = engine.cps / raw_cps if engine and raw_cps else None
    failures = engine.failed + engine.switch_failed if engine else None
    rows: list[list[object]] = [
        ["CPS", raw_cps, engine.cps if engine else None, ratio, f">= {TARGET_RATIO}",
         verdict(ratio, TARGET_RATIO, at_most=False)],
        ["failures", best.failed if best else None, failures, None, "0",
         verdict(failures, 0, at_most=True)],
        ["calls", best.calls if best else None, engine.calls if engine else None, None,
         None, None],
    ]  # fmt: skip
    switch_ratio = None
    if engine and engine.switch_cps is not None:
        # the same on FreeSWITCH's clock: channels created per second, engine / raw loop
        switch_ratio = engine.switch_cps / best.created_cps if best else None
        rows.insert(1, [
            "created/s (switch clock)", best.created_cps if best else None, engine.switch_cps,
            switch_ratio, f">= {TARGET_RATIO}", verdict(switch_ratio, TARGET_RATIO, at_most=False),
        ])  # fmt: skip
        rows.append([
            "lag p99 ms", ms(best.lag_p99) if best else None, ms(engine.switch_lag_p99), None,
            f"<= {ms(params.max_lag_s)}" if params.max_lag_s else None,
            None if params.max_lag_s is None
            else verdict(engine.switch_lag_p99, params.max_lag_s, at_most=True),
        ])  # fmt: skip
        rows.append([
            "max created in 1 s", best.max_per_second if best else None,
            engine.switch_max_per_second, None,
            f"<= {math.ceil(capacity)}",
            verdict(engine.switch_max_per_second, math.ceil(capacity), at_most=True),
        ])  # fmt: skip
    table(
        f"raw loop vs engine at {capacity:g} CPS",
        ["", "raw", "engine", "engine/raw", "target", "verdict"],
        rows,
    )
    if engine and engine.outcomes.failures:
        print(f"  engine failures at {capacity:g} CPS: {engine.outcomes.failures}")
    if engine and engine.switch_failures:
        print(f"  failures by {SWITCH[pbx]}'s events: {engine.switch_failures}")
    runs = ([engine] if engine else []) + lower
    clean = next((r for r in reversed(runs) if r.ok), None)
    if lower:
        table(
            "engine runs stepping down from the raw capacity",
            ["target", "calls", "engine CPS", "failed", "completed", "clean"],
            [[r.target_cps, r.calls, r.cps, r.failed + r.switch_failed, r.completed,
              "yes" if r.ok else "no"] for r in runs],
        )  # fmt: skip
    clean_cps = clean.target_cps if clean else None
    figures: Figures = {
        "pbx": pbx,
        "hold_s": params.hold_s,
        f"fresh_{pbx}": params.fresh,
        "raw_steps": [step_figures(s) for s in steps],
        "raw_cps": round(raw_cps, 1),
        "capacity_cps": capacity,
        "engine_cps": round(engine.cps, 1) if engine else None,
        "engine_calls": engine.calls if engine else None,
        "engine_failures": failures,
        "engine_failure_kinds": engine.outcomes.failures if engine else None,
        "engine_completed": engine.completed if engine else None,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "target_ratio": TARGET_RATIO,
        "ratio_met": ratio is not None and ratio >= TARGET_RATIO,
        "failures_met": failures == 0,
        "engine_runs": [_run_figures(r) for r in runs],
        "engine_clean_cps": clean_cps,
        "engine_clean_vs_raw": round(clean_cps / capacity, 3) if clean_cps else None,
    }
    if engine and engine.switch_cps is not None:
        figures.update(
            raw_created_cps=round(best.created_cps, 1) if best else None,
            engine_created_cps=round(engine.switch_cps, 1),
            switch_ratio=round(switch_ratio, 3) if switch_ratio is not None else None,
            switch_ratio_met=switch_ratio is not None and switch_ratio >= TARGET_RATIO,
            switch_failures=engine.switch_failures,
            max_lag_ms=ms(params.max_lag_s),
            engine_lag_p99_ms=ms(engine.switch_lag_p99),
            max_created_per_second=engine.switch_max_per_second,
            overshoot=max(0, (engine.switch_max_per_second or 0) - math.ceil(capacity)),
        )
    return emit("throughput", quick, figures)


def _run_figures(r: EngineRun) -> Figures:
    figures: Figures = {
        "target_cps": r.target_cps,
        "cps": round(r.cps, 1),
        "calls": r.calls,
        "failed": r.failed,
        "completed": r.completed,
    }
    if r.switch_cps is not None:
        figures.update(
            created_cps=round(r.switch_cps, 1),
            switch_failures=r.switch_failures,
            lag_p99_ms=ms(r.switch_lag_p99),
            max_created_per_second=r.switch_max_per_second,
            clean=r.ok,
        )
    return figures


def _print_steps(steps: list[StepResult], loop: str) -> None:
    table(
        f"raw {loop} loop steps",
        ["target", "calls", "sent/s", "created/s", "failed", "lag p99 ms", "pbx us/call", "clean"],
        [
            [
                s.target_cps,
                s.calls,
                s.sent_cps,
                s.created_cps,
                s.failed,
                ms(s.lag_p99),
                _switch_us(s),
                "yes" if s.ok else "no",
            ]
            for s in steps
        ],
    )
