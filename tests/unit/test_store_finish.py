"""finish.lua and release.lua: once-only, exact counts, retries, records."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus
from dialer.errors import StoreError
from dialer.store import RedisStore
from tests.unit.store_helpers import claim, claim_when_ok, finish, inflight_calls, running_campaign

pytestmark = pytest.mark.redis

C = CallStatus


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


def nonzero(counts: dict[CallStatus, int]) -> dict[CallStatus, int]:
    return {s: n for s, n in counts.items() if n}


async def test_finish_is_idempotent(store: RedisStore, redis_client: aioredis.Redis) -> None:
    cid, _ = await running_campaign(store, 3)
    r = await claim(store, cid, "c1")
    record = {"outcome": "busy", "hangup_cause": "17", "name": "Zoë"}
    kwargs = {
        "contact_status": C.BUSY,
        "attempts_used": 1,
        "tech_failures": 0,
        "retry_at_ms": None,
        "record": record,
    }
    # two engine processes see the same Hangup at the same time
    first, second = await asyncio.gather(
        store.finish(cid, "trunk1", "c1", r.contact_id, **kwargs),  # type: ignore[arg-type]
        store.finish(cid, "trunk1", "c1", r.contact_id, **kwargs),  # type: ignore[arg-type]
    )
    assert sorted([first, second]) == [False, True]
    assert await store.finish(cid, "trunk1", "c1", r.contact_id, **kwargs) is False  # type: ignore[arg-type]
    assert nonzero(await store.counts(cid)) == {C.PENDING: 2, C.BUSY: 1}
    contact = await store.get_contact(cid, r.contact_id)
    assert (contact.status, contact.attempts, contact.last_call) == (C.BUSY, 1, "c1")
    records = await store.records(cid)
    assert len(records) == 1
    assert records[0][1] == {
        **record,
        "call_id": "c1",
        "contact_id": str(r.contact_id),
        "status": "busy",
    }
    assert await inflight_calls(store, cid) == []
    assert await redis_client.zcard(store.keys.trunk_inflight("trunk1")) == 0
    call = await store.get_call("c1")
    assert call is not None
    assert call.state == "done"
    assert 0 < await redis_client.ttl(store.keys.call("c1")) <= 86_400


async def test_finish_of_unknown_call_or_wrong_contact(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 3)
    assert await finish(store, cid, "never-claimed", 1) is False
    r = await claim(store, cid, "c1")
    with pytest.raises(StoreError, match="belongs to another contact"):
        await finish(store, cid, "c1", r.contact_id + 1)
    assert nonzero(await store.counts(cid)) == {C.PENDING: 2, C.IN_PROGRESS: 1}


async def test_retry_then_final(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 1)
    r = await claim(store, cid, "a1")
    retry_at = r.server_ms + 200
    assert await store.finish(
        cid,
        "trunk1",
        "a1",
        r.contact_id,
        contact_status=C.RETRY_SCHEDULED,
        attempts_used=0,
        tech_failures=1,
        retry_at_ms=retry_at,
        record={"outcome": "technical_error"},
    )
    contact = await store.get_contact(cid, r.contact_id)
    assert (contact.status, contact.attempts, contact.tech_failures, contact.next_due_ms) == (
        C.RETRY_SCHEDULED,
        0,
        1,
        retry_at,
    )
    assert nonzero(await store.counts(cid)) == {C.RETRY_SCHEDULED: 1}
    early = await claim(store, cid, "a2")
    assert (early.kind, early.next_due_ms) == ("empty", retry_at)
    await asyncio.sleep(early.wait_ms / 1000)
    again = await claim_when_ok(store, cid, "a2")
    assert again.server_ms >= retry_at
    assert (again.contact_id, again.attempts, again.tech_failures) == (r.contact_id, 0, 1)
    assert await finish(store, cid, "a2", r.contact_id, C.NO_ANSWER)
    contact = await store.get_contact(cid, r.contact_id)
    assert (contact.status, contact.attempts, contact.next_due_ms) == (C.NO_ANSWER, 1, None)
    assert nonzero(await store.counts(cid)) == {C.NO_ANSWER: 1}
    assert [f["call_id"] for _, f in await store.records(cid)] == ["a1", "a2"]


async def test_release_puts_contact_back_unchanged(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 3)
    r = await claim(store, cid, "c1", max_channels=1)
    before = r.contact_id
    assert await store.release(cid, "trunk1", "c1", before)
    assert await store.release(cid, "trunk1", "c1", before) is False
    contact = await store.get_contact(cid, before)
    assert (contact.status, contact.attempts) == (C.PENDING, 0)
    assert nonzero(await store.counts(cid)) == {C.PENDING: 3}
    assert await store.records(cid) == []
    assert (
        await store.finish(
            cid,
            "trunk1",
            "c1",
            before,
            contact_status=C.ANSWERED,
            attempts_used=1,
            tech_failures=0,
            retry_at_ms=None,
            record={},
        )
        is False
    )
    # its place in the queue is kept: it is claimed first again; the slot was freed
    again = await claim(store, cid, "c2", max_channels=1)
    assert (again.kind, again.contact_id) == ("ok", before)


async def test_release_of_a_retry_keeps_its_status_and_due(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 1)
    r = await claim(store, cid, "c1")
    assert await finish(store, cid, "c1", r.contact_id, C.RESCHEDULED, retry_at_ms=r.server_ms + 50)
    await asyncio.sleep(0.06)
    again = await claim_when_ok(store, cid, "c2")
    assert await store.release(cid, "trunk1", "c2", again.contact_id)
    contact = await store.get_contact(cid, r.contact_id)
    assert (contact.status, contact.next_due_ms, contact.attempts) == (
        C.RESCHEDULED,
        r.server_ms + 50,
        1,
    )
    assert nonzero(await store.counts(cid)) == {C.RESCHEDULED: 1}


async def test_records_paging(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 25)
    for i in range(25):
        r = await claim(store, cid, f"c{i}")
        assert await finish(store, cid, f"c{i}", r.contact_id)
    page1 = await store.records(cid, count=10)
    page2 = await store.records(cid, after=page1[-1][0], count=10)
    page3 = await store.records(cid, after=page2[-1][0], count=10)
    ids = [f["call_id"] for _, f in page1 + page2 + page3]
    assert ids == [f"c{i}" for i in range(25)]
    assert await store.records(cid, after=page3[-1][0]) == []
