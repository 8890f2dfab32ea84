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

Every raw step and every engine run starts on a freshly started Asterisk (``fresh``): an
overloaded step leaves Asterisk slower for minutes (its CPU per call up to 40 % higher, now and
then a channel created 50-90 ms late), so whatever ran after the first unclean step (the step
halfway, the engine runs) was measured against a worse PBX than the steps before it, and
the raw loop and the engine were not compared on the same stack.
"""

from __future__ import annotations

from dataclasses import dataclass

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
SETTLE_S = 60.0  # after a step, Asterisk must be back to no channel within this


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

    @classmethod
    def quick(cls) -> Params:
        return cls(rates=(100, 200, 300, 400, 500, 600), step_s=5.0, engine_s=6.0)


class Stack:
    """The stack's info, renewed by each restart of Asterisk (its pid changes)."""

    def __init__(self, info: StackInfo, fresh: bool) -> None:
        self.info = info
        self.fresh = fresh

    async def ready(self) -> StackInfo:
        """The stack for the next measured run: Asterisk restarted if ``fresh``."""
        if self.fresh:
            self.info = await fresh_asterisk(self.info)
        return self.info


async def find_capacity(stack: Stack, params: Params) -> tuple[float, list[StepResult]]:
    """The highest clean rate of the raw loop (0 if none) and every step run."""
    steps: list[StepResult] = []
    best, failed_at = 0.0, None
    for target in params.rates:
        step = await _step(await stack.ready(), target, params)
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
            step = await _step(await stack.ready(), middle, params)
            steps.append(step)
            if step.ok:
                best = middle
    return best, steps


async def _step(info: StackInfo, target: float, params: Params) -> StepResult:
    await wait_quiet(info, within=SETTLE_S)
    step = await raw_step(info, target, params.step_s, hold_s=params.hold_s)
    print(
        f"  raw {target:g} CPS: {step.clean}/{step.calls} clean, Asterisk created "
        f"{step.created_cps:.1f}/s, failures {step.failures or 'none'}",
        flush=True,
    )
    if not await wait_no_channels(ami_settings(info), "raw-", within=SETTLE_S):
        print(
            f"  (Asterisk still had channels {SETTLE_S:g} s after the step: the runs after it "
            "share the stack with them)",
            flush=True,
        )
    return step


def step_figures(step: StepResult) -> Figures:
    return {
        "target_cps": step.target_cps,
        "calls": step.calls,
        "sent_cps": round(step.sent_cps, 1),
        "created_cps": round(step.created_cps, 1),
        "failed": step.failed,
        "failures": step.failures,
        "lag_p99_ms": ms(step.lag_p99),
        "asterisk_us_per_call": round(step.cpu_s["asterisk"] / step.calls * 1e6),
        "loop_us_per_call": round(step.cpu_s["loop"] / step.calls * 1e6),
        "clean": step.ok,
    }


async def run(info: StackInfo, params: Params, *, quick: bool = False) -> Figures:
    print(f"throughput: raw AMI loop, {params.hold_s}-s HOLD calls, {params.step_s:g}-s steps")
    stack = Stack(info, params.fresh)
    capacity, steps = await find_capacity(stack, params)
    engine: EngineRun | None = None
    lower: list[EngineRun] = []
    if capacity > 0:
        print(f"  engine at {capacity:g} CPS for {params.engine_s:g} s ...", flush=True)
        engine = await engine_run(
            await stack.ready(), capacity, params.engine_s, hold_s=params.hold_s
        )
        if not engine.ok and params.step_down:
            print("  engine unclean at the raw capacity; stepping down ...", flush=True)
            start = max(10.0, round(capacity * STEP_DOWN / 10) * 10)
            lower = await engine_clean_rate(
                stack.ready, start, params.engine_s, hold_s=params.hold_s
            )
    _print_steps(steps)
    best = next((s for s in steps if s.target_cps == capacity and s.ok), None)
    raw_cps = best.sent_cps if best else 0.0
    ratio = engine.cps / raw_cps if engine and raw_cps else None
    failures = engine.failed if engine else None
    table(
        f"raw loop vs engine at {capacity:g} CPS",
        ["", "raw", "engine", "engine/raw", "target", "verdict"],
        [
            ["CPS", raw_cps, engine.cps if engine else None, ratio, f">= {TARGET_RATIO}",
             verdict(ratio, TARGET_RATIO, at_most=False)],
            ["failures", best.failed if best else None, failures, None, "0",
             verdict(failures, 0, at_most=True)],
            ["calls", best.calls if best else None, engine.calls if engine else None, None,
             None, None],
        ],
    )  # fmt: skip
    if engine and engine.outcomes.failures:
        print(f"  engine failures at {capacity:g} CPS: {engine.outcomes.failures}")
    runs = ([engine] if engine else []) + lower
    clean = next((r for r in reversed(runs) if r.ok), None)
    if lower:
        table(
            "engine runs stepping down from the raw capacity",
            ["target", "calls", "engine CPS", "failed", "completed", "clean"],
            [[r.target_cps, r.calls, r.cps, r.failed, r.completed, "yes" if r.ok else "no"]
             for r in runs],
        )  # fmt: skip
    clean_cps = clean.target_cps if clean else None
    return emit(
        "throughput",
        quick,
        {
            "hold_s": params.hold_s,
            "fresh_asterisk": params.fresh,
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
            "engine_runs": [
                {"target_cps": r.target_cps, "cps": round(r.cps, 1), "calls": r.calls,
                 "failed": r.failed, "completed": r.completed}
                for r in runs
            ],
            "engine_clean_cps": clean_cps,
            "engine_clean_vs_raw": round(clean_cps / capacity, 3) if clean_cps else None,
        },
    )  # fmt: skip


def _print_steps(steps: list[StepResult]) -> None:
    table(
        "raw AMI loop steps",
        ["target", "calls", "sent/s", "created/s", "failed", "lag p99 ms", "ast us/call", "clean"],
        [
            [
                s.target_cps,
                s.calls,
                s.sent_cps,
                s.created_cps,
                s.failed,
                ms(s.lag_p99),
                round(s.cpu_s["asterisk"] / s.calls * 1e6),
                "yes" if s.ok else "no",
            ]
            for s in steps
        ],
    )
