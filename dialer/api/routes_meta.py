"""Health, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.errors import StoreError
from dialer.metrics import DialerMetrics

from .context import ApiContext
from .errors import ApiError


async def health(ctx: ApiContext, request: Request) -> Response:
    """200 when Redis answers a PING, else 503 ``store_unavailable``."""
    try:
        await ctx.store.ping()
    except StoreError:
        return JSONResponse({"status": "unavailable", "store": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "store": "ok"})


async def metrics(ctx: ApiContext, request: Request) -> Response:
    if ctx.metrics is None:
        raise ApiError(404, "not_found", "this API serves no metrics")
    return exposition(ctx.metrics, request)


def exposition(metrics: DialerMetrics, request: Request) -> Response:
    """The Prometheus exposition, or OpenMetrics when the Accept header asks for it."""
    body, content_type = metrics.render(request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": content_type})


async def openapi(ctx: ApiContext, request: Request) -> Response:
    """The document built by the app factory (:func:`dialer.api.openapi.openapi_document`)."""
    return JSONResponse(request.app.state.openapi)
