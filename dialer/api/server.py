"""Run the API with uvicorn inside the current event loop, next to the engine.

The socket is bound here (so port 0 works and a busy port raises OSError at once, instead of
uvicorn's ``sys.exit``), and uvicorn's signal handlers are left out: the composition root owns
SIGINT/SIGTERM and leaves the ``async with`` block to stop the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger(__name__)

_STARTUP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ApiEndpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (the caller's loop owns the signals)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    sock.setblocking(False)
    return sock


@asynccontextmanager
async def serve_api(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 8080, *, graceful_s: float = 5.0
) -> AsyncIterator[ApiEndpoint]:
    """Serve ``app`` on ``host:port`` (0: a free port) while the block runs.

    On exit the server stops accepting, lets requests in progress finish for up to
    ``graceful_s`` seconds, then closes.
    """
    sock = _bind(host, port)
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        http="h11",
        ws="none",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(graceful_s) or 1,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="dialer-api")
    try:
        ready = asyncio.create_task(server.ready.wait())
        try:
            await asyncio.wait(
                (task, ready), timeout=_STARTUP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ready.cancel()
        if task.done() or not server.started:
            task.result()  # raises what made it stop
            raise RuntimeError("the API server did not start")
        endpoint = ApiEndpoint(host, sock.getsockname()[1])
        log.info("API on %s", endpoint.url)
        yield endpoint
    finally:
        server.should_exit = True
        try:
            await task
        except BaseException:
            task.cancel()  # cancelled again while shutting down: stop waiting for requests
            raise
        finally:
            sock.close()
