"""Shared set-up for the store tests (test_store_*.py), and the store operations only tests
use (moved out of ``RedisStore``: no engine, face or tool calls them)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.errors import LeaseLost
from dialer.store import ClaimResult, ContactInput, RedisStore, Usage
from dialer.store.common import _strs, _translated
from dialer.store.models import FinishItem, Written


def contacts(n: int, start: int = 0, status: CallStatus = CallStatus.PENDING) -> list[ContactInput]:
    return [
        ContactInput(phone=f"+3361{start + i:07d}", vars={"n": str(start + i)}, status=status)
        for i in range(n)
    ]


async def running_campaign(
    store: RedisStore,
    n: int,
    *,
    trunk: str = "trunk1",
    extra: Iterable[ContactInput] = (),
) -> tuple[int, int]:
    """A running campaign with one list of ``n`` pending contacts (plus ``extra``)."""
    cid = await store.create_campaign("test", trunk, "{}")
    list_id = await store.add_list(cid)
    await store.add_contacts(cid, list_id, [*contacts(n), *extra])
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    return cid, list_id


async def claim(
    store: RedisStore,
    cid: int,
    call_id: str,
    *,
    trunk: str = "trunk1",
    owner: str = "e1",
    **limits: Any,
) -> ClaimResult:
    params: dict[str, Any] = {
        "lease_ms": 10_000,
        "max_channels": None,
        "trunk_max_channels": None,
        "cps": None,
        "trunk_cps": None,
    }
    params.update(limits)
    return await store.claim(cid, trunk, call_id, owner, **params)


async def finish(
    store: RedisStore,
    cid: int,
    call_id: str,
    contact_id: int,
    status: CallStatus = CallStatus.ANSWERED,
    *,
    trunk: str = "trunk1",
    retry_at_ms: int | None = None,
    owner: str = "",
) -> bool:
    return await store.finish(
        cid,
        trunk,
        call_id,
        contact_id,
        contact_status=status,
        attempts_used=1,
        tech_failures=0,
        retry_at_ms=retry_at_ms,
        record={"outcome": status.value},
        owner=owner,
    )


async def claim_when_ok(store: RedisStore, cid: int, call_id: str, **limits: Any) -> ClaimResult:
    """Claim again every 5 ms until granted (a lease to expire, a retry to come due)."""
    async with asyncio.timeout(5):
        while True:
            r = await claim(store, cid, call_id, **limits)
            if r.kind == "ok":
                return r
            assert r.kind in ("full", "empty"), r
            await asyncio.sleep(0.005)


def max_in_window(times_ms: list[int], window_ms: int) -> int:
    """Most grants inside any half-open window [t, t + window_ms)."""
    times = sorted(times_ms)
    best = 0
    j = 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + window_ms:
            j += 1
        best = max(best, j - i)
    return best


@_translated
async def mark_originated(store: RedisStore, call_id: str, cid: int, *, owner: str = "") -> bool:
    """The PBX accepted the originate. False if the call was not in state claimed.
    LeaseLost when ``owner`` is given and another owner holds the call."""
    reply = await store.settle_and_claim({cid: [call_id]}, (), owner=owner)
    if reply.error is not None:
        raise reply.error
    if reply.lost:
        raise LeaseLost(f"call {call_id} is owned by another engine")
    return reply.moved == 1


@_translated
async def settle(
    store: RedisStore, originated: Mapping[int, Sequence[str]], finished: Sequence[FinishItem]
) -> tuple[int, list[Written]]:
    """Mark calls originated (per campaign) and end attempts, in one pipelined round trip:
    ``store.settle_and_claim`` without claims, its error raised."""
    reply = await store.settle_and_claim(originated, finished)
    if reply.error is not None:
        raise reply.error
    return reply.moved, reply.written


@_translated
async def inflight_calls(store: RedisStore, cid: int) -> list[str]:
    """Calls holding a campaign lease (expired ones included until settled)."""
    return _strs(await store.client.zrange(store.keys.inflight(cid), 0, -1))


@_translated
async def add_usage(store: RedisStore, cid: int, *, attempts: int, talk_seconds: float) -> Usage:
    """Count what an attempt used of the campaign's plan (MULTI/EXEC); the new totals."""
    key = store.keys.usage(cid)
    async with store.client.pipeline(transaction=True) as pipe:
        pipe.hincrby(key, "attempts", attempts)
        pipe.hincrbyfloat(key, "talk_seconds", talk_seconds)
        total_attempts, total_seconds = await pipe.execute()
    return Usage(int(total_attempts), float(total_seconds))


@_translated
async def publish(store: RedisStore, message: str) -> None:
    """Publish on the control channel (``store.keys.control``), as transition.lua does."""
    await store.client.publish(store.keys.control, message)
