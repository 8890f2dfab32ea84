"""Caller-ID settings of recipient lists, and the pools' shared rotation counters.

A list's settings live in ``{ns}:c:{cid}:listcid`` (lid -> JSON of
:class:`~dialer.domain.callerid.CallerIdSource`); the turns of each rotating pool in
``{ns}:c:{cid}:cidturns`` (``campaign`` or ``list:{lid}`` -> turns taken). A turn is taken with
one HINCRBY for a whole batch of calls: every engine shares the counter, so N calls over any
number of engines get N distinct consecutive turns (round robin with no gap and no repeat).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from redis.exceptions import RedisError

from dialer.domain.callerid import CallerIdSource
from dialer.errors import InvalidSettings, NotFound, ValidationError

from .redis_store import RedisStore, _store_error

__all__ = ["contact_lists", "list_caller_ids", "set_list_caller_id", "take_turns"]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def set_list_caller_id(
    store: RedisStore, cid: int, list_id: int, source: CallerIdSource
) -> None:
    """Set (or, with an empty source, clear) a list's caller id settings."""
    lists = await store.list_status(cid)  # NotFound when the campaign does not exist
    if list_id not in lists:
        raise NotFound(f"list {list_id} of campaign {cid} does not exist")
    key = store.keys.list_caller_ids(cid)
    try:
        if source.empty:
            await store.client.hdel(key, str(list_id))
        else:
            text = json.dumps(source.to_dict(), separators=(",", ":"))
            await store.client.hset(key, str(list_id), text)
    except (RedisError, OSError) as exc:
        raise _store_error("set_list_caller_id", exc) from exc


async def list_caller_ids(store: RedisStore, cid: int) -> dict[int, CallerIdSource]:
    """Every list of the campaign that sets a caller id, with its settings."""
    try:
        raw = await store.client.hgetall(store.keys.list_caller_ids(cid))
    except (RedisError, OSError) as exc:
        raise _store_error("list_caller_ids", exc) from exc
    out: dict[int, CallerIdSource] = {}
    for lid, text in raw.items():
        try:
            out[int(lid)] = CallerIdSource.from_dict(json.loads(text))
        except (ValueError, ValidationError) as exc:
            raise InvalidSettings(
                f"invalid caller id settings of list {_text(lid)}: {exc}"
            ) from None
    return dict(sorted(out.items()))


async def contact_lists(store: RedisStore, cid: int, contact_ids: Sequence[int]) -> list[int]:
    """The list id of each contact (0 for a contact that is gone)."""
    if not contact_ids:
        return []
    try:
        async with store.client.pipeline(transaction=False) as pipe:
            for contact_id in contact_ids:
                pipe.hget(store.keys.contact(cid, contact_id), "list")
            replies = await pipe.execute()
    except (RedisError, OSError) as exc:
        raise _store_error("contact_lists", exc) from exc
    return [int(r) if r is not None else 0 for r in replies]


async def take_turns(store: RedisStore, cid: int, wanted: Mapping[str, int]) -> dict[str, int]:
    """Take ``wanted[field]`` consecutive turns of each rotating pool; the first turn of each
    (the counter's value before this batch took its share), atomically across engines."""
    fields = [(f, n) for f, n in wanted.items() if n > 0]
    if not fields:
        return {}
    key = store.keys.caller_id_turns(cid)
    try:
        async with store.client.pipeline(transaction=False) as pipe:
            for field_name, n in fields:
                pipe.hincrby(key, field_name, n)
            ends = await pipe.execute()
    except (RedisError, OSError) as exc:
        raise _store_error("take_turns", exc) from exc
    return {f: int(end) - n for (f, n), end in zip(fields, ends, strict=True)}
