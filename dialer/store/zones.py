"""Local hours in Redis: a campaign's zone groups (``{ns}:c:{cid}:zones``, written by
add_contacts.lua and recycle_stage.lua)."""

from __future__ import annotations

import redis.asyncio as aioredis

from dialer.domain.zones import ZoneGroup

from .keys import Keys
from .redis_store import _s

__all__ = ["zone_groups"]

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
