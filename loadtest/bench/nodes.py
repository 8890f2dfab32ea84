"""Nodes: both switches at once, raw loops against engines, per node.

The stack runs Asterisk and FreeSWITCH side by side on the same two cores (two PBX nodes
behind one carrier, SIPp). Each round:

1. both raw loops at once: the AMI loop on Asterisk at ``asterisk_cps`` and the ESL loop on
   FreeSWITCH at ``freeswitch_cps`` (``rawami`` / ``rawesl``, the throughput benchmark's);
2. ONE engine process on both at once (:mod:`loadtest.bench.oneengine`): the two switches are
   two nodes of one trunk group, each capped at its raw loop's rate, and one campaign at the
   sum of the two rates is spread over them by claim.lua's node block.

Both switches are restarted before each phase. Every engine run is watched by its switch's own
events (Newchannel / CHANNEL_CREATE timestamps): the rate and the most channels created in any
second on each switch's clock. Printed per node: raw and engine CPS, engine / raw, overshoot
(channels beyond ``ceil(cps)`` in the busiest second), failures; and the engine's CPU per call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from loadtest.bench import fswatch, rawesl
from loadtest.bench.common import (
    Figures,
    ami_settings,
    emit,
    fresh_asterisk,
    ms,
    table,
    wait_quiet,
)
from loadtest.bench.oneengine import OneEngine, one_engine
from loadtest.bench.rawami import StepResult, raw_step
from loadtest.bench.watch import wait_no_channels
from ops.localstack.stack import StackInfo

SETTLE_S = 60.0
NODES = ("asterisk", "freeswitch")


@dataclass(frozen=True, slots=True)
class Params:
    asterisk_cps: float = 100.0
    freeswitch_cps: float = 50.0
    duration_s: float = 15.0
    hold_s: int = 1
    rounds: int = 2

    @classmethod
    def quick(cls) -> Params:
        return cls(duration_s=6.0, rounds=1)

    def rate(self, node: str) -> float:
        return self.asterisk_cps if node == "asterisk" else self.freeswitch_cps


async def fresh_nodes(info: StackInfo) -> StackInfo:
    info = await fresh_asterisk(info)
    return await fswatch.fresh_freeswitch(info)


async def raw_on(info: StackInfo, params: Params) -> dict[str, StepResult]:
    """Both raw loops at once."""
    for node in NODES:
        await wait_quiet(info, within=SETTLE_S, pbx=node)
    ast, fs = await asyncio.gather(
        raw_step(info, params.asterisk_cps, params.duration_s, hold_s=params.hold_s),
        rawesl.raw_step(info, params.freeswitch_cps, params.duration_s, hold_s=params.hold_s),
    )
    await asyncio.gather(
        wait_no_channels(ami_settings(info), "raw-", within=SETTLE_S),
        fswatch.wait_no_channels(info, "raw-", within=SETTLE_S),
    )
    return {"asterisk": ast, "freeswitch": fs}


async def run(info: StackInfo, params: Params, *, quick: bool = False) -> Figures:
    print(
        f"nodes: Asterisk at {params.asterisk_cps:g} CPS and FreeSWITCH at "
        f"{params.freeswitch_cps:g} CPS at once, raw loops vs one engine on both nodes, "
        f"{params.rounds} rounds of {params.duration_s:g} s",
        flush=True,
    )
    rounds: list[tuple[dict[str, StepResult], OneEngine]] = []
    for i in range(params.rounds):
        info = await fresh_nodes(info)
        raw = await raw_on(info, params)
        info = await fresh_nodes(info)
        engine = await one_engine(
            info, {n: params.rate(n) for n in NODES}, params.duration_s, hold_s=params.hold_s
        )
        for node in NODES:
            r, e = raw[node], engine.nodes[node]
            print(
                f"  round {i + 1} {node}: raw {r.sent_cps:.1f} CPS (created {r.created_cps:.1f}/s,"
                f" failed {r.failed}), engine {e.cps:.1f} CPS (created {e.switch_cps:.1f}/s,"
                f" {e.calls} calls, most in 1 s {e.switch_max_per_second})",
                flush=True,
            )
        print(
            f"  round {i + 1} engine: {engine.records}/{engine.calls} records, failed "
            f"{engine.failed}, {engine.cps:.1f} CPS, {engine.engine_us_per_call:.0f} us CPU per "
            f"call, load {engine.load:.1f}",
            flush=True,
        )
        rounds.append((raw, engine))
    return _report(rounds, params, quick)


def _report(
    rounds: list[tuple[dict[str, StepResult], OneEngine]], params: Params, quick: bool
) -> Figures:
    rows: list[list[object]] = []
    per_node: dict[str, list[Figures]] = {node: [] for node in NODES}
    engine: list[Figures] = []
    for i, (raw, one) in enumerate(rounds, 1):
        for node in NODES:
            r, e = raw[node], one.nodes[node]
            ratio = e.cps / r.sent_cps if r.sent_cps else None
            sratio = e.switch_cps / r.created_cps if r.created_cps else None
            rows.append([
                i, node, r.sent_cps, r.created_cps, r.failed, r.max_per_second, e.calls, e.cps,
                e.switch_cps, e.switch_failed, e.switch_max_per_second, ratio, sratio,
                e.overshoot, ms(e.switch_lag_p99),
            ])  # fmt: skip
            per_node[node].append({
                "raw_cps": round(r.sent_cps, 1), "raw_created_cps": round(r.created_cps, 1),
                "raw_failed": r.failed, "raw_max_per_second": r.max_per_second,
                "engine_calls": e.calls, "engine_cps": round(e.cps, 1),
                "engine_created_cps": round(e.switch_cps, 1), "switch_failed": e.switch_failed,
                "engine_max_per_second": e.switch_max_per_second,
                "ratio": round(ratio, 3) if ratio is not None else None,
                "switch_ratio": round(sratio, 3) if sratio is not None else None,
                "overshoot": e.overshoot, "lag_p99_ms": ms(e.switch_lag_p99),
            })  # fmt: skip
        engine.append({
            "calls": one.calls, "records": one.records, "failed": one.failed,
            "completed": one.completed, "cps": round(one.cps, 1),
            "engine_us_per_call": round(one.engine_us_per_call), "load": one.load,
        })  # fmt: skip
    table(
        "both nodes at once: raw loops, then one engine on both (one campaign, a trunk group)",
        ["round", "node", "raw CPS", "raw created/s", "raw failed", "raw most/s", "engine calls",
         "engine CPS", "engine created/s", "switch failed", "engine most/s", "engine/raw",
         "/raw (switch)", "overshoot", "lag p99 ms"],
        rows,
    )  # fmt: skip
    return emit(
        "nodes",
        quick,
        {
            "asterisk_cps": params.asterisk_cps,
            "freeswitch_cps": params.freeswitch_cps,
            "duration_s": params.duration_s,
            "engines": "one on both nodes",
            "engine": engine,
            **per_node,
        },
    )
