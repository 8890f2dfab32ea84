"""Campaign endpoints: list, create, read, edit, delete, and the lifecycle commands.

The commands and their rules are :mod:`dialer.commands`; this module parses and renders.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.commands import CampaignDraining
from dialer.domain.campaign import CampaignSettings
from dialer.engine.control import CommandResult
from dialer.store.breaker import BreakerStore

from .context import ApiContext, path_int
from .errors import ApiError
from .params import CampaignEditBody, CampaignSettingsBody, CampaignsQuery, HangupBody
from .schemas import campaign_view
from .spec import body_of, query_of


def _result(result: CommandResult) -> dict[str, object]:
    return {
        "id": result.campaign_id,
        "status": result.status.value,
        "status_label": result.status.label,
        "draining": result.draining,
    }


async def list_campaigns(ctx: ApiContext, request: Request) -> Response:
    query = query_of(request, CampaignsQuery)
    status, offset, limit = query.status, query.offset, query.limit
    found = await ctx.store.list_campaigns(status=status, offset=offset, limit=limit)
    breakers = BreakerStore(ctx.store)
    found = [await breakers.with_reason(c) for c in found]
    return JSONResponse(
        {
            "campaigns": [campaign_view(c) for c in found],
            "offset": offset,
            "limit": limit,
            "next_offset": offset + len(found) if len(found) == limit else None,
        }
    )


async def create_campaign(ctx: ApiContext, request: Request) -> Response:
    body = body_of(request, CampaignSettingsBody).model_dump(mode="json", exclude_unset=True)
    cid = (await ctx.commands.create(CampaignSettings.from_dict(body))).campaign_id
    campaign = await ctx.store.get_campaign(cid)
    return JSONResponse(
        campaign_view(campaign), status_code=201, headers={"Location": f"/campaigns/{cid}"}
    )


async def get_campaign(ctx: ApiContext, request: Request) -> Response:
    cid = path_int(request, "campaign_id")
    campaign = await BreakerStore(ctx.store).with_reason(await ctx.store.get_campaign(cid))
    counts = await ctx.store.counts(cid)
    return JSONResponse(campaign_view(campaign, counts))


async def edit_campaign(ctx: ApiContext, request: Request) -> Response:
    """Top-level merge: fields given replace the stored ones; the result is validated whole."""
    cid = path_int(request, "campaign_id")
    changes = body_of(request, CampaignEditBody).model_dump(mode="json", exclude_unset=True)
    return JSONResponse(campaign_view(await ctx.commands.edit(cid, changes, merge=True)))


async def delete_campaign(ctx: ApiContext, request: Request) -> Response:
    """Cancels a live campaign first (its calls drain), then deletes; call records stay."""
    cid = path_int(request, "campaign_id")
    try:
        await ctx.commands.delete(cid)
    except CampaignDraining as exc:
        raise ApiError(409, "campaign_draining", str(exc), {"status": exc.status.value}) from None
    return Response(status_code=204)


async def start_campaign(ctx: ApiContext, request: Request) -> Response:
    return JSONResponse(_result(await ctx.commands.start(path_int(request, "campaign_id"))))


async def pause_campaign(ctx: ApiContext, request: Request) -> Response:
    return JSONResponse(_result(await ctx.commands.pause(path_int(request, "campaign_id"))))


async def resume_campaign(ctx: ApiContext, request: Request) -> Response:
    return JSONResponse(_result(await ctx.commands.resume(path_int(request, "campaign_id"))))


async def stop_campaign(ctx: ApiContext, request: Request) -> Response:
    """Cancel for good; ``{"hangup": true}`` hangs up calls in flight instead of draining."""
    cid = path_int(request, "campaign_id")
    hangup = body_of(request, HangupBody).hangup
    return JSONResponse(_result(await ctx.commands.stop(cid, hangup=hangup)))


async def stop_all(ctx: ApiContext, request: Request) -> Response:
    results = await ctx.commands.stop_all(hangup=body_of(request, HangupBody).hangup)
    return JSONResponse({"stopped": [_result(r) for r in results]})
