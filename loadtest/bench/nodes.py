"""Nodes: both switches at once, raw loops against engines, per node.

The stack runs Asterisk and FreeSWITCH side by side on the same two cores (two PBX nodes
behind one carrier, SIPp). Each round:

1. both raw loops at once: the AMI loop on Asterisk at ``asterisk_cps`` and the ESL loop on
   FreeSWITCH at ``freeswitch_cps`` (``rawami`` / ``rawesl``, the throughput benchmark's);
2. the engines on both at once, at the same rates: today one engine process per node (an
   engine drives exactly one switch), both on one Redis, one campaign each, each in a namespace
   of its own (an engine reconciles every running campaign of its namespace against its own
   switch, so two engines on different switches must not share one yet). :func:`engines_on`
   is the one place to change when one engine drives several nodes: one process, one
   namespace, one campaign per node (or one campaign over a trunk group).

Both switches are restarted before each phase. Every engine run is watched by its switch's own
events (Newchannel / CHANNEL_CREATE timestamps): the rate and the most channels created in any
second on each switch's clock. Printed per node: raw and engine CPS, engine / raw, overshoot
(channels beyond ``ceil(cps)`` in the busiest second), failures.
"""

from __future__ import annotations

import asyncio
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
    wait_quiet,
)
from loadtest.bench.enginerun import EngineRun, engine_run
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


async def engines_on(info: StackInfo, params: Params) -> dict[str, EngineRun]:
    """The engines on both nodes at once: one engine process per node, for now."""
    runs = await asyncio.gather(
        *(
            engine_run(
                info,
                params.rate(node),
                params.duration_s,
                hold_s=params.hold_s,
                pbx=node,
                watch=True,
            )  # fmt: skip
            for node in NODES
        )
    )
    return dict(zip(NODES, runs, strict=True))


async def run(info: StackInfo, params: Params, *, quick: bool = False) -> Figures:
    print(
        f"nodes: Asterisk at {params.asterisk_cps:g} CPS and FreeSWITCH at "
        f"{params.freeswitch_cps:g} CPS at once, raw loops vs one engine per node, "
        f"{params.rounds} rounds of {params.duration_s:g} s",
        flush=True,
    )
    rounds: list[tuple[dict[str, StepResult], dict[str, EngineRun]]] = []
    for i in range(params.rounds):
        info = await fresh_nodes(info)
        raw = await raw_on(info, params)
        info = await fresh_nodes(info)
        engines = await engines_on(info, params)
        for node in NODES:
            r, e = raw[node], engines[node]
            print(
                f"  round {i + 1} {node}: raw {r.sent_cps:.1f} CPS (created {r.created_cps:.1f}/s,"
                f" failed {r.failed}), engine {e.cps:.1f} CPS (created {e.switch_cps or 0:.1f}/s,"
                f" failed {e.failed + e.switch_failed}, most in 1 s {e.switch_max_per_second})",
                flush=True,
            )
        rounds.append((raw, engines))
    return _report(rounds, params, quick)


def _report(
    rounds: list[tuple[dict[str, StepResult], dict[str, EngineRun]]], params: Params, quick: bool
) -> Figures:
    rows: list[list[object]] = []
    per_node: dict[str, list[Figures]] = {node: [] for node in NODES}
    for i, (raw, engines) in enumerate(rounds, 1):
        for node in NODES:
            r, e = raw[node], engines[node]
            limit = math.ceil(params.rate(node))
            ratio = e.cps / r.sent_cps if r.sent_cps else None
            sratio = (e.switch_cps or 0) / r.created_cps if r.created_cps else None
            overshoot = max(0, (e.switch_max_per_second or 0) - limit)
            failed = e.failed + e.switch_failed
            rows.append([
                i, node, r.sent_cps, r.created_cps, r.failed, r.max_per_second, e.cps,
                e.switch_cps, failed, e.switch_max_per_second, ratio, sratio, overshoot,
                ms(e.switch_lag_p99),
            ])  # fmt: skip
            per_node[node].append({
                "raw_cps": round(r.sent_cps, 1), "raw_created_cps": round(r.created_cps, 1),
                "raw_failed": r.failed, "raw_max_per_second": r.max_per_second,
                "engine_cps": round(e.cps, 1),
                "engine_created_cps": round(e.switch_cps or 0, 1), "engine_failed": failed,
                "engine_max_per_second": e.switch_max_per_second,
                "ratio": round(ratio, 3) if ratio is not None else None,
                "switch_ratio": round(sratio, 3) if sratio is not None else None,
                "overshoot": overshoot, "lag_p99_ms": ms(e.switch_lag_p99),
            })  # fmt: skip
    table(
        "both nodes at once: raw loops, then one engine per node",
        ["round", "node", "raw CPS", "raw created/s", "raw failed", "raw most/s", "engine CPS",
         "engine created/s", "engine failed", "engine most/s", "engine/raw",
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
            "engines": "one per node",
            **per_node,
        },
    )
