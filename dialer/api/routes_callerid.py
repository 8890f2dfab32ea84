"""A recipient list's caller id: a fixed one, or a caller-ID pool (dialer.domain.callerid)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.domain.callerid import CallerIdSource

from .context import ApiContext, path_int
from .params import CallerIdBody
from .spec import body_of


def _view(list_id: int, source: CallerIdSource) -> dict[str, object]:
    return {"id": list_id, **source.to_dict()}


async def get_list_caller_id(ctx: ApiContext, request: Request) -> Response:
    """The list's own settings (both null: the campaign's apply)."""
    cid = path_int(request, "campaign_id")
    list_id = path_int(request, "list_id")
    source = await ctx.commands.list_caller_id(cid, list_id)
    return JSONResponse(_view(list_id, source))


async def put_list_caller_id(ctx: ApiContext, request: Request) -> Response:
    """Replace the list's settings (``{}`` or both null: the campaign's apply again). Engines
    apply a change within 5 seconds, whatever the campaign's status."""
    cid = path_int(request, "campaign_id")
    list_id = path_int(request, "list_id")
    body = body_of(request, CallerIdBody).model_dump(mode="json", exclude_unset=True)
    source = CallerIdSource.from_dict(body)
    await ctx.commands.set_list_caller_id(cid, list_id, source)
    return JSONResponse(_view(list_id, source))
