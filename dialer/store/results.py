"""Results and records: end attempts (finish), counts, queue stats, plan usage, call records.

An attempt ends once (``finish.lua``, idempotent by call id): the contact's new status and
attempts, its retry queued, the lease and channel slot given back, plan usage counted and the
call record appended to ``{ns}:c:{cid}:records`` (a stream), all in one atomic step; the
engines send many in one call (:meth:`ResultsMixin.finish_batch`) or ride them on their claims
(:meth:`~dialer.store.claims.ClaimsMixin.settle_and_claim`, with :func:`finish_args`). Lua:
``finish.lua``, ``stats.lua`` (campaign hash, queue figures and counts at one instant).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dialer.domain.statuses import CallStatus
from dialer.errors import LeaseLost, NotFound, ScriptError

from .campaigns import campaign_record
from .common import _counts_of, _decode_map, _pairs, _s, _store_error, _translated
from .core import StoreCore, lane_keys
from .keys import CALL_TTL_S, Keys, contact_member
from .models import LOST, CampaignRecord, FinishItem, QueueStats, Usage, Written

# one encoder for the records sent to finish.lua (json.dumps with options builds one per call)
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def finish_replies(res: Sequence[Any]) -> list[Written]:
    """finish.lua's reply: per call applied (1, 0, -1, -2), usage attempts, usage talk
    seconds."""
    out: list[Written] = []
    for i in range(0, len(res), 3):
        applied = int(res[i])
        if applied == 1:
            out.append(Usage(int(res[i + 1]), float(_s(res[i + 2]))))
        elif applied == -2:
            out.append(LOST)
        else:
            out.append(False if applied == 0 else None)
    return out


def finish_groups(k: Keys, items: Sequence[FinishItem]) -> list[tuple[list[int], list[FinishItem]]]:
    """``items`` by slot group (their indexes, then the items): one finish.lua each on
    Cluster, all in one on a single node."""
    if not items:
        return []
    if not k.cluster:
        return [(list(range(len(items))), list(items))]
    by_group: dict[int, tuple[list[int], list[FinishItem]]] = {}
    for i, it in enumerate(items):
        indexes, group = by_group.setdefault(k.group_of(it.cid), ([], []))
        indexes.append(i)
        group.append(it)
    return list(by_group.values())


def _ms_or_empty(ms: int | None) -> str | int:
    return "" if ms is None else int(ms)


def finish_args(k: Keys, items: Sequence[FinishItem]) -> list[str | int]:
    """numkeys, KEYS and ARGV of finish.lua for ``items`` (see its header)."""
    keys = [k.records_index_of(items[0].cid)]  # one slot group (finish_groups)
    args: list[str | int] = [CALL_TTL_S]
    shared: dict[tuple[int, str], list[str]] = {}  # the keys every call of a lane repeats
    for it in items:
        lane = shared.get((it.cid, it.trunk))
        if lane is None:
            lane = [
                *lane_keys(k, it.cid, it.trunk),
                k.records(it.cid),
                k.usage(it.cid),
                k.retries(it.cid),
                k.zone_prefix(it.cid),  # local hours
                k.global_dnc_of(it.cid),  # several numbers: a listed one is skipped
                k.campaign_dnc(it.cid),
                k.zones(it.cid),  # the next number's zone group
            ]
            shared[it.cid, it.trunk] = lane
        keys += (k.call(it.call_id, it.cid), k.contact(it.cid, it.contact_id))
        keys += lane
        fields = dict(it.record)
        fields.setdefault("call_id", it.call_id)
        fields.setdefault("contact_id", str(it.contact_id))
        fields.setdefault("status", it.contact_status.value)
        args += [
            it.call_id,
            it.contact_id,
            it.cid,
            it.contact_status.value,
            it.attempts_used,
            it.tech_failures,
            _ms_or_empty(it.retry_at_ms),
            contact_member(it.contact_id),
            it.usage_attempts,
            repr(float(it.talk_seconds)),
            # the record as one JSON array of names and values: one argument to pack
            _encode_json([x for item in fields.items() for x in item]),
            it.owner,
            _ms_or_empty(it.next_at_ms),
            _ms_or_empty(it.wrap_at_ms),
            it.outcome,
        ]
    keys += k.node_lease_prefixes(items[0].cid)  # the node leases' keys go last (finish.lua)
    return [len(keys), *keys, *args]


class ResultsMixin(StoreCore):
    """The results, records and figures of :class:`~dialer.store.redis_store.RedisStore`."""

    @_translated
    async def finish(
        self,
        cid: int,
        trunk: str,
        call_id: str,
        contact_id: int,
        *,
        contact_status: CallStatus,
        attempts_used: int,
        tech_failures: int,
        retry_at_ms: int | None,
        record: Mapping[str, str],
        owner: str = "",
    ) -> bool:
        """End an attempt once: True when applied, False when already finished or unknown.

        ``attempts_used`` is added to the contact's attempts; ``tech_failures`` is the
        contact's new value. With ``retry_at_ms`` the contact is queued again at that time
        (``contact_status`` should then be RETRY_SCHEDULED or RESCHEDULED). ``record`` is
        appended to the campaign's records stream, with ``call_id``, ``contact_id`` and
        ``status`` added when absent. ScriptError if the call belongs to another contact;
        with ``owner``, LeaseLost if another owner holds the call (nothing is written).
        """
        item = FinishItem(
            cid,
            trunk,
            call_id,
            contact_id,
            contact_status,
            attempts_used,
            tech_failures,
            retry_at_ms,
            record,
            owner=owner,
        )
        (applied,) = await self.finish_batch([item])
        if applied is None:
            raise ScriptError(f"finish: call {call_id} belongs to another contact")
        if applied == LOST:
            raise LeaseLost(f"finish: call {call_id} is owned by another engine")
        return applied is not False

    @_translated
    async def finish_batch(self, items: Sequence[FinishItem]) -> list[Written]:
        """End many attempts in one atomic step (finish.lua), each applied once.

        Per item: the campaign's :class:`Usage` after it when applied (its ``usage_attempts``
        and ``talk_seconds`` counted; zero when the campaign is gone), False when the call was
        already finished or is unknown, None when the call belongs to another contact, LOST
        when the item's ``owner`` no longer holds the call (nothing is changed for it then).
        The script is idempotent: sent again once if Redis had lost it (NOSCRIPT).
        """
        if not items:
            return []
        groups = finish_groups(self.keys, items)  # one on a single node, one per slot group
        sha = self._lua.finish.sha
        replies = await self._evalsha([(sha, finish_args(self.keys, part)) for _, part in groups])
        placed: dict[int, Written] = {}
        for (indexes, _), reply in zip(groups, replies, strict=True):
            if isinstance(reply, Exception):
                raise _store_error("settle", reply)
            placed.update(zip(indexes, finish_replies(reply), strict=True))
        return [placed[i] for i in range(len(items))]

    @_translated
    async def counts(self, cid: int) -> dict[CallStatus, int]:
        """Contacts per status (every status present, 0 included)."""
        await self._require_campaign(cid)
        return _counts_of(await self._r.hgetall(self.keys.counts(cid)))

    @_translated
    async def queue_stats(self, cid: int) -> QueueStats:
        _, stats, _ = await self._stats(cid)
        return stats

    @_translated
    async def campaign_stats(
        self, cid: int
    ) -> tuple[CampaignRecord, QueueStats, dict[CallStatus, int]]:
        """:meth:`get_campaign`, :meth:`queue_stats` and :meth:`counts` at one instant, in one
        round trip (the engines' gauges)."""
        raw, stats, counts = await self._stats(cid)
        if raw is None:
            raise NotFound(f"campaign {cid} does not exist")
        return campaign_record(cid, raw), stats, counts

    async def _stats(
        self, cid: int
    ) -> tuple[dict[bytes | str, bytes | str] | None, QueueStats, dict[CallStatus, int]]:
        k = self.keys
        keys = [k.campaign(cid), k.pending(cid), k.inflight(cid), k.claimed(cid), k.counts(cid)]
        flat, due, total, first, inflight, claimed, counted = await self._lua.stats(keys=keys)
        stats = QueueStats(
            pending_due_now=int(due),
            pending_total=int(total),
            next_due_ms=int(first) if int(first) >= 0 else None,
            inflight=int(inflight),
            claimed=int(claimed),
        )
        return (_pairs(flat) if flat else None), stats, _counts_of(_pairs(counted))

    @_translated
    async def usage(self, cid: int) -> Usage:
        raw = await self._r.hgetall(self.keys.usage(cid))
        values = {_s(k): _s(v) for k, v in raw.items()}
        return Usage(int(values.get("attempts", 0)), float(values.get("talk_seconds", 0.0)))

    @_translated
    async def records(
        self, cid: int, *, after: str = "-", count: int = 1000
    ) -> list[tuple[str, dict[str, str]]]:
        """Call records in order, starting after stream id ``after`` ("-": from the start)."""
        start = "-" if after == "-" else f"({after}"
        entries = await self._r.xrange(self.keys.records(cid), min=start, max="+", count=count)
        return [(_s(entry_id), _decode_map(fields)) for entry_id, fields in entries or ()]
