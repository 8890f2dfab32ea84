"""Composition root: wires the store, the PBX adapter and the engine, and owns the top task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dialer.config import EngineSettings
from dialer.engine.engine import Engine
from dialer.errors import ConfigError
from dialer.metrics import serve_metrics
from dialer.pbx.asterisk import AsteriskAdapter, AsteriskSettings
from dialer.store.redis_store import RedisStore

log = logging.getLogger(__name__)


@asynccontextmanager
async def engine_parts(settings: EngineSettings) -> AsyncIterator[Engine]:
    """Store + Asterisk adapter + engine, connected; closed on exit."""
    if not settings.ami_url:
        raise ConfigError("no PBX configured: set DIALER_AMI_URL=ami://user:secret@host:port")
    store = RedisStore.from_url(settings.redis_url, namespace=settings.namespace)
    try:
        async with AsteriskAdapter(AsteriskSettings.from_url(settings.ami_url)) as pbx:
            yield Engine(settings, store, pbx)
    finally:
        await store.aclose()


async def run_engine(settings: EngineSettings) -> None:
    """Run one engine process until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with engine_parts(settings) as engine, contextlib.AsyncExitStack() as stack:
        if settings.metrics_port is not None:
            endpoint = await stack.enter_async_context(
                serve_metrics(engine.metrics, "0.0.0.0", settings.metrics_port)
            )
            log.info("metrics on %s", endpoint.url)
        log.info("engine %s started", settings.engine_id)
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(engine.run())
            await stop.wait()
            task.cancel()
    log.info("engine %s stopped", settings.engine_id)
