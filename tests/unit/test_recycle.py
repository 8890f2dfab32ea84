"""Recycling a finished or stopped list into a new one, and removing contacts (real Redis)."""

from __future__ import annotations

import os
import time

import pytest
import redis.asyncio as aioredis

from dialer.domain.recycle import recyclable_statuses
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.errors import NotFound, ValidationError
from dialer.store import RedisStore
from dialer.store.dnc import DncStore
from dialer.store.queries import contacts_page
from dialer.store.recycle import RecycleRefused, RemoveRefused, recycle_list, remove_contacts
from tests.unit.store_helpers import claim, contacts, finish, running_campaign

pytestmark = pytest.mark.redis

C = CallStatus
S = CampaignStatus


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def finished_campaign(store: RedisStore, outcomes: list[CallStatus]) -> tuple[int, int]:
    """A Completed campaign whose i-th contact ended ``outcomes[i]``."""
    cid, list_id = await running_campaign(store, len(outcomes))
    for i, outcome in enumerate(outcomes):
        got = await claim(store, cid, f"call{i}")
        assert got.contact_id == i + 1
        assert await finish(store, cid, f"call{i}", i + 1, outcome)
    await store.transition(cid, {S.RUNNING}, S.COMPLETED)
    return cid, list_id


def test_statuses_are_validated() -> None:
    assert recyclable_statuses(["busy", "no_answer"]) == {C.BUSY, C.NO_ANSWER}
    for bad in (["pending"], ["do_not_call"], ["removed"], ["nope"], []):
        with pytest.raises(ValidationError):
            recyclable_statuses(bad)


async def test_recycle_into_a_new_campaign_keeps_history(store: RedisStore) -> None:
    outcomes = [C.BUSY, C.ANSWERED, C.NO_ANSWER, C.BUSY, C.VOICEMAIL]
    cid, list_id = await finished_campaign(store, outcomes)
    report = await recycle_list(store, cid, list_id, frozenset({C.BUSY, C.NO_ANSWER}), into="new")
    assert report.created_campaign
    assert report.campaign != cid
    assert (report.examined, report.recycled, report.skipped_dnc) == (5, 3, 0)
    new = report.campaign
    assert (await store.get_campaign(new)).status is S.DRAFT
    assert await store.list_status(new) == {report.list_id: "active"}
    assert (await store.counts(new))[C.PENDING] == 3
    assert (await store.queue_stats(new)).pending_total == 3
    page = await contacts_page(store, new, limit=10)
    links = [
        await store.client.hget(store.keys.contact(new, c.id), "recycled_from")
        for c in page.contacts
    ]
    assert links == [f"{cid}:{i}".encode() for i in (1, 3, 4)]
    assert [c.phone for c in page.contacts] == [
        (await store.get_contact(cid, i)).phone for i in (1, 3, 4)
    ]
    assert all(c.attempts == 0 and c.dials == 0 and c.vars for c in page.contacts)
    # the old contacts and their records are untouched
    assert (await store.get_contact(cid, 1)).status is C.BUSY
    assert len(await store.records(cid)) == 5
    # the same statuses of the same list are recycled once
    with pytest.raises(RecycleRefused) as refused:
        await recycle_list(store, cid, list_id, frozenset({C.BUSY}), into="new")
    assert refused.value.code == "already_recycled"


async def test_the_new_list_dials_exactly_the_recycled(store: RedisStore) -> None:
    cid, list_id = await finished_campaign(store, [C.BUSY, C.ANSWERED, C.NO_ANSWER])
    report = await recycle_list(store, cid, list_id, frozenset({C.BUSY, C.NO_ANSWER}), into="new")
    new = report.campaign
    await store.transition(new, {S.DRAFT}, S.RUNNING)
    phones = []
    for i in range(4):
        got = await claim(store, new, f"n{i}")
        if got.kind != "ok":
            assert got.kind == "empty"
            break
        phones.append(got.phone)
    want = [(await store.get_contact(cid, i)).phone for i in (1, 3)]
    assert phones == want


async def test_exhausted_contacts_match_their_last_outcome(store: RedisStore) -> None:
    cid, list_id = await finished_campaign(store, [C.COMPLETED_NO_ANSWER, C.ANSWERED])
    # contact 1's last record says busy (finish wrote status completed_no_answer, outcome busy)
    await store.client.xadd(
        store.keys.records(cid), {"contact_id": "1", "status": "busy", "call_id": "late"}
    )
    report = await recycle_list(store, cid, list_id, frozenset({C.BUSY}), into="new")
    assert report.recycled == 1


async def test_same_campaign_only_when_editable_and_list_finished(store: RedisStore) -> None:
    cid, list_id = await running_campaign(store, 3)
    got = await claim(store, cid, "a")
    await finish(store, cid, "a", got.contact_id, C.BUSY)
    await store.transition(cid, {S.RUNNING}, S.PAUSED)
    with pytest.raises(RecycleRefused) as refused:  # two contacts still pending
        await recycle_list(store, cid, list_id, frozenset({C.BUSY}))
    assert refused.value.code == "list_not_finished"
    await store.stop_list(cid, list_id)
    report = await recycle_list(store, cid, list_id, frozenset({C.BUSY, C.NOT_DIALED}))
    assert (report.campaign, report.recycled) == (cid, 3)
    assert (await store.counts(cid))[C.PENDING] == 3
    await store.transition(cid, {S.PAUSED}, S.RUNNING)
    with pytest.raises(RecycleRefused) as refused:
        await recycle_list(store, cid, report.list_id or 0, frozenset({C.BUSY}))
    assert refused.value.code in ("list_not_finished", "campaign_not_editable")
    with pytest.raises(NotFound):
        await recycle_list(store, cid, 99, frozenset({C.BUSY}))


async def test_do_not_call_is_never_recycled(store: RedisStore) -> None:
    cid, list_id = await finished_campaign(store, [C.BUSY, C.BUSY])
    phone = (await store.get_contact(cid, 2)).phone
    await DncStore(store).add([phone])
    report = await recycle_list(store, cid, list_id, frozenset({C.BUSY}), into="new")
    assert (report.recycled, report.skipped_dnc) == (1, 1)


async def test_a_refused_commit_leaves_nothing(store: RedisStore) -> None:
    cid, list_id = await finished_campaign(store, [C.BUSY, C.BUSY])
    target = await store.create_campaign("t", "trunk1", "{}")
    await store.add_list(target)
    await store.transition(target, {S.DRAFT}, S.RUNNING)
    with pytest.raises(RecycleRefused):
        await recycle_list(store, cid, list_id, frozenset({C.BUSY}), into=target)
    assert (await store.queue_stats(target)).pending_total == 0
    assert len(await store.list_status(target)) == 1


async def test_remove_only_while_draft_or_paused(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 4)
    with pytest.raises(RemoveRefused):
        await remove_contacts(store, cid, [1])
    got = await claim(store, cid, "held")  # an engine holds contact 1 in a claim
    assert got.contact_id == 1
    await store.transition(cid, {S.RUNNING}, S.PAUSED)
    phone3 = (await store.get_contact(cid, 3)).phone
    report = await remove_contacts(store, cid, [1, 2, 99], phones=[phone3, "+19999999999"])
    assert report.removed == [2, 3]
    assert report.in_call == [1]
    assert report.not_found == [99]
    assert report.phones_not_found == ["+19999999999"]
    assert (await remove_contacts(store, cid, [2])).already_removed == [2]
    # the claim is given back: contact 1 is queued again and may be removed now
    assert await store.release(cid, "trunk1", "held", 1)
    assert (await remove_contacts(store, cid, [1])).removed == [1]
    counts = await store.counts(cid)
    assert (counts[C.REMOVED], counts[C.PENDING]) == (3, 1)
    await store.transition(cid, {S.PAUSED}, S.RUNNING)
    taken = [await claim(store, cid, f"c{i}") for i in range(3)]
    assert [t.contact_id for t in taken if t.kind == "ok"] == [4]  # claim.lua skips removed
    assert (await store.get_contact(cid, 2)).status is C.REMOVED


async def test_recycle_large_list_is_bounded(store: RedisStore) -> None:
    """Batches: no Lua call is O(list size). 10,000 contacts here (DIALER_RECYCLE_N=100000 for
    the README's measure); the longest round trip of one Lua call is measured by the client."""
    n = int(os.environ.get("DIALER_RECYCLE_N", "10000"))
    cid, list_id = await running_campaign(store, 0)
    await store.add_contacts(cid, list_id, contacts(n))
    await store.transition(cid, {S.RUNNING}, S.PAUSED)
    await store.stop_list(cid, list_id)
    t0 = time.perf_counter()
    report = await recycle_list(store, cid, list_id, frozenset({C.NOT_DIALED}), into="new")
    took = time.perf_counter() - t0
    print(  # noqa: T201
        f"recycle {n}: {took:.2f} s, {report.batches} Lua calls, "
        f"slowest {report.slowest_call_ms:.1f} ms"
    )
    assert report.recycled == n
    assert (await store.queue_stats(report.campaign)).pending_total == n
    assert report.slowest_call_ms < 500
