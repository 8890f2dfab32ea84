"""Campaign commands (start, pause, resume, stop, delete), usable with or without a running engine.

Every command is checked against the lifecycle table (dialer.domain.lifecycle) and applied with a
compare-and-set in Redis, so two operators or two engine processes can never race a campaign into
a status the table does not allow. Pausing and stopping are effective for every engine process at
the moment the status changes: the claim script dials only Running campaigns.

A campaign whose stored settings fail validation when read (:class:`InvalidSettings`: written to
Redis by hand, say) is paused by the engine with the problem as its reason
(:meth:`CampaignControl.pause_invalid`); every other campaign goes on. Starting or resuming it
is refused with the same reason until its settings are edited.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace

from dialer.domain.altnumbers import MAX_NUMBERS, check_label
from dialer.domain.campaign import CampaignSettings
from dialer.domain.dialplan import DEFAULT_CONTEXTS, check_context
from dialer.domain.hours import CLOSE_GUARD_S, Availability
from dialer.domain.lifecycle import CampaignCommand, TransitionContext, next_status
from dialer.domain.phones import check_region, to_e164
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.domain.variables import contact_variables_problem
from dialer.errors import InvalidSettings, TransitionRefused, ValidationError
from dialer.store.models import AltNumber, CampaignRecord, ContactInput
from dialer.store.redis_store import RedisStore

log = logging.getLogger(__name__)

HANGUP_REASON = "stopped with hang-up"
PBX_DOWN_REASON = "PBX unavailable"
NODE_LOSS_REASON = "no PBX node of its trunk group is up"  # dialer.engine.nodeloss
PLAN_LIMIT_REASON = "plan limit"
ACTIVE = (
    CampaignStatus.SCHEDULED,
    CampaignStatus.RUNNING,
    CampaignStatus.PAUSING,
    CampaignStatus.PAUSED,
    CampaignStatus.CANCELLING,
)


@dataclass(frozen=True, slots=True)
class CommandResult:
    campaign_id: int
    status: CampaignStatus
    draining: int  # calls still in flight that will end naturally


class CampaignControl:
    def __init__(
        self,
        store: RedisStore,
        *,
        claim_settle: float = 1.0,
        clock: Callable[[], float] = time.time,
        contexts: Collection[str] = DEFAULT_CONTEXTS,
    ) -> None:
        self._store = store
        self._claim_settle = claim_settle
        self._clock = clock  # epoch seconds: calling hours and dates
        self._contexts = frozenset(contexts)  # DIALER_CONTEXTS

    def check(self, settings: CampaignSettings) -> CampaignSettings:
        """``settings`` if this installation can dial them (the context is configured);
        ValidationError otherwise. Create and edit (API, CLI) call it; so does the engine."""
        check_context(settings.context, self._contexts)
        return settings

    async def create(self, settings: CampaignSettings) -> int:
        """A new Draft campaign."""
        self.check(settings)
        return await self._store.create_campaign(
            settings.name, settings.trunk, json.dumps(settings.to_dict())
        )

    async def add_list(
        self, cid: int, contacts: Iterable[ContactInput], *, region: str = "US"
    ) -> tuple[int, int]:
        """A new recipient list (Draft or Paused only); returns (list id, contacts added).

        Valid numbers are stored as E.164 (``region`` for national ones), as the CSV importer
        stores them: the dial-time do-not-call check compares stored numbers as they are.
        """
        campaign = await self._store.get_campaign(cid)
        next_status(CampaignStatus(campaign.status), CampaignCommand.EDIT)
        region = check_region(region)
        checked = [_checked(i, c, region) for i, c in enumerate(contacts, start=1)]
        list_id = await self._store.add_list(cid)
        added = await self._store.add_contacts(cid, list_id, checked)
        return list_id, added

    async def _apply(
        self,
        cid: int,
        command: CampaignCommand,
        reason: str = "",
        *,
        dialable: int = 0,
        campaign: CampaignRecord | None = None,
        hours: Availability | None = None,
    ) -> CampaignStatus:
        """Apply ``command`` by compare-and-set. A move to Running carries the claim deadline
        (the calling hours' close less the guard, or the end date) that claim.lua enforces; a
        move to Scheduled carries why and the next opening."""
        if campaign is None:
            campaign = await self._store.get_campaign(cid)
        current = CampaignStatus(campaign.status)
        if hours is None and command in _READS_HOURS:
            hours = _settings(campaign).availability(self._clock())
        ctx = TransitionContext(
            window_open=hours is None or hours.open,
            ended=hours is not None and hours.ended,
            dialable_contacts=dialable,
        )
        target = next_status(current, command, ctx)
        open_until = opens_at = None
        if hours is not None and target is CampaignStatus.RUNNING:
            open_until = hours.claim_deadline_ms()
        elif hours is not None and target is CampaignStatus.SCHEDULED:
            reason = hours.reason
            opens_at = None if hours.opens_at is None else int(hours.opens_at * 1000)
        return await self._store.transition(
            cid, (current,), target, reason, open_until_ms=open_until, opens_at_ms=opens_at
        )

    async def start(self, cid: int) -> CommandResult:
        """Running, or Scheduled when its calling hours are closed (or before its start date)."""
        counts = await self._store.counts(cid)
        queued = (CallStatus.PENDING, CallStatus.RETRY_SCHEDULED, CallStatus.RESCHEDULED)
        dialable = sum(counts.get(s, 0) for s in queued)  # a callback is dialable too
        status = await self._apply(cid, CampaignCommand.START, dialable=dialable)
        return CommandResult(cid, status, 0)

    async def open_window(self, campaign: CampaignRecord) -> CampaignStatus:
        """Engine, for a Scheduled campaign: Running once its hours open, with a new claim
        deadline; Cancelling (reason: end date passed) when it can never dial again; Pausing
        (reason: the problem) when its stored settings are invalid."""
        try:
            hours = _settings(campaign).availability(self._clock())
        except InvalidSettings as exc:
            return await self.pause_invalid(campaign.id, exc)
        if hours.ended:
            return await self._end(campaign, hours)
        if not hours.open:
            return campaign.status
        return await self._apply(
            campaign.id, CampaignCommand.WINDOW_OPENED, campaign=campaign, hours=hours
        )

    async def close_window(self, cid: int) -> CampaignStatus:
        """Engine, when the claim script refused a Running campaign for its claim deadline:
        Scheduled until the next opening, or Cancelling when none is left before the end date.
        Returns the campaign's status (a person may have paused or stopped it meanwhile)."""
        campaign = await self._store.get_campaign(cid)
        if campaign.status is not CampaignStatus.RUNNING:
            return campaign.status
        # judged at the close itself, not now: the deadline comes CLOSE_GUARD_S before it,
        # and this process's clock may differ a little from the Redis server's
        close = max(self._clock(), (campaign.open_until_ms or 0) / 1000) + CLOSE_GUARD_S
        try:
            hours = _settings(campaign).availability(close)
        except InvalidSettings as exc:
            return await self.pause_invalid(cid, exc)
        if hours.ended:
            return await self._end(campaign, hours)
        if hours.open:  # (its settings cannot change while Running: a clock far off Redis's)
            log.warning("campaign %s: claims refused, but its hours are open here", cid)
            return campaign.status
        return await self._apply(cid, CampaignCommand.WINDOW_CLOSED, campaign=campaign, hours=hours)

    async def _end(self, campaign: CampaignRecord, hours: Availability) -> CampaignStatus:
        status = await self._apply(
            campaign.id, CampaignCommand.END, hours.reason, campaign=campaign
        )
        log.info("campaign %s ended: %s", campaign.id, hours.reason)
        return status

    async def pause(self, cid: int, reason: str = "") -> CommandResult:
        """No new originate from now on in any engine; in-flight calls end normally. Returns
        once the calls claimed before the status changed are originated (or released)."""
        await self.pause_nowait(cid, reason)
        return await self.wait_settled(cid)

    async def pause_nowait(self, cid: int, reason: str = "") -> CampaignStatus:
        """The status change of :meth:`pause` alone (Pausing, or Paused); no settle."""
        return await self._apply(cid, CampaignCommand.PAUSE, reason)

    async def pause_invalid(self, cid: int, error: InvalidSettings) -> CampaignStatus:
        """Engine: pause a campaign whose stored settings fail validation, the reason naming the
        problem (``invalid settings: variables.EVIL has a control character ...``); its calls in
        flight end normally. Returns the campaign's status (Pausing, or what another engine or
        a person made it meanwhile)."""
        try:
            status = await self.pause_nowait(cid, str(error))
        except TransitionRefused:
            return (await self._store.get_campaign(cid)).status
        log.error("campaign %s paused: %s", cid, error)
        return status

    async def resume(self, cid: int, *, only_reason: str | None = None) -> CommandResult:
        """Dial again. ``only_reason``: resume only if that is why the campaign paused."""
        if only_reason is not None:
            campaign = await self._store.get_campaign(cid)
            if campaign.status_reason != only_reason:
                return CommandResult(cid, campaign.status, 0)
        status = await self._apply(cid, CampaignCommand.RESUME)
        return CommandResult(cid, status, 0)

    async def stop(self, cid: int, *, hangup: bool = False) -> CommandResult:
        """Cancel for good: drain (or hang up) in-flight calls; undialed contacts -> Not dialed
        (Plan limit exceeded when the plan limit had paused the campaign)."""
        campaign = await self._store.get_campaign(cid)
        reason = HANGUP_REASON if hangup else ""
        if campaign.status_reason == PLAN_LIMIT_REASON and not hangup:
            reason = PLAN_LIMIT_REASON
        await self._apply(cid, CampaignCommand.STOP, reason)
        return await self.wait_settled(cid)

    async def stop_all(self, *, hangup: bool = False) -> list[CommandResult]:
        results = []
        for status in ACTIVE:
            if status is CampaignStatus.CANCELLING:
                continue
            for campaign in await self._store.list_campaigns(status=status, limit=10_000):
                try:
                    results.append(await self.stop(campaign.id, hangup=hangup))
                except Exception as exc:
                    log.warning("stop-all: campaign %s: %s", campaign.id, exc)
        return results

    async def delete(self, cid: int, *, drain_timeout: float = 60.0) -> None:
        """Delete; a live campaign is cancelled first (with drain). Call records are kept."""
        campaign = await self._store.get_campaign(cid)
        status = CampaignStatus(campaign.status)
        if status in ACTIVE:
            if status is not CampaignStatus.CANCELLING:
                await self.stop(cid)
            await self.wait_status(cid, {CampaignStatus.CANCELLED}, within=drain_timeout)
        else:
            next_status(status, CampaignCommand.DELETE)
        await self._store.delete_campaign(cid)

    async def drained(self, cid: int) -> CampaignStatus:
        """Finish a pause or a stop once nothing is in flight (any engine may call this)."""
        campaign = await self._store.get_campaign(cid)
        status = CampaignStatus(campaign.status)
        if status not in (CampaignStatus.PAUSING, CampaignStatus.CANCELLING):
            return status
        stats = await self._store.queue_stats(cid)
        if stats.inflight or stats.claimed or await self._store.orphaned_calls(cid):
            return status
        if status is CampaignStatus.CANCELLING:
            undialed = (
                CallStatus.PLAN_LIMIT_EXCEEDED
                if campaign.status_reason == PLAN_LIMIT_REASON
                else CallStatus.NOT_DIALED
            )
            await self._store.mark_undialed(cid, undialed)
        target = next_status(status, CampaignCommand.DRAINED)
        try:
            return await self._store.transition(cid, (status,), target, campaign.status_reason)
        except TransitionRefused:  # another caller finished it (or resumed it) meanwhile
            return CampaignStatus((await self._store.get_campaign(cid)).status)

    async def wait_status(
        self, cid: int, wanted: set[CampaignStatus], *, within: float
    ) -> CampaignStatus:
        async with asyncio.timeout(within):
            while True:
                status = await self.drained(cid)
                if status in wanted:
                    return status
                await asyncio.sleep(0.05)

    async def wait_settled(self, cid: int) -> CommandResult:
        """After a pause or a stop: wait (up to ``claim_settle``) until the calls claimed before
        the status changed are originated or released, which takes moments; then nothing more
        will be originated. Finishes the pause or stop if nothing is in flight."""
        await self._store.wait_claimed_empty(cid, timeout=self._claim_settle)
        status = await self.drained(cid)
        stats = await self._store.queue_stats(cid)
        return CommandResult(cid, status, stats.inflight)


_READS_HOURS = frozenset({CampaignCommand.START, CampaignCommand.RESUME})


def _settings(campaign: CampaignRecord) -> CampaignSettings:
    """The campaign's settings; InvalidSettings names the problem."""
    return CampaignSettings.from_json(campaign.settings_json)


def _text(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{what} is not valid text (lone surrogate)") from None


def _checked(index: int, contact: ContactInput, region: str) -> ContactInput:
    """Contacts must be storable text, with no more variables than a call carries; anything
    else is refused before the list is created."""
    _text(contact.phone, f"contact {index}: phone")
    for key, value in contact.vars.items():
        _text(key, f"contact {index}: a variable name")
        _text(value, f"contact {index}: variable {key.encode('utf-8', 'replace')[:40]!r}")
    problem = contact_variables_problem(contact.vars)  # more than one call carries
    if problem is not None:
        raise ValidationError(f"contact {index}: {problem}")
    check_label(contact.label, f"contact {index}: label")
    if len(contact.alternates) >= MAX_NUMBERS:
        raise ValidationError(f"contact {index}: at most {MAX_NUMBERS} numbers")
    alternates = tuple(_alternate(index, alt, region) for alt in contact.alternates)
    e164 = to_e164(contact.phone, region)
    return replace(
        contact,
        phone=contact.phone if e164 is None else e164,
        alternates=alternates,
    )


def _alternate(index: int, alt: AltNumber, region: str) -> AltNumber:
    """An alternate number must be valid (an invalid main number is kept as Invalid number, as
    before; an alternate has no status of its own to keep it)."""
    check_label(alt.label, f"contact {index}: label")
    _text(alt.number, f"contact {index}: alternate number")
    e164 = to_e164(alt.number, region)
    if e164 is None:
        raise ValidationError(f"contact {index}: invalid alternate number {alt.number[:40]!r}")
    return replace(alt, number=e164)
