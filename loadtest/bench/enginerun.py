"""One campaign of HOLD calls dialed by one engine process, with CPU time of every process.

Used by the throughput benchmark (engine CPS against the raw loop) and the cost benchmark
(CPU per call). CPU time is read four times: when the campaign is started (the engine is up
and idle), ``hold_s + 1`` s later (calls end as fast as they start: steady state), shortly
before the last contact is claimed, and when the campaign is Completed. The steady window
(2nd to 3rd reading) gives the cost of a call's whole life; the whole run adds the ramp-up
and the drain at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

from dialer.domain.statuses import CampaignStatus
from dialer.store.redis_store import RedisStore
from loadtest.bench import fswatch, rawesl
from loadtest.bench.common import (
    CpuMeter,
    ami_settings,
    hold_numbers,
    max_in_window,
    namespace,
    percentile,
    rate,
    switch_pid,
    wait_quiet,
)
from loadtest.bench.engines import (
    Outcomes,
    campaign_settings,
    engine_processes,
    new_campaign,
    outcomes,
    wait_status,
)
from loadtest.bench.watch import Observed, wait_no_channels
from loadtest.bench.watch import watch as watch_ami
from ops.localstack.stack import StackInfo

SETTLE_S = 60.0
STEP_DOWN = 0.85  # the next rate tried after an unclean engine run


@dataclass(frozen=True, slots=True)
class EngineRun:
    target_cps: float
    calls: int
    completed: bool  # the campaign reached Completed within the time allowed
    outcomes: Outcomes
    cps: float  # originates per second on the engine's clock (claim times)
    wall_s: float
    cpu_s: dict[str, float]  # engine, asterisk, sipp, redis: the whole run
    steady_cpu_s: dict[str, float]  # the same in the steady window
    steady_calls: int  # calls claimed in the steady window
    steady_redis_calls: dict[str, int]  # Redis commands run in the steady window, by name
    pbx: str = "asterisk"
    # FreeSWITCH's own view (``watch``): created/s by CHANNEL_CREATE Event-Date-Timestamp,
    # failures by its events (each call's job, answer, hang-up cause and time held), and the
    # most channels created in any 1-s window on its clock
    switch_cps: float | None = None
    switch_failures: dict[str, int] = field(default_factory=dict)
    switch_max_per_second: int | None = None
    switch_lag_p99: float | None = None  # claim (engine clock) -> CHANNEL_CREATE, seconds
    max_lag: float | None = None  # a clean run's switch_lag_p99 is at most this (None: any)
    steady_redis_usec: dict[str, int] = field(default_factory=dict)  # Redis's time, by command
    # claim (Redis's grant, the record's claimed_ms) -> the channel on the switch's clock: the
    # delay the CPS window's margin must cover (dialer.engine.pacing), seconds
    switch_lag_max: float | None = None
    # per call: the channel's creation on the switch's clock, and its claim (epoch seconds)
    switch_created: dict[str, float] = field(default_factory=dict, repr=False)
    claimed: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def failed(self) -> int:
        return self.calls - self.outcomes.clean

    @property
    def switch_failed(self) -> int:
        return sum(self.switch_failures.values())

    @property
    def ok(self) -> bool:
        return self.completed and self.failed == 0 and self.switch_failed == 0 and self.prompt

    @property
    def prompt(self) -> bool:
        """The switch created the channels within ``max_lag`` of their claims (p99)."""
        lag = self.switch_lag_p99
        return self.max_lag is None or (lag is not None and lag <= self.max_lag)

    def per_call_us(self, process: str) -> float:
        """CPU microseconds per call over the whole run (ramp-up and drain included)."""
        return self.cpu_s[process] / max(1, self.outcomes.records) * 1e6

    def steady_us(self, process: str) -> float:
        """CPU microseconds per call in the steady window."""
        return self.steady_cpu_s[process] / max(1, self.steady_calls) * 1e6


async def engine_run(
    info: StackInfo,
    target_cps: float,
    duration: float,
    *,
    hold_s: int = 1,
    profile: Path | None = None,
    pbx: str = "asterisk",
    watch: bool = False,
    max_lag: float | None = None,
    env: Mapping[str, str] | None = None,
) -> EngineRun:
    """Dial ``target_cps * duration`` HOLD calls at ``cps = target_cps`` and wait for the end.

    ``pbx``: the switch the engine dials through. ``watch``: a separate session follows the
    calls by the switch's own events: on FreeSWITCH an ESL session (it costs FreeSWITCH CPU:
    not for the cost benchmark), whose verdicts count as failures too; on Asterisk a session
    of the watching user, by Newchannel Timestamps. Either gives the rate and the most
    channels created in any second on the switch's clock. With ``max_lag`` (FreeSWITCH) the
    run is clean only if the switch created 99 % of the channels within that many seconds of
    their claim. Bounded: the campaign gets
    ``1.5 * duration + hold_s + 15`` seconds to complete; then it is stopped with hang-up (an
    overloaded stack would otherwise ring on for the 30-s ring timeout) and the switch is
    given up to ``SETTLE_S`` to clear its channels. ``env``: the engine process's own
    ``DIALER_*`` tuning (e.g. a fixed ``DIALER_RATE_MARGIN_MS``).
    """
    ns = namespace("engine")
    calls = max(1, round(target_cps * duration))
    store = RedisStore.from_url(info.redis_url, namespace=ns)
    try:
        # never the binding limit: about three times the calls alive at once at this rate
        channels = min(100_000, max(100, round(target_cps * (hold_s + 2) * 3)))
        settings = campaign_settings(info, max_channels=channels, cps=target_cps)
        control, cid = await new_campaign(store, settings, hold_numbers(calls, hold_s))
        # not measured against a previous run's tail
        await wait_quiet(info, within=SETTLE_S, pbx=pbx)
        async with AsyncExitStack() as watching:
            seen: fswatch.FsObserved | None = None
            seen_ami: Observed | None = None
            if watch and pbx == "freeswitch":
                seen = await watching.enter_async_context(fswatch.watch(info, "dlr-"))
            elif watch:
                seen_ami = await watching.enter_async_context(watch_ami(ami_settings(info), "dlr-"))
            procs = await watching.enter_async_context(
                engine_processes(info, ns, profile=profile, pbx=pbx, env=env)
            )
            pids = {
                "engine": procs[0].pid,
                pbx: switch_pid(info, pbx),
                "sipp": info.sipp_pid,
                "redis": info.redis_pid,
            }
            before = CpuMeter.read(pids)
            started = time.monotonic()
            await control.start(cid)
            warm = min(hold_s + 1.0, duration / 2)
            await asyncio.sleep(warm)
            steady_from, steady_at = CpuMeter.read(pids), time.time()
            stats = await command_stats(info)
            await asyncio.sleep(max(0.5, duration - warm - 0.5))
            steady_to, steady_end = CpuMeter.read(pids), time.time()
            commands, usec = _minus_stats(await command_stats(info), stats)
            status = await wait_status(
                store, cid, {CampaignStatus.COMPLETED}, within=1.5 * duration + hold_s + 15
            )
            wall = time.monotonic() - started
            cpu = CpuMeter.read(pids).since(before)
            if status is not CampaignStatus.COMPLETED:
                await control.stop(cid, hangup=True)
                await wait_status(store, cid, {CampaignStatus.CANCELLED}, within=SETTLE_S)
            await _wait_no_channels(info, pbx)
            done = await outcomes(store, cid, hold_s=hold_s)
            if seen is not None:  # the last jobs' results may trail the hang-ups
                await poll_jobs(seen, done.claimed, hold_s)
    finally:
        await store.aclose()
    steady = [t for t in done.claimed_at if steady_at <= t < steady_end]
    created = seen.created if seen else seen_ami.created if seen_ami else None
    lags = [t - done.claimed[c] for c, t in (created or {}).items() if c in done.claimed]
    return EngineRun(
        target_cps=target_cps,
        calls=calls,
        completed=status is CampaignStatus.COMPLETED,
        outcomes=done,
        cps=rate(done.claimed_at),
        wall_s=wall,
        cpu_s=cpu,
        steady_cpu_s=steady_to.since(steady_from),
        steady_calls=len(steady),
        steady_redis_calls=commands,
        pbx=pbx,
        switch_cps=rate(list(created.values())) if created is not None else None,
        switch_failures=switch_failures(seen, done.claimed, hold_s) if seen else {},
        switch_max_per_second=max_in_window(list(created.values())) if created else None,
        switch_lag_p99=percentile(lags, 99) if created is not None else None,
        switch_created=dict(created or {}),
        claimed=dict(done.claimed),
        max_lag=max_lag if seen else None,
        steady_redis_usec=usec,
        switch_lag_max=max(lags, default=None),
    )


async def _wait_no_channels(info: StackInfo, pbx: str) -> None:
    if pbx == "freeswitch":
        await fswatch.wait_no_channels(info, "dlr-", within=SETTLE_S)
    else:
        await wait_no_channels(ami_settings(info), "dlr-", within=SETTLE_S)


async def poll_jobs(seen: fswatch.FsObserved, calls: dict[str, float], hold_s: int) -> None:
    """Wait (at most 5 s) until every call has a verdict from FreeSWITCH's events."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if all(rawesl.verdict(c, seen, {}, hold_s) != "" for c in calls):
            return
        await asyncio.sleep(0.1)


def switch_failures(
    seen: fswatch.FsObserved, calls: dict[str, float], hold_s: int
) -> dict[str, int]:
    """Failures by FreeSWITCH's events of the engine's calls (its records' call ids, and any
    channel the switch made that has no record: ``norecord``)."""
    failures: Counter[str] = Counter()
    for call_id in calls:
        kind = rawesl.verdict(call_id, seen, {}, hold_s)
        if kind is not None:
            failures[kind or "end:missing"] += 1
    failures["norecord"] += sum(1 for c in seen.created if c not in calls)
    return {k: v for k, v in failures.items() if v}


async def command_stats(stack: StackInfo) -> dict[str, tuple[int, int]]:
    """Calls and microseconds per Redis command so far (``INFO commandstats``), e.g.
    ``{"evalsha": (123, 45678)}``; a script's inner commands count under their own names
    too (their time is also inside ``evalsha``'s).

    INFO is the admin user's (the dialer's ACL has no server commands)."""
    admin = aioredis.Redis.from_url(stack.redis_admin_url)
    try:
        info = await admin.info("commandstats")
    finally:
        await admin.aclose()
    return {
        str(key).removeprefix("cmdstat_"): (int(value["calls"]), int(value.get("usec", 0)))
        for key, value in info.items()
        if isinstance(value, dict) and "calls" in value
    }


async def command_calls(stack: StackInfo) -> dict[str, int]:
    """Calls per Redis command so far (:func:`command_stats` without the times)."""
    return {k: calls for k, (calls, _) in (await command_stats(stack)).items()}


def _minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    diff = {k: v - before.get(k, 0) for k, v in after.items()}
    return {k: v for k, v in sorted(diff.items(), key=lambda i: -i[1]) if v > 0}


def _minus_stats(
    after: dict[str, tuple[int, int]], before: dict[str, tuple[int, int]]
) -> tuple[dict[str, int], dict[str, int]]:
    """Commands and microseconds per command between two :func:`command_stats`."""
    calls = _minus({k: c for k, (c, _) in after.items()}, {k: c for k, (c, _) in before.items()})
    usec = _minus({k: u for k, (_, u) in after.items()}, {k: u for k, (_, u) in before.items()})
    return calls, usec


async def engine_clean_rate(
    ready: Callable[[], Awaitable[StackInfo]],
    start_cps: float,
    duration: float,
    *,
    hold_s: int = 1,
    tries: int = 3,
    profile: Path | None = None,
    pbx: str = "asterisk",
    watch: bool = False,
    max_lag: float | None = None,
) -> list[EngineRun]:
    """Engine runs from ``start_cps`` down (x0.85, rounded to 10) until one is clean.

    Each run is made on ``await ready()`` (the throughput benchmark restarts Asterisk there).
    Returns every run made (at most ``tries``); the last is clean unless all failed.
    """
    runs: list[EngineRun] = []
    target = start_cps
    for _ in range(tries):
        run = await engine_run(
            await ready(),
            target,
            duration,
            hold_s=hold_s,
            profile=profile,
            pbx=pbx,
            watch=watch,
            max_lag=max_lag,
        )
        runs.append(run)
        print(
            f"  engine at {target:g} CPS: {run.outcomes.clean}/{run.calls} clean, "
            f"{run.cps:.1f} CPS, failures {run.outcomes.failures or 'none'}"
            + (
                f"; {pbx} created {run.switch_cps:.1f}/s, lag p99 "
                f"{(run.switch_lag_p99 or 0) * 1000:.0f} ms, its failures "
                f"{run.switch_failures or 'none'}"
                if run.switch_cps is not None
                else ""
            ),
            flush=True,
        )
        if run.ok:
            break
        target = max(10.0, round(target * STEP_DOWN / 10) * 10)
    return runs
