"""Call records (JSON pages and a streamed CSV export) and campaign analytics.

Records outlive their campaign: both record endpoints keep working after a delete (404 only
for a campaign that never existed or left no record).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from dialer.analytics import campaign_analytics
from dialer.errors import NotFound
from dialer.records_csv import RecordsCsv
from dialer.store.queries import campaign_known
from dialer.store.redis_store import RedisStore

from .context import ApiContext, path_int
from .params import RecordsQuery
from .schemas import record_view
from .spec import query_of

CSV_PAGE = 1000


async def _require_known(store: RedisStore, cid: int) -> None:
    if not await campaign_known(store, cid):
        raise NotFound(f"campaign {cid} does not exist and left no call records")


async def get_records(ctx: ApiContext, request: Request) -> Response:
    """One record per call, oldest first; page with ``after`` = the last ``record_id``."""
    cid = path_int(request, "campaign_id")
    query = query_of(request, RecordsQuery)
    after, limit = query.after, query.limit
    await _require_known(ctx.store, cid)
    records = await ctx.store.records(cid, after=after, count=limit)
    return JSONResponse(
        {
            "records": [record_view(rid, fields) for rid, fields in records],
            "next_after": records[-1][0] if len(records) == limit else None,
        }
    )


async def _csv_rows(store: RedisStore, cid: int) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = RecordsCsv(buffer)
    writer.header()
    after = "-"
    while True:
        records = await store.records(cid, after=after, count=CSV_PAGE)
        for rid, fields in records:
            writer.row(rid, fields)
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
        if len(records) < CSV_PAGE:
            return
        after = records[-1][0]


async def get_records_csv(ctx: ApiContext, request: Request) -> Response:
    """Every record as CSV (RFC 4180, UTF-8), streamed page by page; columns RECORD_COLUMNS;
    formula-like cells neutralised (dialer.records_csv)."""
    cid = path_int(request, "campaign_id")
    await _require_known(ctx.store, cid)
    return StreamingResponse(
        _csv_rows(ctx.store, cid),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="campaign-{cid}-records.csv"'},
    )


async def get_analytics(ctx: ApiContext, request: Request) -> Response:
    cid = path_int(request, "campaign_id")
    analytics = await campaign_analytics(ctx.store, cid)
    return JSONResponse(analytics.to_dict())
