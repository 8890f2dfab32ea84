"""Callbacks: set or move one (POST), cancel it (DELETE), list the upcoming ones (GET).

The rules live in :mod:`dialer.domain.callbacks`, the commands in
:mod:`dialer.engine.callbacks` (reached through :mod:`dialer.commands`); this module only
parses and renders.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.engine.callbacks import CallbackSet
from dialer.errors import TransitionRefused
from dialer.store.callbacks import CallbackChange, CallbackInCall, CallbackView

from .context import ApiContext, path_int
from .errors import ApiError
from .params import CallbackBody, CallbacksQuery
from .spec import body_of, query_of


def iso_ms(ms: int | None) -> str | None:
    """Epoch ms as ISO 8601 in UTC (None stays None)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def set_view(result: CallbackSet) -> dict[str, object]:
    plan, change = result.plan, result.change
    return {
        "contact_id": change.contact_id,
        "status": change.after.value,
        "requested_at": iso_ms(plan.requested_ms),
        "due_at": iso_ms(plan.due_ms),
        "due_ms": plan.due_ms,
        "moved_by_hours": plan.moved,
        "reason": plan.reason,
        "previous_status": change.before.value,
        "replaced": change.source_before.value if change.source_before else None,
    }


def cancel_view(change: CallbackChange) -> dict[str, object]:
    return {
        "contact_id": change.contact_id,
        "status": change.after.value,
        "next_due_at": iso_ms(change.due_ms),
        "next_due_ms": change.due_ms,
        "cancelled": change.source_before.value if change.source_before else None,
    }


def callback_view(view: CallbackView) -> dict[str, object]:
    return {
        "contact_id": view.contact_id,
        "phone": view.phone,
        "list_id": view.list_id,
        "attempts": view.attempts,
        "due_at": iso_ms(view.due_ms),
        "due_ms": view.due_ms,
        "requested_at": iso_ms(view.requested_ms),
        "source": view.source.value,
    }


def _refused(exc: TransitionRefused) -> ApiError:
    code = "contact_in_call" if isinstance(exc, CallbackInCall) else "callback_refused"
    return ApiError(409, code, exc.message, {"status": exc.status, "command": "callback"})


async def set_callback(ctx: ApiContext, request: Request) -> Response:
    """Body ``{"at": "2026-12-24T09:00:00+01:00"}``: set the contact's callback, or move it."""
    cid = path_int(request, "campaign_id")
    contact_id = path_int(request, "contact_id")
    at = body_of(request, CallbackBody).at
    try:
        result = await ctx.commands.callbacks.schedule(cid, contact_id, at)
    except TransitionRefused as exc:
        raise _refused(exc) from None
    return JSONResponse(set_view(result))


async def cancel_callback(ctx: ApiContext, request: Request) -> Response:
    """Cancel the contact's callback: it returns to its state before it (README: Callbacks)."""
    cid = path_int(request, "campaign_id")
    contact_id = path_int(request, "contact_id")
    try:
        change = await ctx.commands.callbacks.cancel(cid, contact_id)
    except TransitionRefused as exc:
        raise _refused(exc) from None
    return JSONResponse(cancel_view(change))


async def list_callbacks(ctx: ApiContext, request: Request) -> Response:
    """Upcoming callbacks in due order; ``after`` (due_ms of the last one seen) pages."""
    cid = path_int(request, "campaign_id")
    query = query_of(request, CallbacksQuery)
    after, limit = query.after, query.limit
    views = await ctx.commands.callbacks.upcoming(cid, after_ms=after or None, limit=limit)
    last = views[-1].due_ms if len(views) == limit else None
    return JSONResponse({"callbacks": [callback_view(v) for v in views], "next_after": last})
