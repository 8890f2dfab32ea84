"""Campaign endpoints: list, create, read, edit, delete, and the lifecycle commands."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.domain.campaign import CampaignSettings
from dialer.domain.lifecycle import CampaignCommand
from dialer.engine.control import CommandResult
from dialer.errors import TransitionRefused
from dialer.store.breaker import BreakerStore
from dialer.store.models import CampaignRecord
from dialer.store.queries import set_identity

from .context import ApiContext, check_trunks, path_int
from .errors import EDITABLE, ApiError, commanding, not_editable
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


def _settings_of(campaign: CampaignRecord) -> dict[str, object]:
    """The stored settings to merge an edit into; none when they are not a JSON object (then
    only a complete body, validated whole as ever, replaces them)."""
    try:
        data = json.loads(campaign.settings_json)
    except (ValueError, RecursionError):
        data = None
    return data if isinstance(data, dict) else {}


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
    settings = CampaignSettings.from_dict(body)
    check_trunks(ctx, settings.trunk, settings.backup_trunk)
    cid = await ctx.control.create(settings)
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
    campaign = await ctx.store.get_campaign(cid)
    if campaign.status not in EDITABLE:
        raise not_editable(cid, campaign.status)
    settings = ctx.control.check(CampaignSettings.from_dict({**_settings_of(campaign), **changes}))
    check_trunks(ctx, settings.trunk, settings.backup_trunk)
    try:
        await ctx.store.update_settings(cid, json.dumps(settings.to_dict()), allowed=EDITABLE)
    except TransitionRefused:
        current = await ctx.store.get_campaign(cid)  # the status moved meanwhile
        raise not_editable(cid, current.status) from None
    await set_identity(ctx.store, cid, name=settings.name, trunk=settings.trunk)
    return JSONResponse(campaign_view(await ctx.store.get_campaign(cid)))


async def delete_campaign(ctx: ApiContext, request: Request) -> Response:
    """Cancels a live campaign first (its calls drain), then deletes; call records stay."""
    cid = path_int(request, "campaign_id")
    try:
        with commanding(cid, CampaignCommand.DELETE):
            await ctx.control.delete(cid, drain_timeout=ctx.delete_drain_timeout)
    except TimeoutError:
        campaign = await ctx.store.get_campaign(cid)
        raise ApiError(
            409,
            "campaign_draining",
            f"campaign {cid} is {campaign.status.label}: its calls were still draining after "
            f"{ctx.delete_drain_timeout:g} s; delete it again once it is Cancelled",
            {"status": campaign.status.value},
        ) from None
    return Response(status_code=204)


async def start_campaign(ctx: ApiContext, request: Request) -> Response:
    cid = path_int(request, "campaign_id")
    with commanding(cid, CampaignCommand.START):
        result = await ctx.control.start(cid)
    return JSONResponse(_result(result))


async def pause_campaign(ctx: ApiContext, request: Request) -> Response:
    cid = path_int(request, "campaign_id")
    with commanding(cid, CampaignCommand.PAUSE):
        result = await ctx.control.pause(cid)
    return JSONResponse(_result(result))


async def resume_campaign(ctx: ApiContext, request: Request) -> Response:
    cid = path_int(request, "campaign_id")
    with commanding(cid, CampaignCommand.RESUME):
        result = await ctx.control.resume(cid)
    return JSONResponse(_result(result))


async def _hangup_flag(ctx: ApiContext, request: Request) -> bool:
    return body_of(request, HangupBody).hangup


async def stop_campaign(ctx: ApiContext, request: Request) -> Response:
    """Cancel for good; ``{"hangup": true}`` hangs up calls in flight instead of draining."""
    cid = path_int(request, "campaign_id")
    hangup = await _hangup_flag(ctx, request)
    with commanding(cid, CampaignCommand.STOP):
        result = await ctx.control.stop(cid, hangup=hangup)
    return JSONResponse(_result(result))


async def stop_all(ctx: ApiContext, request: Request) -> Response:
    hangup = await _hangup_flag(ctx, request)
    results = await ctx.control.stop_all(hangup=hangup)
    return JSONResponse({"stopped": [_result(r) for r in results]})
