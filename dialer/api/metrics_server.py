"""The engine's own ``/metrics`` port (DIALER_METRICS_HOST / DIALER_METRICS_PORT).

A Starlette app of one route, ``GET /metrics`` (HEAD too), served by uvicorn in the engine's
event loop through the API's :func:`~dialer.api.server.serve_asgi`. No token: it is for a
Prometheus scraper, so it listens on 127.0.0.1 unless told otherwise. ``dialer run`` also
serves the same exposition on the API port (``GET /metrics``, see DIALER_API_METRICS_PUBLIC).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dialer.metrics import DialerMetrics

from .routes_meta import exposition
from .server import serve_asgi

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class MetricsEndpoint:
    """The address the metrics server listens on, read from its socket."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"


def metrics_app(metrics: DialerMetrics) -> Starlette:
    """``GET /metrics`` (Starlette answers HEAD, 404 and 405 with ``Allow``)."""

    async def scrape(request: Request) -> Response:
        return exposition(metrics, request)

    return Starlette(routes=[Route("/metrics", scrape, methods=["GET"])])


@asynccontextmanager
async def serve_metrics(
    metrics: DialerMetrics, host: str = DEFAULT_HOST, port: int = 9108
) -> AsyncIterator[MetricsEndpoint]:
    """Serve ``GET /metrics`` on ``host:port`` (0: a free port) while the block runs.

    OSError when the address cannot be bound. Scrapes are short: on exit, one in progress gets
    a second to finish.
    """
    app = metrics_app(metrics)
    async with serve_asgi(app, host, port, name="dialer-metrics", graceful_s=1) as bound:
        endpoint = MetricsEndpoint(bound.host, bound.port)
        log.info("metrics on %s", endpoint.url)
        yield endpoint
