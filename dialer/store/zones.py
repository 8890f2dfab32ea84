"""Local hours in Redis: a campaign's zone groups (``{ns}:c:{cid}:zones``, written by
add_contacts.lua) and how many contacts wait in each group's queue."""

from __future__ import annotations

import redis.asyncio as aioredis

from dialer.domain.zones import ZoneGroup

from .keys import Keys
from .redis_store import _s

__all__ = ["zone_groups", "zone_queue_sizes"]

_SEQ = "#"  # the registry's counter field (add_contacts.lua)


async def zone_groups(client: aioredis.Redis, keys: Keys, cid: int) -> dict[int, ZoneGroup]:
    """gid -> group of every zone group the campaign's contacts were given (gid 0 excluded:
    the contacts with no zone known)."""
    raw = await client.hgetall(keys.zones(cid))
    out: dict[int, ZoneGroup] = {}
    for name, gid in raw.items():
        key = _s(name)
        if key != _SEQ:
            out[int(gid)] = ZoneGroup.from_key(key)
    return out


async def zone_queue_sizes(
    client: aioredis.Redis, keys: Keys, cid: int, gids: list[int]
) -> list[int]:
    """How many entries each group's queue holds (stale entries included: an upper bound)."""
    async with client.pipeline(transaction=False) as pipe:
        for gid in gids:
            pipe.zcard(keys.zone_queue(cid, gid))
        return [int(n) for n in await pipe.execute()]
