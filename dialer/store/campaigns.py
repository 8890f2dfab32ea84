"""Campaigns: create, read, list, settings, lifecycle transitions, delete; the active index.

A campaign is the hash ``{ns}:c:{cid}`` (name, status, settings JSON, trunk, times), listed in
``{ns}:campaigns`` (by creation) and, while engines act on it, in ``{ns}:campaigns:active``
(:data:`ACTIVE_STATUSES`). Lua: ``active.lua`` (a page of the active index with each
campaign's hash), ``transition.lua`` (a lifecycle step, checked against the expected statuses,
with the active index and the control channel's message), ``update_settings.lua``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Collection, Mapping

from dialer.domain.statuses import CampaignStatus
from dialer.errors import NotFound, TransitionRefused, ValidationError

from .common import _decode_map, _pairs, _s, _strs, _translated
from .core import StoreCore
from .keys import CALL_TTL_S
from .models import CampaignRecord

_log = logging.getLogger(__name__)

#: The statuses engines act on, kept in the active index (``{ns}:campaigns:active``).
ACTIVE_STATUSES = frozenset(
    {
        CampaignStatus.RUNNING,
        CampaignStatus.PAUSING,
        CampaignStatus.CANCELLING,
        CampaignStatus.SCHEDULED,
    }
)


def campaign_record(cid: int, raw: Mapping[bytes | str, bytes | str]) -> CampaignRecord:
    """A campaign hash (HGETALL) as a :class:`CampaignRecord`."""
    h = _decode_map(raw)
    return CampaignRecord(
        id=cid,
        name=h.get("name", ""),
        status=CampaignStatus(h["status"]),
        status_reason=h.get("status_reason", ""),
        trunk=h.get("trunk", ""),
        settings_json=h.get("settings", "{}"),
        created_ms=int(h.get("created_ms", 0)),
        updated_ms=int(h.get("updated_ms", 0)),
        open_until_ms=int(v) if (v := h.get("open_until_ms")) else None,
        opens_at_ms=int(v) if (v := h.get("opens_at_ms")) else None,
    )


def _statuses(values: Collection[CampaignStatus]) -> str:
    return ", ".join(sorted(v.value for v in values)) or "none"


class CampaignsMixin(StoreCore):
    """The campaign aggregate of :class:`~dialer.store.redis_store.RedisStore`."""

    #: ``store._campaign(cid, raw)``: :func:`campaign_record` (``why.py`` reads it so).
    _campaign = staticmethod(campaign_record)

    @_translated
    async def create_campaign(self, name: str, trunk: str, settings_json: str) -> int:
        self.keys.trunk_inflight(trunk)  # validates the trunk name
        self._check_trunk_groups(self.keys.group_of_trunk(trunk), settings_json)
        cid = self.keys.campaign_id(int(await self._r.incr(self.keys.campaign_seq)), trunk)
        now = await self._now_ms()
        # on Cluster the hash and the listing are in two slots: no MULTI (hash written first)
        async with self._r.pipeline(transaction=not self.keys.cluster) as pipe:
            pipe.hset(
                self.keys.campaign(cid),
                mapping={
                    "name": name,
                    "status": CampaignStatus.DRAFT.value,
                    "status_reason": "",
                    "settings": settings_json,
                    "trunk": trunk,
                    "created_ms": now,
                    "updated_ms": now,
                },
            )
            pipe.zadd(self.keys.campaigns, {str(cid): now})
            await pipe.execute()
        return cid

    def _check_trunk_groups(self, group: int, settings_json: str) -> None:
        """On Redis Cluster, the settings' trunk and backup trunk must be in the campaign's
        slot group (keys.py: Redis Cluster); ValidationError otherwise. Nothing on one node."""
        if not self.keys.cluster:
            return
        try:
            settings = json.loads(settings_json)
        except ValueError:
            return  # not the store's to judge (the engine pauses it: invalid settings)
        for field in ("trunk", "backup_trunk"):
            trunk = settings.get(field) if isinstance(settings, dict) else None
            if isinstance(trunk, str) and trunk:
                try:
                    self.keys.check_trunk_group(group, trunk)
                except ValueError as exc:
                    raise ValidationError(f"{field}: {exc}") from None

    @_translated
    async def get_campaign(self, cid: int) -> CampaignRecord:
        raw = await self._r.hgetall(self.keys.campaign(cid))
        if not raw:
            raise NotFound(f"campaign {cid} does not exist")
        return campaign_record(cid, raw)

    async def _id_pages(self, key: str, page: int) -> AsyncIterator[list[str]]:
        """The members of zset ``key``, in order, in pages of ``page`` (one round trip each)."""
        start = 0
        while True:
            ids = _strs(await self._r.zrange(key, start, start + page - 1))
            if ids:
                yield ids
            if len(ids) < page:
                return
            start += len(ids)

    @_translated
    async def campaigns_in(
        self, statuses: Collection[CampaignStatus], *, page: int = 1000
    ) -> dict[CampaignStatus, list[CampaignRecord]]:
        """Every campaign whose status is one of ``statuses`` (a subset of
        :data:`ACTIVE_STATUSES`), by status, newest first: one scan of the active index, so
        the cost follows the campaigns engines act on, not every campaign ever created."""
        if not set(statuses) <= ACTIVE_STATUSES:
            raise ValueError("campaigns_in reads the active index: active statuses only")
        found: dict[CampaignStatus, list[CampaignRecord]] = {s: [] for s in statuses}
        k = self.keys
        for group in k.groups():  # one active index per slot group (one on a single node)
            keys = [k.active_in(group), k.campaign_prefix_in(group)]
            start = 0
            while True:  # one round trip per page: the ids and their hashes (active.lua)
                reply = await self._lua.active(keys=keys, args=[start, start + page - 1])
                for i in range(0, len(reply), 2):
                    flat = reply[i + 1]
                    if flat:  # (empty: being deleted)
                        record = campaign_record(int(reply[i]), _pairs(flat))
                        if record.status in found:
                            found[record.status].append(record)
                if len(reply) < 2 * page:
                    break
                start += page
        if k.cluster:  # newest first across the groups (ids grow with creation)
            for records in found.values():
                records.sort(key=lambda r: r.id, reverse=True)
        return found

    @_translated
    async def rebuild_active_index(self, *, page: int = 1000) -> int:
        """Put every active campaign in the active index (a store written by a version without
        the index, or repaired by hand); returns how many are active. Idempotent."""
        k = self.keys
        active = 0
        async for ids in self._id_pages(k.campaigns, page):
            async with self._r.pipeline(transaction=False) as pipe:
                for cid in ids:
                    pipe.hget(k.campaign(int(cid)), "status")
                statuses = await pipe.execute()
            async with self._r.pipeline(transaction=False) as pipe:
                for cid, status in zip(ids, statuses, strict=True):
                    if status is not None and CampaignStatus(_s(status)) in ACTIVE_STATUSES:
                        pipe.zadd(k.active_of(int(cid)), {cid: int(cid)})
                        active += 1
                await pipe.execute()
        return active

    @_translated
    async def list_campaigns(
        self, status: CampaignStatus | None = None, offset: int = 0, limit: int = 50
    ) -> list[CampaignRecord]:
        """Newest first; with ``status``, offset and limit count matching campaigns only."""
        if offset < 0 or limit <= 0:
            return []
        found: list[CampaignRecord] = []
        skipped = 0
        page = limit if status is None else max(100, limit)
        start = offset if status is None else 0
        while len(found) < limit:
            ids = _strs(await self._r.zrevrange(self.keys.campaigns, start, start + page - 1))
            if not ids:
                break
            start += len(ids)
            async with self._r.pipeline(transaction=False) as pipe:
                for cid in ids:
                    pipe.hgetall(self.keys.campaign(int(cid)))
                hashes = await pipe.execute()
            for cid, raw in zip(ids, hashes, strict=True):
                if not raw:
                    continue  # being deleted
                record = campaign_record(int(cid), raw)
                if status is not None and record.status != status:
                    continue
                if status is not None and skipped < offset:
                    skipped += 1
                    continue
                found.append(record)
                if len(found) == limit:
                    break
            if len(ids) < page:
                break  # that was the last page
        return found

    @_translated
    async def update_settings(
        self, cid: int, settings_json: str, *, allowed: Collection[CampaignStatus]
    ) -> None:
        self._check_trunk_groups(self.keys.group_of(cid), settings_json)
        res = await self._lua.update_settings(
            keys=[self.keys.campaign(cid)], args=[settings_json, *(s.value for s in allowed)]
        )
        if int(res[0]) == 1:
            return
        current = _s(res[1])
        if not current:
            raise NotFound(f"campaign {cid} does not exist")
        raise TransitionRefused(
            f"campaign {cid} is {current}: settings can change only when {_statuses(allowed)}"
        )

    @_translated
    async def transition(
        self,
        cid: int,
        expected: Collection[CampaignStatus],
        new: CampaignStatus,
        reason: str = "",
        *,
        open_until_ms: int | None = None,
        opens_at_ms: int | None = None,
    ) -> CampaignStatus:
        """Set the status to ``new`` if it is one of ``expected``; publish ``"{cid}:{new}"``.

        ``open_until_ms``: the claim deadline of a Running period (claim.lua refuses from
        then on, by the server's clock); ``opens_at_ms``: when a Scheduled campaign may dial
        next. Both are replaced on every transition (None clears them)."""
        if not expected:
            raise ValueError("expected must name at least one status")
        res = await self._lua.transition(
            keys=[self.keys.campaign(cid), self.keys.active_of(cid)],
            args=[
                new.value,
                reason,
                self.keys.control,
                f"{cid}:{new.value}",
                cid,
                "1" if new in ACTIVE_STATUSES else "0",
                "" if open_until_ms is None else open_until_ms,
                "" if opens_at_ms is None else opens_at_ms,
                *(s.value for s in expected),
            ],
        )
        current = _s(res[1])
        if int(res[0]) == 1:
            return CampaignStatus(current)
        if not current:
            raise NotFound(f"campaign {cid} does not exist")
        raise TransitionRefused(
            f"campaign {cid} is {current}, not {_statuses(expected)}: cannot become {new.value}"
        )

    @_translated
    async def delete_campaign(self, cid: int, *, batch: int = 1000) -> None:
        """Remove the campaign's keys in batches; its records stream stays.

        The campaign hash goes first (claims stop at once); a delete interrupted half-way can
        be run again. Live calls keep their call hash (it expires), so a late finish still
        frees the trunk lease.
        """
        k = self.keys
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.execute_command("EXISTS", k.campaign(cid))
            pipe.get(k.contact_seq(cid))
            pipe.hkeys(k.lists(cid))
            pipe.zrange(k.inflight(cid), 0, -1)
            pipe.zrange(k.claimed(cid), 0, -1)
            pipe.zrange(k.orphans(cid), 0, -1)
            pipe.hgetall(k.zones(cid))
            exists, seq, lists, *calls, gids = await pipe.execute()
        if not exists and seq is None and not lists:
            raise NotFound(f"campaign {cid} does not exist")
        async with self._r.pipeline(transaction=not k.cluster) as pipe:
            pipe.zrem(k.campaigns, str(cid))
            pipe.zrem(k.active_of(cid), str(cid))
            pipe.execute_command("UNLINK", k.campaign(cid))
            await pipe.execute()
        last = int(seq or 0)
        for first in range(1, last + 1, batch):
            ids = range(first, min(first + batch, last + 1))
            await self._r.unlink(*(k.contact(cid, i) for i in ids))
        live = {_s(c) for group in calls for c in group}
        async with self._r.pipeline(transaction=False) as pipe:
            for call_id in live:
                pipe.expire(k.call(call_id, cid), CALL_TTL_S)
            for list_id in lists:
                pipe.execute_command("UNLINK", k.list_members(cid, int(list_id)))
            pipe.execute_command(
                "UNLINK", *(key for key in k.campaign_fixed(cid) if key != k.contact_seq(cid))
            )
            # the importer's dedupe set, DNC (UNLINK by name: a Cluster pipeline's unlink()
            # is a coroutine of its own)
            pipe.execute_command("UNLINK", k.phones(cid), k.campaign_dnc(cid))
            for gid in (0, *(int(g) for g in gids.values())):  # local hours: zone queues
                pipe.execute_command("UNLINK", k.zone_queue(cid, gid), k.zone_retries(cid, gid))
            await pipe.execute()
        await self._r.unlink(k.contact_seq(cid))
        _log.info("campaign %s deleted (%d contact ids)", cid, last)
