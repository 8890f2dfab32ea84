"""Callback commands (set or move, cancel, list), shared by the HTTP API and the CLI.

The rules are :mod:`dialer.domain.callbacks` (when a callback may dial); the atomic change is
``callback.lua`` (:mod:`dialer.store.callbacks`). The clock is the store's (Redis ``TIME``):
the same clock the claim script dials by.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialer.domain.callbacks import (
    CALLBACK_CAMPAIGN_STATUSES,
    CANCELLED_DIALPLAN_STATUS,
    CallbackPlan,
    plan_callback,
)
from dialer.domain.campaign import CampaignSettings
from dialer.errors import TransitionRefused
from dialer.store.callbacks import CallbackChange, CallbackStore, CallbackView
from dialer.store.redis_store import RedisStore

__all__ = ["CallbackCommands", "CallbackSet"]


@dataclass(frozen=True, slots=True)
class CallbackSet:
    """A callback set or moved: when it was asked for and when it dials (``plan``), and what
    the contact was before (``change``)."""

    plan: CallbackPlan
    change: CallbackChange


class CallbackCommands:
    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.callbacks = CallbackStore(store)

    async def _settings(self, cid: int) -> CampaignSettings:
        campaign = await self.store.get_campaign(cid)  # NotFound
        if campaign.status not in CALLBACK_CAMPAIGN_STATUSES:
            raise TransitionRefused(
                f"campaign {cid} is {campaign.status.label}: its callbacks cannot change",
                status=campaign.status.value,
                command="callback",
            )
        return CampaignSettings.from_json(campaign.settings_json)

    async def schedule(
        self, cid: int, contact_id: int, at: object, *, only_move: bool = False
    ) -> CallbackSet:
        """Set or move the callback of a contact to ``at`` (ISO 8601 with its offset): the
        contact is Rescheduled and dials at ``at``, or at the next opening of the calling
        hours when they are closed then (``plan.moved``)."""
        settings = await self._settings(cid)
        now_ms = await self.callbacks.now_ms()
        plan = plan_callback(at, now=now_ms / 1000, settings=settings)
        change = await self.callbacks.schedule(
            cid,
            contact_id,
            due_ms=plan.due_ms,
            requested_ms=plan.requested_ms,
            allowed=CALLBACK_CAMPAIGN_STATUSES,
            only_move=only_move,
        )
        return CallbackSet(plan, change)

    async def cancel(self, cid: int, contact_id: int) -> CallbackChange:
        """Cancel the contact's callback: it returns to its state before the callback (a
        dialplan callback ends as Answered)."""
        await self._settings(cid)
        return await self.callbacks.cancel(
            cid,
            contact_id,
            dialplan_status=CANCELLED_DIALPLAN_STATUS,
            allowed=CALLBACK_CAMPAIGN_STATUSES,
        )

    async def upcoming(
        self, cid: int, *, after_ms: int | None = None, limit: int = 100
    ) -> list[CallbackView]:
        return await self.callbacks.upcoming(cid, after_ms=after_ms, limit=limit)
