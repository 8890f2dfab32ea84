"""``python -m loadtest.bench <name|all> [--quick] [--pbx freeswitch]``: run benchmarks on a stack
of their own (with FreeSWITCH for ``--pbx freeswitch``: throughput and cost).

The stack (``ops.localstack``, name ``bench``) is brought up first and down at the end, even
after a failure; ``down`` checks that no process of it is left.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from loadtest.bench import (
    cost,
    drain,
    fswatch,
    luacost,
    margin,
    nodes,
    pacing,
    refill,
    retrylate,
    scale,
    throughput,
)
from loadtest.bench.common import (
    BENCH_RTP_PORTS,
    PBXS,
    Figures,
    bench_stack,
    fresh_asterisk,
    log_dir,
)
from ops.localstack.stack import StackInfo

BENCHMARKS = ("throughput", "cost", "pacing", "drain", "refill", "scale", "retrylate")
FREESWITCH_BENCHMARKS = ("throughput", "cost")  # the others run on Asterisk only
# run by name only, not by "all" (on either switch): comparisons of several runs each
BY_NAME = ("margin", "luacost", "nodes")
FS_BENCH_ASTERISK_RTP_PORTS = 400
NODES_ASTERISK_RTP_PORTS = 1000  # nodes: Asterisk works too (~300 channels at 100 CPS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description="Benchmarks against the local real stack (needs root, like the stack).",
    )
    parser.add_argument("name", choices=(*BENCHMARKS, *BY_NAME, "all"), help="benchmark to run")
    parser.add_argument("--quick", action="store_true", help="short steps and small counts")
    parser.add_argument("--stack-name", default="bench", help="local stack name (default bench)")
    parser.add_argument(
        "--pbx",
        choices=PBXS,
        default="asterisk",
        help="the switch: freeswitch runs throughput and cost (all: both) on FreeSWITCH",
    )
    parser.add_argument(
        "--rate", type=float, help="cost, margin: dial at this CPS instead of searching for it"
    )
    parser.add_argument("--rounds", type=int, help="margin: rounds of raw and 3 margins")
    parser.add_argument("--fs-rate", type=float, help="nodes: FreeSWITCH CPS (--rate: Asterisk)")
    parser.add_argument("--base", help="luacost: git revision of the scripts compared (main)")
    parser.add_argument("--batch", type=int, help="luacost: calls per round trip (15)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="cost: run the engine under cProfile, writing PROFILE-0.pstats, and show its top",
    )
    return parser


async def run_one(
    name: str, info: StackInfo, quick: bool, found: dict[str, float], args: argparse.Namespace
) -> Figures:
    pbx = args.pbx
    if name == "throughput":
        p = throughput.Params.quick() if quick else throughput.Params()
        if pbx == "freeswitch":
            p = throughput.Params.freeswitch(quick=quick)
        result = await throughput.run(info, p, quick=quick, pbx=pbx)
        for key in ("capacity_cps", "engine_clean_cps"):  # the engine's own clean rate wins
            value = result.get(key)
            if isinstance(value, int | float) and value > 0:
                found["rate"] = float(value)
        return result
    if name == "cost":
        c = cost.Params.quick() if quick else cost.Params()
        rate = args.rate or found.get("rate")
        if pbx == "freeswitch":
            c = cost.Params.freeswitch(quick=quick)
        return await cost.run(info, c, rate=rate, quick=quick, profile=args.profile, pbx=pbx)
    if name == "margin":
        m = margin.Params.quick() if quick else margin.Params()
        if args.rounds:
            m = replace(m, rounds=args.rounds)
        rate = args.rate or found.get("rate") or margin.default_rate(pbx)
        return await margin.run(info, m, rate=rate, quick=quick, pbx=pbx)
    if name == "luacost":
        lc = luacost.Params.quick() if quick else luacost.Params()
        if args.base:
            lc = replace(lc, base=args.base)
        if args.batch:
            lc = replace(lc, batch=args.batch)
        return await luacost.run(info, lc, quick=quick)
    if name == "nodes":
        n = nodes.Params.quick() if quick else nodes.Params()
        n = replace(
            n,
            asterisk_cps=args.rate or n.asterisk_cps,
            freeswitch_cps=args.fs_rate or n.freeswitch_cps,
            rounds=args.rounds or n.rounds,
        )
        return await nodes.run(info, n, quick=quick)
    if name == "pacing":
        return await pacing.run(
            info, pacing.Params.quick() if quick else pacing.Params(), quick=quick
        )
    if name == "drain":
        return await drain.run(info, drain.Params.quick() if quick else drain.Params(), quick=quick)
    if name == "refill":
        return await refill.run(
            info, refill.Params.quick() if quick else refill.Params(), quick=quick
        )
    if name == "retrylate":
        p = retrylate.Params.quick() if quick else retrylate.Params()
        return await retrylate.run(info, p, quick=quick)
    if name == "scale":
        return await scale.run(info, scale.Params.quick() if quick else scale.Params(), quick=quick)
    raise ValueError(f"unknown benchmark {name!r}")


async def run_all(names: Sequence[str], info: StackInfo, args: argparse.Namespace) -> int:
    found: dict[str, float] = {}
    failed = []
    for name in names:
        started = time.monotonic()
        print(f"\n=== {name} ===", flush=True)
        try:
            await run_one(name, info, args.quick, found, args)
        except Exception:
            failed.append(name)
            traceback.print_exc()
        print(f"=== {name}: {time.monotonic() - started:.0f} s ===", flush=True)
        if name == "throughput" and name != names[-1]:
            # its search overloads the switch on purpose (why that matters: fresh_asterisk)
            if args.pbx == "freeswitch":
                info = await fswatch.fresh_freeswitch(info)
            else:
                info = await fresh_asterisk(info)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    fs = args.pbx == "freeswitch"
    both = args.name == "nodes"  # Asterisk and FreeSWITCH at once
    every = FREESWITCH_BENCHMARKS if fs else BENCHMARKS
    names = every if args.name == "all" else (args.name,)
    if args.name not in (*every, *BY_NAME, "all"):
        build_parser().error(f"{args.name} runs on Asterisk only (FreeSWITCH: {', '.join(every)})")
    started = time.monotonic()
    # on FreeSWITCH, Asterisk only idles: its default range, and fewer ports taken from the
    # 12,000 that every stack on the machine shares
    rtp_ports = FS_BENCH_ASTERISK_RTP_PORTS if fs else BENCH_RTP_PORTS
    if both:
        rtp_ports = NODES_ASTERISK_RTP_PORTS
    with bench_stack(args.stack_name, rtp_ports, with_freeswitch=fs or both) as info:
        print(f"stack {info.name}: Asterisk {info.asterisk_version}, AMI {info.ami_port}")
        if fs or both:
            caps = asyncio.run(fswatch.raise_caps(info))
            print(
                f"FreeSWITCH pid {info.freeswitch_pid}, ESL {info.esl_port}, RTP ports "
                f"{info.freeswitch_rtp_start}-{info.freeswitch_rtp_end}, caps raised: {caps}"
            )
        for old in log_dir(info).glob("*.log"):  # engine logs of a previous run
            old.unlink()
        code = asyncio.run(run_all(names, info, args))
    print(f"total {time.monotonic() - started:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
