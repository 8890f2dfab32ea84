"""The engine: one process's share of the dialing, for every campaign in the store.

It owns one task group with five loops:

- supervise: finds Running campaigns and runs a :class:`CampaignRunner` for each; finishes pauses
  and stops that have drained; opens Scheduled campaigns when their calling hours open (and
  ends those whose end date passed);
- events: reads the PBX adapter's call events and hands each ended attempt to the results
  writer without waiting for Redis;
- writes: one group-commit writer (:mod:`dialer.engine.batch`) for the results and the
  "originated" marks: what comes in within ``write_linger_ms`` (or while a write is in flight)
  shares one pipelined round trip; a campaign waiting at its channel cap makes it write at once;
  it never waits for one campaign's work: what a written result calls for goes to follow-up;
- follow-up (:mod:`dialer.engine.followup`): pauses a campaign whose plan is used up (its runner
  stops claiming at once, before the pause lands) and lists numbers that opted out during a call;
- leases: renews the channel leases of this process's live calls, retries results that
  could not be written (Redis briefly away) once it is back, and reconciles: settles the calls
  of expired leases (orphans) against the PBX's channel list (see :meth:`Engine.reconcile`).

Leases are fenced by their owner (this process's ``owner`` token, fresh at every start): once
another engine has adopted a call, this one's renewals, marks and results for it are refused;
it then stops following the call (no hang-up, no result: the adopter's).

Any number of engine processes can run against one Redis: every limit and every claim is
enforced there, atomically.

One bad campaign never stops the engine: a campaign whose stored settings fail validation when
read is paused with the problem as its reason (``CampaignControl.pause_invalid``) and the others
go on; the results of its calls in flight are still written (classified by the default retry
policy when its runner's settings are not at hand).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from dialer.config import EngineSettings
from dialer.domain.breaker import BreakerState, Signal, signal_of
from dialer.domain.campaign import CampaignSettings
from dialer.domain.outcome import Classification, classify
from dialer.domain.retry import decide
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.engine.batch import GroupCommit
from dialer.engine.calls import LiveCall, call_record, lost_outcome, unknown_outcome
from dialer.engine.cancel import checkpoint
from dialer.engine.control import PBX_DOWN_REASON, CampaignControl
from dialer.engine.followup import FollowUp
from dialer.engine.heartbeat import heartbeat
from dialer.engine.nodebeat import node_heartbeat
from dialer.engine.runner import CampaignRunner, plan_exhausted
from dialer.errors import (
    DialerError,
    InvalidSettings,
    LeaseLost,
    NotFound,
    ScriptError,
    StoreError,
    TransitionRefused,
    ValidationError,
)
from dialer.metrics import DialerMetrics
from dialer.pbx.base import CallEnded, EndSource, PbxAdapter, PbxState
from dialer.store.breaker import BreakerReport, BreakerStore, report_of
from dialer.store.dnc import DncStore
from dialer.store.engines import EngineRegistry
from dialer.store.models import (
    LOST,
    CampaignRecord,
    ClaimBatch,
    ClaimCommand,
    FinishItem,
    Usage,
)
from dialer.store.nodes import NodeRouter, NodeStore
from dialer.store.redis_store import ACTIVE_STATUSES, RedisStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Originated:
    calls: Sequence[LiveCall]  # one PBX write's accepted calls


class _Ended(NamedTuple):
    call: LiveCall
    ended: CallEnded
    runner: CampaignRunner | None


@dataclass(slots=True, eq=False)
class _Claim:
    """A runner's claim, sent in the writer's next round trip (with the marks and results)."""

    command: ClaimCommand
    result: ClaimBatch | Exception | None = None


_BreakerSignals = dict[str, list[tuple[str, Signal, bool]]]  # trunk -> (call, signal, charged)


@dataclass(frozen=True, slots=True)
class _Signals:
    """Written results' signals for their trunks' breakers, sent in the writer's next round
    trip (each call once: by the engine whose result was written)."""

    signals: _BreakerSignals


_Write = _Originated | _Ended | _Claim | _Signals


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    campaigns_running: int
    live_calls: int
    unwritten_results: int
    pbx_connected: bool


class _Listing:
    """The PBX's channel list, asked for once per reconciliation pass, when first needed."""

    def __init__(self, pbx: PbxAdapter) -> None:
        self._pbx = pbx
        self._live: dict[str, bool] | None = None

    async def get(self) -> dict[str, bool]:
        if self._live is None:
            self._live = await self._pbx.live_calls()
        return self._live


_CUT_BY_TRUNK = (Signal.SILENT, Signal.FAILURE)
_GONE_AFTER = 2  # an adopted call missing from this many channel lists in a row has ended


class Engine:
    def __init__(
        self,
        settings: EngineSettings,
        store: RedisStore,
        pbx: PbxAdapter,
        *,
        clock: Callable[[], float] = time.time,
        metrics: DialerMetrics | None = None,
        node: str | None = None,
    ) -> None:
        self.settings = settings
        # the PBX node this engine drives (issue 17): its claims go to it, it marks it up
        self.node = node
        self.nodes = NodeRouter(
            NodeStore(store.client, store.keys), () if node is None else (node,)
        )
        self.metrics = metrics or DialerMetrics(settings.engine_id)
        self.store = store
        self.pbx = pbx
        self.control = CampaignControl(store, clock=clock, contexts=settings.contexts)
        self.dnc = DncStore(store)
        self.breakers = BreakerStore(store)
        # trunks whose breaker this engine last knew open or half-open: what their calls in
        # flight end with (unanswered) is not charged to the contacts
        self._unhealthy: set[str] = set()
        self._unsent_signals: _BreakerSignals = {}  # their round trip failed: the next one
        self.followup = FollowUp(self.control, self.dnc, paused=self._wake_runner)
        self._clock = clock
        self._runners: dict[int, CampaignRunner] = {}
        self._running: dict[int, asyncio.Task[None]] = {}
        self._calls: dict[str, tuple[LiveCall, CampaignRunner]] = {}
        self._unwritten: list[tuple[LiveCall, CallEnded]] = []
        self._tg: asyncio.TaskGroup | None = None
        self._pbx_lost_at: float | None = None
        # the lease owner token: the engine id and a token of this start (a restarted engine
        # with the same id does not own its former self's calls: it adopts them)
        self.owner = f"{settings.engine_id}/{secrets.token_hex(4)}"
        # PBX connections so far: a runner claims only after a reconciliation of its campaign
        # that began on the current connection (Engine.reconcile)
        self.pbx_epoch = 0
        self._reconciling = asyncio.Lock()
        # adopted calls -> channel lists in a row that did not show them
        self._adopted: dict[str, int] = {}
        self.writes: GroupCommit[_Write] = GroupCommit(
            self._write_batch, name="results", linger=settings.write_linger_ms / 1000
        )

    def statistics(self) -> EngineStatistics:
        return EngineStatistics(
            campaigns_running=len(self._running),
            live_calls=len(self._calls),
            unwritten_results=len(self._unwritten),
            pbx_connected=self.pbx.connected,
        )

    async def run(self) -> None:
        """Run until cancelled."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self._supervise(), name="supervise")
            tg.create_task(self._pump_events(), name="pbx-events")
            tg.create_task(self.writes.run(), name="writes")
            tg.create_task(self.followup.run(), name="follow-up")
            tg.create_task(self._renew_leases(), name="leases")
            tg.create_task(
                heartbeat(
                    EngineRegistry(self.store),
                    self.owner,
                    lambda: self.pbx.connected,
                    self.settings.trunks,
                ),
                name="heartbeat",
            )
            if self.node is not None:
                connected = self._pbx_connected
                marks = node_heartbeat(self.nodes.store, self.owner, self.node, connected)
                tg.create_task(marks, name="node-marks")

    def _pbx_connected(self) -> bool:
        return self.pbx.connected

    # -- calls -----------------------------------------------------------------------------

    def register(self, call: LiveCall, runner: CampaignRunner) -> None:
        self._calls[call.call_id] = (call, runner)

    def unregister(self, call_id: str) -> None:
        """Stop following a call this engine will not dial after all (its slot is free)."""
        entry = self._calls.pop(call_id, None)
        if entry is not None:
            entry[1].calls.pop(call_id, None)
            entry[1].slot_freed()

    async def claim(self, command: ClaimCommand) -> ClaimBatch:
        """Run a claim (``store.claim_command``) in the writer's next round trip, at once: the
        marks and results waiting to be written go with it, so that a campaign's claims and its
        writes cost one Redis round trip, not two. Raises what ``claim_batch`` raises."""
        item = _Claim(command)
        await self.writes.submit_and_wait(item)
        if isinstance(item.result, Exception):
            raise item.result
        if item.result is None:  # the writer took it but failed before sending it
            raise StoreError("claim not sent: the write failed")
        return item.result

    def plan_used_up(self, cid: int) -> None:
        """The campaign's plan is used up: its runner claims no more from now on, and the
        campaign is paused (plan limit) by the follow-up loop, not by the caller."""
        runner = self._runners.get(cid)
        if runner is not None:
            runner.plan_used_up = True
            runner.wake()
        self.followup.pause_for_plan_nowait(cid)

    def trunk_unhealthy(self, trunk: str) -> None:
        """A claim learnt that ``trunk``'s breaker refuses claims."""
        self._unhealthy.add(trunk)

    def _trunk_outcome(self, call: LiveCall, ended: CallEnded) -> Classification:
        """The attempt's classification; one that reached nobody on a trunk whose breaker is
        open is a technical error that uses no attempt (the dead trunk cut it, not the
        callee): the switch-crash rule's treatment."""
        outcome = classify(ended.raw)
        if call.trunk in self._unhealthy and signal_of(ended.raw, outcome) in _CUT_BY_TRUNK:
            return Classification(
                CallStatus.TECHNICAL_ERROR,
                retryable=True,
                consumes_attempt=False,
                final=False,
                reason="trunk:open",
            )
        return outcome

    def _feed_breakers(self, signals: _BreakerSignals) -> None:
        """Send signals to the trunks' breakers in the writer's next round trip (when this
        engine feeds breakers: ``EngineSettings.breaker``)."""
        if signals and self.settings.breaker is not None:
            self.writes.submit(_Signals(signals))

    def _breaker_reported(self, trunk: str, raw: object) -> None:
        try:
            report = report_of(raw)
        except DialerError as exc:
            log.warning("trunk %s: breaker not fed: %s", trunk, exc)
            return
        self._breaker_report(trunk, report)

    def _breaker_report(self, trunk: str, report: BreakerReport) -> None:
        self._breaker_seen(trunk, report.state)
        if report.trips:
            self.metrics.breaker_tripped(trunk, report.trips)
            log.warning(
                "trunk %s: breaker open; %d attempts given back to the contacts of the run "
                "that tripped it",
                trunk,
                report.refunded,
            )
        if report.closes:
            log.warning("trunk %s: breaker closed", trunk)

    def _breaker_seen(self, trunk: str, state: BreakerState) -> None:
        self.metrics.set_breaker_state(trunk, state.gauge)
        if state is BreakerState.CLOSED:
            self._unhealthy.discard(trunk)
        else:
            self._unhealthy.add(trunk)

    def _wake_runner(self, cid: int) -> None:
        runner = self._runners.get(cid)
        if runner is not None:
            runner.wake()

    def originated(self, calls: Sequence[LiveCall]) -> None:
        """The PBX took these originates: the calls leave the claimed set (batched, not
        awaited)."""
        if calls:
            self.writes.submit(_Originated(calls))

    def finish_soon(self, call: LiveCall, ended: CallEnded) -> None:
        """Hand the attempt's end to the writer and return at once."""
        result = self._settle(call, ended)
        self.writes.submit(result, urgent=result.runner is not None and result.runner.at_cap)

    async def finish(self, call: LiveCall, ended: CallEnded) -> None:
        """Classify the attempt, decide what happens to the contact, write both atomically;
        returns once written (or kept for a retry when Redis is away)."""
        await self.writes.submit_and_wait(self._settle(call, ended))

    def _settle(self, call: LiveCall, ended: CallEnded) -> _Ended:
        self._adopted.pop(call.call_id, None)
        entry = self._calls.pop(call.call_id, None)
        runner = entry[1] if entry else self._runners.get(call.campaign_id)
        if runner is not None:
            runner.calls.pop(call.call_id, None)
        return _Ended(call, ended, runner)

    async def _write_batch(self, batch: list[_Write]) -> None:
        """Write marks and results, and run claims, in one round trip; keep the results for a
        retry if Redis fails (a lost mark only leaves the call "claimed" until its result is
        written). Each claim gets its batch or its error."""
        originated: dict[int, list[str]] = {}
        results: list[_Ended] = []
        claims: list[_Claim] = []
        signals, self._unsent_signals = self._unsent_signals, {}
        marks = 0
        for item in batch:
            if isinstance(item, _Signals):
                for trunk, pairs in item.signals.items():
                    signals.setdefault(trunk, []).extend(pairs)
            elif isinstance(item, _Originated):
                marks += len(item.calls)
                for call in item.calls:
                    originated.setdefault(call.campaign_id, []).append(call.call_id)
            elif isinstance(item, _Claim):
                claims.append(item)
            else:
                results.append(item)
        items: list[FinishItem] = []
        outcomes: list[tuple[CallStatus, CampaignSettings, bool]] = []
        try:
            for call, ended, runner in results:
                settings = runner.settings if runner else await self._settings_of(call)
                outcome = self._trunk_outcome(call, ended)
                decision = decide(
                    outcome,
                    attempts_used=call.attempts,
                    technical_failures=call.tech_failures,
                    policy=settings.retry,
                    now=ended.ended_at,
                    callback_at=ended.raw.callback_at,
                )
                answered = ended.answered_at
                talk = ended.ended_at - answered if answered is not None else 0.0
                retry_at = decision.retry_at
                if retry_at is not None:  # a retry or callback waits for the calling hours
                    retry_at = settings.dial_time(retry_at)
                items.append(
                    FinishItem(
                        cid=call.campaign_id,
                        trunk=call.trunk,
                        call_id=call.call_id,
                        contact_id=call.contact_id,
                        contact_status=decision.contact_status,
                        attempts_used=decision.attempts_used - call.attempts,  # an increment
                        tech_failures=decision.technical_failures,
                        retry_at_ms=int(retry_at * 1000) if retry_at is not None else None,
                        record=call_record(call, ended, outcome, decision),
                        usage_attempts=1,
                        talk_seconds=max(0.0, talk),
                        owner=self.owner,
                    )
                )
                outcomes.append((outcome.status, settings, outcome.consumes_attempt))
            claims = self._withhold_over_plan(claims, items)
            limits = self.settings.breaker
            reports = [
                (trunk, self.breakers.report_command(trunk, pairs, limits))
                for trunk, pairs in signals.items()
                if limits is not None
            ]  # before the claims: a trip refuses this round trip's claims
            started = time.perf_counter()
            reply = await self.store.settle_and_claim(
                originated,
                items,
                [c.command for c in claims],
                owner=self.owner,
                scripts=[command for _, command in reports],
            )
            if items or originated:
                self.metrics.observe_redis("finish", time.perf_counter() - started)
        except StoreError as exc:
            for c in claims:
                c.result = exc
            self._not_written(exc, results, marks)
            for trunk, pairs in signals.items():  # sent with the next write
                self._unsent_signals.setdefault(trunk, []).extend(pairs)
            return
        for c, claimed in zip(claims, reply.claims, strict=True):
            c.result = claimed
        for (trunk, _), raw in zip(reports, reply.scripts, strict=True):
            self._breaker_reported(trunk, raw)
        if reply.error is not None:
            self._not_written(reply.error, results, marks)
            return
        if reply.lost:
            self.lease_lost(reply.lost, "originated mark refused")
        written = reply.written
        exhausted: set[int] = set()
        fed: _BreakerSignals = {}
        for (call, ended, runner), (status, settings, charged), applied in zip(
            results, outcomes, written, strict=True
        ):
            if runner is not None:
                runner.slot_freed()
            if applied is None:
                log.error("result of %s refused: the call belongs to another contact", call.call_id)
                continue
            if applied == LOST:  # another engine adopted it: the result is the adopter's
                self._count_lost(call, "result refused")
                continue
            if applied is False:
                continue  # another engine wrote it (both saw the Hangup)
            signal = signal_of(ended.raw, classify(ended.raw))
            if signal is not Signal.NEUTRAL:
                fed.setdefault(call.trunk, []).append((call.call_id, signal, charged))
            if isinstance(applied, Usage):
                if runner is not None:
                    runner.used(applied)
                if plan_exhausted(settings, applied):
                    exhausted.add(call.campaign_id)
            if status is CallStatus.DO_NOT_CALL:  # the callee opted out during the call
                await self.followup.list_dnc(call.phone, call.campaign_id)
            answered = ended.answered_at
            self.metrics.call_finished(
                call.campaign_id,
                call.trunk,
                status,
                ring_seconds=answered - call.claimed_at if answered is not None else None,
                talk_seconds=ended.ended_at - answered if answered is not None else None,
            )
        for cid in exhausted:
            self.plan_used_up(cid)
        self._feed_breakers(fed)

    def _withhold_over_plan(self, claims: list[_Claim], items: list[FinishItem]) -> list[_Claim]:
        """The claims to send. A campaign's claim is not sent when its plan is used up, or would
        be by the results sent before it in this round trip (the usage only grows, so the plan
        is then used up for sure, unless a result turns out written already): the claim gets
        nothing, and the runner, asking again at once, learns why after this write."""
        adding: dict[int, tuple[int, float]] = {}
        for item in items:
            attempts, talk = adding.get(item.cid, (0, 0.0))
            adding[item.cid] = (attempts + item.usage_attempts, talk + item.talk_seconds)
        sent = []
        for c in claims:
            runner = self._runners.get(c.command.cid)
            if runner is not None and runner.plan_reached(*adding.get(c.command.cid, (0, 0.0))):
                c.result = ClaimBatch(claims=[], stop="max")
            else:
                sent.append(c)
        return sent

    def _not_written(self, exc: Exception, results: list[_Ended], marks: int) -> None:
        if isinstance(exc, ScriptError):
            self.metrics.lua_error("finish")
        log.warning(
            "%d results not written yet, %d calls not marked originated (%s); will retry",
            len(results),
            marks,
            exc,
        )
        self._unwritten.extend((r.call, r.ended) for r in results)
        for r in results:
            if r.runner is not None:
                r.runner.slot_freed()

    def lease_lost(self, call_ids: Sequence[str], why: str) -> None:
        """Another engine owns these calls now (it adopted them after this engine's leases
        expired): stop following them, do not hang them up, do not write their results."""
        lost = set(call_ids)
        for call_id in lost:
            self._adopted.pop(call_id, None)
            entry = self._calls.pop(call_id, None)
            if entry is None:
                continue
            call, runner = entry
            runner.calls.pop(call_id, None)
            runner.slot_freed()
            self.pbx.forget(call_id)
            self._count_lost(call, why)
        kept = [(c, e) for c, e in self._unwritten if c.call_id not in lost]
        for call, _ in self._unwritten:
            if call.call_id in lost:
                self._count_lost(call, why)
        self._unwritten = kept

    def _count_lost(self, call: LiveCall, why: str) -> None:
        log.warning(
            "lease of call %s (campaign %s) lost: another engine adopted it (%s); "
            "no longer following it",
            call.call_id,
            call.campaign_id,
            why,
        )
        self.metrics.lease_lost(call.campaign_id)

    async def _settings_of(self, call: LiveCall) -> CampaignSettings:
        """The settings to classify a result by when no runner has them: the stored ones; the
        default retry policy when the campaign was deleted or its settings are invalid (the
        result is written all the same: never lost)."""
        try:
            campaign = await self.store.get_campaign(call.campaign_id)
        except NotFound:  # deleted: only the call and its record are written (finish.lua)
            return _fallback("deleted", call.trunk)
        try:
            return CampaignSettings.from_json(campaign.settings_json)
        except InvalidSettings as exc:
            log.warning(
                "campaign %s: result of %s classified by the default retry policy: %s",
                call.campaign_id,
                call.call_id,
                exc,
            )
            return _fallback("invalid", call.trunk)

    async def _pump_events(self) -> None:
        async for events in self.pbx.event_batches():
            checkpoint()
            for event in events:
                if isinstance(event, PbxState):
                    await self._pbx_state(event)
                    continue
                entry = self._calls.get(event.call_id)
                if entry is None:
                    continue
                if isinstance(event, CallEnded):
                    self.finish_soon(entry[0], event)
                else:
                    entry[0].answered_at = event.at
                    if entry[0].trunk in self._unhealthy:  # the probe, or a call in flight
                        self._feed_breakers({entry[0].trunk: [(event.call_id, Signal.OK, False)]})

    async def _pbx_state(self, event: PbxState) -> None:
        log.warning("PBX %s: %s", "up" if event.connected else "down", event.reason)
        self.metrics.pbx_state(self.pbx.name, event.connected)
        if event.connected:
            self.pbx_epoch += 1  # every runner reconciles again before it claims
        try:
            if event.connected:
                await self._pbx_back()
            else:
                await self._pbx_lost()
        except DialerError as exc:
            log.error("handling PBX %s failed: %s", "up" if event.connected else "down", exc)
        for runner in self._runners.values():
            runner.wake()

    async def _pbx_lost(self) -> None:
        """Pause every campaign this engine dials: nothing is originated blindly. An engine
        attached to a node pauses none: its node's mark is gone (engine/nodebeat.py), so the
        claims go to the other nodes, and wait (stop ``node``) while none is up."""
        self._pbx_lost_at = self._clock()
        if self.node is not None:
            return
        for cid in list(self._runners):
            try:
                await self.control.pause(cid, reason=PBX_DOWN_REASON)
                log.warning("campaign %s paused: %s", cid, PBX_DOWN_REASON)
            except (TransitionRefused, NotFound):
                pass  # not running, or another engine paused it first

    async def _pbx_back(self) -> None:
        """Settle calls that ended unseen during the outage, then resume what the outage paused."""
        lost_at, self._pbx_lost_at = self._pbx_lost_at, None
        if lost_at is None:
            return  # the first connection
        live = await self.pbx.live_calls()
        for call_id, (call, _) in list(self._calls.items()):
            if call_id not in live and call.claimed_at < lost_at:
                log.warning("call %s ended while the PBX was unreachable", call_id)
                seen = self.pbx.forget(call_id)
                ended = await self._switch_end(call)  # it ended while AMI was away
                if ended is None:  # cut by the PBX's failure: what this engine knew decides
                    raw = lost_outcome(seen, answered=call.answered_at is not None)
                    ended = CallEnded(
                        call_id, raw, self._clock(), call.answered_at, call.claimed_at,
                        EndSource.LOST,
                    )  # fmt: skip
                self.metrics.unfollowed_end(ended.source)
                await self.finish(call, ended)
        if not self.settings.pbx_auto_resume:
            return
        for cid in list(self._runners):
            try:
                await self.control.resume(cid, only_reason=PBX_DOWN_REASON)
            except (TransitionRefused, NotFound):
                pass

    async def _renew_leases(self) -> None:
        while True:
            checkpoint()
            await asyncio.sleep(self.settings.renew_every)
            by_campaign: dict[tuple[int, str], list[str]] = {}
            for call, _ in self._calls.values():
                by_campaign.setdefault((call.campaign_id, call.trunk), []).append(call.call_id)
            for call, _ in self._unwritten:
                by_campaign.setdefault((call.campaign_id, call.trunk), []).append(call.call_id)
            for (cid, trunk), ids in by_campaign.items():
                try:
                    renewal = await self.store.renew(
                        cid, trunk, ids, self.settings.lease_ms, owner=self.owner
                    )
                except StoreError as exc:
                    log.warning("lease renewal for campaign %s failed: %s", cid, exc)
                    continue
                if renewal.retaken:
                    log.warning(
                        "campaign %s: %d leases had expired; taken back (nobody had adopted them)",
                        cid,
                        len(renewal.retaken),
                    )
                if renewal.lost:
                    self.lease_lost(renewal.lost, "renewal refused")
            await self._retry_unwritten()
            try:
                await self._reconcile()
            except DialerError as exc:
                log.warning("reconciliation postponed: %s", exc)

    async def reconcile(self, runner: CampaignRunner) -> None:
        """Settle the campaign's orphans against the PBX's channel list; the runner claims
        only after this has run once on the current PBX connection (raises DialerError when
        the store or the PBX cannot be asked: the runner then waits and tries again)."""
        epoch = self.pbx_epoch
        async with self._reconciling:
            await self._reconcile_campaign(runner.campaign_id, runner, _Listing(self.pbx))
        runner.reconciled_epoch = epoch

    async def _reconcile(self) -> None:
        """Settle the calls of expired leases ("orphans": their owner died or stalled) of
        every campaign this engine knows, and the adopted calls that ended unseen."""
        epoch = self.pbx_epoch
        listing = _Listing(self.pbx)
        async with self._reconciling:
            await self._check_adopted(listing)
            for cid, runner in list(self._runners.items()):
                await self._reconcile_campaign(cid, runner, listing)
                runner.reconciled_epoch = epoch

    async def _reconcile_campaign(
        self, cid: int, runner: CampaignRunner, listing: _Listing
    ) -> None:
        """An orphan keeps its channel slot (the claim counts its lease) until this settles
        it, after a look at the PBX's channel list: still live there, this engine adopts the
        call (its lease now under this engine's owner: the former owner is fenced off) and
        follows it to its end; gone, it is settled with how it ended (:meth:`_unfollowed_end`),
        or, when nothing shows that it was ever dialed (never marked originated, no end seen,
        no switch record), its contact goes back to the queue. An orphan whose lease another
        engine took meanwhile is left to it."""
        for call_id in await self.store.orphaned_calls(cid):
            if call_id in self._calls:
                continue  # ours: the next renewal gives the lease back
            ref = await self.store.get_call(call_id)
            if ref is None or ref.state == "done":
                continue
            live = await listing.get()  # before the adoption: a call listed was live then
            adoption = await self.store.adopt(
                cid, ref.trunk, call_id, self.settings.lease_ms, owner=self.owner
            )
            if not adoption.owned:
                continue  # another engine adopted it first, or it ended meanwhile
            contact = await self.store.get_contact(cid, ref.contact)
            call = LiveCall(
                call_id=call_id,
                campaign_id=cid,
                trunk=ref.trunk,
                contact_id=ref.contact,
                phone=ref.phone,
                attempts=contact.attempts,
                tech_failures=contact.tech_failures,
                claimed_at=ref.claimed_ms / 1000,
                engine_id=self.settings.engine_id,
                dial=ref.dial,
            )
            if call_id in live:
                log.info("adopting live call %s of %s", call_id, ref.owner)
                self.metrics.adopted(cid)
                self.register(call, runner)
                runner.calls[call_id] = call
                if ref.state == "claimed":  # its owner died before its mark was written
                    self.originated([call])
                seen = self.pbx.seen_end(call_id)
                if seen is not None and seen.source is EndSource.SEEN:
                    # it ended after the listing, before this adoption: its end was seen here
                    self.metrics.unfollowed_end(seen.source)
                    await self.finish(call, replace(seen, started_at=call.claimed_at))
                    continue
                self.pbx.adopt(call_id, answered=live[call_id])
                self._adopted[call_id] = 0
                continue
            ended = await self._unfollowed_end(call, dialed=ref.state != "claimed")
            if ended is None:
                try:
                    await self.store.release(cid, ref.trunk, call_id, ref.contact, owner=self.owner)
                except LeaseLost:
                    continue
                log.info("released never-originated call %s of %s", call_id, ref.owner)
                continue
            log.info(
                "call %s of %s ended unfollowed: %s (%s)",
                call_id, ref.owner, classify(ended.raw).status.value, ended.source.value,
            )  # fmt: skip
            await self.finish(call, ended)

    async def _unfollowed_end(self, call: LiveCall, *, dialed: bool) -> CallEnded | None:
        """How a call that no engine followed to its end ended, gone from the PBX: (a) the end
        this engine saw (every engine records the end of every dialer call it sees), else (b)
        the switch's own record, else (c) an end this engine remembers as cut when its PBX
        connection dropped, else (d) "outcome unknown" (final: never redialed on its own) -
        or None for a call never marked originated that nothing shows was dialed: its contact
        goes back to the queue. Raises PbxUnavailable when the switch cannot be asked."""
        seen = self.pbx.seen_end(call.call_id)
        ended = seen if seen is not None and seen.source is EndSource.SEEN else None
        if ended is not None:
            ended = replace(ended, started_at=call.claimed_at)
        else:
            ended = await self._switch_end(call)
        if ended is None and seen is not None:
            ended = replace(seen, started_at=call.claimed_at)
        if ended is None and dialed:
            ended = CallEnded(
                call.call_id, unknown_outcome(), self._clock(), None, call.claimed_at,
                EndSource.UNKNOWN,
            )  # fmt: skip
        if ended is not None:
            self.metrics.unfollowed_end(ended.source)
        return ended

    async def _switch_end(self, call: LiveCall) -> CallEnded | None:
        """The switch's own record of the call's end, as an end (None: it kept none)."""
        raw = await self.pbx.call_record(call.call_id, started_at=call.claimed_at)
        if raw is None:
            return None
        return CallEnded(call.call_id, raw, self._clock(), None, call.claimed_at, EndSource.SWITCH)

    async def _check_adopted(self, listing: _Listing) -> None:
        """An adopted call may have ended between the channel list that showed it and its
        adoption (its Hangup then went by unfollowed, into the adapter's memory): one missing
        from the list twice in a row is settled with how it ended (:meth:`_unfollowed_end`),
        so that its slot cannot stay held for ever."""
        if not self._adopted:
            return
        live = await listing.get()
        for call_id in list(self._adopted):
            entry = self._calls.get(call_id)
            if entry is None:
                self._adopted.pop(call_id, None)
            elif call_id in live:
                self._adopted[call_id] = 0
            elif (misses := self._adopted[call_id] + 1) < _GONE_AFTER:
                self._adopted[call_id] = misses
            else:
                call = entry[0]
                log.warning("adopted call %s ended unseen", call_id)
                self.pbx.forget(call_id)
                ended = await self._unfollowed_end(call, dialed=True)
                assert ended is not None  # dialed: at worst "outcome unknown"
                await self.finish(call, ended)

    async def _retry_unwritten(self) -> None:
        pending, self._unwritten = self._unwritten, []
        for call, ended in pending:
            await self.finish(call, ended)

    # -- campaigns -------------------------------------------------------------------------

    async def _supervise(self) -> None:
        last_gauges = 0.0
        indexed = False
        while True:
            checkpoint()
            try:
                if not indexed:  # a store written before the active index existed
                    active = await self.store.rebuild_active_index()
                    indexed = True
                    log.info("%d active campaigns", active)
                await self._supervise_once()
                if time.monotonic() - last_gauges >= 1.0:
                    last_gauges = time.monotonic()
                    await self._update_gauges()
            except StoreError as exc:
                log.warning("supervisor: store unavailable: %s", exc)
            except DialerError as exc:  # one campaign's trouble: the next round goes on
                log.error("supervisor: %s", exc)
            await asyncio.sleep(self.settings.supervise_interval)

    async def _update_gauges(self) -> None:
        """Store-wide gauges of the campaigns this engine knows (every engine reports them)."""
        m = self.metrics
        m.set_unwritten(len(self._unwritten))
        for cid, runner in list(self._runners.items()):
            try:  # one round trip per campaign
                campaign, stats, counts = await self.store.campaign_stats(cid)
            except NotFound:
                m.forget_campaign(cid)
                del self._runners[cid]
                continue
            trunk = runner.settings.trunk
            draining = campaign.status in (CampaignStatus.PAUSING, CampaignStatus.CANCELLING)
            m.set_campaign_status(cid, campaign.status)
            m.set_limits(
                cid, trunk, max_channels=runner.settings.max_channels, cps=runner.settings.cps
            )
            limit = self.settings.trunk_limit(trunk)
            m.set_trunk_limits(trunk, max_channels=limit.max_channels, cps=limit.cps)
            for t in (trunk, runner.settings.backup_trunk):
                if t is not None and self.settings.breaker is not None:  # other engines' too
                    self._breaker_seen(t, (await self.breakers.view(t)).state)
            m.set_active(cid, trunk, len(runner.calls))
            m.set_queue(
                cid,
                due_now=stats.pending_due_now,
                later=stats.pending_total - stats.pending_due_now,
                inflight=stats.inflight,
                draining=stats.inflight if draining else 0,
            )
            m.set_contacts(cid, counts)

    async def _supervise_once(self) -> None:
        assert self._tg is not None
        by_status = await self.store.campaigns_in(ACTIVE_STATUSES)
        for campaign in by_status[CampaignStatus.RUNNING]:
            if campaign.id in self._running:
                continue
            runner = self._runners.get(campaign.id)
            try:
                settings = CampaignSettings.from_json(campaign.settings_json)
            except InvalidSettings as exc:  # written to Redis by hand: this campaign stops
                await self.control.pause_invalid(campaign.id, exc)
                self._idle_runner(campaign)
                continue
            if runner is None:
                runner = CampaignRunner(self, campaign.id, settings, clock=self._clock)
                self._runners[campaign.id] = runner
            else:
                runner.settings = settings  # edited while paused
            self._running[campaign.id] = self._tg.create_task(
                self._run_runner(runner), name=f"campaign-{campaign.id}"
            )
        for status in (CampaignStatus.PAUSING, CampaignStatus.CANCELLING):
            for campaign in by_status[status]:
                runner = self._runners.get(campaign.id)
                if runner is not None:
                    runner.wake()
                else:  # not dialed here: reconciled here all the same (its orphans drain)
                    self._idle_runner(campaign)
                if campaign.id not in self._running:
                    await self.control.drained(campaign.id)
        for campaign in by_status[CampaignStatus.SCHEDULED]:
            try:  # Running when its hours open; Cancelling when none are left (Pausing when
                await self.control.open_window(campaign)  # its settings are invalid)
            except TransitionRefused:
                pass  # another engine (or a person) moved it first

    def _idle_runner(self, campaign: CampaignRecord) -> None:
        """Keep a runner (never run) for a campaign this engine does not dial (draining, or
        paused for its invalid settings), so that the reconciliation still settles the calls
        a dead engine left in flight: their results are written (by the default retry policy
        when the settings are invalid) and the pause or stop can finish."""
        if campaign.id in self._runners:
            return
        try:
            settings = CampaignSettings.from_json(campaign.settings_json)
        except InvalidSettings:
            settings = _fallback("invalid", campaign.trunk)
        self._runners[campaign.id] = CampaignRunner(self, campaign.id, settings, clock=self._clock)

    async def _run_runner(self, runner: CampaignRunner) -> None:
        try:
            await runner.run()
        except* DialerError as errors:  # the runner's task group wraps what its loop raised
            log.error("campaign %s runner stopped: %s", runner.campaign_id, errors.exceptions[0])
            await asyncio.sleep(1.0)  # the supervisor starts it again
        finally:
            self._running.pop(runner.campaign_id, None)


def _fallback(name: str, trunk: str) -> CampaignSettings:
    """Settings with the default retry policy, to write a result by (see ``_settings_of``)."""
    try:
        return CampaignSettings(name=name, trunk=trunk, max_channels=1, cps=1.0)
    except ValidationError:  # a trunk name written by hand as well
        return CampaignSettings(name=name, trunk="unknown", max_channels=1, cps=1.0)
