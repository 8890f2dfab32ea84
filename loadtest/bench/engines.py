"""Engine processes (``python -m dialer engine``) and campaigns for the benchmarks.

Every engine runs as its own process, configured only through ``DIALER_*`` variables, as a
user runs it; its log goes to ``<stack workdir>/bench/<namespace>-<i>.log``. With ``profile``
the process runs under cProfile and writes ``<profile>-<i>.pstats`` when it stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from dialer.domain.campaign import CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.engine.control import CampaignControl
from dialer.store.models import ContactInput
from dialer.store.redis_store import RedisStore
from loadtest.bench.common import log_dir, poll
from loadtest.bench.rawami import NORMAL_CAUSES
from ops.localstack.stack import StackInfo

REPO = Path(__file__).resolve().parents[2]
READY_WITHIN = 30.0
BOTH = "both"  # engine_processes' pbx for one engine on Asterisk and FreeSWITCH at once
STOP_WITHIN = 15.0
# the engine's tuning that a benchmark passes on from its own environment
TUNING = frozenset(
    {
        "DIALER_EVENT_LOOP",
        "DIALER_PACE_MS",
        "DIALER_CLAIM_BATCH",
        "DIALER_WRITE_LINGER_MS",
        "DIALER_RATE_MARGIN_MS",
        "DIALER_RATE_SWITCH_MS",
        "DIALER_RATE_STAMPS",
    }
)


class EngineFailed(RuntimeError):
    """An engine process exited or never became ready."""


@dataclass(frozen=True, slots=True)
class EngineProcess:
    engine_id: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def ready(self) -> bool:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise EngineFailed(
                f"engine {self.engine_id} exited ({self.process.returncode}): {tail}"
            )
        return f"engine {self.engine_id} started" in self.log.read_text(errors="replace")


def _spawn(
    info: StackInfo,
    ns: str,
    i: int,
    profile: Path | None,
    pbx: str,
    extra: Mapping[str, str] | None = None,
) -> EngineProcess:
    engine_id = f"{ns}-{i}"
    # the stack decides where the engine connects; the engine's tuning may come from outside,
    # so that two settings can be compared side by side (DIALER_EVENT_LOOP, DIALER_PACE_MS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_") or k in TUNING}
    env.update(DIALER_REDIS_URL=info.redis_url, DIALER_NAMESPACE=ns, DIALER_ENGINE_ID=engine_id)
    if pbx in ("freeswitch", BOTH):
        # BENCH_ESL_FORMAT=json: the engine reads ESL events as JSON instead of plain text
        fmt = os.environ.get("BENCH_ESL_FORMAT")
        env.update(DIALER_ESL_URL=info.esl_url + (f"?format={fmt}" if fmt else ""))
    if pbx != "freeswitch":
        env.update(DIALER_AMI_URL=info.ami_url)
    for key, value in (extra or {}).items():  # a benchmark's own tuning, "" removes one
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    argv = [sys.executable]
    if profile is not None:
        argv += ["-m", "cProfile", "-o", f"{profile}-{i}.pstats"]
    # pbx BOTH: one engine process on both switches (loadtest.bench.bothnodes)
    argv += ["-m", "loadtest.bench.bothnodes"] if pbx == BOTH else ["-m", "dialer", "engine"]
    log = log_dir(info) / f"{engine_id}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return EngineProcess(engine_id, proc, log)


@asynccontextmanager
async def engine_processes(
    info: StackInfo,
    ns: str,
    count: int = 1,
    *,
    profile: Path | None = None,
    pbx: str = "asterisk",
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[list[EngineProcess]]:
    """``count`` engine processes on namespace ``ns``, ready (the switch ``pbx`` and Redis
    connected); ``env``: ``DIALER_*`` tuning of these processes only."""
    procs: list[EngineProcess] = []
    try:
        for i in range(count):
            procs.append(_spawn(info, ns, i, profile, pbx, env))

        async def all_ready() -> bool:
            return all(p.ready() for p in procs)

        if not await poll(all_ready, within=READY_WITHIN, every=0.1):
            raise EngineFailed(f"engines not ready within {READY_WITHIN} s (logs: {procs[0].log})")
        yield procs
    finally:
        await _stop(procs)


async def _stop(procs: list[EngineProcess]) -> None:
    for p in procs:
        if p.process.poll() is None:
            os.kill(p.pid, signal.SIGTERM)

    async def all_gone() -> bool:
        return all(p.process.poll() is not None for p in procs)

    if not await poll(all_gone, within=STOP_WITHIN, every=0.1):
        for p in procs:
            if p.process.poll() is None:
                p.process.kill()
                p.process.wait(5)


# -- campaigns ----------------------------------------------------------------------------------


def campaign_settings(
    info: StackInfo, *, max_channels: int, cps: float, name: str = "bench"
) -> CampaignSettings:
    """No AMD, no retry: every contact is dialed exactly once."""
    return CampaignSettings(
        name=name,
        trunk=info.trunk,
        max_channels=max_channels,
        cps=cps,
        ring_timeout=30.0,
        amd=False,
        retry=RetryPolicy(max_attempts=1, technical_retry_limit=0),
    )


async def new_campaign(
    store: RedisStore, settings: CampaignSettings, phones: Iterable[str]
) -> tuple[CampaignControl, int]:
    """A Draft campaign with one list holding ``phones``."""
    control = CampaignControl(store)
    cid = await control.create(settings)
    contacts = [ContactInput(phone=p, vars={"serial": str(i)}) for i, p in enumerate(phones)]
    await control.add_list(cid, contacts)
    return control, cid


async def wait_status(
    store: RedisStore, cid: int, wanted: set[CampaignStatus], *, within: float
) -> CampaignStatus | None:
    """The campaign's status once it is in ``wanted``; None if not within ``within`` s."""
    seen: list[CampaignStatus] = []

    async def reached() -> bool:
        seen.append(CampaignStatus((await store.get_campaign(cid)).status))
        return seen[-1] in wanted

    return seen[-1] if await poll(reached, within=within) else None


@dataclass(frozen=True, slots=True)
class Outcomes:
    """The campaign's call records summed up (clean: answered, held, ended normally)."""

    records: int
    clean: int
    failures: dict[str, int]
    claimed: dict[str, float]  # call id -> claim time (engine clock, epoch seconds)

    @property
    def claimed_at(self) -> list[float]:
        return list(self.claimed.values())


async def outcomes(store: RedisStore, cid: int, *, hold_s: float) -> Outcomes:
    failures: Counter[str] = Counter()
    claimed: dict[str, float] = {}
    after = "-"
    records = 0
    while True:
        batch = await store.records(cid, after=after, count=10_000)
        if not batch:
            break
        after = batch[-1][0]
        for _, rec in batch:
            records += 1
            claimed[rec["call_id"]] = int(rec["claimed_ms"]) / 1000
            kind = _failure(rec, hold_s)
            if kind:
                failures[kind] += 1
    return Outcomes(records, records - sum(failures.values()), dict(failures), claimed)


def _failure(rec: dict[str, str], hold_s: float) -> str:
    if rec.get("status") != CallStatus.ANSWERED:
        return f"status:{rec.get('status')}/{rec.get('rule')}"
    cause = rec.get("q850_cause") or ""
    if not cause.isdigit() or int(cause) not in NORMAL_CAUSES:
        return f"cause:{cause}"
    # ended - claimed (engine clock) is at least the hold time for a call held to its end; the
    # record's duration_s (answer to hang-up as the engine saw them) shrinks when the engine
    # falls behind on events, so it cannot tell an early end.
    if int(rec["ended_ms"]) - int(rec["claimed_ms"]) < 900 * hold_s:
        return "ended:early"
    return ""
