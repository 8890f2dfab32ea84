"""Read-side queries for the API, on a :class:`RedisStore`'s keys (schema in :mod:`.keys`).

- :func:`contacts_page`: contacts in id (upload) order, optionally of one status. Contacts have
  no per-status index, so a filtered page scans ids from a cursor: at most ``max_scan`` ids per
  call, so one request stays bounded; ``next_after`` tells where to go on.
- :func:`campaign_known`: the campaign exists, or existed and left call records.
- :func:`set_identity`: keep the campaign hash's ``name`` / ``trunk`` in step with edited
  settings (a check-and-set under WATCH: it never recreates a deleted campaign).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from redis.exceptions import RedisError, WatchError

from dialer.domain.statuses import CallStatus
from dialer.errors import NotFound, StoreError, ValidationError

from .contacts import numbers_of
from .models import ContactRecord
from .redis_store import RedisStore

_BATCH = 500
_CAS_TRIES = 5


@dataclass(frozen=True, slots=True)
class ContactsPage:
    contacts: list[ContactRecord]
    next_after: int | None  # contact id to pass as ``after`` for the next page; None: no more


def _s(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _contact(contact_id: int, raw: Mapping[bytes | str, bytes | str]) -> ContactRecord:
    h = {_s(k): _s(v) for k, v in raw.items()}
    due = h.get("next_due_ms", "")
    return ContactRecord(
        id=contact_id,
        phone=h.get("phone", ""),
        vars=json.loads(h.get("vars") or "{}"),
        list_id=int(h.get("list", 0) or 0),
        status=CallStatus(h["status"]),
        attempts=int(h.get("attempts", 0) or 0),
        tech_failures=int(h.get("tech_failures", 0) or 0),
        last_call=h.get("last_call", ""),
        next_due_ms=int(float(due)) if due else None,
        dials=int(h.get("dials", 0) or 0),
        recycled_from=h.get("recycled_from", ""),
        numbers=numbers_of(h),
    )


async def contacts_page(
    store: RedisStore,
    cid: int,
    *,
    status: CallStatus | None = None,
    after: int = 0,
    offset: int = 0,
    limit: int = 50,
    max_scan: int = 50_000,
) -> ContactsPage:
    """Contacts with id > ``after`` (of ``status`` if given), skipping ``offset`` matches.

    A page may hold fewer than ``limit`` contacts while ``next_after`` is not None (the scan
    budget ran out): go on from ``next_after``. NotFound if the campaign does not exist.
    """
    if limit < 1 or offset < 0 or after < 0 or max_scan < 1:
        raise ValueError("limit and max_scan must be positive, offset and after not negative")
    r, k = store.client, store.keys
    try:
        async with r.pipeline(transaction=False) as pipe:
            pipe.execute_command("EXISTS", k.campaign(cid))
            pipe.get(k.contact_seq(cid))
            exists, seq = await pipe.execute()
        if not exists:
            raise NotFound(f"campaign {cid} does not exist")
        last = int(seq or 0)
        found: list[ContactRecord] = []
        skipped = 0
        cursor = after
        scan_end = min(last, after + max_scan)
        while cursor < scan_end and len(found) < limit:
            ids = range(cursor + 1, min(cursor + _BATCH, scan_end) + 1)
            if status is not None:
                async with r.pipeline(transaction=False) as pipe:
                    for i in ids:
                        pipe.hget(k.contact(cid, i), "status")
                    statuses = await pipe.execute()
                wanted = [i for i, s in zip(ids, statuses, strict=True) if _s(s) == status]
            else:
                wanted = list(ids)
            cursor = ids[-1]
            take: list[int] = []
            for i in wanted:
                if skipped < offset:
                    skipped += 1
                    continue
                take.append(i)
                if len(found) + len(take) == limit:
                    cursor = i
                    break
            if not take:
                continue
            async with r.pipeline(transaction=False) as pipe:
                for i in take:
                    pipe.hgetall(k.contact(cid, i))
                hashes = await pipe.execute()
            found += [_contact(i, h) for i, h in zip(take, hashes, strict=True) if h]
    except RedisError as exc:
        raise StoreError(f"contacts_page: {type(exc).__name__}: {exc}") from exc
    return ContactsPage(found, cursor if cursor < last else None)


async def campaign_known(store: RedisStore, cid: int) -> bool:
    """True if the campaign exists or left call records behind (it was deleted)."""
    try:
        return bool(await store.client.exists(store.keys.campaign(cid), store.keys.records(cid)))
    except RedisError as exc:
        raise StoreError(f"campaign_known: {type(exc).__name__}: {exc}") from exc


async def set_identity(store: RedisStore, cid: int, *, name: str, trunk: str) -> bool:
    """Set the campaign hash's ``name`` and ``trunk``; False if the campaign is gone.
    ValidationError on Redis Cluster for a trunk of another slot group (keys.py)."""
    try:
        store.keys.check_trunk_group(store.keys.group_of(cid), trunk)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    key = store.keys.campaign(cid)
    try:
        for _ in range(_CAS_TRIES):
            async with store.client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    if not await pipe.exists(key):
                        return False
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                    pipe.hset(key, mapping={"name": name, "trunk": trunk})
                    await pipe.execute()
                    return True
                except WatchError:
                    continue
    except RedisError as exc:
        raise StoreError(f"set_identity: {type(exc).__name__}: {exc}") from exc
    raise StoreError(f"set_identity: campaign {cid} kept changing; name/trunk not updated")
