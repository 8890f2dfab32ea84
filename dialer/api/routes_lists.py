"""Recipient lists and contacts: CSV upload, list status, stopping a list, paging contacts."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.commands.campaigns import ADDING
from dialer.domain.callerid import CallerIdSource
from dialer.importer import ColumnMapping, alt_columns
from dialer.store.queries import contacts_page

from .bodies import spool_upload
from .context import ApiContext, path_int
from .params import ContactsQuery, UploadQuery
from .schemas import contact_view, import_report, list_views
from .spec import query_of, require_media

CSV_TYPES = frozenset({"text/csv", "text/plain", "application/csv", "application/octet-stream"})


async def upload_list(ctx: ApiContext, request: Request) -> Response:
    """The body is the CSV file itself (not multipart); it becomes one new list, or nothing.

    Query: ``default_region`` (ISO country for numbers without +, default US),
    ``phone_column``, ``name_column``, ``timezone_column`` (header names; default: guessed),
    ``alt_phone_columns`` (comma-separated headers of the alternate numbers, in dialing order);
    the list's caller id: ``caller_id``, or ``caller_id_pool`` (comma-separated numbers) with
    ``caller_id_mode`` (rotate, local) and ``caller_id_fallback``.
    """
    cid = path_int(request, "campaign_id")
    require_media(request, CSV_TYPES, "send the CSV file as the body with Content-Type text/csv")
    query = query_of(request, UploadQuery)
    region = query.default_region or "US"
    mapping = ColumnMapping(
        phone=query.phone_column,
        name=query.name_column,
        timezone=query.timezone_column,
        alt_phones=alt_columns(query.alt_phone_columns),
    )
    caller_ids = CallerIdSource.from_options(
        query.caller_id, query.caller_id_pool, query.caller_id_mode, query.caller_id_fallback
    )
    await ctx.commands.editable(cid, ADDING)  # before reading a large body for nothing
    spool = await spool_upload(request, ctx.max_upload_bytes)
    try:
        report = await ctx.commands.upload(
            cid, spool, mapping=mapping, region=region, caller_ids=caller_ids
        )
    finally:
        await asyncio.to_thread(spool.close)
    return JSONResponse(import_report(report), status_code=201)


async def get_lists(ctx: ApiContext, request: Request) -> Response:
    cid = path_int(request, "campaign_id")
    return JSONResponse({"lists": list_views(await ctx.store.list_status(cid))})


async def stop_list(ctx: ApiContext, request: Request) -> Response:
    """Stop one list for good: its contacts not dialed yet become Not dialed."""
    cid = path_int(request, "campaign_id")
    list_id = path_int(request, "list_id")
    status, moved = await ctx.commands.stop_list(cid, list_id)
    return JSONResponse({"id": list_id, "status": status.value, "not_dialed": moved})


async def get_contacts(ctx: ApiContext, request: Request) -> Response:
    """Contacts in upload order. ``after`` (a contact id) pages cheaply; ``offset`` skips matches.

    With ``status`` the page is found by scanning at most 50,000 contacts: it may be short
    while ``next_after`` is not null; follow ``next_after`` until it is.
    """
    cid = path_int(request, "campaign_id")
    query = query_of(request, ContactsQuery)
    page = await contacts_page(
        ctx.store,
        cid,
        status=query.status,
        after=query.after,
        offset=query.offset,
        limit=query.limit,
    )
    return JSONResponse(
        {
            "contacts": [contact_view(c) for c in page.contacts],
            "next_after": page.next_after,
        }
    )
