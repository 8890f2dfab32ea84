"""Read a campaign's :class:`~dialer.domain.why.WhySnapshot` from Redis, and explain it.

Two round trips: the first reads the campaign hash (its trunks); the second reads everything
else in one MULTI transaction with the server's clock, so the counts, queue, leases, breakers,
usage and heartbeats are of one instant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from dialer.domain.breaker import BreakerState
from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CallStatus
from dialer.domain.why import TrunkSnapshot, WhyReport, WhySnapshot, ZoneQueue, why
from dialer.domain.zones import ZoneGroup
from dialer.errors import InvalidSettings, NotFound

from .engines import beats_of
from .nodes import NodeStore, with_nodes_blocker
from .redis_store import RedisStore, _decode_map, _s, _translated
from .zones import zone_groups

__all__ = ["explain", "read_snapshot"]

RATE_SPAN_MS = 1000  # "calls started in the last second"


def _counts(raw: Mapping[Any, Any]) -> dict[CallStatus, int]:
    out = dict.fromkeys(CallStatus, 0)
    for key, value in raw.items():
        try:
            out[CallStatus(_s(key))] = int(value)
        except ValueError:
            continue
    return out


def _trunk(name: str, inflight: Any, raw: Mapping[Any, Any]) -> TrunkSnapshot:
    h = _decode_map(raw)
    try:
        state = BreakerState(h.get("state") or BreakerState.CLOSED)
    except ValueError:
        state = BreakerState.CLOSED
    return TrunkSnapshot(
        name=name,
        inflight=int(inflight),
        breaker=state,
        breaker_reason=h.get("reason", ""),
        retry_ms=int(h.get("retry_ms") or 0),
        probe_until_ms=int(h.get("probe_until_ms") or 0),
    )


@_translated
async def read_snapshot(store: RedisStore, cid: int) -> WhySnapshot:
    r: aioredis.Redis = store.client
    k = store.keys
    raw = await r.hgetall(k.campaign(cid))
    if not raw:
        raise NotFound(f"campaign {cid} does not exist")
    record = store._campaign(cid, raw)
    try:
        settings: CampaignSettings | None = CampaignSettings.from_json(record.settings_json)
    except InvalidSettings:
        settings = None
    trunks = [record.trunk] if settings is None else [settings.trunk]
    if settings is not None and settings.backup_trunk is not None:
        trunks.append(settings.backup_trunk)
    groups = {}  # local hours: the zone groups (gid 0: no zone known)
    if settings is not None and settings.local_hours:
        groups = {0: ZoneGroup(), **await zone_groups(r, k, cid)}
    # on Redis Cluster the campaign's keys and the engines' are in two slots (no MULTI), and
    # TIME, which names no key, cannot ride in the pipeline (asked on its own after it)
    async with r.pipeline(transaction=not k.cluster) as pipe:
        if not k.cluster:
            pipe.time()
        pipe.hgetall(k.campaign(cid))
        pipe.hgetall(k.counts(cid))
        pipe.zcard(k.pending(cid))
        pipe.zrange(k.pending(cid), 0, 0, withscores=True)
        pipe.zcard(k.inflight(cid))
        pipe.zrange(k.rate(cid), -10_001, -1, withscores=True)
        pipe.hmget(k.usage(cid), "attempts", "talk_seconds")
        for t in trunks:
            pipe.zcard(k.trunk_inflight(t))
            pipe.hgetall(k.trunk_breaker(t))
        pipe.hgetall(k.engines)
        for gid in groups:
            pipe.zcard(k.zone_queue(cid, gid))
            pipe.zrange(k.zone_queue(cid, gid), 0, 0, withscores=True)
        replies = await pipe.execute()
    if k.cluster:
        replies = [await r.time(), *replies]
    (sec, usec), raw, counted, pending, first, inflight, rate, usage = replies[:8]
    now = int(sec) * 1000 + int(usec) // 1000
    if not raw:
        raise NotFound(f"campaign {cid} does not exist")
    record = store._campaign(cid, raw)  # as of the transaction
    rest = replies[8:]
    trunk_views = [_trunk(t, rest[2 * i], rest[2 * i + 1]) for i, t in enumerate(trunks)]
    beats = beats_of(rest[2 * len(trunks)])
    zq = rest[2 * len(trunks) + 1 :]
    zones = [
        ZoneQueue(gid, group, int(zq[2 * i]), int(zq[2 * i + 1][0][1]) if zq[2 * i + 1] else None)
        for i, (gid, group) in enumerate(groups.items())
    ]
    return WhySnapshot(
        campaign_id=cid,
        now_ms=now,
        status=record.status,
        status_reason=record.status_reason,
        settings=settings,
        counts=_counts(counted),
        pending=int(pending),
        next_due_ms=int(first[0][1]) if first else None,
        inflight=int(inflight),
        started_last_s=sum(1 for _, score in rate if score > now - RATE_SPAN_MS),
        usage_attempts=int(usage[0] or 0),
        usage_talk_seconds=float(usage[1] or 0),
        opens_at_ms=record.opens_at_ms,
        open_until_ms=record.open_until_ms,
        engines=tuple(beats),
        trunks=tuple(trunk_views),
        zones=tuple(zones),
    )


async def explain(store: RedisStore, cid: int) -> WhyReport:
    """Why campaign ``cid`` is (not) dialing now."""
    snapshot = await read_snapshot(store, cid)
    nodes = NodeStore(store.client, store.keys)
    return await with_nodes_blocker(nodes, snapshot, why(snapshot))
