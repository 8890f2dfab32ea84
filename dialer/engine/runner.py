"""One campaign's pacing loop inside one engine process.

The loop asks Redis for the next call (``claim``: status, channel leases, CPS window and the due
contact, all in one atomic script shared by every engine process) and originates it. When Redis
says no, the loop waits for the reason to pass: a channel to free (woken by a local hangup, or
re-checked every ``full_poll`` for other processes' hangups), the CPS window to slide, the next
retry to fall due, or a status change.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from dialer.domain.calls import RawOutcome
from dialer.domain.campaign import CampaignSettings
from dialer.domain.lifecycle import CampaignCommand, next_status
from dialer.domain.statuses import CampaignStatus
from dialer.engine.calls import LiveCall
from dialer.engine.cancel import checkpoint
from dialer.engine.control import HANGUP_REASON, PLAN_LIMIT_REASON
from dialer.errors import (
    ActionFailed,
    NotFound,
    PbxUnavailable,
    ScriptError,
    StoreError,
    TransitionRefused,
    ValidationError,
)
from dialer.metrics import OriginateFailure
from dialer.pbx.base import CallEnded, OriginateRequest
from dialer.pbx.sanitize import channel_variables
from dialer.store.dnc import finish_blocked
from dialer.store.models import ClaimResult, Usage

if TYPE_CHECKING:
    from dialer.engine.engine import Engine

log = logging.getLogger(__name__)

_MAX_IDLE = 0.5  # never sleep longer than this without looking at the campaign again


def new_call_id() -> str:
    return f"dlr-{uuid.uuid4().hex}"


class CampaignRunner:
    def __init__(
        self,
        engine: Engine,
        campaign_id: int,
        settings: CampaignSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.campaign_id = campaign_id
        self.settings = settings
        self._engine = engine
        self._clock = clock
        self._slot_freed = asyncio.Event()
        self._wake = asyncio.Event()
        self.calls: dict[str, LiveCall] = {}

    def slot_freed(self) -> None:
        self._slot_freed.set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Dial until the campaign is no longer Running here; then drain-check and return."""
        store = self._engine.store
        cfg = self._engine.settings
        limit = cfg.trunk_limit(self.settings.trunk)
        if plan_exhausted(self.settings, await store.usage(self.campaign_id)):
            try:  # resumed although its plan is used up
                await self._engine.control.pause(self.campaign_id, reason=PLAN_LIMIT_REASON)
            except TransitionRefused:
                pass
            return
        while True:
            checkpoint()
            if not self._engine.pbx.connected:
                await self._sleep(self._wake, _MAX_IDLE)
                continue
            call_id = new_call_id()
            started = time.perf_counter()
            try:
                res = await store.claim(
                    self.campaign_id,
                    self.settings.trunk,
                    call_id,
                    cfg.engine_id,
                    lease_ms=cfg.lease_ms,
                    max_channels=self.settings.max_channels,
                    trunk_max_channels=limit.max_channels,
                    cps=self.settings.cps,
                    trunk_cps=limit.cps,
                    rate_margin_ms=cfg.rate_margin_ms,
                )
            except NotFound:
                return  # deleted
            except StoreError as exc:
                if isinstance(exc, ScriptError):
                    self._engine.metrics.lua_error("claim")
                log.warning("campaign %s: claim failed: %s", self.campaign_id, exc)
                await asyncio.sleep(_MAX_IDLE)
                continue
            self._engine.metrics.observe_redis("claim", time.perf_counter() - started)
            if res.kind == "ok":
                if await self._engine.dnc.blocked(res.phone, self.campaign_id):
                    await finish_blocked(store, self.campaign_id, self.settings.trunk, call_id, res)
                    continue
                await self._dial(call_id, res)
            elif res.kind == "full":
                self._slot_freed.clear()
                await self._sleep(self._slot_freed, cfg.full_poll)
            elif res.kind == "rate":
                await asyncio.sleep(max(res.wait_ms, 1) / 1000)
            elif res.kind == "empty":
                if await self._maybe_complete(res):
                    return
            else:  # "status": not Running any more
                await self._not_running(res.status or CampaignStatus.DRAFT)
                return

    async def _dial(self, call_id: str, res: ClaimResult) -> None:
        assert res.contact_id is not None
        assert res.phone is not None
        now = self._clock()
        call = LiveCall(
            call_id=call_id,
            campaign_id=self.campaign_id,
            trunk=self.settings.trunk,
            contact_id=res.contact_id,
            phone=res.phone,
            attempts=res.attempts,
            tech_failures=res.tech_failures,
            claimed_at=now,
            engine_id=self._engine.settings.engine_id,
        )
        variables = channel_variables(res.vars)
        variables.update(self.settings.variables)
        variables["DIALER_AMD"] = "1" if self.settings.amd else "0"
        variables["DIALER_CAMPAIGN"] = str(self.campaign_id)
        request = OriginateRequest(
            call_id=call_id,
            trunk=self.settings.trunk,
            number=res.phone,
            context=self.settings.context,
            exten=self.settings.extension,
            ring_timeout=self.settings.ring_timeout,
            caller_id=self.settings.caller_id,
            variables=variables,
        )
        self.calls[call_id] = call
        self._engine.register(call, self)
        metrics = self._engine.metrics
        try:
            await self._engine.pbx.originate(request)
            metrics.originated(self.campaign_id, call.trunk)
        except ValidationError as exc:
            metrics.originate_failed(self.campaign_id, call.trunk, OriginateFailure.NOT_DIALABLE)
            log.info(
                "campaign %s contact %s: not dialable: %s", self.campaign_id, call.contact_id, exc
            )
            await self._engine.finish(
                call, _undialed(call, now, RawOutcome(answered=False, invalid_number=True))
            )
            return
        except ActionFailed as exc:
            metrics.originate_failed(self.campaign_id, call.trunk, OriginateFailure.REFUSED)
            log.warning("campaign %s: originate refused: %s", self.campaign_id, exc)
            await self._engine.finish(
                call, _undialed(call, now, RawOutcome(answered=False, originate_failed=True))
            )
            return
        except PbxUnavailable as exc:
            metrics.originate_failed(self.campaign_id, call.trunk, OriginateFailure.PBX_UNAVAILABLE)
            # Unknown whether the PBX has the call: keep following it; the lease and the
            # reconciliation with the PBX's channel list settle it. Never re-send.
            log.warning(
                "campaign %s: PBX lost during originate of %s: %s", self.campaign_id, call_id, exc
            )
        try:
            await self._engine.store.mark_originated(call_id, self.campaign_id)
        except StoreError as exc:
            log.warning("campaign %s: mark_originated %s: %s", self.campaign_id, call_id, exc)

    async def _maybe_complete(self, res: ClaimResult) -> bool:
        store = self._engine.store
        if res.next_due_ms is not None and res.next_due_ms >= 0:
            wait = max(0.0, res.next_due_ms / 1000 - self._clock())
            await self._sleep(self._wake, min(wait, _MAX_IDLE))
            return False
        stats = await store.queue_stats(self.campaign_id)
        busy = stats.inflight or stats.claimed or stats.pending_total
        if busy or await store.orphaned_calls(self.campaign_id):
            self._slot_freed.clear()  # wait for the next hang-up, not an old one
            await self._sleep(self._slot_freed, _MAX_IDLE)
            return False
        try:
            target = next_status(CampaignStatus.RUNNING, CampaignCommand.COMPLETE)
            await store.transition(self.campaign_id, (CampaignStatus.RUNNING,), target)
            log.info("campaign %s completed", self.campaign_id)
        except TransitionRefused:
            pass  # another engine completed it, or a person paused/stopped it meanwhile
        return True

    async def _not_running(self, status: CampaignStatus) -> None:
        if status is CampaignStatus.CANCELLING:
            campaign = await self._engine.store.get_campaign(self.campaign_id)
            if campaign.status_reason == HANGUP_REASON:
                for call_id in list(self.calls):
                    try:
                        await self._engine.pbx.hangup(call_id)
                    except Exception as exc:
                        log.warning("hang-up of %s failed: %s", call_id, exc)
        if status in (CampaignStatus.PAUSING, CampaignStatus.CANCELLING):
            await self._engine.control.drained(self.campaign_id)

    async def _sleep(self, event: asyncio.Event, at_most: float) -> None:
        try:
            async with asyncio.timeout(at_most):
                await event.wait()
        except TimeoutError:
            pass
        self._wake.clear()


def _undialed(call: LiveCall, now: float, raw: RawOutcome) -> CallEnded:
    """The end of an attempt that never reached the PBX."""
    return CallEnded(call_id=call.call_id, raw=raw, ended_at=now, started_at=now)


def plan_exhausted(settings: CampaignSettings, usage: Usage) -> bool:
    limits = settings.limits
    if limits is None:
        return False
    if limits.max_attempts_total is not None and usage.attempts >= limits.max_attempts_total:
        return True
    return limits.max_minutes is not None and usage.talk_seconds >= limits.max_minutes * 60
