"""Composition root: wires the store, the PBX adapter, the engine and the API; owns the top task.

- :func:`engine_parts`: store + Asterisk adapter + engine, connected (tests and tools use it).
- :func:`run_engine`: one engine process (``dialer engine``) until SIGINT/SIGTERM.
- :func:`run_service`: the engine, the HTTP API and ``/metrics`` in one process, one event loop
  and one task group (``dialer run``) until SIGINT/SIGTERM.
- :func:`open_metrics_port`: ``/metrics`` on a port of its own, for both.

A signal sets an event; the top task group then cancels the engine, which settles or hands over
its calls (dialer.engine.engine), and the API stops accepting and lets requests in progress end.
Both commands also serve ``/metrics`` on DIALER_METRICS_HOST:DIALER_METRICS_PORT (the host
defaults to 127.0.0.1) when the port is set. Every HTTP server runs in the process's one event
loop (:func:`dialer.api.server.serve_asgi`) and stops after the top task group has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

from dialer.api import (
    ApiEndpoint,
    ApiSettings,
    MetricsEndpoint,
    create_app,
    serve_api,
    serve_metrics,
)
from dialer.config import EngineSettings
from dialer.engine.engine import Engine
from dialer.errors import ConfigError
from dialer.metrics import DialerMetrics
from dialer.pbx.asterisk import AsteriskAdapter, AsteriskSettings
from dialer.pbx.freeswitch import FreeSwitchAdapter, FreeSwitchSettings
from dialer.store.redis_store import RedisStore

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@asynccontextmanager
async def engine_parts(settings: EngineSettings) -> AsyncIterator[Engine]:
    """Store + PBX adapter (Asterisk or FreeSWITCH) + engine, connected; closed on exit."""
    store = RedisStore.from_url(settings.redis_url, namespace=settings.namespace)
    try:
        async with pbx_adapter(settings) as pbx:
            yield Engine(settings, store, pbx)
    finally:
        await store.aclose()


def pbx_adapter(settings: EngineSettings) -> AsteriskAdapter | FreeSwitchAdapter:
    """The adapter the settings name: DIALER_AMI_URL (Asterisk) or DIALER_ESL_URL (FreeSWITCH)."""
    if settings.ami_url and settings.esl_url:
        raise ConfigError("set DIALER_AMI_URL or DIALER_ESL_URL, not both: one PBX per engine")
    if settings.ami_url:
        return AsteriskAdapter(AsteriskSettings.from_url(settings.ami_url))
    if settings.esl_url:
        return FreeSwitchAdapter(FreeSwitchSettings.from_url(settings.esl_url))
    raise ConfigError(
        "no PBX configured: set DIALER_AMI_URL=ami://user:secret@host:port (Asterisk) "
        "or DIALER_ESL_URL=esl://:password@host:8021 (FreeSWITCH)"
    )


@contextlib.contextmanager
def stop_on_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (handlers removed after)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)


async def open_metrics_port(
    stack: contextlib.AsyncExitStack, settings: EngineSettings, metrics: DialerMetrics
) -> MetricsEndpoint | None:
    """Serve /metrics on DIALER_METRICS_HOST:DIALER_METRICS_PORT, when a port is set, until
    ``stack`` closes (after the top task group has ended). ConfigError if it cannot listen."""
    host, port = settings.metrics_host, settings.metrics_port
    if port is None:
        return None
    try:
        return await stack.enter_async_context(serve_metrics(metrics, host, port))
    except OSError as exc:
        raise ConfigError(
            f"/metrics cannot listen on {host}:{port} (DIALER_METRICS_HOST/PORT): "
            f"{exc.strerror or exc}"
        ) from exc


async def _run_until(engine: Engine, stop: asyncio.Event) -> None:
    """The top task group: the engine until ``stop`` is set (or the engine fails)."""
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(engine.run(), name="dialer-engine")
        await stop.wait()
        task.cancel()


async def run_engine(settings: EngineSettings) -> None:
    """Run one engine process until SIGINT/SIGTERM."""
    with stop_on_signals() as stop:
        async with engine_parts(settings) as engine, contextlib.AsyncExitStack() as stack:
            await open_metrics_port(stack, settings, engine.metrics)
            loop = type(asyncio.get_running_loop())
            log.info(
                "engine %s started (%s.%s)", settings.engine_id, loop.__module__, loop.__name__
            )
            await _run_until(engine, stop)
    log.info("engine %s stopped", settings.engine_id)


async def run_service(
    settings: EngineSettings,
    api: ApiSettings,
    *,
    started: Callable[[ApiEndpoint], object] | None = None,
) -> None:
    """The engine, the HTTP API and /metrics in one process until SIGINT/SIGTERM.

    The API shares the engine's store and metrics (``GET /metrics`` on the API port; also on
    DIALER_METRICS_HOST:DIALER_METRICS_PORT when a port is set). ``started`` is called with the
    API's address once it listens. ConfigError when the API cannot listen on
    ``api.host:api.port``.
    """
    with stop_on_signals() as stop:
        async with engine_parts(settings) as engine, contextlib.AsyncExitStack() as stack:
            app = create_app(
                engine.store,
                tokens=api.tokens,
                metrics=engine.metrics,
                metrics_public=api.metrics_public,
                control=engine.control,
                max_body_bytes=api.max_body_bytes,
                max_upload_bytes=api.max_upload_bytes,
                trunks=settings.trunks or None,  # DIALER_TRUNKS; unset: any trunk name
            )
            await open_metrics_port(stack, settings, engine.metrics)
            try:
                endpoint = await stack.enter_async_context(serve_api(app, api.host, api.port))
            except OSError as exc:
                raise ConfigError(
                    f"the API cannot listen on {api.host}:{api.port} (DIALER_API_HOST/PORT): "
                    f"{exc.strerror or exc}"
                ) from exc
            log.info("engine %s started; API on %s", settings.engine_id, endpoint.url)
            if started is not None:
                started(endpoint)
            await _run_until(engine, stop)
    log.info("engine %s stopped", settings.engine_id)
