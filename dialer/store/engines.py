"""Engine heartbeats: which engine processes are alive, and what they see.

Each engine writes its entry of the hash ``{ns}:engines`` every :data:`BEAT_INTERVAL_S`: its
owner token -> JSON ``{"expires_ms", "pbx", "trunks"}``, the expiry by the Redis server's clock
(read just before), so no engine's own clock is trusted. An entry past its expiry is a dead
engine; the beating engines delete the entries dead for :data:`FORGET_MS`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from dialer.domain.campaign import TrunkLimits
from dialer.domain.why import EngineBeat

from .keys import Keys
from .redis_store import RedisStore, _s, _translated

__all__ = ["BEAT_INTERVAL_S", "BEAT_TTL_MS", "EngineRegistry", "beat_of", "beats_of"]

BEAT_INTERVAL_S = 2.0
BEAT_TTL_MS = 10_000  # an engine silent this long is dead
FORGET_MS = 3_600_000  # a dead engine's entry is deleted an hour after its expiry


def beat_text(expires_ms: int, pbx_connected: bool, trunks: Mapping[str, TrunkLimits]) -> str:
    return json.dumps(
        {
            "expires_ms": expires_ms,
            "pbx": pbx_connected,
            "trunks": {n: [t.max_channels, t.cps] for n, t in sorted(trunks.items())},
        },
        separators=(",", ":"),
    )


def beat_of(owner: str, text: Any) -> EngineBeat | None:
    """An engine's heartbeat entry as read (None: unreadable)."""
    try:
        data = json.loads(_s(text))
        trunks = {
            str(name): (
                None if limits[0] is None else int(limits[0]),
                None if limits[1] is None else float(limits[1]),
            )
            for name, limits in dict(data.get("trunks") or {}).items()
        }
        return EngineBeat(owner, int(data["expires_ms"]), bool(data.get("pbx")), trunks)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError):
        return None


def beats_of(raw: Mapping[Any, Any]) -> list[EngineBeat]:
    """Every readable entry of the hash (alive or not: compare ``expires_ms`` with now)."""
    beats = [beat_of(_s(owner), text) for owner, text in raw.items()]
    return sorted((b for b in beats if b is not None), key=lambda b: b.owner)


def _now_ms(reply: Any) -> int:
    sec, usec = reply
    return int(sec) * 1000 + int(usec) // 1000


class EngineRegistry:
    def __init__(self, store: RedisStore) -> None:
        self._r: aioredis.Redis = store.client
        self.keys: Keys = store.keys

    @_translated
    async def beat(
        self,
        owner: str,
        *,
        pbx_connected: bool,
        trunks: Mapping[str, TrunkLimits],
        ttl_ms: int = BEAT_TTL_MS,
    ) -> None:
        clock, raw = await self._clock_and_beats(transaction=False)
        now = _now_ms(clock)
        dead = [
            b.owner for b in beats_of(raw) if b.expires_ms < now - FORGET_MS and b.owner != owner
        ]
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.engines, owner, beat_text(now + ttl_ms, pbx_connected, trunks))
            if dead:
                pipe.hdel(self.keys.engines, *dead)
            await pipe.execute()

    @_translated
    async def leave(self, owner: str) -> None:
        """An engine stopping: it is no longer alive."""
        await self._r.hdel(self.keys.engines, owner)

    @_translated
    async def alive(self) -> list[EngineBeat]:
        clock, raw = await self._clock_and_beats(transaction=True)
        now = _now_ms(clock)
        return [b for b in beats_of(raw) if b.expires_ms > now]

    async def _clock_and_beats(self, *, transaction: bool) -> tuple[Any, Any]:
        """TIME and the beats in one round trip; on Redis Cluster in two (TIME names no key:
        a Cluster pipeline cannot route it)."""
        if self.keys.cluster:
            return await self._r.time(), await self._r.hgetall(self.keys.engines)
        async with self._r.pipeline(transaction=transaction) as pipe:
            pipe.time()
            pipe.hgetall(self.keys.engines)
            clock, raw = await pipe.execute()
        return clock, raw
