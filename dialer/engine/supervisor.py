"""The supervisor: finds Running campaigns and runs a :class:`CampaignRunner` for each;
finishes pauses and stops that have drained; opens Scheduled campaigns when their calling hours
open (and ends those whose end date passed); sets the store-wide gauges of the campaigns it
knows (every engine reports them).

One bad campaign never stops it: a campaign whose stored settings fail validation when read is
paused with the problem as its reason (``CampaignControl.pause_invalid``) and the others go
on; a runner is still kept for it (never run) so that the lease keeper settles the calls a dead
engine left in flight (their results written by the default retry policy).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from dialer.config import EngineSettings
from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CampaignStatus
from dialer.engine.cancel import checkpoint
from dialer.engine.control import CampaignControl
from dialer.engine.ports import Runner, SupervisorStore
from dialer.engine.trunkhealth import TrunkHealth
from dialer.engine.writer import fallback_settings
from dialer.errors import DialerError, InvalidSettings, NotFound, StoreError, TransitionRefused
from dialer.metrics import DialerMetrics
from dialer.store.breaker import BreakerStore
from dialer.store.models import CampaignRecord
from dialer.store.redis_store import ACTIVE_STATUSES

log = logging.getLogger(__name__)


class RunnableRunner(Runner, Protocol):
    """A runner the supervisor can run (CampaignRunner)."""

    async def run(self) -> None: ...


class Supervisor:
    def __init__(
        self,
        settings: EngineSettings,
        store: SupervisorStore,
        control: CampaignControl,
        metrics: DialerMetrics,
        breakers: BreakerStore,
        health: TrunkHealth,
        *,
        new_runner: Callable[[int, CampaignSettings], RunnableRunner],
    ) -> None:
        self._settings = settings
        self._store = store
        self._control = control
        self._metrics = metrics
        self._breakers = breakers
        self._health = health
        self._new_runner = new_runner
        self.runners: dict[int, RunnableRunner] = {}
        self.running: dict[int, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None

    def wake(self, cid: int) -> None:
        runner = self.runners.get(cid)
        if runner is not None:
            runner.wake()

    async def run(self, unwritten: Callable[[], int]) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            await self._loop(unwritten)

    async def _loop(self, unwritten: Callable[[], int]) -> None:
        last_gauges = 0.0
        indexed = False
        while True:
            checkpoint()
            try:
                if not indexed:  # a store written before the active index existed
                    active = await self._store.rebuild_active_index()
                    indexed = True
                    log.info("%d active campaigns", active)
                await self.once()
                if time.monotonic() - last_gauges >= 1.0:
                    last_gauges = time.monotonic()
                    self._metrics.set_unwritten(unwritten())
                    await self._update_gauges()
            except StoreError as exc:
                log.warning("supervisor: store unavailable: %s", exc)
            except DialerError as exc:  # one campaign's trouble: the next round goes on
                log.error("supervisor: %s", exc)
            await asyncio.sleep(self._settings.supervise_interval)

    async def _update_gauges(self) -> None:
        """Store-wide gauges of the campaigns this engine knows (every engine reports them)."""
        m = self._metrics
        for cid, runner in list(self.runners.items()):
            try:  # one round trip per campaign
                campaign, stats, counts = await self._store.campaign_stats(cid)
            except NotFound:
                m.forget_campaign(cid)
                del self.runners[cid]
                continue
            trunk = runner.settings.trunk
            draining = campaign.status in (CampaignStatus.PAUSING, CampaignStatus.CANCELLING)
            m.set_campaign_status(cid, campaign.status)
            m.set_limits(
                cid, trunk, max_channels=runner.settings.max_channels, cps=runner.settings.cps
            )
            limit = self._settings.trunk_limit(trunk)
            m.set_trunk_limits(trunk, max_channels=limit.max_channels, cps=limit.cps)
            for t in (trunk, runner.settings.backup_trunk):
                if t is not None and self._settings.breaker is not None:  # other engines' too
                    self._health.seen(t, (await self._breakers.view(t)).state)
            m.set_active(cid, trunk, len(runner.calls))
            m.set_queue(
                cid,
                due_now=stats.pending_due_now,
                later=stats.pending_total - stats.pending_due_now,
                inflight=stats.inflight,
                draining=stats.inflight if draining else 0,
            )
            m.set_contacts(cid, counts)

    async def once(self) -> None:
        assert self._tg is not None
        by_status = await self._store.campaigns_in(ACTIVE_STATUSES)
        for campaign in by_status[CampaignStatus.RUNNING]:
            if campaign.id in self.running:
                continue
            runner = self.runners.get(campaign.id)
            try:
                settings = CampaignSettings.from_json(campaign.settings_json)
            except InvalidSettings as exc:  # written to Redis by hand: this campaign stops
                await self._control.pause_invalid(campaign.id, exc)
                self.idle_runner(campaign)
                continue
            if runner is None:
                runner = self._new_runner(campaign.id, settings)
                self.runners[campaign.id] = runner
            else:
                runner.settings = settings  # edited while paused
            self.running[campaign.id] = self._tg.create_task(
                self.run_runner(runner), name=f"campaign-{campaign.id}"
            )
        for status in (CampaignStatus.PAUSING, CampaignStatus.CANCELLING):
            for campaign in by_status[status]:
                runner = self.runners.get(campaign.id)
                if runner is not None:
                    runner.wake()
                else:  # not dialed here: reconciled here all the same (its orphans drain)
                    self.idle_runner(campaign)
                if campaign.id not in self.running:
                    await self._control.drained(campaign.id)
        for campaign in by_status[CampaignStatus.SCHEDULED]:
            try:  # Running when its hours open; Cancelling when none are left (Pausing when
                await self._control.open_window(campaign)  # its settings are invalid)
            except TransitionRefused:
                pass  # another engine (or a person) moved it first

    def idle_runner(self, campaign: CampaignRecord) -> None:
        """Keep a runner (never run) for a campaign this engine does not dial (draining, or
        paused for its invalid settings), so that the reconciliation still settles the calls
        a dead engine left in flight: their results are written (by the default retry policy
        when the settings are invalid) and the pause or stop can finish."""
        if campaign.id in self.runners:
            return
        try:
            settings = CampaignSettings.from_json(campaign.settings_json)
        except InvalidSettings:
            settings = fallback_settings("invalid", campaign.trunk)
        self.runners[campaign.id] = self._new_runner(campaign.id, settings)

    async def run_runner(self, runner: RunnableRunner) -> None:
        try:
            await runner.run()
        except* DialerError as errors:  # the runner's task group wraps what its loop raised
            log.error("campaign %s runner stopped: %s", runner.campaign_id, errors.exceptions[0])
            await asyncio.sleep(1.0)  # the supervisor starts it again
        finally:
            self.running.pop(runner.campaign_id, None)
