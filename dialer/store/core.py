"""The state every part of :class:`~dialer.store.redis_store.RedisStore` shares.

One client, one key schema (:class:`~dialer.store.keys.Keys`, one namespace) and one set of
registered Lua scripts (:class:`~dialer.store.scripts.Scripts`), set up by ``RedisStore``; the
aggregates' mixins (campaigns, contacts, claims, results, leases) all build on
:class:`StoreCore`, which declares them and holds the few helpers more than one aggregate uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from dialer.errors import NotFound

from .connection import ReplicaWait
from .keys import Keys
from .scripts import Scripts

#: One EVALSHA of a pipeline: the script's sha and ``[numkeys, *keys, *args]``.
ScriptCall = tuple[str, list[str | int]]


def lane_keys(k: Keys, cid: int, trunk: str) -> list[str]:
    """The keys that every call of a campaign and trunk shares (finish.lua, release.lua)."""
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


class StoreCore:
    """What the aggregates share; :class:`~dialer.store.redis_store.RedisStore` sets it up."""

    _r: aioredis.Redis
    keys: Keys
    _lua: Scripts
    # WAIT after the engine's claims and writes (None: none); see
    # ClaimsMixin.settle_and_claim and README "Redis Sentinel"
    replicas: ReplicaWait | None

    async def _now_ms(self) -> int:
        sec, usec = await self._r.time()
        return int(sec) * 1000 + int(usec) // 1000

    async def _require_campaign(self, cid: int) -> None:
        if not await self._r.exists(self.keys.campaign(cid)):
            raise NotFound(f"campaign {cid} does not exist")

    async def _evalsha(
        self, commands: Sequence[ScriptCall], wait: ReplicaWait | None = None
    ) -> list[Any]:
        """Every reply in order, in one pipelined round trip; a command's error is its reply
        (the others still ran). After a NOSCRIPT (Redis restarted or flushed) the scripts are
        loaded and every command is sent again: only for idempotent scripts. With ``wait``, a
        last ``WAIT`` whose reply is the number of replicas that have the writes."""
        replies = await self._evalsha_pipeline(commands, wait)
        if any(isinstance(r, NoScriptError) for r in replies):
            await self._lua.load(self._r)
            replies = await self._evalsha_pipeline(commands, wait)
        return replies

    async def _evalsha_pipeline(
        self, commands: Sequence[ScriptCall], wait: ReplicaWait | None = None
    ) -> list[Any]:
        async with self._r.pipeline(transaction=False) as pipe:
            for sha, numkeys_keys_args in commands:
                pipe.execute_command("EVALSHA", sha, *numkeys_keys_args)
            if wait is not None:
                pipe.execute_command("WAIT", wait.min_replicas, wait.timeout_ms)
            return list(await pipe.execute(raise_on_error=False))
