"""RedisStore: campaigns, contacts, leases and call records in Redis, behind async methods.

Every method raises :class:`~dialer.errors.StoreError` when Redis fails (connection refused or
lost, timeout, script error) and :class:`~dialer.errors.NotFound` for a missing campaign, list
or contact; lifecycle refusals raise :class:`~dialer.errors.TransitionRefused`. Key names and
the schema are in :mod:`dialer.store.keys`; the scripts' contracts in their ``.lua`` headers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import (
    Mapping,
    Sequence,
)
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import NoScriptError, RedisError

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.errors import LeaseLost, NotFound, ScriptError, StoreError

from .campaigns import ACTIVE_STATUSES as ACTIVE_STATUSES
from .campaigns import CampaignsMixin
from .common import _chunks as _chunks
from .common import _counts_of, _pairs
from .common import _decode_map as _decode_map
from .common import _s as _s
from .common import _store_error as _store_error
from .common import _strs as _strs
from .common import _translated as _translated
from .connection import connection_class_for
from .contacts import ContactsMixin
from .keys import CALL_TTL_S, Keys, contact_member
from .leases import LeasesMixin
from .models import (
    LOST,
    CampaignRecord,
    Claim,
    ClaimBatch,
    ClaimCommand,
    ClaimResult,
    ClaimStop,
    FinishItem,
    Pacing,
    QueueStats,
    RateWindow,
    SettleReply,
    Usage,
    Written,
)
from .scripts import Scripts

_STOPS: dict[str, ClaimStop] = {"max": "max", "full": "full", "rate": "rate", "trunk": "trunk"}
# claim.lua's "no limit" for a channel or rate limit: sent only for a limit of None (a trunk
# spelled out as unlimited, or not listed), never for a number (claim_command refuses 0)
_NO_LIMIT = 0
_SETTLE_PER_CLAIM = 100  # stopped-list contacts a claim may settle before answering "empty"
_POLL_S = 0.01


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


# one encoder for the records sent to finish.lua (json.dumps with options builds one per call)
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_NO_VARS = (b"", b"{}", "", "{}")  # a contact without variables: nothing to decode


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


class RedisStore(CampaignsMixin, ContactsMixin, LeasesMixin):
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
    ) -> ClaimCommand:
        """The claim.lua call of :meth:`claim_batch`, checked and built but not sent, to run in
        :meth:`settle`'s round trip.

        A limit of None is no limit: it alone becomes claim.lua's "no limit" value (0). A
        number must be a positive int (channels) or a finite positive number (cps): 0,
        negative, NaN or infinite is a ValueError, never "no limit".
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
    async def inflight_calls(self, cid: int) -> list[str]:
        """Calls holding a campaign lease (expired ones included until settled)."""
        return _strs(await self._r.zrange(self.keys.inflight(cid), 0, -1))

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
