"""``dialer engine`` (one engine process) and ``dialer run`` (engine + HTTP API + /metrics)."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

from dialer.api import ApiSettings

from .common import settings_from

ENGINE_ENV = (
    "Settings from the environment: DIALER_REDIS_URL, DIALER_NAMESPACE, DIALER_AMI_URL "
    "(ami://user:secret@host:port, required), DIALER_ENGINE_ID, DIALER_LEASE_MS, "
    "DIALER_METRICS_PORT (serve /metrics there), DIALER_METRICS_HOST (its address, default "
    "127.0.0.1), DIALER_TRUNKS (name=channels/cps,... where 'unlimited' may stand "
    "for either number; a trunk not listed has no trunk limit), DIALER_CONTEXTS (the "
    "dialplan contexts campaigns may use, comma-separated; default dialer-outbound), "
    "DIALER_PACE_MS, "
    "DIALER_RATE_MARGIN_MS, DIALER_CLAIM_BATCH, DIALER_WRITE_LINGER_MS, "
    "DIALER_EVENT_LOOP (uvloop, the default when installed, or asyncio). Stops cleanly on "
    "SIGINT or SIGTERM (exit code 0)."
)
API_ENV = (
    "API settings: DIALER_API_TOKENS (required: admin:<token>,operator:<token>,viewer:<token>), "
    "DIALER_API_HOST (default 127.0.0.1), DIALER_API_PORT (default 8080), "
    "DIALER_API_METRICS_PUBLIC, DIALER_API_MAX_UPLOAD_MB."
)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed and DIALER_EVENT_LOOP is not ``asyncio``.

    The engine spends about a quarter of its CPU in the event loop's own machinery (handles,
    selector, transports); uvloop does that part in C (see loadtest/README.md for the figures).
    """
    choice = os.environ.get("DIALER_EVENT_LOOP", "uvloop")
    if choice not in ("uvloop", "asyncio"):
        raise SystemExit(f"DIALER_EVENT_LOOP must be uvloop or asyncio, not {choice[:20]!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_main(main: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main)


def _engine(args: argparse.Namespace) -> int:
    from dialer.app import run_engine

    run_main(run_engine(settings_from(args)))
    return 0


def _run(args: argparse.Namespace) -> int:
    from dialer.app import run_service

    settings = settings_from(args)
    api = ApiSettings.from_env()
    run_main(run_service(settings, api))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "engine",
        parents=[common],
        help="run one engine process (dials the Running campaigns with other engines)",
        description="Run one engine process: it dials every Running campaign, sharing the "
        "work and the limits with any other engine on the same Redis. " + ENGINE_ENV,
    )
    p.set_defaults(func=_engine)
    p = sub.add_parser(
        "run",
        parents=[common],
        help="run an engine, the HTTP API and /metrics in one process",
        description="Run an engine, the HTTP control API and GET /metrics in one process. "
        + ENGINE_ENV
        + " "
        + API_ENV,
    )
    p.set_defaults(func=_run)
