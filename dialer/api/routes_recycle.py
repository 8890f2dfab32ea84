"""Recycling a finished or stopped list into a new list; removing contacts (operator role).

``POST /campaigns/{id}/lists/{list_id}/recycle`` ``{"statuses": [...], "into": null | id |
"new"}``; ``DELETE /campaigns/{id}/contacts/{contact_id}``; ``POST /campaigns/{id}/contacts/
remove`` ``{"ids": [...]}`` and/or ``{"phones": [...]}``. Rules: dialer.domain.recycle;
the commands: dialer.commands.
"""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.errors import NotFound
from dialer.store.recycle import RecycleRefused, RemoveRefused, Target

from .context import ApiContext, path_int
from .errors import ApiError
from .params import RecycleBody, RemoveBody
from .spec import body_of


async def recycle(ctx: ApiContext, request: Request) -> Response:
    cid = path_int(request, "campaign_id")
    list_id = path_int(request, "list_id")
    body = body_of(request, RecycleBody)
    into: Target = body.into
    try:
        report = await ctx.commands.recycle(
            cid, list_id, [s.value for s in body.statuses], into=into
        )
    except RecycleRefused as exc:
        raise ApiError(409, exc.code, exc.message, {"status": exc.status}) from None
    return JSONResponse(asdict(report), status_code=201 if report.list_id is not None else 200)


def _refused(exc: RemoveRefused) -> ApiError:
    return ApiError(409, "campaign_not_editable", exc.message, {"status": exc.status})


async def remove_one(ctx: ApiContext, request: Request) -> Response:
    cid = path_int(request, "campaign_id")
    contact_id = path_int(request, "contact_id")
    try:
        report = await ctx.commands.remove(cid, [contact_id])
    except RemoveRefused as exc:
        raise _refused(exc) from None
    if report.not_found:
        raise NotFound(f"contact {contact_id} of campaign {cid} does not exist")
    if report.in_call:
        raise ApiError(
            409,
            "contact_in_call",
            f"contact {contact_id} of campaign {cid} is in a call; remove it once the call ended",
        )
    return JSONResponse(
        {"id": contact_id, "status": "removed", "already_removed": bool(report.already_removed)}
    )


async def remove_many(ctx: ApiContext, request: Request) -> Response:
    cid = path_int(request, "campaign_id")
    body = body_of(request, RemoveBody)
    ids = [int(i) for i in body.ids]
    try:
        report = await ctx.commands.remove(cid, ids, body.phones, body.default_region)
    except RemoveRefused as exc:
        raise _refused(exc) from None
    return JSONResponse(asdict(report))
