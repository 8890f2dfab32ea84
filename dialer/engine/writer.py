"""The results writer: one group-commit loop (:mod:`dialer.engine.batch`) for the results, the
"originated" marks, the claims and the breaker signals.

What comes in within ``write_linger_ms`` (or while a write is in flight) shares one pipelined
round trip; a campaign waiting at its channel cap makes it write at once. It never waits for
one campaign's work: what a written result calls for (a plan-limit pause, a do-not-call
listing) goes to the follow-up loop. Results that could not be written (Redis briefly away)
are kept and written again by :meth:`ResultWriter.retry_unwritten` (the lease keeper's round);
a campaign's claim is withheld when the results before it use its plan up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from dialer.config import EngineSettings
from dialer.domain.altnumbers import next_number
from dialer.domain.breaker import Signal, signal_of
from dialer.domain.callstate import CallState
from dialer.domain.campaign import CampaignSettings
from dialer.domain.outcome import classify
from dialer.domain.retry import decide
from dialer.domain.statuses import CallStatus
from dialer.engine.batch import GroupCommit
from dialer.engine.calls import LiveCall, call_record
from dialer.engine.followup import FollowUp
from dialer.engine.livecalls import LiveCalls
from dialer.engine.ports import ResultStore, Runner
from dialer.engine.runner import plan_exhausted
from dialer.engine.trunkhealth import BreakerSignals, TrunkHealth
from dialer.errors import InvalidSettings, NotFound, ScriptError, StoreError, ValidationError
from dialer.metrics import DialerMetrics
from dialer.pbx.base import CallEnded
from dialer.store.breaker import BreakerStore
from dialer.store.models import LOST, ClaimBatch, ClaimCommand, FinishItem, Usage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Originated:
    calls: Sequence[LiveCall]  # one PBX write's accepted calls


class _Ended(NamedTuple):
    call: LiveCall
    ended: CallEnded
    runner: Runner | None


@dataclass(slots=True, eq=False)
class _Claim:
    """A runner's claim, sent in the writer's next round trip (with the marks and results)."""

    command: ClaimCommand
    result: ClaimBatch | Exception | None = None


@dataclass(frozen=True, slots=True)
class _Signals:
    """Written results' signals for their trunks' breakers, sent in the writer's next round
    trip (each call once: by the engine whose result was written)."""

    signals: BreakerSignals


_Write = _Originated | _Ended | _Claim | _Signals


class ResultWriter:
    def __init__(
        self,
        settings: EngineSettings,
        store: ResultStore,
        breakers: BreakerStore,
        metrics: DialerMetrics,
        followup: FollowUp,
        live: LiveCalls[Runner],
        runners: Mapping[int, Runner],
        health: TrunkHealth,
        *,
        owner: str,
        plan_used_up: Callable[[int], None],
        lease_lost: Callable[[Sequence[str], str], None],
    ) -> None:
        self._settings = settings
        self._store = store
        self._breakers = breakers
        self._metrics = metrics
        self._followup = followup
        self._live = live
        self._runners = runners
        self._owner = owner
        self._plan_used_up = plan_used_up
        self._lease_lost = lease_lost
        self.health = health
        self.unwritten: list[tuple[LiveCall, CallEnded]] = []
        self._unsent_signals: BreakerSignals = {}  # their round trip failed: the next one
        self.writes: GroupCommit[_Write] = GroupCommit(
            self._write_batch, name="results", linger=settings.write_linger_ms / 1000
        )

    async def claim(self, command: ClaimCommand) -> ClaimBatch:
        """Run a claim in the writer's next round trip, at once: the marks and results waiting
        to be written go with it, so that a campaign's claims and its writes cost one Redis
        round trip, not two. Raises what ``claim_batch`` raises."""
        item = _Claim(command)
        await self.writes.submit_and_wait(item)
        if isinstance(item.result, Exception):
            raise item.result
        if item.result is None:  # the writer took it but failed before sending it
            raise StoreError("claim not sent: the write failed")
        return item.result

    def originated(self, calls: Sequence[LiveCall]) -> None:
        """The PBX took these originates: the calls leave the claimed set (batched)."""
        for call in calls:
            self._live.advance(call.call_id, CallState.ORIGINATED)
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
        entry = self._live.end(call.call_id, CallState.DONE)
        runner = entry[1] if entry else self._runners.get(call.campaign_id)
        return _Ended(call, ended, runner)

    async def retry_unwritten(self) -> None:
        pending, self.unwritten = self.unwritten, []
        for call, ended in pending:
            await self.finish(call, ended)

    def forget(self, lost: set[str]) -> list[LiveCall]:
        """Drop the kept results of calls another engine owns now; returns their calls."""
        dropped = [c for c, _ in self.unwritten if c.call_id in lost]
        self.unwritten = [(c, e) for c, e in self.unwritten if c.call_id not in lost]
        return dropped

    def feed_breakers(self, signals: BreakerSignals) -> None:
        """Send signals to the trunks' breakers in the writer's next round trip (when this
        engine feeds breakers: ``EngineSettings.breaker``)."""
        if signals and self._settings.breaker is not None:
            self.writes.submit(_Signals(signals))

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
                settings = runner.settings if runner else await self.settings_of(call)
                outcome = self.health.outcome(call, ended)
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
                moves = next_number(
                    outcome,
                    decision,
                    now=ended.ended_at,
                    alt_dial=settings.alt_dial,
                    on_voicemail=settings.alt_on_voicemail,
                    sip_code=ended.raw.sip_code,
                )  # several numbers: the contact's next one (if it has one) after no contact
                next_at = _ms_or_none(settings.dial_time(moves.at)) if moves else None
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
                        owner=self._owner,
                        next_at_ms=next_at,
                        wrap_at_ms=next_at if retry_at is None else _ms_or_none(retry_at),
                        outcome=outcome.status.value,
                    )
                )
                outcomes.append((outcome.status, settings, outcome.consumes_attempt))
            claims = self._withhold_over_plan(claims, items)
            limits = self._settings.breaker
            reports = [
                (trunk, self._breakers.report_command(trunk, pairs, limits))
                for trunk, pairs in signals.items()
                if limits is not None
            ]  # before the claims: a trip refuses this round trip's claims
            started = time.perf_counter()
            reply = await self._store.settle_and_claim(
                originated,
                items,
                [c.command for c in claims],
                owner=self._owner,
                scripts=[command for _, command in reports],
            )
            if items or originated:
                self._metrics.observe_redis("finish", time.perf_counter() - started)
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
            self.health.reported(trunk, raw)
        if reply.error is not None:
            self._not_written(reply.error, results, marks)
            return
        if reply.lost:
            self._lease_lost(reply.lost, "originated mark refused")
        await self._written(results, outcomes, reply.written)

    async def _written(
        self,
        results: list[_Ended],
        outcomes: list[tuple[CallStatus, CampaignSettings, bool]],
        written: Sequence[object],
    ) -> None:
        exhausted: set[int] = set()
        fed: BreakerSignals = {}
        for (call, ended, runner), (status, settings, charged), applied in zip(
            results, outcomes, written, strict=True
        ):
            if runner is not None:
                runner.slot_freed()
            if applied is None:
                log.error("result of %s refused: the call belongs to another contact", call.call_id)
                continue
            if applied == LOST:  # another engine adopted it: the result is the adopter's
                count_lost(self._metrics, call, "result refused")
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
                await self._followup.list_dnc(call.phone, call.campaign_id)
            answered = ended.answered_at
            self._metrics.call_finished(
                call.campaign_id,
                call.trunk,
                status,
                ring_seconds=answered - call.claimed_at if answered is not None else None,
                talk_seconds=ended.ended_at - answered if answered is not None else None,
            )
        for cid in exhausted:
            self._plan_used_up(cid)
        self.feed_breakers(fed)

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
            self._metrics.lua_error("finish")
        log.warning(
            "%d results not written yet, %d calls not marked originated (%s); will retry",
            len(results),
            marks,
            exc,
        )
        self.unwritten.extend((r.call, r.ended) for r in results)
        for r in results:
            if r.runner is not None:
                r.runner.slot_freed()

    async def settings_of(self, call: LiveCall) -> CampaignSettings:
        """The settings to classify a result by when no runner has them: the stored ones; the
        default retry policy when the campaign was deleted or its settings are invalid (the
        result is written all the same: never lost)."""
        try:
            campaign = await self._store.get_campaign(call.campaign_id)
        except NotFound:  # deleted: only the call and its record are written (finish.lua)
            return fallback_settings("deleted", call.trunk)
        try:
            return CampaignSettings.from_json(campaign.settings_json)
        except InvalidSettings as exc:
            log.warning(
                "campaign %s: result of %s classified by the default retry policy: %s",
                call.campaign_id,
                call.call_id,
                exc,
            )
            return fallback_settings("invalid", call.trunk)


def count_lost(metrics: DialerMetrics, call: LiveCall, why: str) -> None:
    log.warning(
        "lease of call %s (campaign %s) lost: another engine adopted it (%s); "
        "no longer following it",
        call.call_id,
        call.campaign_id,
        why,
    )
    metrics.lease_lost(call.campaign_id)


def fallback_settings(name: str, trunk: str) -> CampaignSettings:
    """Settings with the default retry policy, to write a result by (see ``settings_of``)."""
    try:
        return CampaignSettings(name=name, trunk=trunk, max_channels=1, cps=1.0)
    except ValidationError:  # a trunk name written by hand as well
        return CampaignSettings(name=name, trunk="unknown", max_channels=1, cps=1.0)


def _ms_or_none(t: float | None) -> int | None:
    return None if t is None else int(t * 1000)
