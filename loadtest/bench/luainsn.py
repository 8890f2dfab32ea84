"""Lua cost by instructions: what :mod:`loadtest.bench.luacost` measures in microseconds, counted
in CPU instructions of redis-server, which do not move with the machine's load.

``python -m loadtest.bench.luainsn [--base main] [--batch 15] [--cycles 40]`` (no stack, no
root; valgrind and redis-server from the machine; ~1-2 min): for each version of the scripts
(``base``: git revision ``--base``; ``new``: this checkout) its own redis-server (the stack's ACL,
AOF on, ``hz`` 1) runs under ``valgrind --tool=callgrind`` with instrumentation off; the same
campaign and cycle as luacost's (claim, originated, renew, finish of ``batch`` calls, the retries
due at once) are set up and warmed, then ``cycles`` cycles run with instrumentation on
(``callgrind_control -i on`` / ``off``). Per call: redis-server's instructions in that window
(sockets, parsing, scripts, AOF: all of it) and those inside ``evalShaCommand`` (the scripts).
Only the scripts differ between the two servers. The target is luacost's in µs; the ratio of
instructions says by how much a version's cost moved, on any host.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from loadtest.bench.common import Figures, emit, table
from loadtest.bench.luacost import Lane
from ops.localstack.redis_server import RedisServer, RedisUsers
from ops.localstack.wait import wait_until

TRUNK = "carrier"
EVALSHA = "evalShaCommand"  # redis-server 7.0's function for EVALSHA


@dataclass(frozen=True, slots=True)
class Params:
    base: str = "main"
    batch: int = 15
    cycles: int = 40
    pending: int = 2_000
    warm: int = 5
    workdir: Path | None = None  # keep the servers' files and callgrind outputs there


@dataclass(frozen=True, slots=True)
class Count:
    label: str
    calls: int
    total: int  # redis-server's instructions in the window
    scripts: int  # inside evalShaCommand

    def per_call(self, value: int) -> float:
        return value / max(1, self.calls)


def _start(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _totals(out: Path) -> tuple[int, int]:
    """(all instructions, those inside evalShaCommand, inclusive) of a callgrind output."""
    text = out.read_text(errors="replace")
    found = re.search(r"^totals:\s+(\d+)", text, re.MULTILINE)
    total = int(found.group(1)) if found else 0
    annotated = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    scripts = 0
    for line in annotated.splitlines():
        if EVALSHA in line:
            scripts = max(scripts, int(line.split()[0].replace(",", "")))
    return total, scripts


async def count(label: str, rev: str | None, params: Params, workdir: Path) -> Count:
    """One version's instructions per call, on a redis-server of its own under callgrind."""
    server = RedisServer(workdir=workdir / label, users=RedisUsers.generate())
    out = workdir / f"callgrind.{label}.out"
    argv = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        *server.argv(), "--hz", "1",
    ]  # fmt: skip
    proc = await asyncio.to_thread(_start, argv)
    try:
        await asyncio.to_thread(wait_until, server.ping, timeout=120, what=f"callgrind {label}")
        lane = Lane(server.url, TRUNK, label, rev)
        admin = aioredis.Redis.from_url(server.admin_url)
        try:
            await lane.setup(params.pending)
            for _ in range(params.warm):
                await lane.cycle(admin, params.batch, measure=False)
            await asyncio.to_thread(_callgrind, proc.pid, "-i", "on")
            for _ in range(params.cycles):
                await lane.cycle(admin, params.batch, measure=False)
            await asyncio.to_thread(_callgrind, proc.pid, "-i", "off")
        finally:
            await lane.store.aclose()
            await admin.aclose()
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 120)
    total, scripts = _totals(out)
    return Count(label, params.cycles * params.batch, total, scripts)


async def run(params: Params) -> Figures:
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: apt-get install valgrind")
    with tempfile.TemporaryDirectory(prefix="luainsn-") as tmp:
        where = params.workdir or Path(tmp)
        counts = [
            await count("base", params.base, params, where),
            await count("new", None, params, where),
        ]
    rows = [
        [c.label, round(c.per_call(c.total)), round(c.per_call(c.scripts)),
         round(c.per_call(c.total - c.scripts))]
        for c in counts
    ]  # fmt: skip
    table(
        f"redis-server instructions per call (callgrind), batches of {params.batch}, "
        f"{params.cycles} cycles",
        ["scripts", "all", "in evalsha", "the rest"],
        rows,
    )
    base, new = counts
    ratio = new.total / max(1, base.total)
    print(f"  new / base: all {ratio:.3f}, scripts {new.scripts / max(1, base.scripts):.3f}")
    return emit(
        "luainsn",
        False,
        {
            "base": params.base,
            "batch": params.batch,
            "cycles": params.cycles,
            **{
                c.label: {
                    "insn_per_call": round(c.per_call(c.total)),
                    "script_insn_per_call": round(c.per_call(c.scripts)),
                }
                for c in counts
            },
            "ratio_all": round(ratio, 3),
        },
    )


def main() -> None:
    default = Params()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=default.base)
    parser.add_argument("--batch", type=int, default=default.batch)
    parser.add_argument("--cycles", type=int, default=default.cycles)
    parser.add_argument("--workdir", type=Path, help="keep the callgrind outputs there")
    args = parser.parse_args()
    params = Params(args.base, args.batch, args.cycles, workdir=args.workdir)
    asyncio.run(run(params))


if __name__ == "__main__":
    main()
