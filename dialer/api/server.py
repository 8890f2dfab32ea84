"""Run an ASGI app with uvicorn inside the current event loop, next to the engine.

:func:`serve_asgi` is the one way the dialer serves HTTP: the API (:func:`serve_api`) and the
engine's own ``/metrics`` port (:func:`dialer.api.metrics_server.serve_metrics`) both use it.
The socket is bound here (so port 0 works and a busy port raises OSError at once, instead of
uvicorn's ``sys.exit``), uvicorn logs only its warnings and errors (no log config of its own,
no access log), and its signal handlers are left out: the composition root owns SIGINT/SIGTERM
and leaves the ``async with`` block to stop the server. The server's task lives only inside
that block.
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
    """The address a server listens on, read from its socket (port 0 resolved)."""

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
        self.ready = asyncio.Event()  # set once started, or once serve() ended without starting

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    # Accepted connections inherit it. asyncio sets it only on sockets made with
    # proto=IPPROTO_TCP, which create_server's are not: without it every response whose
    # headers and body go out in two writes waited for the client's delayed ACK (~40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


@asynccontextmanager
async def serve_asgi(
    app: ASGIApp, host: str, port: int, *, name: str, graceful_s: float = 5.0
) -> AsyncIterator[ApiEndpoint]:
    """Serve ``app`` on ``host:port`` (0: a free port) while the block runs.

    Yields the address bound. OSError when the socket cannot be bound. On exit the server
    stops accepting, lets requests in progress finish for up to ``graceful_s`` seconds, then
    closes; its task (named ``name``) is awaited before the block is left.
    """
    sock = _bind(host, port)
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        # its start/stop lines repeat ours ("API on ...", "metrics on ..."): warnings only,
        # unless the process logs at debug level (``dialer -v``)
        log_level=None if log.isEnabledFor(logging.DEBUG) else logging.WARNING,
        access_log=False,
        http="h11",
        ws="none",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(graceful_s) or 1,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=name)
    task.add_done_callback(lambda _: server.ready.set())
    try:
        try:
            async with asyncio.timeout(_STARTUP_TIMEOUT):
                await server.ready.wait()
        except TimeoutError:
            raise RuntimeError(f"{name} did not start within {_STARTUP_TIMEOUT:g} s") from None
        if task.done() or not server.started:
            task.result()  # raises what made it stop
            raise RuntimeError(f"{name} did not start")
        bound_host, bound_port = sock.getsockname()[:2]
        yield ApiEndpoint(bound_host, bound_port)
    finally:
        server.should_exit = True
        try:
            await task
        except BaseException:
            task.cancel()  # cancelled again while shutting down: stop waiting for requests
            raise
        finally:
            sock.close()


@asynccontextmanager
async def serve_api(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 8080, *, graceful_s: float = 5.0
) -> AsyncIterator[ApiEndpoint]:
    """Serve the API ``app`` on ``host:port`` (0: a free port) while the block runs."""
    async with serve_asgi(app, host, port, name="dialer-api", graceful_s=graceful_s) as endpoint:
        log.info("API on %s", endpoint.url)
        yield endpoint
