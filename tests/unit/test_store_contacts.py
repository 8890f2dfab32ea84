"""Lists and contacts: upload, statuses not queued, stop a list, mark a campaign undialed."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus, CampaignStatus, ListStatus
from dialer.errors import NotFound, TransitionRefused
from dialer.store import ContactInput, RedisStore
from tests.unit.store_helpers import claim, contacts, finish, running_campaign

pytestmark = pytest.mark.redis

C = CallStatus


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


def nonzero(counts: dict[CallStatus, int]) -> dict[CallStatus, int]:
    return {s: n for s, n in counts.items() if n}


async def test_add_contacts_statuses_and_vars(store: RedisStore) -> None:
    cid = await store.create_campaign("x", "t", "{}")
    list_id = await store.add_list(cid)
    batch = [
        ContactInput("+33100", {"name": "Zoë Müller", "ref": "a=b;c"}),
        ContactInput("bogus", {}, C.INVALID_NUMBER),
        ContactInput("+33102", {"name": "Do not"}, C.DO_NOT_CALL),
        ContactInput("+33103"),
    ]
    assert await store.add_contacts(cid, list_id, batch, batch=3) == 4
    assert nonzero(await store.counts(cid)) == {C.PENDING: 2, C.INVALID_NUMBER: 1, C.DO_NOT_CALL: 1}
    stats = await store.queue_stats(cid)
    assert (stats.pending_total, stats.pending_due_now) == (2, 2)
    first = await store.get_contact(cid, 1)
    assert first.vars == {"name": "Zoë Müller", "ref": "a=b;c"}
    assert (first.phone, first.list_id, first.status, first.attempts) == (
        "+33100",
        list_id,
        C.PENDING,
        0,
    )
    assert first.next_due_ms == stats.next_due_ms
    invalid = await store.get_contact(cid, 2)
    assert (invalid.status, invalid.next_due_ms) == (C.INVALID_NUMBER, None)
    # only the two pending contacts are dialable, in upload order
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    got = [(await claim(store, cid, f"k{i}")).contact_id for i in range(3)]
    assert got == [1, 4, 0]
    with pytest.raises(NotFound):
        await store.get_contact(cid, 99)


async def test_upload_order_is_dial_order(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 30)
    got = [(await claim(store, cid, f"k{i}")).contact_id for i in range(30)]
    assert got == list(range(1, 31))


async def test_add_contacts_refusals(store: RedisStore) -> None:
    cid = await store.create_campaign("x", "t", "{}")
    list_id = await store.add_list(cid)
    with pytest.raises(NotFound, match="list 7"):
        await store.add_contacts(cid, 7, contacts(1))
    with pytest.raises(NotFound, match="campaign 999"):
        await store.add_contacts(999, 1, contacts(1))
    with pytest.raises(ValueError, match="answered"):
        await store.add_contacts(cid, list_id, [ContactInput("1", {}, C.ANSWERED)])
    await store.stop_list(cid, list_id)
    with pytest.raises(TransitionRefused, match="stopped"):
        await store.add_contacts(cid, list_id, contacts(1))


async def test_add_contacts_while_claiming(store: RedisStore) -> None:
    """Batches land atomically: concurrent claims never see half a contact."""
    cid, list_id = await running_campaign(store, 0)
    claimed: list[int] = []
    uploaded = asyncio.Event()

    async def claimer(w: int) -> None:
        i = 0
        while True:
            r = await claim(store, cid, f"w{w}-{i}")
            i += 1
            if r.kind == "ok":
                assert r.phone
                assert r.vars["n"]
                claimed.append(r.contact_id)
            elif uploaded.is_set():
                return
            else:
                await asyncio.sleep(0.001)

    async def uploader() -> None:
        for part in range(6):
            await store.add_contacts(cid, list_id, contacts(500, start=part * 500), batch=250)
        uploaded.set()

    await asyncio.gather(uploader(), *(claimer(w) for w in range(6)))
    assert sorted(claimed) == list(range(1, 3001))
    assert nonzero(await store.counts(cid)) == {C.IN_PROGRESS: 3000}


async def test_stop_list_moves_only_its_queued_contacts(store: RedisStore) -> None:
    cid = await store.create_campaign("x", "t", "{}")
    stop = await store.add_list(cid)
    keep = await store.add_list(cid)
    await store.add_contacts(cid, stop, [*contacts(5000), *contacts(7, status=C.DO_NOT_CALL)])
    await store.add_contacts(cid, keep, contacts(1000, start=5007))
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    # two contacts of the list to stop were dialed first: one finished, one in progress
    done = await claim(store, cid, "done")
    live = await claim(store, cid, "live")
    assert (done.contact_id, live.contact_id) == (1, 2)
    assert await finish(store, cid, "done", done.contact_id)

    moved = await store.stop_list(cid, stop, C.PLAN_LIMIT_EXCEEDED, batch=700)

    assert moved == 4998
    assert await store.list_status(cid) == {stop: ListStatus.STOPPED, keep: ListStatus.ACTIVE}
    assert nonzero(await store.counts(cid)) == {
        C.ANSWERED: 1,
        C.IN_PROGRESS: 1,
        C.PLAN_LIMIT_EXCEEDED: 4998,
        C.DO_NOT_CALL: 7,
        C.PENDING: 1000,
    }
    assert (await store.queue_stats(cid)).pending_total == 1000
    assert (await store.get_contact(cid, 3000)).status == C.PLAN_LIMIT_EXCEEDED
    assert (await store.get_contact(cid, 5001)).status == C.DO_NOT_CALL
    assert (await claim(store, cid, "next")).contact_id == 5008
    assert await store.stop_list(cid, stop) == 0  # idempotent
    with pytest.raises(NotFound):
        await store.stop_list(cid, 42)
    with pytest.raises(ValueError, match="not a final status"):
        await store.stop_list(cid, keep, C.PENDING)


async def test_stopped_list_is_never_dialed_even_mid_stop(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    """Once a list is marked stopped, claims settle its queued contacts instead of dialing."""
    # strictly by due time (dial_order due_time): the retry stays queued behind list two
    cid = await store.create_campaign("x", "t", '{"dial_order": "due_time"}')
    first = await store.add_list(cid)
    second = await store.add_list(cid)
    await store.add_contacts(cid, first, contacts(150))
    await store.add_contacts(cid, second, contacts(20, start=150))
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    # an in-flight call of the list, and a queued retry of it
    held = await claim(store, cid, "held")
    retried = await claim(store, cid, "retried")
    # due 1 ms after the claim, so behind the second list's contacts even when they were added
    # in the claim's millisecond: equal due times go in contact id order, and 2 < 151 (a fast
    # run once had the retry settled before contact 151 was claimed)
    assert await finish(
        store,
        cid,
        "retried",
        retried.contact_id,
        C.RETRY_SCHEDULED,
        retry_at_ms=retried.server_ms + 1,
    )
    # simulate the first step of stop_list only: mark stopped, no batch run yet
    await redis_client.hset(store.keys.lists(cid), str(first), ListStatus.STOPPED.value)
    await redis_client.hset(store.keys.list_stop(cid), str(first), C.NOT_DIALED.value)
    r1 = await claim(store, cid, "a")  # settles 100 stopped-list contacts, dials none
    assert (r1.kind, r1.next_due_ms) == ("empty", r1.server_ms)
    r2 = await claim(store, cid, "b")
    assert (r2.kind, r2.contact_id) == ("ok", 151)
    # a release of the stopped list's claim does not queue it again
    assert await store.release(cid, "trunk1", "held", held.contact_id)
    assert (await store.get_contact(cid, held.contact_id)).status == C.NOT_DIALED
    assert nonzero(await store.counts(cid)) == {
        C.NOT_DIALED: 149,
        C.IN_PROGRESS: 1,
        C.PENDING: 19,
        C.RETRY_SCHEDULED: 1,  # its retry is queued behind; a claim will settle it too
    }


async def test_finish_with_retry_on_stopped_list_gives_stop_status(store: RedisStore) -> None:
    cid, list_id = await running_campaign(store, 3)
    r = await claim(store, cid, "c1")
    await store.stop_list(cid, list_id)
    assert await finish(
        store, cid, "c1", r.contact_id, C.RETRY_SCHEDULED, retry_at_ms=r.server_ms + 10
    )
    assert (await store.get_contact(cid, r.contact_id)).status == C.NOT_DIALED
    assert nonzero(await store.counts(cid)) == {C.NOT_DIALED: 3}
    assert (await store.queue_stats(cid)).pending_total == 0


async def test_mark_undialed_whole_campaign(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 5000, extra=contacts(3, status=C.INVALID_NUMBER))
    calls = [await claim(store, cid, f"c{i}") for i in range(4)]
    assert await finish(store, cid, "c0", calls[0].contact_id)
    assert await finish(
        store,
        cid,
        "c1",
        calls[1].contact_id,
        C.RETRY_SCHEDULED,
        retry_at_ms=calls[1].server_ms + 60_000,
    )
    await store.transition(cid, {CampaignStatus.RUNNING}, CampaignStatus.CANCELLING)
    moved = await store.mark_undialed(cid, C.NOT_DIALED, batch=900)
    assert moved == 4996 + 1  # queued fresh contacts and the scheduled retry
    assert nonzero(await store.counts(cid)) == {
        C.ANSWERED: 1,
        C.IN_PROGRESS: 2,
        C.NOT_DIALED: 4997,
        C.INVALID_NUMBER: 3,
    }
    assert (await store.queue_stats(cid)).pending_total == 0
    assert await store.mark_undialed(cid, C.NOT_DIALED) == 0
