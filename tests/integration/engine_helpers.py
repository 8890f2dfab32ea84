"""Running engines (in-process and as separate processes) against the real stack."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from dialer.app import engine_parts
from dialer.config import EngineSettings
from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.engine.control import CampaignControl
from dialer.engine.engine import Engine
from dialer.store.models import ContactInput
from dialer.store.redis_store import RedisStore


def ami_url(stack: Any) -> str:
    return f"ami://{stack.ami_username}:{stack.ami_secret}@{stack.ami_host}:{stack.ami_port}"


def engine_settings(
    stack: Any, namespace: str, *, pbx: str = "asterisk", **kw: Any
) -> EngineSettings:
    """An engine on the stack's Redis and on one switch (``pbx``: the ``pbx`` fixture's
    ``"asterisk"`` or ``"freeswitch"``)."""
    if pbx == "freeswitch":
        kw["esl_url"] = stack.esl_url
    else:
        kw["ami_url"] = ami_url(stack)
    return EngineSettings(redis_url=stack.redis_url, namespace=namespace, **kw)


@asynccontextmanager
async def running_engine(settings: EngineSettings) -> AsyncIterator[Engine]:
    async with engine_parts(settings) as engine:
        task = asyncio.create_task(engine.run())
        try:
            yield engine
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


@contextmanager
def engine_processes(
    settings: EngineSettings, count: int, *, first: int = 0, logs: Path | None = None
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` separate engine processes (``python -m dialer engine``), with engine ids
    ``proc-<first>``, ``proc-<first + 1>``...; with ``logs``, each one's output goes to
    ``logs / "proc-<n>.log"`` (appended: a restarted id keeps one file)."""
    procs = []
    for i in range(first, first + count):
        env = dict(os.environ)
        env.update(
            DIALER_REDIS_URL=settings.redis_url,
            DIALER_NAMESPACE=settings.namespace,
            DIALER_AMI_URL=settings.ami_url or "",
            DIALER_ESL_URL=settings.esl_url or "",
            DIALER_ENGINE_ID=f"proc-{i}",
            DIALER_LEASE_MS=str(settings.lease_ms),
        )
        if settings.metrics_port is not None:  # one port per process, from this one up
            env["DIALER_METRICS_PORT"] = str(settings.metrics_port + i - first)
        out = None if logs is None else (logs / f"proc-{i}.log").open("ab")
        try:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dialer", "engine"],
                    env=env,
                    start_new_session=True,
                    stdout=out,
                    stderr=out,
                )
            )
        finally:
            if out is not None:
                out.close()  # the child has its own copy
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)  # a frozen one (SIGSTOP) cannot end
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


async def new_campaign(
    store: RedisStore, settings: CampaignSettings, phones: Iterable[str]
) -> tuple[CampaignControl, int]:
    control = CampaignControl(store)
    cid = await control.create(settings)
    await control.add_list(
        cid, [ContactInput(phone=p, vars={"serial": str(i)}) for i, p in enumerate(phones)]
    )
    return control, cid


async def wait_status(
    store: RedisStore, cid: int, wanted: set[CampaignStatus], within: float
) -> CampaignStatus:
    deadline = time.monotonic() + within
    while True:
        status = CampaignStatus((await store.get_campaign(cid)).status)
        if status in wanted:
            return status
        if time.monotonic() > deadline:
            counts = await store.counts(cid)
            raise AssertionError(f"campaign {cid} still {status} after {within} s; counts {counts}")
        await asyncio.sleep(0.05)


async def wait_records(store: RedisStore, cid: int, at_least: int, within: float) -> int:
    deadline = time.monotonic() + within
    while True:
        n = len(await store.records(cid, count=100_000))
        if n >= at_least or time.monotonic() > deadline:
            return n
        await asyncio.sleep(0.05)


def nonzero(counts: dict[CallStatus, int]) -> dict[CallStatus, int]:
    return {k: v for k, v in counts.items() if v}


__all__ = ["replace"]
