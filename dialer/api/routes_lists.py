"""Recipient lists and contacts: CSV upload, list status, stopping a list, paging contacts."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.domain.callerid import CallerIdSource
from dialer.domain.lifecycle import ListCommand, next_list_status
from dialer.domain.statuses import CallStatus
from dialer.errors import NotFound, TransitionRefused
from dialer.importer import ColumnMapping, import_csv
from dialer.store.callerid import set_list_caller_id
from dialer.store.queries import contacts_page

from .bodies import spool_upload
from .context import ApiContext, path_int
from .errors import EDITABLE, ApiError, not_editable, translate
from .schemas import contact_view, enum_param, import_report, int_param, list_views, text_param

MAX_PAGE = 1000
_ADDING = "lists can be added"
CSV_TYPES = frozenset({"text/csv", "text/plain", "application/csv", "application/octet-stream"})


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


async def upload_list(ctx: ApiContext, request: Request) -> Response:
    """The body is the CSV file itself (not multipart); it becomes one new list, or nothing.

    Query: ``default_region`` (ISO country for numbers without +, default US),
    ``phone_column``, ``name_column``, ``timezone_column`` (header names; default: guessed);
    the list's caller id: ``caller_id``, or ``caller_id_pool`` (comma-separated numbers) with
    ``caller_id_mode`` (rotate, local) and ``caller_id_fallback``.
    """
    cid = path_int(request, "campaign_id")
    media = _media_type(request)
    if media and media not in CSV_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the CSV file as the body with Content-Type text/csv, not {media[:60]}",
        )
    query = request.query_params
    region = text_param(query, "default_region", max_len=8) or "US"
    mapping = ColumnMapping(
        phone=text_param(query, "phone_column"),
        name=text_param(query, "name_column"),
        timezone=text_param(query, "timezone_column"),
    )
    caller_ids = CallerIdSource.from_options(
        text_param(query, "caller_id", max_len=100),
        text_param(query, "caller_id_pool", max_len=20_000),
        text_param(query, "caller_id_mode", max_len=10),
        text_param(query, "caller_id_fallback", max_len=20),
    )
    campaign = await ctx.store.get_campaign(cid)  # before reading a large body for nothing
    if campaign.status not in EDITABLE:
        raise not_editable(cid, campaign.status, _ADDING)
    spool = await spool_upload(request, ctx.max_upload_bytes)
    try:
        report = await import_csv(ctx.store, cid, spool, mapping=mapping, default_region=region)
    except TransitionRefused:
        current = await ctx.store.get_campaign(cid)  # the status moved during the upload
        raise not_editable(cid, current.status, _ADDING) from None
    finally:
        await asyncio.to_thread(spool.close)
    if not caller_ids.empty and report.list_id is not None:
        await set_list_caller_id(ctx.store, cid, report.list_id, caller_ids)
    return JSONResponse(import_report(report), status_code=201)


async def get_lists(ctx: ApiContext, request: Request) -> Response:
    cid = path_int(request, "campaign_id")
    return JSONResponse({"lists": list_views(await ctx.store.list_status(cid))})


async def stop_list(ctx: ApiContext, request: Request) -> Response:
    """Stop one list for good: its contacts not dialed yet become Not dialed."""
    cid = path_int(request, "campaign_id")
    list_id = path_int(request, "list_id")
    lists = await ctx.store.list_status(cid)
    if list_id not in lists:
        raise NotFound(f"list {list_id} of campaign {cid} does not exist")
    try:
        status = next_list_status(list_id, lists[list_id], ListCommand.STOP)
    except TransitionRefused as exc:
        error = translate(exc)
        error.message = f"campaign {cid}: {error.message}"
        raise error from None
    moved = await ctx.store.stop_list(cid, list_id)
    return JSONResponse({"id": list_id, "status": status.value, "not_dialed": moved})


async def get_contacts(ctx: ApiContext, request: Request) -> Response:
    """Contacts in upload order. ``after`` (a contact id) pages cheaply; ``offset`` skips matches.

    With ``status`` the page is found by scanning at most 50,000 contacts: it may be short
    while ``next_after`` is not null; follow ``next_after`` until it is.
    """
    cid = path_int(request, "campaign_id")
    query = request.query_params
    status = enum_param(query, "status", CallStatus)
    after = int_param(query, "after", 0)
    offset = int_param(query, "offset", 0)
    limit = int_param(query, "limit", 50, minimum=1, maximum=MAX_PAGE)
    page = await contacts_page(
        ctx.store, cid, status=status, after=after, offset=offset, limit=limit
    )
    return JSONResponse(
        {
            "contacts": [contact_view(c) for c in page.contacts],
            "next_after": page.next_after,
        }
    )
