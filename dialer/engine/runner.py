"""One campaign's pacing loop inside one engine process.

The loop asks Redis for the next calls (``claim_batch``: status, channel leases, CPS window and
pacing, do-not-call screening and the due contacts, all in one atomic script shared by every
engine process; sent in the round trip of the engine's results writer, see ``Engine.claim``)
and originates each claim's calls together, in one task of the loop's own task group and one
AMI write, so that a slow PBX answer never holds up the next claim. When Redis grants nothing
the loop waits for the reason to pass: a channel to free (woken by a local hangup, or
re-checked every ``full_poll`` for other processes' hangups), the rate window to slide, the
next retry to fall due, or a status change. Once its plan is used up (known at its start, or
from a result the engine wrote) the loop claims nothing more and waits for the plan-limit pause,
which the engine's follow-up loop applies. When the campaign stops running here, the loop
waits for its own originates to be answered by the PBX, then reports the drain.

While its trunk's circuit breaker refuses claims (stop ``trunk``: dialer.domain.breaker), the
loop claims on the campaign's ``backup_trunk`` when it has one, and tries the trunk again when
the breaker lets a probe go; without a backup it waits (no contact touched, no attempt used).

With no PBX node to dial on, the loop waits; when no node of the trunk's group is up at all
(any engine's) for the whole grace, it pauses the campaign and ends (dialer.engine.nodeloss).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Callable

from dialer.domain.calls import RawOutcome
from dialer.domain.campaign import CampaignSettings
from dialer.domain.lifecycle import CampaignCommand, next_status
from dialer.domain.statuses import CampaignStatus
from dialer.engine.callerid import CallerIdChooser
from dialer.engine.calls import LiveCall
from dialer.engine.cancel import checkpoint
from dialer.engine.control import HANGUP_REASON
from dialer.engine.localhours import LocalHours
from dialer.engine.nodeloss import NodeLossGrace
from dialer.engine.pacing import GrantDelay, MarginBounds
from dialer.engine.ports import RunnerHost
from dialer.errors import (
    ActionFailed,
    ActionTimeout,
    DialerError,
    LeaseLost,
    NotFound,
    PbxUnavailable,
    ScriptError,
    StoreError,
    TransitionRefused,
    ValidationError,
)
from dialer.metrics import OriginateFailure
from dialer.pbx.base import CALL_ID_PREFIX, CallEnded, OriginateRequest
from dialer.pbx.sanitize import channel_variables
from dialer.store.models import Claim, ClaimBatch, Pacing, Usage

log = logging.getLogger(__name__)

_MAX_IDLE = 0.5  # never sleep longer than this without looking at the campaign again
_RECHECK_TRUNK = 1.0  # on the backup trunk: ask the campaign's own trunk again this often
_ID_PREFIX = (
    f"{CALL_ID_PREFIX}{secrets.token_hex(8)}-"  # unique per process: ids never repeat across them
)
_ID_SEQ = itertools.count(1)


def new_call_id() -> str:
    """A call id no other call ever had: this process's random prefix and a counter."""
    return f"{_ID_PREFIX}{next(_ID_SEQ):x}"


class CampaignRunner:
    def __init__(
        self,
        engine: RunnerHost,
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
        self.calls: dict[str, LiveCall] = {}  # kept by the engine's LiveCalls alone
        self.at_cap = False  # waiting for a channel: results that free one are written at once
        self.plan_used_up = False  # claim nothing more: the plan-limit pause is on its way
        self._usage = Usage(0, 0.0)  # the campaign's usage as last written by this engine
        # the engine's PBX connection (Engine.pbx_epoch) on which the campaign's orphans were
        # last reconciled: no claim before they have been on the current one
        self.reconciled_epoch = -1
        self._caller_ids: CallerIdChooser | None = None  # made at the first dial
        self._primary_blocked_until = 0.0  # clock time: claim on the backup trunk until then
        self._on_backup = False  # the last claim on the campaign's trunk was refused
        self._local_hours: LocalHours | None = None  # local hours: made at the first claim
        # no node of the trunk's group up this long (dialer.engine.nodeloss): paused
        self.node_loss = NodeLossGrace()
        # the CPS window's margin, from this campaign's grant-to-channel delays (pacing.py)
        self.grant_delay = GrantDelay(
            MarginBounds(
                switch_ms=engine.settings.rate_switch_ms,
                use_stamps=engine.settings.rate_stamps is not False,
            )
        )

    def claim_trunk(self) -> str:
        """The trunk the next claim is for: the campaign's, or its backup while the
        campaign's trunk's breaker refuses claims."""
        backup = self.settings.backup_trunk
        if backup is not None and self._clock() < self._primary_blocked_until:
            return backup
        return self.settings.trunk

    def slot_freed(self) -> None:
        self._slot_freed.set()

    def wake(self) -> None:
        self._wake.set()

    def used(self, usage: Usage) -> None:
        """The campaign's usage after a result this engine wrote."""
        if usage.attempts >= self._usage.attempts:
            self._usage = usage

    def plan_reached(self, attempts: int = 0, talk_seconds: float = 0.0) -> bool:
        """Whether the plan is used up, or will be once ``attempts`` and ``talk_seconds`` more
        are counted (by the usage this engine knows: other engines' attempts only add)."""
        if self.plan_used_up:
            return True
        usage = self._usage
        return plan_exhausted(
            self.settings, Usage(usage.attempts + attempts, usage.talk_seconds + talk_seconds)
        )

    async def run(self) -> None:
        """Dial until the campaign is no longer Running here; then drain-check and return.

        ValidationError before any originate when this installation cannot dial the campaign
        (its context is not in DIALER_CONTEXTS: an old store, a hand-written setting)."""
        try:
            self._engine.control.check(self.settings)
        except ValidationError as exc:
            log.error("campaign %s is not dialed: %s", self.campaign_id, exc)
            raise
        self._usage = await self._engine.store.usage(self.campaign_id)
        self.plan_used_up = plan_exhausted(self.settings, self._usage)  # resumed over its plan?
        cfg = self._engine.settings
        if self.settings.trunk not in cfg.trunks:  # a typo in DIALER_TRUNKS' names shows here
            log.log(
                logging.WARNING if cfg.trunks else logging.INFO,
                "campaign %s: trunk %r is not in DIALER_TRUNKS: no trunk limit, only the "
                "campaign's own (%d channels, %g cps)",
                self.campaign_id,
                self.settings.trunk,
                self.settings.max_channels,
                self.settings.cps,
            )
        self.node_loss.reset()
        async with asyncio.TaskGroup() as dials:
            status = await self._dial_loop(dials)
        # every originate of this loop has its answer (or its error) now
        if status is not None:
            await self._not_running(status)

    def _batch_size(self) -> int:
        """How many contacts to ask for: what pacing lets start at once, what channels are free
        here (the script applies the exact limits; this only keeps the call ids few)."""
        cfg = self._engine.settings
        limit = cfg.trunk_limit(self.claim_trunk())
        want = cfg.claim_batch
        cps = self.settings.cps if limit.cps is None else min(self.settings.cps, limit.cps)
        if most := Pacing.for_cps(cps, cfg.pace_ms).most:
            want = min(want, most)
        want = min(want, self.settings.max_channels - len(self.calls))
        return max(1, want)

    async def _dial_loop(self, dials: asyncio.TaskGroup) -> CampaignStatus | None:
        """Claim and originate; returns the status that ended it (None: deleted)."""
        store = self._engine.store
        cfg = self._engine.settings
        while True:
            checkpoint()
            if self.plan_used_up:
                return await self._wait_plan_pause()
            node = self._engine.node_to_dial()  # a connected PBX node of this engine
            if node is None:
                if (lost := await self._no_node()) is not None:
                    return lost
                await self._sleep(self._wake, _MAX_IDLE)
                continue
            if self.reconciled_epoch != self._engine.pbx_epoch:
                try:  # the orphans' slots are settled against the PBX before claiming
                    await self._engine.reconcile(self)
                except DialerError as exc:
                    log.warning("campaign %s: not reconciled yet: %s", self.campaign_id, exc)
                    await self._sleep(self._wake, _MAX_IDLE)
                continue
            call_ids = [new_call_id() for _ in range(self._batch_size())]
            self._slot_freed.clear()  # a hang-up during the claim must not be missed
            trunk = self.claim_trunk()
            limit = cfg.trunk_limit(trunk)
            if self._local_hours is None:  # the zone groups a claim may take (domain/zones.py)
                self._local_hours = LocalHours(
                    store.client, store.keys, self.campaign_id, clock=self._clock
                )
            zones = await self._local_hours.claim(self.settings)
            started = time.perf_counter()
            try:
                command = store.claim_command(
                    self.campaign_id,
                    trunk,
                    call_ids,
                    self._engine.owner,
                    lease_ms=cfg.lease_ms,
                    max_channels=self.settings.max_channels,
                    trunk_max_channels=limit.max_channels,
                    cps=self.settings.cps,
                    trunk_cps=limit.cps,
                    rate_margin_ms=(
                        self.grant_delay.margin_ms(self._clock() * 1000)
                        if cfg.rate_margin_ms is None
                        else cfg.rate_margin_ms
                    ),
                    pace_ms=cfg.pace_ms,
                    node=node,
                    # the engine's nodes of the trunk, the group's and the global caps
                    nodes=await self._engine.node_claim(trunk),
                    zones=zones,
                )
                # in the results writer's next round trip, with what it has waiting
                batch: ClaimBatch = await self._engine.claim(command)
            except NotFound:
                return None  # deleted
            except StoreError as exc:
                if isinstance(exc, ScriptError):
                    self._engine.metrics.lua_error("claim")
                log.warning("campaign %s: claim failed: %s", self.campaign_id, exc)
                await asyncio.sleep(_MAX_IDLE)
                continue
            self._engine.metrics.observe_redis("claim", time.perf_counter() - started)
            if self._on_backup and trunk == self.settings.trunk and batch.stop != "trunk":
                self._on_backup = False
                log.warning("campaign %s: dialing on trunk %s again", self.campaign_id, trunk)
            if batch.claims:
                calls = [
                    (self._follow(claim, trunk, claim.node or node, batch.server_ms), claim)
                    for claim in batch.claims
                ]
                dials.create_task(self._dial(calls, batch.server_ms), name=calls[0][0].call_id)
            stop = batch.stop
            if stop != "node":
                self.node_loss.reset()
            if stop == "max":
                continue
            if stop == "full":
                self.at_cap = True
                self._engine.flush_writes()  # results that would free a channel: write now
                await self._sleep(self._slot_freed, cfg.full_poll)
                self.at_cap = False
            elif stop == "rate":
                await asyncio.sleep(max(batch.wait_ms, 1) / 1000)
            elif stop == "node":  # no node of the trunk is up here: as when the PBX is down
                if (lost := await self._no_node()) is not None:
                    return lost
                await self._sleep(self._wake, _MAX_IDLE)
            elif stop == "trunk":  # the trunk's breaker refuses claims (or took the probe)
                await self._trunk_refused(trunk, batch)
            elif stop == "empty":
                if await self._maybe_complete(batch):
                    return CampaignStatus.COMPLETED
            elif stop == "closed":  # the calling hours closed (by Redis's clock)
                try:
                    return await self._engine.control.close_window(self.campaign_id)
                except TransitionRefused:
                    continue  # moved on meanwhile: the next claim reads the new status
            else:  # "status": not Running any more
                return batch.status or CampaignStatus.DRAFT

    async def _no_node(self) -> CampaignStatus | None:
        """Nothing to dial on here: when no node of the trunk's group is up anywhere, for the
        whole grace, pause the campaign (dialer.engine.nodeloss); the status to end the loop
        with, or None to wait on (another engine's node dials it, or the grace runs)."""
        trunk = self.claim_trunk()
        try:
            down = await self._engine.group_down(trunk)
        except StoreError as exc:
            log.warning("campaign %s: trunk group not read: %s", self.campaign_id, exc)
            return None
        if not self.node_loss.observe(down):
            return None
        self.node_loss.reset()
        try:
            return await self._engine.pause_for_node_loss(self.campaign_id, trunk)
        except StoreError as exc:
            log.warning("campaign %s: not paused: %s", self.campaign_id, exc)
            return None

    async def _trunk_refused(self, trunk: str, batch: ClaimBatch) -> None:
        """The breaker of ``trunk`` refused claims: dial the backup trunk until a probe may go
        on ``trunk``, or wait (at most ``_MAX_IDLE``: a status change must be seen)."""
        self._engine.trunk_unhealthy(trunk)
        wait = max(batch.wait_ms, 1) / 1000
        if trunk == self.settings.trunk and self.settings.backup_trunk is not None:
            if not self._on_backup:
                self._on_backup = True
                log.warning(
                    "campaign %s: trunk %s refused by its breaker: dialing backup %s",
                    self.campaign_id,
                    trunk,
                    self.settings.backup_trunk,
                )
            # the trunk is asked again within a second: its probe may close it meanwhile
            self._primary_blocked_until = self._clock() + min(wait, _RECHECK_TRUNK)
            return
        await self._sleep(self._wake, min(wait, _MAX_IDLE))

    def channel_created(self, call: LiveCall, at: float) -> None:
        """The switch stamped the creation of ``call``'s channel at ``at`` (epoch seconds, the
        switch's clock): one grant-to-channel delay for the CPS window's margin."""
        if call.granted_ms:
            self.grant_delay.observe_switch(call.granted_ms, at * 1000)

    def _follow(
        self, claim: Claim, trunk: str | None = None, node: str = "", granted_ms: int = 0
    ) -> LiveCall:
        call = LiveCall(
            call_id=claim.call_id,
            campaign_id=self.campaign_id,
            trunk=trunk or self.settings.trunk,
            contact_id=claim.contact_id,
            phone=claim.phone,
            attempts=claim.attempts,
            tech_failures=claim.tech_failures,
            claimed_at=self._clock(),
            dial=claim.dial,
            engine_id=self._engine.settings.engine_id,
            node=node,
            granted_ms=granted_ms,
        )
        self._engine.register(call, self)
        return call

    def _request(self, call: LiveCall, claim: Claim) -> OriginateRequest:
        variables = channel_variables(claim.vars) if claim.vars else {}
        variables.update(self.settings.variables)
        variables["DIALER_AMD"] = "1" if self.settings.amd else "0"
        variables["DIALER_CAMPAIGN"] = str(self.campaign_id)
        return OriginateRequest(
            call_id=call.call_id,
            trunk=call.trunk,
            number=call.phone,
            context=self.settings.context,
            exten=self.settings.extension,
            ring_timeout=self.settings.ring_timeout,
            caller_id=call.caller_id or None,
            variables=variables,
        )

    async def _dial(self, calls: list[tuple[LiveCall, Claim]], granted_ms: int = 0) -> None:
        """Originate a claim's calls together (one task and one PBX write for the batch);
        ``granted_ms``: the claim's time by Redis's clock (0: unknown)."""
        engine = self._engine
        calls = await self._still_ours(calls)
        if not calls:
            return
        if self._caller_ids is None:
            self._caller_ids = CallerIdChooser(engine.store, self.campaign_id)
        chosen = await self._caller_ids.choose(
            self.settings.caller_id_source, [(call.contact_id, call.phone) for call, _ in calls]
        )
        for (call, _), caller_id in zip(calls, chosen, strict=True):
            call.caller_id = caller_id or ""
        requests = [self._request(call, claim) for call, claim in calls]
        sent_ms = self._clock() * 1000  # grant -> this write: the engine's part of the delay
        # one PBX write per node: a claim with a node block may spread over several nodes
        by_node: dict[str, list[int]] = {}
        for i, (call, _) in enumerate(calls):
            by_node.setdefault(call.node, []).append(i)
        errors: list[DialerError | None] = [None] * len(calls)
        for node, indexes in by_node.items():
            replies = await engine.adapter(node).originate_many([requests[i] for i in indexes])
            for i, error in zip(indexes, replies, strict=True):
                errors[i] = error
        if granted_ms and any(error is None for error in errors):
            self.grant_delay.observe(granted_ms, sent_ms)
        accepted = [call for (call, _), error in zip(calls, errors, strict=True) if error is None]
        engine.metrics.originated(self.campaign_id, calls[0][0].trunk, len(accepted))
        engine.originated(accepted)
        for (call, _), error in zip(calls, errors, strict=True):
            if error is not None:
                await self._not_originated(call, error)

    async def _still_ours(
        self, calls: list[tuple[LiveCall, Claim]]
    ) -> list[tuple[LiveCall, Claim]]:
        """The claims young enough to dial. A claim older than half the lease (this engine was
        frozen or starved between the claim and its originate, so no renewal ran) may have
        been released by another engine's reconciliation, which saw no channel for it, and its
        contact claimed again: dialing it now could call one person twice. It is given back
        instead (the release is fenced by the owner token: refused when already released)."""
        engine = self._engine
        oldest = self._clock() - engine.settings.lease_ms / 2000
        young = [(call, claim) for call, claim in calls if call.claimed_at > oldest]
        for call, _ in calls:
            if call.claimed_at > oldest:
                continue
            log.warning(
                "campaign %s: claim %s is %.1f s old (this engine stalled): not dialed",
                self.campaign_id,
                call.call_id,
                self._clock() - call.claimed_at,
            )
            engine.unregister(call.call_id)
            try:
                await engine.store.release(
                    self.campaign_id, call.trunk, call.call_id, call.contact_id, owner=engine.owner
                )
            except LeaseLost:
                pass  # another engine released (or adopted) it already
            except StoreError as exc:  # its lease expires; the reconciliation releases it
                log.warning("release of stale claim %s failed: %s", call.call_id, exc)
        return young

    async def _not_originated(self, call: LiveCall, error: DialerError) -> None:
        engine = self._engine
        metrics = engine.metrics
        if isinstance(error, ValidationError):
            metrics.originate_failed(self.campaign_id, call.trunk, OriginateFailure.NOT_DIALABLE)
            log.info(
                "campaign %s contact %s: not dialable: %s",
                self.campaign_id,
                call.contact_id,
                error,
            )
            raw = RawOutcome(answered=False, invalid_number=True)
            await engine.finish(call, _undialed(call, self._clock(), raw))
        elif isinstance(error, ActionFailed):
            metrics.originate_failed(self.campaign_id, call.trunk, OriginateFailure.REFUSED)
            log.warning("campaign %s: originate refused: %s", self.campaign_id, error)
            raw = RawOutcome(answered=False, originate_failed=True)
            await engine.finish(call, _undialed(call, self._clock(), raw))
        elif isinstance(error, (PbxUnavailable, ActionTimeout)):
            metrics.originate_failed(self.campaign_id, call.trunk, OriginateFailure.PBX_UNAVAILABLE)
            # Unknown whether the PBX has the call: keep following it; the lease and the
            # reconciliation with the PBX's channel list settle it. Never re-send.
            log.warning(
                "campaign %s: PBX lost during originate of %s: %s",
                self.campaign_id,
                call.call_id,
                error,
            )
            engine.originated([call])
        else:
            raise error

    async def _maybe_complete(self, res: ClaimBatch) -> bool:
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

    async def _wait_plan_pause(self) -> CampaignStatus | None:
        """Claim nothing; return the status once the campaign is no longer Running (None:
        deleted). The engine's follow-up loop pauses it and wakes this loop when it has."""
        self._engine.followup.pause_for_plan_nowait(self.campaign_id)  # asked again: no-op
        while True:
            checkpoint()
            try:
                campaign = await self._engine.store.get_campaign(self.campaign_id)
            except NotFound:
                return None
            except StoreError as exc:
                log.warning("campaign %s: status not read: %s", self.campaign_id, exc)
            else:
                status = CampaignStatus(campaign.status)
                if status is not CampaignStatus.RUNNING:
                    return status
            await self._sleep(self._wake, _MAX_IDLE)

    async def _not_running(self, status: CampaignStatus) -> None:
        if status is CampaignStatus.CANCELLING:
            campaign = await self._engine.store.get_campaign(self.campaign_id)
            if campaign.status_reason == HANGUP_REASON:
                for call in list(self.calls.values()):  # each through its own node
                    try:
                        await self._engine.adapter(call.node).hangup(call.call_id)
                    except Exception as exc:
                        log.warning("hang-up of %s failed: %s", call.call_id, exc)
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
