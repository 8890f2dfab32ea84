"""``python -m loadtest.bench <name|all> [--quick]``: run benchmarks on a stack of their own.

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
from pathlib import Path

from loadtest.bench import cost, drain, pacing, refill, retrylate, scale, throughput
from loadtest.bench.common import Figures, bench_stack, fresh_asterisk, log_dir
from ops.localstack.stack import StackInfo

BENCHMARKS = ("throughput", "cost", "pacing", "drain", "refill", "scale", "retrylate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description="Benchmarks against the local real stack (needs root, like the stack).",
    )
    parser.add_argument("name", choices=(*BENCHMARKS, "all"), help="benchmark to run")
    parser.add_argument("--quick", action="store_true", help="short steps and small counts")
    parser.add_argument("--stack-name", default="bench", help="local stack name (default bench)")
    parser.add_argument(
        "--rate", type=float, help="cost: dial at this CPS instead of searching for it"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="cost: run the engine under cProfile, writing PROFILE-0.pstats, and show its top",
    )
    return parser


async def run_one(
    name: str, info: StackInfo, quick: bool, found: dict[str, float], args: argparse.Namespace
) -> Figures:
    if name == "throughput":
        p = throughput.Params.quick() if quick else throughput.Params()
        result = await throughput.run(info, p, quick=quick)
        for key in ("capacity_cps", "engine_clean_cps"):  # the engine's own clean rate wins
            value = result.get(key)
            if isinstance(value, int | float) and value > 0:
                found["rate"] = float(value)
        return result
    if name == "cost":
        c = cost.Params.quick() if quick else cost.Params()
        rate = args.rate or found.get("rate")
        return await cost.run(info, c, rate=rate, quick=quick, profile=args.profile)
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
            # its search overloads Asterisk on purpose (why that matters: fresh_asterisk)
            info = await fresh_asterisk(info)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = BENCHMARKS if args.name == "all" else (args.name,)
    started = time.monotonic()
    with bench_stack(args.stack_name) as info:
        print(f"stack {info.name}: Asterisk {info.asterisk_version}, AMI {info.ami_port}")
        for old in log_dir(info).glob("*.log"):  # engine logs of a previous run
            old.unlink()
        code = asyncio.run(run_all(names, info, args))
    print(f"total {time.monotonic() - started:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
