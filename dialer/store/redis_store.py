"""RedisStore: campaigns, contacts, leases and call records in Redis, behind async methods.

Every method raises :class:`~dialer.errors.StoreError` when Redis fails (connection refused or
lost, timeout, script error) and :class:`~dialer.errors.NotFound` for a missing campaign, list
or contact; lifecycle refusals raise :class:`~dialer.errors.TransitionRefused`. Key names and
the schema are in :mod:`dialer.store.keys`; the scripts' contracts in their ``.lua`` headers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from itertools import islice
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import NoPermissionError, NoScriptError, RedisError, ResponseError

from dialer.domain.statuses import CallStatus, CampaignStatus, ListStatus
from dialer.domain.zones import zone_key
from dialer.errors import LeaseLost, NotFound, ScriptError, StoreError, TransitionRefused

from .connection import connection_class_for
from .keys import CALL_TTL_S, Keys, contact_id_of, contact_member
from .models import (
    INITIAL_STATUSES,
    LOST,
    Adoption,
    AdoptVerdict,
    CallRef,
    CampaignRecord,
    Claim,
    ClaimBatch,
    ClaimCommand,
    ClaimResult,
    ClaimStop,
    ContactInput,
    ContactRecord,
    FinishItem,
    Pacing,
    QueueStats,
    RateWindow,
    Renewal,
    SettleReply,
    Usage,
    Written,
    ZoneClaim,
)
from .scripts import Scripts

_log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: Statuses a queued contact may not be moved to by stop_list / mark_undialed.
_NOT_FINAL = frozenset(
    {
        CallStatus.PENDING,
        CallStatus.IN_PROGRESS,
        CallStatus.RETRY_SCHEDULED,
        CallStatus.RESCHEDULED,
    }
)
#: The statuses engines act on, kept in the active index (``{ns}:campaigns:active``).
ACTIVE_STATUSES = frozenset(
    {
        CampaignStatus.RUNNING,
        CampaignStatus.PAUSING,
        CampaignStatus.CANCELLING,
        CampaignStatus.SCHEDULED,
    }
)
_STOPS: dict[str, ClaimStop] = {"max": "max", "full": "full", "rate": "rate", "trunk": "trunk"}
# claim.lua's "no limit" for a channel or rate limit: sent only for a limit of None (a trunk
# spelled out as unlimited, or not listed), never for a number (claim_command refuses 0)
_NO_LIMIT = 0
_SETTLE_PER_CLAIM = 100  # stopped-list contacts a claim may settle before answering "empty"
_POLL_S = 0.01


def _translated(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn redis-py's exceptions into StoreError (ours pass through)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise _store_error(fn.__name__, exc) from exc

    return wrapper


def _claim_batch_of(cid: int, res: Sequence[Any]) -> ClaimBatch:
    """claim.lua's reply as a :class:`ClaimBatch` (NotFound: the campaign does not exist)."""
    stop, now, value, blocked = _s(res[0]), int(res[1]), res[2], int(res[3])
    claims = [
        Claim(
            call_id=_s(res[i]),
            contact_id=int(res[i + 1]),
            phone=_s(res[i + 2]),
            vars=json.loads(raw) if (raw := res[i + 3]) not in _NO_VARS else {},
            attempts=int(res[i + 4]),
            tech_failures=int(res[i + 5]),
            dial=int(res[i + 6]),
        )
        for i in range(4, len(res), 7)
    ]
    if stop == "status":
        current = _s(value)
        if not current:
            raise NotFound(f"campaign {cid} does not exist")
        return ClaimBatch([], "status", status=CampaignStatus(current), server_ms=now)
    if stop == "closed":
        return ClaimBatch([], "closed", server_ms=now)
    if stop == "empty":
        due = int(value)
        if due < 0:
            return ClaimBatch(claims, "empty", wait_ms=-1, blocked=blocked, server_ms=now)
        return ClaimBatch(
            claims,
            "empty",
            wait_ms=max(0, due - now),
            next_due_ms=due,
            blocked=blocked,
            server_ms=now,
        )
    kind = _STOPS.get(stop)
    if kind is not None:
        return ClaimBatch(claims, kind, wait_ms=int(value), blocked=blocked, server_ms=now)
    raise StoreError(f"claim.lua answered {stop!r}")


def _store_error(what: str, exc: Exception) -> Exception:
    """redis-py's error as ours: a script's (an error raised by Redis itself) is a ScriptError,
    any other Redis or socket error a StoreError; anything else is returned as it is."""
    if isinstance(exc, NoPermissionError):
        return StoreError(
            f"{what}: Redis refused it (ACL): {exc}; the dialer's Redis user needs the commands "
            "and the keys of ops/redis/users.acl (keys: DIALER_NAMESPACE must be dialer or "
            "start with dialer:)"
        )
    if isinstance(exc, ResponseError):
        return ScriptError(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, (RedisError, OSError)):
        return StoreError(f"{what}: {type(exc).__name__}: {exc}")
    return exc


# one encoder for the records sent to finish.lua (json.dumps with options builds one per call)
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_NO_VARS = (b"", b"{}", "", "{}")  # a contact without variables: nothing to decode


def _s(value: bytes | str | int | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _int_or_none(value: bytes | str | None) -> int | None:
    text = _s(value)
    return int(float(text)) if text else None


def _decode_map(raw: Mapping[bytes | str, bytes | str] | None) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in (raw or {}).items()}


def _pairs(flat: Sequence[Any]) -> dict[Any, Any]:
    """A HGETALL reply returned by a script (``[field, value, ...]``) as a mapping."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _counts_of(raw: Mapping[bytes | str, bytes | str]) -> dict[CallStatus, int]:
    """The counts hash as contacts per status (every status present, 0 included)."""
    by_status = _decode_map(raw)
    return {s: int(by_status.get(s.value, 0)) for s in CallStatus}


def _strs(values: Iterable[Any] | None) -> list[str]:
    """Members of a reply (bytes or str) as str."""
    return [_s(v) for v in values or ()]


def _finish_replies(res: Sequence[Any]) -> list[Written]:
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


def _chunks(items: Iterable[R], size: int) -> Iterator[list[R]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _statuses(values: Collection[CampaignStatus]) -> str:
    return ", ".join(sorted(v.value for v in values)) or "none"


class RedisStore:
    """The dialer's shared state. Safe to use from many tasks and many processes."""

    def __init__(self, client: aioredis.Redis, namespace: str = "dialer") -> None:
        self._r = client
        self.keys = Keys(namespace)
        self._lua = Scripts.register(client)

    @classmethod
    def from_url(cls, url: str, namespace: str = "dialer") -> RedisStore:
        """A store on its own client; a dropped connection is retried a few times (~0.5 s).

        Retrying is safe: claim replays by call id, finish/release/add_contacts are idempotent.
        (``Redis.from_url`` alone does not retry, unlike the ``Redis()`` constructor.)
        """
        client = aioredis.Redis.from_url(
            url,
            connection_class=connection_class_for(url),
            socket_connect_timeout=5,
            socket_timeout=10,
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), retries=5),
            # no CLIENT SETINFO on connect: not in the dialer's ACL (ops/redis/users.acl)
            driver_info=None,
        )
        return cls(client, namespace)

    @property
    def scripts(self) -> Scripts:
        """The registered Lua scripts, for companion stores (``breaker.BreakerStore``)."""
        return self._lua

    @property
    def client(self) -> aioredis.Redis:
        """The redis-py client, for companion stores on the same keys (``dnc.DncStore``)."""
        return self._r

    async def aclose(self) -> None:
        await self._r.aclose()

    @_translated
    async def ping(self) -> None:
        await self._r.ping()

    async def _now_ms(self) -> int:
        sec, usec = await self._r.time()
        return int(sec) * 1000 + int(usec) // 1000

    async def _require_campaign(self, cid: int) -> None:
        if not await self._r.exists(self.keys.campaign(cid)):
            raise NotFound(f"campaign {cid} does not exist")

    # ------------------------------------------------------------------ campaigns

    @_translated
    async def create_campaign(self, name: str, trunk: str, settings_json: str) -> int:
        self.keys.trunk_inflight(trunk)  # validates the trunk name
        cid = int(await self._r.incr(self.keys.campaign_seq))
        now = await self._now_ms()
        async with self._r.pipeline(transaction=True) as pipe:
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

    @staticmethod
    def _campaign(cid: int, raw: Mapping[bytes | str, bytes | str]) -> CampaignRecord:
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

    @_translated
    async def get_campaign(self, cid: int) -> CampaignRecord:
        raw = await self._r.hgetall(self.keys.campaign(cid))
        if not raw:
            raise NotFound(f"campaign {cid} does not exist")
        return self._campaign(cid, raw)

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
        keys = [self.keys.active_campaigns, self.keys.campaign_prefix]
        start = 0
        while True:  # one round trip per page: the ids and their hashes (active.lua)
            reply = await self._lua.active(keys=keys, args=[start, start + page - 1])
            for i in range(0, len(reply), 2):
                flat = reply[i + 1]
                if flat:  # (empty: being deleted)
                    record = self._campaign(int(reply[i]), _pairs(flat))
                    if record.status in found:
                        found[record.status].append(record)
            if len(reply) < 2 * page:
                return found
            start += page

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
                        pipe.zadd(k.active_campaigns, {cid: int(cid)})
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
                record = self._campaign(int(cid), raw)
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
            keys=[self.keys.campaign(cid), self.keys.active_campaigns],
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
            pipe.exists(k.campaign(cid))
            pipe.get(k.contact_seq(cid))
            pipe.hkeys(k.lists(cid))
            pipe.zrange(k.inflight(cid), 0, -1)
            pipe.zrange(k.claimed(cid), 0, -1)
            pipe.zrange(k.orphans(cid), 0, -1)
            pipe.hgetall(k.zones(cid))
            exists, seq, lists, *calls, gids = await pipe.execute()
        if not exists and seq is None and not lists:
            raise NotFound(f"campaign {cid} does not exist")
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.zrem(k.campaigns, str(cid))
            pipe.zrem(k.active_campaigns, str(cid))
            pipe.unlink(k.campaign(cid))
            await pipe.execute()
        last = int(seq or 0)
        for first in range(1, last + 1, batch):
            ids = range(first, min(first + batch, last + 1))
            await self._r.unlink(*(k.contact(cid, i) for i in ids))
        live = {_s(c) for group in calls for c in group}
        async with self._r.pipeline(transaction=False) as pipe:
            for call_id in live:
                pipe.expire(k.call(call_id), CALL_TTL_S)
            for list_id in lists:
                pipe.unlink(k.list_members(cid, int(list_id)))
            pipe.unlink(*(key for key in k.campaign_fixed(cid) if key != k.contact_seq(cid)))
            pipe.unlink(k.phones(cid), k.campaign_dnc(cid))  # the importer's dedupe set, DNC
            for gid in (0, *(int(g) for g in gids.values())):  # local hours: zone queues
                pipe.unlink(k.zone_queue(cid, gid), k.zone_retries(cid, gid))
            await pipe.execute()
        await self._r.unlink(k.contact_seq(cid))
        _log.info("campaign %s deleted (%d contact ids)", cid, last)

    # ------------------------------------------------------------------ lists and contacts

    @_translated
    async def add_list(self, cid: int) -> int:
        await self._require_campaign(cid)
        list_id = int(await self._r.incr(self.keys.list_seq(cid)))
        await self._r.hset(self.keys.lists(cid), str(list_id), ListStatus.ACTIVE.value)
        return list_id

    async def _list_refused(self, cid: int, list_id: int, status: str) -> Exception:
        if not status:
            await self._require_campaign(cid)
            return NotFound(f"list {list_id} of campaign {cid} does not exist")
        return TransitionRefused(f"list {list_id} of campaign {cid} is {status}")

    @_translated
    async def add_contacts(
        self, cid: int, list_id: int, contacts: Iterable[ContactInput], *, batch: int = 1000
    ) -> int:
        """Add contacts to an active list, in atomic batches; returns how many were added.

        PENDING contacts are queued due now; INVALID_NUMBER / DO_NOT_CALL ones are stored with
        that status and never queued.
        """
        k = self.keys
        current = _s(await self._r.hget(k.lists(cid), str(list_id)))
        if current != ListStatus.ACTIVE:
            raise await self._list_refused(cid, list_id, current)
        fixed = [k.pending(cid), k.counts(cid), k.list_members(cid, list_id), k.lists(cid)]
        fixed += [k.zones(cid), k.zone_prefix(cid)]  # local hours: the contacts' zone groups
        added = 0
        for chunk in _chunks(contacts, batch):
            for c in chunk:
                if c.status not in INITIAL_STATUSES:
                    raise ValueError(f"a contact cannot be added as {c.status.value}")
            last = int(await self._r.incrby(k.contact_seq(cid), len(chunk)))
            ids = range(last - len(chunk) + 1, last + 1)
            args: list[str] = [str(list_id)]
            for contact_id, c in zip(ids, chunk, strict=True):
                vars_json = json.dumps(dict(c.vars), ensure_ascii=False, separators=(",", ":"))
                args += [contact_member(contact_id), c.phone, vars_json, c.status.value]
                args.append(c.zone_group if c.zone_group is not None else zone_key(c.phone))
            res = await self._lua.add_contacts(
                keys=fixed + [k.contact(cid, i) for i in ids], args=args
            )
            if int(res[0]) != 1:
                raise await self._list_refused(cid, list_id, _s(res[1]))
            added += int(res[1])
        return added

    @_translated
    async def list_status(self, cid: int) -> dict[int, ListStatus]:
        await self._require_campaign(cid)
        raw = await self._r.hgetall(self.keys.lists(cid))
        return {
            int(lid): ListStatus(_s(v)) for lid, v in sorted(raw.items(), key=lambda i: int(i[0]))
        }

    @_translated
    async def stop_list(
        self,
        cid: int,
        list_id: int,
        status: CallStatus = CallStatus.NOT_DIALED,
        *,
        batch: int = 1000,
    ) -> int:
        """Stop a list for good; its queued contacts get ``status``. Returns how many moved.

        From the moment the list is marked stopped, claim, finish and release give its
        contacts ``status`` on sight, so none is dialed while the batches run.
        """
        if status in _NOT_FINAL:
            raise ValueError(f"{status.value} is not a final status")
        k = self.keys
        if not _s(await self._r.hget(k.lists(cid), str(list_id))):
            raise await self._list_refused(cid, list_id, "")
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(k.lists(cid), str(list_id), ListStatus.STOPPED.value)
            pipe.hset(k.list_stop(cid), str(list_id), status.value)
            await pipe.execute()
        moved = 0
        cursor = 0
        while True:
            cursor, members = await self._r.sscan(k.list_members(cid, list_id), cursor, count=batch)
            for chunk in _chunks(members, batch):
                moved += await self._mark(cid, chunk, status)
            if cursor == 0:
                break
        _log.info("list %s of campaign %s stopped: %d contacts %s", list_id, cid, moved, status)
        return moved

    @_translated
    async def mark_undialed(self, cid: int, status: CallStatus, *, batch: int = 1000) -> int:
        """Give every queued contact of the campaign ``status``; returns how many moved."""
        if status in _NOT_FINAL:
            raise ValueError(f"{status.value} is not a final status")
        await self._require_campaign(cid)
        moved = 0
        while members := _strs(await self._r.zrange(self.keys.pending(cid), 0, batch - 1)):
            moved += await self._mark(cid, members, status)
        return moved

    async def _mark(self, cid: int, members: Sequence[bytes | str], status: CallStatus) -> int:
        k = self.keys
        keys = [k.pending(cid), k.counts(cid)]
        keys += [k.contact(cid, contact_id_of(m)) for m in members]
        return int(await self._lua.mark_undialed(keys=keys, args=[status.value, *members]))

    @_translated
    async def get_contact(self, cid: int, contact_id: int) -> ContactRecord:
        h = _decode_map(await self._r.hgetall(self.keys.contact(cid, contact_id)))
        if not h:
            raise NotFound(f"contact {contact_id} of campaign {cid} does not exist")
        return ContactRecord(
            id=contact_id,
            phone=h.get("phone", ""),
            vars=json.loads(h.get("vars") or "{}"),
            list_id=int(h.get("list", 0)),
            status=CallStatus(h["status"]),
            attempts=int(h.get("attempts", 0)),
            tech_failures=int(h.get("tech_failures", 0)),
            last_call=h.get("last_call", ""),
            next_due_ms=_int_or_none(h.get("next_due_ms")),
            dials=int(h.get("dials", 0)),
            recycled_from=h.get("recycled_from", ""),
        )

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
        return self._campaign(cid, raw), stats, counts

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

    # ------------------------------------------------------------------ dialing

    @_translated
    async def claim(
        self,
        cid: int,
        trunk: str,
        call_id: str,
        owner: str,
        *,
        lease_ms: int,
        max_channels: int | None,
        trunk_max_channels: int | None,
        cps: float | None,
        trunk_cps: float | None,
        rate_margin_ms: int = 0,
        pace_ms: int = 0,
    ) -> ClaimResult:
        """Take the first due contact for ``call_id`` if status, channels and rate allow.

        A limit of None (channels or cps) is no limit (see :meth:`claim_command`). A replay
        with the same ``call_id`` returns the same contact. NotFound if the campaign does not
        exist. A contact on a do-not-call list is settled instead (see :meth:`claim_batch`):
        then ``empty`` with ``next_due_ms`` = now (call again at once).
        """
        batch = await self.claim_batch(
            cid,
            trunk,
            [call_id],
            owner,
            lease_ms=lease_ms,
            max_channels=max_channels,
            trunk_max_channels=trunk_max_channels,
            cps=cps,
            trunk_cps=trunk_cps,
            rate_margin_ms=rate_margin_ms,
            pace_ms=pace_ms,
        )
        now = batch.server_ms
        if batch.claims:
            c = batch.claims[0]
            return ClaimResult(
                "ok",
                contact_id=c.contact_id,
                phone=c.phone,
                vars=c.vars,
                attempts=c.attempts,
                tech_failures=c.tech_failures,
                server_ms=now,
                dial=c.dial,
            )
        if batch.stop == "max":  # the id went to a do-not-call contact
            return ClaimResult("empty", wait_ms=0, next_due_ms=now, server_ms=now)
        return ClaimResult(
            batch.stop,
            wait_ms=batch.wait_ms,
            status=batch.status,
            next_due_ms=batch.next_due_ms,
            server_ms=now,
        )

    async def claim_batch(
        self,
        cid: int,
        trunk: str,
        call_ids: Sequence[str],
        owner: str,
        *,
        lease_ms: int,
        max_channels: int | None,
        trunk_max_channels: int | None,
        cps: float | None,
        trunk_cps: float | None,
        rate_margin_ms: int = 0,
        pace_ms: int = 0,
        zones: ZoneClaim | None = None,
    ) -> ClaimBatch:
        """Claim up to ``len(call_ids)`` due contacts in one atomic step (claim.lua).

        Within the channel limits, the rate windows (:meth:`RateWindow.for_cps`, held
        ``rate_margin_ms`` longer) and pacing (:meth:`Pacing.for_cps`, ``pace_ms``: 0 none);
        a limit of None is no limit, and only None (:meth:`claim_command`).
        Contacts whose number is on the global or the campaign's do-not-call list become
        Do not call with a ``dnc:blocked`` record, using a call id but no attempt, lease or
        rate grant. NotFound if the campaign does not exist.
        """
        command = self.claim_command(
            cid,
            trunk,
            call_ids,
            owner,
            lease_ms=lease_ms,
            max_channels=max_channels,
            trunk_max_channels=trunk_max_channels,
            cps=cps,
            trunk_cps=trunk_cps,
            rate_margin_ms=rate_margin_ms,
            pace_ms=pace_ms,
            zones=zones,
        )
        try:
            res = await self._lua.claim(keys=command.keys, args=command.args)
        except (RedisError, OSError) as exc:
            raise _store_error("claim", exc) from exc
        return _claim_batch_of(cid, res)

    def claim_command(
        self,
        cid: int,
        trunk: str,
        call_ids: Sequence[str],
        owner: str,
        *,
        lease_ms: int,
        max_channels: int | None,
        trunk_max_channels: int | None,
        cps: float | None,
        trunk_cps: float | None,
        rate_margin_ms: int = 0,
        pace_ms: int = 0,
        zones: ZoneClaim | None = None,
    ) -> ClaimCommand:
        """The claim.lua call of :meth:`claim_batch`, checked and built but not sent, to run in
        :meth:`settle`'s round trip.

        A limit of None is no limit: it alone becomes claim.lua's "no limit" value (0). A
        number must be a positive int (channels) or a finite positive number (cps): 0,
        negative, NaN or infinite is a ValueError, never "no limit". ``zones`` (local hours):
        only the contacts of the open zone groups are taken; None: any due contact.
        """
        if lease_ms <= 0:
            raise ValueError("lease_ms must be positive")
        for name, channels in (
            ("max_channels", max_channels),
            ("trunk_max_channels", trunk_max_channels),
        ):
            if channels is not None and (
                isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0
            ):
                raise ValueError(f"{name} must be an int above 0, or None: {channels!r}")
        if not call_ids:
            raise ValueError("claim_batch needs at least one call id")
        for call_id in call_ids:
            self.keys.call(call_id)  # checks the id's characters
        k = self.keys
        c_rate, c_pace = RateWindow.for_cps(cps, rate_margin_ms), Pacing.for_cps(cps, pace_ms)
        t_rate = RateWindow.for_cps(trunk_cps, rate_margin_ms)
        t_pace = Pacing.for_cps(trunk_cps, pace_ms)
        keys = [
            k.campaign(cid),
            k.pending(cid),
            k.inflight(cid),
            k.trunk_inflight(trunk),
            k.rate(cid),
            k.trunk_rate(trunk),
            k.claimed(cid),
            k.orphans(cid),
            k.counts(cid),
            k.list_stop(cid),
            k.call_prefix,
            k.contact_prefix(cid),
            k.global_dnc,
            k.campaign_dnc(cid),
            k.records(cid),
            k.records_index,
            k.pace(cid),
            k.trunk_pace(trunk),
            k.retries(cid),
            k.trunk_breaker(trunk),
            k.zone_prefix(cid),  # KEYS[21], local hours
        ]
        args: list[str | int] = [
            owner,
            cid,
            trunk,
            lease_ms,
            _NO_LIMIT if max_channels is None else max_channels,
            _NO_LIMIT if trunk_max_channels is None else trunk_max_channels,
            c_rate.limit,
            c_rate.window_ms,
            repr(c_pace.interval_ms),
            repr(c_pace.catch_up_ms),
            t_rate.limit,
            t_rate.window_ms,
            repr(t_pace.interval_ms),
            repr(t_pace.catch_up_ms),
            _SETTLE_PER_CLAIM,
            c_pace.burst,
            t_pace.burst,
            "" if zones is None else zones.to_arg(),  # ARGV[18], local hours
            *call_ids,
        ]
        return ClaimCommand(cid, keys, args)

    @_translated
    async def mark_originated(self, call_id: str, cid: int, *, owner: str = "") -> bool:
        """The PBX accepted the originate. False if the call was not in state claimed.
        LeaseLost when ``owner`` is given and another owner holds the call."""
        reply = await self.settle_and_claim({cid: [call_id]}, (), owner=owner)
        if reply.error is not None:
            raise reply.error
        if reply.lost:
            raise LeaseLost(f"call {call_id} is owned by another engine")
        return reply.moved == 1

    def _originated_args(self, cid: int, call_ids: Sequence[str], owner: str) -> list[str | int]:
        k = self.keys
        keys = [k.claimed(cid), *(k.call(c) for c in call_ids)]
        return [len(keys), *keys, owner, *call_ids]

    @_translated
    async def settle(
        self, originated: Mapping[int, Sequence[str]], finished: Sequence[FinishItem]
    ) -> tuple[int, list[Written]]:
        """Mark calls originated (per campaign) and end attempts, in one pipelined round trip.

        Returns how many calls went from claimed to originated, and per finished item what
        :meth:`finish_batch` returns. Both scripts are idempotent: the whole batch is sent
        again once if Redis had lost the scripts (NOSCRIPT after a restart).
        """
        reply = await self.settle_and_claim(originated, finished)
        if reply.error is not None:
            raise reply.error
        return reply.moved, reply.written

    @_translated
    async def settle_and_claim(
        self,
        originated: Mapping[int, Sequence[str]],
        finished: Sequence[FinishItem],
        claims: Sequence[ClaimCommand] = (),
        *,
        owner: str = "",
        scripts: Sequence[tuple[str, list[str | int]]] = (),
    ) -> SettleReply:
        """:meth:`settle` and the ``claims`` (:meth:`claim_command`) in one pipelined round
        trip: an engine's writes ride on its claims (one socket write, one wake-up for both).

        The commands run one after the other, not as a transaction: an error of one is
        reported for it alone (a script error in a claim fails that claim; one in the marks or
        results sets ``error``). A lost connection raises StoreError for everything. All three
        scripts are idempotent (a claim sent again with its call ids returns the same claims):
        after a NOSCRIPT (Redis restarted) the scripts are loaded and everything is sent again.
        The "originated" marks are fenced by ``owner`` (the results by each item's own).
        ``scripts``: more EVALSHA calls (sha, [numkeys, *keys, *args]) of this store's scripts,
        run after the results and before the claims (``BreakerStore.report_command``: a trip
        the results cause refuses the claims of the same round trip); their raw replies (or
        errors) are ``SettleReply.scripts``.
        """
        commands: list[tuple[str, list[str | int]]] = [
            (self._lua.originated.sha, self._originated_args(cid, ids, owner))
            for cid, ids in originated.items()
            if ids
        ]
        marks = len(commands)
        if finished:
            commands.append((self._lua.finish.sha, self._finish_args(finished)))
        commands += list(scripts)
        writes = len(commands) - len(scripts)
        claim_sha = self._lua.claim.sha
        commands += [(claim_sha, [len(c.keys), *c.keys, *c.args]) for c in claims]
        if not commands:
            return SettleReply(0, [], [])
        replies = await self._evalsha_pipeline(commands)
        if any(isinstance(r, NoScriptError) for r in replies):
            await self._lua.load(self._r)
            replies = await self._evalsha_pipeline(commands)
        error: Exception | None = None
        moved = 0
        lost: list[str] = []
        written: list[Written] = []
        for reply in replies[:writes]:
            if isinstance(reply, Exception):
                error = _store_error("settle", reply)
                break
        else:
            for marked in replies[:marks]:
                moved += int(marked[0])
                lost += _strs(marked[1:])
            written = _finish_replies(replies[marks]) if finished else []
        batches: list[ClaimBatch | Exception] = []
        extra = list(replies[writes : writes + len(scripts)])
        for command, reply in zip(claims, replies[writes + len(scripts) :], strict=True):
            if isinstance(reply, Exception):
                batches.append(_store_error("claim", reply))
                continue
            try:
                batches.append(_claim_batch_of(command.cid, reply))
            except (NotFound, StoreError) as exc:
                batches.append(exc)
        return SettleReply(moved, written, batches, error, lost, extra)

    async def _evalsha_pipeline(self, commands: Sequence[tuple[str, list[str | int]]]) -> list[Any]:
        """Every reply in order; a command's error is its reply (the others still ran)."""
        async with self._r.pipeline(transaction=False) as pipe:
            for sha, numkeys_keys_args in commands:
                pipe.execute_command("EVALSHA", sha, *numkeys_keys_args)
            return list(await pipe.execute(raise_on_error=False))

    @_translated
    async def renew(
        self, cid: int, trunk: str, call_ids: Sequence[str], lease_ms: int, *, owner: str
    ) -> Renewal:
        """Extend ``owner``'s leases of live calls to now + lease_ms (never shortens).

        Finished calls are skipped. ``retaken``: the calls whose lease had expired before this
        renewal and that nobody adopted (they got it back: the channel is real). ``lost``: the
        calls another engine owns now (it adopted them): not renewed; stop acting on them.
        """
        if not call_ids:
            return Renewal([], [])
        k = self.keys
        keys = [k.inflight(cid), k.trunk_inflight(trunk), k.orphans(cid), k.claimed(cid)]
        keys += [k.call(c) for c in call_ids]
        retaken, lost = await self._lua.renew(keys=keys, args=[lease_ms, owner, *call_ids])
        return Renewal(_strs(retaken), _strs(lost))

    @_translated
    async def adopt(
        self, cid: int, trunk: str, call_id: str, lease_ms: int, *, owner: str
    ) -> Adoption:
        """Take over an orphan (a call whose lease expired): ``owner`` holds its lease now,
        unless another owner's lease is still running ("held") or the call ended ("gone").
        Only for an engine that has just checked the PBX's channel list (see adopt.lua)."""
        k = self.keys
        keys = [k.inflight(cid), k.trunk_inflight(trunk), k.orphans(cid), k.call(call_id)]
        verdict, state, previous = await self._lua.adopt(keys=keys, args=[owner, lease_ms, call_id])
        v: AdoptVerdict
        match _s(verdict):
            case "adopted":
                v = "adopted"
            case "mine":
                v = "mine"
            case "held":
                v = "held"
            case "gone":
                v = "gone"
            case other:
                raise StoreError(f"adopt.lua answered {other!r}")
        return Adoption(v, _s(state), _s(previous))

    def _end_keys(self, cid: int, trunk: str, call_id: str, contact_id: int) -> list[str]:
        k = self.keys
        return [k.call(call_id), k.contact(cid, contact_id), *self._lane_keys(cid, trunk)]

    def _lane_keys(self, cid: int, trunk: str) -> list[str]:
        """The keys of :meth:`_end_keys` that every call of a campaign and trunk shares."""
        k = self.keys
        return [
            k.campaign(cid),
            k.inflight(cid),
            k.trunk_inflight(trunk),
            k.claimed(cid),
            k.orphans(cid),
            k.pending(cid),
            k.counts(cid),
            k.list_stop(cid),
        ]

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
        """
        if not items:
            return []
        _, out = await self.settle({}, items)
        return out

    def _finish_args(self, items: Sequence[FinishItem]) -> list[str | int]:
        """numkeys, KEYS and ARGV of finish.lua for ``items`` (see its header)."""
        k = self.keys
        keys = [k.records_index]
        args: list[str | int] = [CALL_TTL_S]
        shared: dict[tuple[int, str], list[str]] = {}  # the keys every call of a lane repeats
        for it in items:
            lane = shared.get((it.cid, it.trunk))
            if lane is None:
                lane = [
                    *self._lane_keys(it.cid, it.trunk),
                    k.records(it.cid),
                    k.usage(it.cid),
                    k.retries(it.cid),
                    k.zone_prefix(it.cid),  # local hours
                ]
                shared[it.cid, it.trunk] = lane
            keys += (k.call(it.call_id), k.contact(it.cid, it.contact_id))
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
                "" if it.retry_at_ms is None else int(it.retry_at_ms),
                contact_member(it.contact_id),
                it.usage_attempts,
                repr(float(it.talk_seconds)),
                # the record as one JSON array of names and values: one argument to pack
                _encode_json([x for item in fields.items() for x in item]),
                it.owner,
            ]
        return [len(keys), *keys, *args]

    @_translated
    async def release(
        self, cid: int, trunk: str, call_id: str, contact_id: int, *, owner: str = ""
    ) -> bool:
        """Undo a claim that was never dialed (no attempt consumed). False if already ended.

        With ``owner`` (an engine's lease owner token), LeaseLost when another owner holds
        the call (it adopted it): nothing is changed.
        """
        res = await self._lua.release(
            keys=[
                *self._end_keys(cid, trunk, call_id, contact_id),
                self.keys.retries(cid),
                self.keys.zone_prefix(cid),  # local hours
            ],
            args=[call_id, contact_id, CALL_TTL_S, contact_member(contact_id), owner],
        )
        if int(res) == -1:
            raise LeaseLost(f"call {call_id} is owned by another engine")
        return int(res) == 1

    @_translated
    async def get_call(self, call_id: str) -> CallRef | None:
        h = _decode_map(await self._r.hgetall(self.keys.call(call_id)))
        if not h:
            return None
        return CallRef(
            call_id=call_id,
            cid=int(h.get("cid", 0)),
            contact=int(h.get("contact", 0)),
            trunk=h.get("trunk", ""),
            state=h.get("state", ""),
            owner=h.get("owner", ""),
            phone=h.get("phone", ""),
            claimed_ms=int(h.get("claimed_ms", 0)),
            originated_ms=_int_or_none(h.get("originated_ms")),
            dial=int(h.get("dial", 0)),
        )

    @_translated
    async def inflight_calls(self, cid: int) -> list[str]:
        """Calls holding a campaign lease (expired ones included until settled)."""
        return _strs(await self._r.zrange(self.keys.inflight(cid), 0, -1))

    @_translated
    async def orphaned_calls(self, cid: int) -> list[str]:
        """Calls whose lease expired before they were finished or released (owner died or
        stalled). Each keeps its channel slot and stays listed until finished, released,
        adopted or renewed by its owner (get_call tells its state and owner).
        """
        k = self.keys
        res = await self._lua.reap(keys=[k.inflight(cid), k.claimed(cid), k.orphans(cid)])
        return [_s(c) for c in res]

    @_translated
    async def add_usage(self, cid: int, *, attempts: int, talk_seconds: float) -> Usage:
        """Count what an attempt used of the campaign's plan; returns the new totals."""
        key = self.keys.usage(cid)
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "attempts", attempts)
            pipe.hincrbyfloat(key, "talk_seconds", talk_seconds)
            total_attempts, total_seconds = await pipe.execute()
        return Usage(int(total_attempts), float(total_seconds))

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

    @_translated
    async def wait_claimed_empty(self, cid: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Poll until no call of the campaign is claimed-but-not-originated; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await self._r.zcard(self.keys.claimed(cid)):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(_POLL_S)
        return True

    def control_channel(self) -> str:
        return self.keys.control

    @_translated
    async def publish(self, message: str) -> None:
        await self._r.publish(self.keys.control, message)
