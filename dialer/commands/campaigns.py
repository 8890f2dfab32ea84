"""Campaign commands with their rules; the API's routes and the CLI call these and nothing else.

Why one class: the rules of a command (which statuses allow an edit or an upload, that a
campaign's context and trunks be configured, the "campaign N:" that names it in a refusal)
were written once in the API and again in the CLI, and drifted (the CLI's edit replaced the
settings without the API's status check, the API's upload checked the status the importer
checked again). Here each command is written once; the lifecycle moves themselves, with the
calling-hours check of a start or a resume, stay in :class:`~dialer.engine.control.CampaignControl`
(the engine uses them too).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from dialer.analytics import CampaignAnalytics, campaign_analytics
from dialer.domain.callerid import CallerIdSource
from dialer.domain.campaign import CampaignSettings
from dialer.domain.lifecycle import (
    CAMPAIGN_TRANSITIONS,
    CampaignCommand,
    ListCommand,
    next_list_status,
)
from dialer.domain.recycle import recyclable_statuses
from dialer.domain.statuses import CallStatus, CampaignStatus, ListStatus
from dialer.domain.why import WhyReport
from dialer.engine.callbacks import CallbackCommands
from dialer.engine.control import CampaignControl, CommandResult
from dialer.errors import DomainError, NotFound, TransitionRefused, ValidationError
from dialer.importer import ColumnMapping, ImportReport, import_csv
from dialer.importer.reader import Source
from dialer.store.callerid import list_caller_ids, set_list_caller_id
from dialer.store.models import CampaignRecord
from dialer.store.queries import set_identity
from dialer.store.recycle import (
    RecycleReport,
    RemoveReport,
    Target,
    normalized_phones,
    recycle_list,
    remove_contacts,
)
from dialer.store.redis_store import RedisStore
from dialer.store.why import explain

__all__ = [
    "ADDING",
    "EDITABLE",
    "CampaignCommands",
    "CampaignDraining",
    "Created",
    "not_editable",
]

#: Statuses in which settings and lists may be edited (the lifecycle table's EDIT rows).
EDITABLE = frozenset(s for (s, c) in CAMPAIGN_TRANSITIONS if c is CampaignCommand.EDIT)
ADDING = "lists can be added"


def not_editable(
    cid: int, status: CampaignStatus, what: str = "settings can be edited"
) -> TransitionRefused:
    """The refusal "campaign 12 is Running; settings can be edited only in Draft or Paused"
    (the API's 409 ``campaign_not_editable``)."""
    allowed = " or ".join(s.label for s in CampaignStatus if s in EDITABLE)
    return TransitionRefused(
        f"campaign {cid} is {status.label}; {what} only in {allowed}",
        status=status.value,
        command=CampaignCommand.EDIT.value,
    )


class CampaignDraining(DomainError):
    """A delete waited ``timeout`` s and the campaign's calls were still in flight: it is
    being cancelled; deleting it again later works (the API's 409 ``campaign_draining``)."""

    def __init__(self, cid: int, status: CampaignStatus, timeout: float) -> None:
        super().__init__(
            f"campaign {cid} is {status.label}: its calls were still draining after "
            f"{timeout:g} s; delete it again once it is Cancelled"
        )
        self.status = status


@dataclass(frozen=True, slots=True)
class Created:
    campaign_id: int
    report: ImportReport | None  # the contacts imported with it, if any


@contextmanager
def _naming(cid: int, command: str) -> Iterator[None]:
    """A refusal names the campaign and the command (a compare-and-set refused in Redis
    carries neither)."""
    try:
        yield
    except TransitionRefused as exc:
        message = exc.message
        if not message.startswith(f"campaign {cid}"):
            message = f"campaign {cid}: {message}"
        raise TransitionRefused(
            message, status=exc.status, command=exc.command or command
        ) from None


class CampaignCommands:
    """The commands on ``store``. ``trunks``: the trunks campaigns may use (DIALER_TRUNKS);
    None: any trunk name."""

    def __init__(
        self,
        store: RedisStore,
        control: CampaignControl,
        *,
        trunks: Collection[str] | None = None,
        delete_drain_timeout: float = 60.0,
    ) -> None:
        self.store = store
        self.control = control
        self.trunks = None if trunks is None else frozenset(trunks)
        self.delete_drain_timeout = delete_drain_timeout

    @property
    def callbacks(self) -> CallbackCommands:
        return CallbackCommands(self.store)

    # -- reads (the CLI's list and show; RemoteCommands has them too) -----------------------

    async def campaigns(
        self, status: CampaignStatus | None = None, limit: int = 50
    ) -> list[CampaignRecord]:
        """Newest first."""
        return await self.store.list_campaigns(status=status, limit=limit)

    async def campaign(
        self, cid: int
    ) -> tuple[CampaignRecord, dict[int, ListStatus], dict[CallStatus, int]]:
        """The campaign, its lists and its contacts per status."""
        record = await self.store.get_campaign(cid)
        return record, await self.store.list_status(cid), await self.store.counts(cid)

    async def why(self, cid: int) -> WhyReport:
        """What holds the campaign back right now (dialer.domain.why)."""
        return await explain(self.store, cid)

    async def analytics(self, cid: int) -> CampaignAnalytics:
        return await campaign_analytics(self.store, cid)

    # -- settings --------------------------------------------------------------------------

    def check(self, settings: CampaignSettings) -> CampaignSettings:
        """``settings`` if this installation can dial them: its context and trunks are
        configured; ValidationError otherwise."""
        self.control.check(settings)
        if self.trunks is not None:
            for name in (settings.trunk, settings.backup_trunk):
                if name is not None and name not in self.trunks:
                    known = ", ".join(sorted(self.trunks)) or "none"
                    raise ValidationError(
                        f"trunk {name[:64]!r} is not configured (DIALER_TRUNKS): use one of {known}"
                    )
        return settings

    async def create(
        self,
        settings: CampaignSettings,
        contacts: Source | None = None,
        *,
        region: str = "US",
    ) -> Created:
        """A new Draft campaign, with ``contacts`` (a CSV) as its first list: all or nothing
        (a refused import deletes the campaign)."""
        cid = await self.control.create(self.check(settings))
        if contacts is None:
            return Created(cid, None)
        try:
            report = await import_csv(self.store, cid, contacts, default_region=region)
        except BaseException:
            await self.store.delete_campaign(cid)  # no half-made campaign
            raise
        return Created(cid, report)

    async def editable(self, cid: int, what: str = "settings can be edited") -> CampaignRecord:
        """The campaign, if it is Draft or Paused; TransitionRefused (``edit``) otherwise."""
        campaign = await self.store.get_campaign(cid)
        if campaign.status not in EDITABLE:
            raise not_editable(cid, campaign.status, what)
        return campaign

    async def edit(
        self, cid: int, changes: Mapping[str, object], *, merge: bool = True
    ) -> CampaignRecord:
        """Draft or Paused only. ``merge``: the fields given replace the stored ones (a
        top-level merge, as PATCH); otherwise ``changes`` are the whole settings. The result
        is validated whole."""
        campaign = await self.editable(cid)
        stored = _stored(campaign) if merge else {}
        settings = self.check(CampaignSettings.from_dict({**stored, **changes}))
        try:
            await self.store.update_settings(cid, json.dumps(settings.to_dict()), allowed=EDITABLE)
        except TransitionRefused:
            current = await self.store.get_campaign(cid)  # the status moved meanwhile
            raise not_editable(cid, current.status) from None
        await set_identity(self.store, cid, name=settings.name, trunk=settings.trunk)
        return await self.store.get_campaign(cid)

    # -- lists and contacts ----------------------------------------------------------------

    async def upload(
        self,
        cid: int,
        source: Source,
        *,
        mapping: ColumnMapping | None = None,
        region: str = "US",
        caller_ids: CallerIdSource | None = None,
    ) -> ImportReport:
        """``source`` (a CSV path or binary stream) as a new list, all or nothing (Draft or
        Paused only), with its own caller id if ``caller_ids`` names one."""
        await self.editable(cid, ADDING)
        try:
            report = await import_csv(
                self.store, cid, source, mapping=mapping, default_region=region
            )
        except TransitionRefused:
            current = await self.store.get_campaign(cid)  # the status moved during the import
            raise not_editable(cid, current.status, ADDING) from None
        if caller_ids is not None and not caller_ids.empty and report.list_id is not None:
            await set_list_caller_id(self.store, cid, report.list_id, caller_ids)
        return report

    async def _list_status(self, cid: int, list_id: int) -> ListStatus:
        lists = await self.store.list_status(cid)  # NotFound: no such campaign
        if list_id not in lists:
            raise NotFound(f"list {list_id} of campaign {cid} does not exist")
        return lists[list_id]

    async def stop_list(self, cid: int, list_id: int) -> tuple[ListStatus, int]:
        """Stop a list for good: (its new status, how many contacts became Not dialed)."""
        current = await self._list_status(cid, list_id)
        with _naming(cid, ListCommand.STOP.value):
            status = next_list_status(list_id, current, ListCommand.STOP)
        return status, await self.store.stop_list(cid, list_id)

    async def list_caller_id(self, cid: int, list_id: int) -> CallerIdSource:
        """The list's own caller id settings (empty: the campaign's apply)."""
        await self._list_status(cid, list_id)
        return (await list_caller_ids(self.store, cid)).get(list_id, CallerIdSource())

    async def set_list_caller_id(self, cid: int, list_id: int, source: CallerIdSource) -> None:
        """Set a list's caller id settings (an empty ``source``: the campaign's apply again)."""
        await set_list_caller_id(self.store, cid, list_id, source)

    async def recycle(
        self, cid: int, list_id: int, statuses: Iterable[str], *, into: Target = None
    ) -> RecycleReport:
        """Copy the contacts of a finished or stopped list in ``statuses`` into a new list."""
        chosen = recyclable_statuses(statuses)
        return await recycle_list(self.store, cid, list_id, chosen, into=into)

    async def remove(
        self, cid: int, ids: Iterable[int] = (), phones: Iterable[str] = (), region: str = "US"
    ) -> RemoveReport:
        """Mark contacts Removed by id and/or phone (Draft or Paused only)."""
        numbers = normalized_phones(phones, region)
        wanted = list(ids)
        if not wanted and not numbers:
            raise ValidationError("name the contacts to remove: contact ids and/or phones")
        return await remove_contacts(self.store, cid, wanted, numbers)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, cid: int) -> CommandResult:
        """Running, or Scheduled when its calling hours are closed (or before its start date)."""
        with _naming(cid, CampaignCommand.START.value):
            return await self.control.start(cid)

    async def pause(self, cid: int) -> CommandResult:
        with _naming(cid, CampaignCommand.PAUSE.value):
            return await self.control.pause(cid)

    async def resume(self, cid: int) -> CommandResult:
        with _naming(cid, CampaignCommand.RESUME.value):
            return await self.control.resume(cid)

    async def stop(self, cid: int, *, hangup: bool = False) -> CommandResult:
        with _naming(cid, CampaignCommand.STOP.value):
            return await self.control.stop(cid, hangup=hangup)

    async def stop_all(self, *, hangup: bool = False) -> list[CommandResult]:
        return await self.control.stop_all(hangup=hangup)

    async def delete(self, cid: int, *, drain_timeout: float | None = None) -> None:
        """Delete; a live campaign is stopped first and its calls drain (CampaignDraining
        after ``drain_timeout`` s). Call records stay."""
        timeout = self.delete_drain_timeout if drain_timeout is None else drain_timeout
        try:
            with _naming(cid, CampaignCommand.DELETE.value):
                await self.control.delete(cid, drain_timeout=timeout)
        except TimeoutError:
            campaign = await self.store.get_campaign(cid)
            raise CampaignDraining(cid, campaign.status, timeout) from None


def _stored(campaign: CampaignRecord) -> dict[str, object]:
    """The stored settings to merge an edit into; none when they are not a JSON object (then
    only complete settings, validated whole as ever, replace them)."""
    try:
        data = json.loads(campaign.settings_json)
    except (ValueError, RecursionError):
        data = None
    return data if isinstance(data, dict) else {}
