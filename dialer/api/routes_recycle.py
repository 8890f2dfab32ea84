"""Recycling a finished or stopped list into a new list; removing contacts (operator role).

``POST /campaigns/{id}/lists/{list_id}/recycle`` ``{"statuses": [...], "into": null | id |
"new"}``; ``DELETE /campaigns/{id}/contacts/{contact_id}``; ``POST /campaigns/{id}/contacts/
remove`` ``{"ids": [...]}`` and/or ``{"phones": [...]}``. Rules: dialer.domain.recycle.
"""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.domain.recycle import MAX_REMOVE, recyclable_statuses
from dialer.errors import NotFound, ValidationError
from dialer.store.recycle import (
    RecycleRefused,
    RemoveRefused,
    Target,
    normalized_phones,
    recycle_list,
    remove_contacts,
)

from .bodies import read_object
from .context import ApiContext, path_int
from .errors import ApiError

_RECYCLE_FIELDS = frozenset({"statuses", "into"})
_REMOVE_FIELDS = frozenset({"ids", "phones", "default_region"})


def _unknown(data: dict[str, object], allowed: frozenset[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise ValidationError(
            f"unknown field {extra[0][:40]!r}; allowed: {', '.join(sorted(allowed))}"
        )


def _target(value: object) -> Target:
    if value is None or value == "new":
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValidationError('into: null (this campaign), a campaign id, or "new"')


def _strings(data: dict[str, object], name: str) -> list[str]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"{name}: a list of strings")
    if len(value) > MAX_REMOVE:
        raise ValidationError(f"{name}: at most {MAX_REMOVE} per request")
    return [str(v) for v in value]


async def recycle(ctx: ApiContext, request: Request) -> Response:
    cid = path_int(request, "campaign_id")
    list_id = path_int(request, "list_id")
    data = await read_object(request, ctx.max_body_bytes)
    _unknown(data, _RECYCLE_FIELDS)
    statuses = recyclable_statuses(_strings(data, "statuses"))
    into = _target(data.get("into"))
    try:
        report = await recycle_list(ctx.store, cid, list_id, statuses, into=into)
    except RecycleRefused as exc:
        raise ApiError(409, exc.code, exc.message, {"status": exc.status}) from None
    return JSONResponse(asdict(report), status_code=201 if report.list_id is not None else 200)


def _refused(exc: RemoveRefused) -> ApiError:
    return ApiError(409, "campaign_not_editable", exc.message, {"status": exc.status})


async def remove_one(ctx: ApiContext, request: Request) -> Response:
    cid = path_int(request, "campaign_id")
    contact_id = path_int(request, "contact_id")
    try:
        report = await remove_contacts(ctx.store, cid, [contact_id])
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
    data = await read_object(request, ctx.max_body_bytes)
    _unknown(data, _REMOVE_FIELDS)
    ids = data.get("ids", [])
    if (
        not isinstance(ids, list)
        or len(ids) > MAX_REMOVE
        or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)
    ):
        raise ValidationError(f"ids: a list of at most {MAX_REMOVE} contact ids (integers > 0)")
    region = data.get("default_region", "US")
    if not isinstance(region, str):
        raise ValidationError("default_region: an ISO country code, e.g. US")
    phones = normalized_phones(_strings(data, "phones"), region)
    if not ids and not phones:
        raise ValidationError("name the contacts to remove: ids and/or phones")
    try:
        report = await remove_contacts(ctx.store, cid, [int(i) for i in ids], phones)
    except RemoveRefused as exc:
        raise _refused(exc) from None
    return JSONResponse(asdict(report))
