"""``GET /campaigns/{id}/why``: what holds a campaign back right now (dialer.domain.why)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.store.why import explain

from .context import ApiContext, path_int


async def get_why(ctx: ApiContext, request: Request) -> Response:
    report = await explain(ctx.store, path_int(request, "campaign_id"))
    return JSONResponse(report.to_dict())
