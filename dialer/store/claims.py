"""Claims: take due contacts for dialing (claim.lua), mark them originated, and the engines'
one round trip that carries their writes with their next claims.

A claim is atomic: the campaign's status and claim deadline, its channel and rate limits and
its trunk's, the pacing, the do-not-call lists and the trunk's breaker are checked, and the
claimed contacts get a call hash ``{ns}:call:{id}`` with a lease in ``{ns}:c:{cid}:inflight``
(see :mod:`.leases`) in the same step. Lua: ``claim.lua`` (KEYS/ARGV built by
:meth:`ClaimsMixin.claim_command`), ``originated.lua`` (claimed to originated, fenced by the
lease's owner); :meth:`ClaimsMixin.settle_and_claim` also sends ``finish.lua``
(:mod:`.results`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, Unpack

from redis.exceptions import RedisClusterException, RedisError

from dialer.domain.statuses import CampaignStatus
from dialer.errors import NotFound, StoreError

from .common import _s, _store_error, _strs, _translated
from .connection import follow_master, replica_shortfall
from .core import ScriptCall, StoreCore
from .models import (
    Claim,
    ClaimBatch,
    ClaimCommand,
    ClaimResult,
    ClaimStop,
    FinishItem,
    Pacing,
    RateWindow,
    SettleReply,
    Written,
    ZoneClaim,
)
from .results import finish_args, finish_groups, finish_replies

if TYPE_CHECKING:
    from .nodes import NodeClaim

_STOPS: dict[str, ClaimStop] = {
    "max": "max",
    "full": "full",
    "rate": "rate",
    "trunk": "trunk",
    "node": "node",
}
# claim.lua's "no limit" for a channel or rate limit: sent only for a limit of None (a trunk
# spelled out as unlimited, or not listed), never for a number (claim_command refuses 0)
_NO_LIMIT = 0
_SETTLE_PER_CLAIM = 100  # stopped-list contacts a claim may settle before answering "empty"
_POLL_S = 0.01
_NO_VARS = (b"", b"{}", "", "{}")  # a contact without variables: nothing to decode


class ClaimLimits(TypedDict):
    """The limits of one claim, the keywords of :meth:`ClaimsMixin.claim` (claim.lua's ARGV
    4-17 are derived from them by :meth:`ClaimsMixin.claim_command`).

    A limit of None (channels or cps) is no limit, and only None: a number must be a positive
    int (channels) or a finite positive number (cps); 0, negative, NaN or infinite is a
    ValueError, never "no limit". The rate windows are :meth:`RateWindow.for_cps`, held
    ``rate_margin_ms`` longer; pacing is :meth:`Pacing.for_cps` with ``pace_ms`` (0: none).
    """

    lease_ms: int
    max_channels: int | None
    trunk_max_channels: int | None
    cps: float | None
    trunk_cps: float | None
    rate_margin_ms: NotRequired[int]  # 0 when not given
    pace_ms: NotRequired[int]  # 0 when not given: no pacing


class ClaimOptions(ClaimLimits, total=False):
    """:class:`ClaimLimits` and where the claim dials, the keywords of
    :meth:`ClaimsMixin.claim_batch` and :meth:`ClaimsMixin.claim_command`.

    ``nodes``: the candidate PBX nodes and the group and global caps (claim.lua's node block;
    dialer.store.nodes); None (the default): the engine's one PBX, no such caps. ``node``: the
    claiming engine's node ("" by default), kept in each call hash unless the node block chose
    one. ``zones``: the open zone groups of a campaign with local hours (None: every due
    contact may be called).
    """

    node: str
    nodes: NodeClaim | None
    zones: ZoneClaim | None


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
            node=_s(res[i + 7]),
        )
        for i in range(4, len(res), 8)
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


class ClaimsMixin(StoreCore):
    """The claims of :class:`~dialer.store.redis_store.RedisStore`."""

    @_translated
    async def claim(
        self, cid: int, trunk: str, call_id: str, owner: str, **limits: Unpack[ClaimLimits]
    ) -> ClaimResult:
        """Take the first due contact for ``call_id`` if status, channels and rate allow.

        ``limits``: :class:`ClaimLimits`. A replay with the same ``call_id`` returns the same
        contact. NotFound if the campaign does not exist. A contact on a do-not-call list is
        settled instead (see :meth:`claim_batch`): then ``empty`` with ``next_due_ms`` = now
        (call again at once).
        """
        batch = await self.claim_batch(cid, trunk, [call_id], owner, **limits)
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
        **options: Unpack[ClaimOptions],
    ) -> ClaimBatch:
        """Claim up to ``len(call_ids)`` due contacts in one atomic step (claim.lua).

        Within the channel limits, the rate windows and pacing of ``options``
        (:class:`ClaimOptions`). Contacts whose number is on the global or the campaign's
        do-not-call list become Do not call with a ``dnc:blocked`` record, using a call id but
        no attempt, lease or rate grant; a contact with several numbers goes on with its next
        usable number instead, dialed with the same call id (claim.lua's header). NotFound if
        the campaign does not exist.
        """
        command = self.claim_command(cid, trunk, call_ids, owner, **options)
        try:
            res = await self._lua.claim(keys=command.keys, args=command.args)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise _store_error("claim", exc) from exc
        return _claim_batch_of(cid, res)

    def claim_command(
        self,
        cid: int,
        trunk: str,
        call_ids: Sequence[str],
        owner: str,
        **options: Unpack[ClaimOptions],
    ) -> ClaimCommand:
        """The claim.lua call of :meth:`claim_batch`, checked and built but not sent, to run in
        :meth:`settle_and_claim`'s round trip.

        A limit of None is no limit: it alone becomes claim.lua's "no limit" value (0); the
        other values are checked as :class:`ClaimLimits` says (ValueError).
        """
        lease_ms = options["lease_ms"]
        max_channels, trunk_max_channels = options["max_channels"], options["trunk_max_channels"]
        cps, trunk_cps = options["cps"], options["trunk_cps"]
        rate_margin_ms, pace_ms = options.get("rate_margin_ms", 0), options.get("pace_ms", 0)
        nodes, zones = options.get("nodes"), options.get("zones")
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
            self.keys.call(call_id, cid)  # checks the id's characters
        k = self.keys
        k.check_trunk_group(k.group_of(cid), trunk)  # Redis Cluster: one slot (keys.py)
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
            k.call_prefix_of(cid),
            k.contact_prefix(cid),
            k.global_dnc_of(cid),
            k.campaign_dnc(cid),
            k.records(cid),
            k.records_index_of(cid),
            k.pace(cid),
            k.trunk_pace(trunk),
            k.retries(cid),
            k.trunk_breaker(trunk),
            k.zone_prefix(cid),  # KEYS[21], local hours
            k.zones(cid),  # KEYS[22], a listed number's next number's zone group
        ]
        node_arg = "" if nodes is None else nodes.arg(len(keys) + 1, rate_margin_ms)
        keys += [] if nodes is None else nodes.keys(k)
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
            node_arg,
            options.get("node", ""),
            "" if zones is None else zones.to_arg(),  # ARGV[20], local hours
            *call_ids,
        ]
        return ClaimCommand(cid, keys, args)

    def _originated_args(self, cid: int, call_ids: Sequence[str], owner: str) -> list[str | int]:
        k = self.keys
        keys = [k.claimed(cid), *(k.call(c, cid) for c in call_ids)]
        return [len(keys), *keys, owner, *call_ids]

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
        """Mark calls originated (per campaign, ``originated``), end attempts (``finished``, as
        :meth:`~dialer.store.results.ResultsMixin.finish_batch` does) and run the ``claims``
        (:meth:`claim_command`), in one pipelined round trip: an engine's writes ride on its
        claims (one socket write, one wake-up for both). ``moved``: how many calls went from
        claimed to originated; ``written``: per finished item what ``finish_batch`` returns.

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
        commands: list[ScriptCall] = [
            (self._lua.originated.sha, self._originated_args(cid, ids, owner))
            for cid, ids in originated.items()
            if ids
        ]
        marks = len(commands)
        groups = finish_groups(self.keys, finished)
        commands += [(self._lua.finish.sha, finish_args(self.keys, items)) for _, items in groups]
        commands += list(scripts)
        writes = len(commands) - len(scripts)
        claim_sha = self._lua.claim.sha
        commands += [(claim_sha, [len(c.keys), *c.keys, *c.args]) for c in claims]
        if not commands:
            return SettleReply(0, [], [])
        wait = self.replicas
        replies = await self._evalsha(commands, wait)
        unreplicated = replica_shortfall(wait, replies.pop()) if wait is not None else None
        if unreplicated is not None:  # is this still the master? (README "Redis Sentinel")
            await follow_master(self._r)
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
            if len(groups) == 1:
                written = finish_replies(replies[marks])
            elif groups:  # Cluster: one finish.lua per slot group, put back in item order
                placed: dict[int, Written] = {}
                for (indexes, _), reply in zip(groups, replies[marks:writes], strict=True):
                    placed.update(zip(indexes, finish_replies(reply), strict=True))
                written = [placed[i] for i in range(len(finished))]
        batches: list[ClaimBatch | Exception] = []
        extra = list(replies[writes : writes + len(scripts)])
        for command, reply in zip(claims, replies[writes + len(scripts) :], strict=True):
            if isinstance(reply, Exception):
                batches.append(_store_error("claim", reply))
                continue
            try:
                batch = _claim_batch_of(command.cid, reply)
            except (NotFound, StoreError) as exc:
                batches.append(exc)
                continue
            # not on enough replicas: not dialed (its lease expires, the reconciliation
            # gives the contact back); a promotion could lose it while its call is live
            batches.append(batch if unreplicated is None or not batch.claims else unreplicated)
        if unreplicated is not None and writes and error is None:
            error, moved, lost, written = unreplicated, 0, [], []  # results: written again
        return SettleReply(moved, written, batches, error, lost, extra)

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
