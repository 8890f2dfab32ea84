"""Recycling a list into a new one, and removing contacts, on Redis (see domain/recycle.py).

Recycle, in bounded steps (none is O(list size) in Redis):

1. choose: SSCAN the list's members, read their statuses in pipelined batches (and, for
   contacts "Completed without answer", their last attempt's outcome from the records stream);
2. stage: recycle_stage.lua copies one batch at a time into new contact hashes of the target
   campaign, listed in a staging zset, not queued: invisible to claims and counts;
3. commit: recycle_commit.lua's first call publishes the list atomically (target still Draft or
   Paused, the statuses not recycled before), the next calls queue the staged contacts in
   chunks. A failure or a refused commit discards the staging: all or nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from dialer.domain.phones import normalize_phone
from dialer.domain.recycle import NOT_FINISHED, matches
from dialer.domain.statuses import CallStatus, CampaignStatus, ListStatus
from dialer.errors import NotFound, TransitionRefused

from .keys import contact_id_of, contact_member
from .redis_store import RedisStore, _chunks, _s, _translated

_log = logging.getLogger(__name__)

_EDITABLE = frozenset({CampaignStatus.DRAFT, CampaignStatus.PAUSED})
_SCAN = 1000  # members read per round trip


class RecycleRefused(TransitionRefused):
    """A recycle the state does not allow; ``code`` is the API's error id
    (``list_not_finished``, ``already_recycled``, ``campaign_not_editable``; on Redis Cluster
    ``other_slot_group``: a target campaign on a trunk of another slot group)."""

    def __init__(self, code: str, message: str, *, status: str | None = None) -> None:
        super().__init__(message, status=status, command="recycle")
        self.code = code


class RemoveRefused(TransitionRefused):
    """A removal while the campaign is not Draft or Paused (``status``: its status)."""


@dataclass(frozen=True, slots=True)
class RecycleReport:
    source_campaign: int
    source_list: int
    campaign: int  # the new list's campaign
    list_id: int | None  # None: no contact matched, nothing was created
    statuses: tuple[str, ...]
    examined: int  # contacts of the source list read
    recycled: int  # contacts in the new list
    skipped_dnc: int  # matched but on a do-not-call list
    skipped_changed: int  # matched but their status changed before the copy
    created_campaign: bool = False
    batches: int = 0  # Lua calls (stage + commit)
    slowest_call_ms: float = 0.0  # the longest single Lua round trip, measured by the client
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class RemoveReport:
    removed: list[int] = field(default_factory=list)
    already_removed: list[int] = field(default_factory=list)
    in_call: list[int] = field(default_factory=list)  # in a call now: not removed
    not_found: list[int] = field(default_factory=list)
    phones_not_found: list[str] = field(default_factory=list)


Target = int | Literal["new"] | None


class _Clock:
    def __init__(self) -> None:
        self.calls = 0
        self.slowest = 0.0

    def lap(self, started: float) -> None:
        self.calls += 1
        self.slowest = max(self.slowest, (time.perf_counter() - started) * 1000)


async def _last_outcomes(store: RedisStore, cid: int, wanted: set[int]) -> dict[int, CallStatus]:
    """The outcome of each wanted contact's last call record (one pass over the stream)."""
    out: dict[int, CallStatus] = {}
    after = "-"
    while wanted:
        page = await store.records(cid, after=after, count=5000)
        for entry_id, rec in page:
            after = entry_id
            kid = rec.get("contact_id") or rec.get("contact") or ""
            if kid.isdigit() and int(kid) in wanted:
                try:
                    out[int(kid)] = CallStatus(rec.get("status", ""))
                except ValueError:
                    continue
        if len(page) < 5000:
            break
    return out


async def _choose(
    store: RedisStore, cid: int, list_id: int, chosen: frozenset[CallStatus], check: bool
) -> tuple[list[tuple[int, str]], int]:
    """The matching (contact id, status) of the list in id order, and how many were read.
    ``check``: refuse a list whose contacts are not all final (list_not_finished)."""
    r, k = store.client, store.keys
    candidates: list[tuple[int, str]] = []
    exhausted: list[int] = []
    examined = busy = 0
    cursor = 0
    while True:
        cursor, members = await r.sscan(k.list_members(cid, list_id), cursor, count=_SCAN)
        for chunk in _chunks(members, _SCAN):
            ids = [contact_id_of(m) for m in chunk]
            async with r.pipeline(transaction=False) as pipe:
                for i in ids:
                    pipe.hget(k.contact(cid, i), "status")
                statuses = await pipe.execute()
            for i, raw in zip(ids, statuses, strict=True):
                value = _s(raw)
                if not value:
                    continue
                examined += 1
                status = CallStatus(value)
                if status in NOT_FINISHED:
                    busy += 1
                elif status in chosen:
                    candidates.append((i, value))
                elif status is CallStatus.COMPLETED_NO_ANSWER:
                    exhausted.append(i)
        if cursor == 0:
            break
    if check and busy:
        raise RecycleRefused(
            "list_not_finished",
            f"list {list_id} of campaign {cid} is not finished: {busy} of its contacts are "
            "still queued or in a call; stop the list, or wait until it is finished",
        )
    if exhausted and chosen - {CallStatus.COMPLETED_NO_ANSWER}:
        last = await _last_outcomes(store, cid, set(exhausted))
        candidates += [
            (i, CallStatus.COMPLETED_NO_ANSWER.value)
            for i in exhausted
            if matches(CallStatus.COMPLETED_NO_ANSWER, last.get(i), chosen)
        ]
    candidates.sort()
    return candidates, examined


async def _target(store: RedisStore, cid: int, list_id: int, into: Target) -> tuple[int, bool]:
    """The campaign receiving the new list (created when ``into`` is "new")."""
    if into == "new":
        source = await store.get_campaign(cid)
        name = f"{source.name} (recycled list {list_id})"[:200]
        return await store.create_campaign(name, source.trunk, source.settings_json), True
    target = cid if into is None else into
    if store.keys.group_of(target) != store.keys.group_of(cid):  # Redis Cluster (keys.py)
        raise RecycleRefused(
            "other_slot_group",
            f"campaign {target} is in another Redis Cluster slot group than campaign {cid} (its "
            "trunk's): recycle into a campaign on a trunk of the same group, or into a new one",
        )
    campaign = await store.get_campaign(target)
    if campaign.status not in _EDITABLE:
        raise RecycleRefused(
            "campaign_not_editable",
            f"campaign {target} is {campaign.status.label}; a list can be added only in Draft "
            "or Paused (recycle into another campaign, or into a new one)",
            status=campaign.status.value,
        )
    return target, False


@_translated
async def recycle_list(
    store: RedisStore,
    cid: int,
    list_id: int,
    chosen: frozenset[CallStatus],
    *,
    into: Target = None,
    batch: int = 500,
    commit_chunk: int = 2000,
) -> RecycleReport:
    """Copy the contacts of a finished or stopped list whose status is in ``chosen`` into a
    new list of ``into`` (None: the same campaign; a campaign id; "new": a new Draft campaign
    with the source's name, trunk and settings), all or nothing; see the module's docstring.
    """
    started = time.perf_counter()
    k, r = store.keys, store.client
    lists = await store.list_status(cid)
    if list_id not in lists:
        raise NotFound(f"list {list_id} of campaign {cid} does not exist")
    source = await store.get_campaign(cid)
    check = lists[list_id] is not ListStatus.STOPPED and not source.status.is_final
    candidates, examined = await _choose(store, cid, list_id, chosen, check)
    names = tuple(sorted(s.value for s in chosen))
    if not candidates:
        return RecycleReport(cid, list_id, cid, None, names, examined, 0, 0, 0)
    target, created = await _target(store, cid, list_id, into)
    clock = _Clock()
    new_list = int(await r.incr(k.list_seq(target)))
    staged_ids: list[int] = []
    staged = dnc = changed = 0
    fields = [f"{list_id}:{name}" for name in names]
    try:
        fixed = [
            k.global_dnc_of(target),
            k.campaign_dnc(cid),
            k.campaign_dnc(target),
            k.list_members(target, new_list),
            k.list_staged(target, new_list),
            k.phones(target),
        ]
        for part in _chunks(candidates, batch):
            last = int(await r.incrby(k.contact_seq(target), len(part)))
            ids = range(last - len(part) + 1, last + 1)
            staged_ids += ids
            keys = list(fixed)
            args: list[str | int] = [new_list, cid]
            for (old, status), new in zip(part, ids, strict=True):
                keys += [k.contact(cid, old), k.contact(target, new)]
                args += [old, status, contact_member(new)]
            keys += [k.zones(cid), k.zones(target)]  # local hours: the copies' zone groups
            t0 = time.perf_counter()
            got = await store.scripts.recycle_stage(keys=keys, args=args)
            clock.lap(t0)
            staged, dnc, changed = staged + int(got[0]), dnc + int(got[1]), changed + int(got[2])
        keys = [
            k.campaign(target),
            k.lists(target),
            k.list_staged(target, new_list),
            k.pending(target),
            k.counts(target),
            k.recycled(cid),
            k.contact_prefix(target),  # local hours: each copy into its zone group's queue
            k.zone_prefix(target),
        ]
        args = [new_list, f"{target}:{new_list}", commit_chunk, staged, *fields]
        while True:
            t0 = time.perf_counter()
            res = await store.scripts.recycle_commit(keys=keys, args=args)
            clock.lap(t0)
            if int(res[0]) == 0:
                raise _commit_refused(target, _s(res[1]), _s(res[2]))
            if int(res[1]) == 0:
                break
    except BaseException:
        await _discard(store, target, new_list, staged_ids)
        raise
    seconds = time.perf_counter() - started
    _log.info(
        "list %s of campaign %s recycled (%s): %d contacts into list %s of campaign %s",
        list_id,
        cid,
        ",".join(names),
        staged,
        new_list,
        target,
    )
    return RecycleReport(
        cid,
        list_id,
        target,
        new_list,
        names,
        examined,
        staged,
        dnc,
        changed,
        created,
        clock.calls,
        round(clock.slowest, 3),
        round(seconds, 3),
    )


def _commit_refused(target: int, reason: str, detail: str) -> RecycleRefused:
    if reason == "recycled":
        return RecycleRefused(
            "already_recycled", f"already recycled (list:status -> campaign:list): {detail}"
        )
    if not detail:
        return RecycleRefused("campaign_not_editable", f"campaign {target} was deleted")
    label = CampaignStatus(detail).label
    return RecycleRefused(
        "campaign_not_editable",
        f"campaign {target} became {label} during the recycle; nothing was added",
        status=detail,
    )


async def _discard(store: RedisStore, target: int, list_id: int, ids: Sequence[int]) -> None:
    """Drop a staging that was not committed (its contacts were never queued or counted)."""
    k, r = store.keys, store.client
    if await r.hget(k.lists(target), str(list_id)) is not None:
        return  # committed: the rest of the queueing is the caller's to finish
    for part in _chunks(ids, 1000):
        await r.unlink(*(k.contact(target, i) for i in part))
    await r.unlink(k.list_staged(target, list_id), k.list_members(target, list_id))


# ---------------------------------------------------------------------- removal


async def _find_phones(
    store: RedisStore, cid: int, phones: Collection[str]
) -> tuple[list[int], list[str]]:
    """Contact ids whose phone is one of ``phones`` (a scan of the campaign's contacts)."""
    k, r = store.keys, store.client
    wanted = set(phones)
    found: list[int] = []
    seen: set[str] = set()
    last = int(_s(await r.get(k.contact_seq(cid))) or 0)
    for first in range(1, last + 1, _SCAN):
        ids = range(first, min(first + _SCAN, last + 1))
        async with r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hget(k.contact(cid, i), "phone")
            values = await pipe.execute()
        for i, raw in zip(ids, values, strict=True):
            phone = _s(raw)
            if phone in wanted:
                found.append(i)
                seen.add(phone)
    return found, sorted(wanted - seen)


def normalized_phones(values: Iterable[str], region: str = "US") -> list[str]:
    """E.164 forms of ``values`` (ValidationError names an unreadable one)."""
    return [normalize_phone(value, region) for value in values]


@_translated
async def remove_contacts(
    store: RedisStore,
    cid: int,
    contact_ids: Iterable[int] = (),
    phones: Collection[str] = (),
    *,
    batch: int = 1000,
) -> RemoveReport:
    """Mark contacts Removed (by id, and by E.164 phone: every contact with that number) while
    the campaign is Draft or Paused; RemoveRefused otherwise (nothing changed)."""
    campaign = await store.get_campaign(cid)
    if campaign.status not in _EDITABLE:
        raise _remove_refused(cid, campaign.status.value)
    ids = sorted(set(contact_ids))
    missing_phones: list[str] = []
    if phones:
        by_phone, missing_phones = await _find_phones(store, cid, phones)
        ids = sorted(set(ids) | set(by_phone))
    k = store.keys
    report = RemoveReport(phones_not_found=missing_phones)
    fixed = [k.campaign(cid), k.pending(cid), k.retries(cid), k.counts(cid)]
    buckets = {1: report.removed, 0: report.already_removed, -1: report.not_found}
    for part in _chunks(ids, batch):
        res = await store.scripts.remove_contacts(
            keys=fixed + [k.contact(cid, i) for i in part],
            args=[contact_member(i) for i in part],
        )
        if int(res[0]) == 0:
            raise _remove_refused(cid, _s(res[1]))
        for i, code in zip(part, res[1:], strict=True):
            buckets.get(int(code), report.in_call).append(i)
    if report.removed:
        _log.info("campaign %s: %d contacts removed", cid, len(report.removed))
    return report


def _remove_refused(cid: int, status: str) -> Exception:
    if not status:
        return NotFound(f"campaign {cid} does not exist")
    label = CampaignStatus(status).label
    return RemoveRefused(
        f"campaign {cid} is {label}; contacts can be removed only in Draft or Paused "
        "(pause the campaign first)",
        status=status,
        command="remove",
    )
