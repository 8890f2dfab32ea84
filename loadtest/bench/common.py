"""What every benchmark shares: the stack, result output, statistics, CPU time, polling.

Output contract: a benchmark prints a human table, then exactly one line
``RESULT {"benchmark": ..., ...}`` (compact JSON) that a tracker can grep and parse.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from dialer.pbx.ami.client import AmiSettings
from ops.localstack import stack as localstack
from ops.localstack.numberplan import SERIALS, Behaviour, number
from ops.localstack.stack import StackInfo

RESULT_PREFIX = "RESULT "
# 1-s calls at 800 CPS hold ~900 channels at once, two RTP ports (RTP + RTCP) each: 4,000
# ports hold 2,000 channels (with 2,000, the engine's run at 800 CPS failed 80 calls on
# Asterisk's "couldn't allocate a port for RTP instance", a limit of the rig, not the stack's
# CPU). Blocks are taken from 20000 up; RabbitMQ's 25672 sits in one of them.
BENCH_RTP_PORTS = 4000
# FreeSWITCH's own RTP range in the bench's stack (the stack's default, 400, holds ~200
# channels: FreeSWITCH refused originates at 200 CPS with "No audio RTP ports available!",
# DESTINATION_OUT_OF_ORDER). 2,000 ports hold ~1,000 channels, far past its knee here.
BENCH_FS_RTP_PORTS = 2000
UP_RETRY_S = 70.0  # TIME_WAIT lasts 60 s on Linux
Figures = dict[str, object]


# -- output -------------------------------------------------------------------------------------


def emit(benchmark: str, quick: bool, figures: Figures) -> Figures:
    """Print the one RESULT line of a benchmark and return what it printed."""
    result: Figures = {"benchmark": benchmark, "quick": quick, **figures}
    print(RESULT_PREFIX + json.dumps(result, separators=(",", ":"), sort_keys=False), flush=True)
    return result


def parse_result(line: str) -> Figures:
    """The figures of a ``RESULT {...}`` line (ValueError if it is not one)."""
    if not line.startswith(RESULT_PREFIX):
        raise ValueError(f"not a result line: {line[:60]!r}")
    data = json.loads(line[len(RESULT_PREFIX) :])
    if not isinstance(data, dict):
        raise ValueError("a result line holds a JSON object")
    return data


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print ``rows`` as aligned columns under ``title``."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  " + "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in cells:
        print("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print(flush=True)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def verdict(value: float | None, target: float, *, at_most: bool) -> str:
    """``met`` / ``MISSED`` (``n/a`` without a value) for a target."""
    if value is None or math.isnan(value):
        return "n/a"
    ok = value <= target if at_most else value >= target
    return "met" if ok else "MISSED"


# -- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def rate(times: Sequence[float]) -> float:
    """Events per second: the least-squares slope of the event count over time (0 if < 2).

    Unbiased for evenly spread events and for bursts alike (a sliding-window limiter grants
    ``limit`` at once every window): the fitted line runs through the middle of the staircase,
    where ``(n - 1) / (last - first)`` would count one burst too many.
    """
    n = len(times)
    if n < 2:
        return 0.0
    ordered = sorted(times)
    mean_t = sum(ordered) / n
    mean_i = (n - 1) / 2
    var = sum((t - mean_t) ** 2 for t in ordered)
    if var <= 0:
        return 0.0
    return sum((t - mean_t) * (i - mean_i) for i, t in enumerate(ordered)) / var


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most ``times`` in any half-open interval of ``window`` seconds."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


# -- processes ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from ``/proc/<pid>/stat``."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()  # fields 3.. of proc(5); comm may hold spaces
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuMeter:
    """CPU seconds of named processes, read at once; ``since`` gives the deltas."""

    readings: dict[str, float]

    @classmethod
    def read(cls, pids: dict[str, int]) -> CpuMeter:
        return cls({name: cpu_seconds(pid) for name, pid in pids.items()})

    def since(self, earlier: CpuMeter) -> dict[str, float]:
        return {k: v - earlier.readings[k] for k, v in self.readings.items()}


QUIET_CORES = 0.05  # Asterisk and SIPp each below this share of a core: the stack is idle
QUIET_WINDOW_S = 0.5


async def wait_quiet(info: StackInfo, *, within: float, pbx: str = "asterisk") -> bool:
    """Wait until the switch (``pbx``) and SIPp are idle (each below :data:`QUIET_CORES` over a
    :data:`QUIET_WINDOW_S` window), at most ``within`` seconds; False if they never were.

    Every measured run starts from an idle stack: after an overloaded step, SIPp and Asterisk
    go on working through retransmissions and timers for a while, and a run started meanwhile
    would be measured against what the previous one left."""
    pids = {pbx: switch_pid(info, pbx), "sipp": info.sipp_pid}
    deadline = time.monotonic() + within
    while True:
        before = CpuMeter.read(pids)
        await asyncio.sleep(QUIET_WINDOW_S)
        used = CpuMeter.read(pids).since(before)
        if all(seconds < QUIET_CORES * QUIET_WINDOW_S for seconds in used.values()):
            return True
        if time.monotonic() >= deadline:
            print(f"  (stack not idle after {within:g} s: {used})", flush=True)
            return False


# -- the stack ----------------------------------------------------------------------------------

PBXS = ("asterisk", "freeswitch")


def switch_pid(info: StackInfo, pbx: str) -> int:
    """The pid of the stack's switch ``pbx`` (``"asterisk"`` or ``"freeswitch"``)."""
    if pbx == "freeswitch":
        return info.freeswitch_pid
    if pbx == "asterisk":
        return info.asterisk_pid
    raise ValueError(f"unknown PBX {pbx!r}")


def _up(name: str, rtp_ports: int, with_freeswitch: bool) -> StackInfo:
    if not with_freeswitch:
        return localstack.up(name=name, rtp_ports=rtp_ports)
    # The stack's FreeSWITCH range is a module constant of ops.localstack.stack, read when a
    # stack is first made (restarts in place keep the recorded range): the bench's stack
    # takes a larger one, and only it.
    with mock.patch.object(localstack, "FREESWITCH_RTP_PORTS", BENCH_FS_RTP_PORTS):
        info = localstack.up(name=name, rtp_ports=rtp_ports, with_freeswitch=True)
    if info.freeswitch_rtp_end - info.freeswitch_rtp_start + 1 < BENCH_FS_RTP_PORTS:
        localstack.down(name=name)  # an older stack of that name, with the default range
        with mock.patch.object(localstack, "FREESWITCH_RTP_PORTS", BENCH_FS_RTP_PORTS):
            info = localstack.up(name=name, rtp_ports=rtp_ports, with_freeswitch=True)
    return info


@contextmanager
def bench_stack(
    name: str = "bench", rtp_ports: int = BENCH_RTP_PORTS, *, with_freeswitch: bool = False
) -> Iterator[StackInfo]:
    """Bring up the local stack ``name`` and bring it down (checked: nothing left) on exit.

    ``with_freeswitch``: the stack also runs FreeSWITCH, with :data:`BENCH_FS_RTP_PORTS` RTP
    ports. A port block still in TIME_WAIT from a previous run is waited for (``UP_RETRY_S``).
    """
    deadline = time.monotonic() + UP_RETRY_S
    while True:
        try:
            info = _up(name, rtp_ports, with_freeswitch)
            break
        except RuntimeError as exc:  # ops.localstack.ports: "no block of N free ports"
            if "free ports" not in str(exc) or time.monotonic() > deadline:
                raise
            print(f"waiting for free ports (TIME_WAIT of a previous run): {exc}", flush=True)
            time.sleep(5)
    try:
        yield info
    finally:
        localstack.down(name=name)


async def fresh_asterisk(info: StackInfo) -> StackInfo:
    """Kill the stack's Asterisk and start it again; returns the stack's new info.

    ``info`` may be out of date (an earlier restart saved a newer one): the saved info is
    the one restarted. A measurement after an overload should not inherit it: for minutes after
    the throughput search's overloaded steps, idle as it looks, Asterisk creates an occasional
    channel 50-90 ms after its Originate, and its CPU per call stays up to 40 % higher."""
    current = localstack.load(info.workdir) or info
    print("  (restarting Asterisk)", flush=True)
    started = time.monotonic()
    await asyncio.to_thread(localstack.kill_asterisk, current)
    fresh = await asyncio.to_thread(localstack.start_asterisk, current)
    print(f"  (Asterisk restarted in {time.monotonic() - started:.1f} s)", flush=True)
    return fresh


def ami_settings(info: StackInfo, *, events: str = "call", watch: bool = True) -> AmiSettings:
    """The watching AMI user (``watch``: it also receives Newchannel and Newstate Up, whose
    Timestamps are Asterisk's view of the rate and the concurrency), or the dialer's own user
    (manager.conf filters its events to the two per call the engine follows)."""
    return AmiSettings(
        host=info.ami_host,
        port=info.ami_port,
        username=info.ami_watch_username if watch else info.ami_username,
        secret=info.ami_secret,
        events=events,
        event_queue_size=100_000,
        action_timeout=10.0,
    )


def log_dir(info: StackInfo) -> Path:
    path = info.workdir / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def namespace(benchmark: str) -> str:
    """A fresh Redis key prefix for one benchmark run (below ``dialer:``, the dialer ACL's keys)."""
    return f"dialer:bench-{benchmark}-{uuid.uuid4().hex[:8]}"


def hold_numbers(count: int, hold_s: int, *, first: int = 0) -> list[str]:
    """Numbers whose callee answers and hangs up after ``hold_s`` seconds (serials wrap)."""
    return [number(Behaviour.HOLD, (first + i) % SERIALS, hold_s=hold_s) for i in range(count)]


# -- polling ------------------------------------------------------------------------------------


async def send_paced(
    count: int, cps: float, send: Callable[[int], Coroutine[Any, Any, None]]
) -> None:
    """``send(0)`` .. ``send(count - 1)`` spread evenly at ``cps`` (each one its own task, so a
    slow reply never delays the next send); returns when every send has returned."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.TaskGroup() as senders:
        i = 0
        while i < count:
            due = min(count, int((loop.time() - start) * cps) + 1)
            while i < due:
                senders.create_task(send(i))
                i += 1
            await asyncio.sleep(max(0.0, start + i / cps - loop.time()))


async def poll(check: Callable[[], Awaitable[bool]], *, within: float, every: float = 0.05) -> bool:
    """Await ``check()`` until it is true (True) or ``within`` seconds pass (False)."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every)
