"""Do-not-call lists against a real Redis: the list API, import screening, dial-time blocking,
queued contacts moved after a bulk upload, opt-outs from calls."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.errors import NotFound, ValidationError
from dialer.importer import import_csv
from dialer.store import RedisStore
from dialer.store.dnc import DncStore
from tests.unit.import_helpers import csv_bytes, nonzero, snapshot, stream
from tests.unit.store_helpers import claim, finish

pytestmark = pytest.mark.redis

C = CallStatus


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


@pytest.fixture
def dnc(store: RedisStore) -> DncStore:
    return DncStore(store)


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+1212{3000000 + start + i:07d}" for i in range(n)]


async def test_listed_reads_both_lists_per_number(store: RedisStore) -> None:
    """The bulk check (the API's and the CLI's ``dnc check``): each number's place on the global
    list and on the campaign's, in the order asked; on Cluster too (the suite of
    test_redis_cluster_store_suite runs it), where the global list has a copy per slot group."""
    dnc = DncStore(store)
    cid = await store.create_campaign("dnc", "trunk1", "{}")
    other = await store.create_campaign("other", "trunk1", "{}")
    both, glob, mine, none = numbers(4, start=900)
    await dnc.add([both, glob])
    await dnc.add([both, mine], campaign=cid)
    asked = [none, mine, glob, both, glob]
    assert await dnc.listed(asked, cid) == [
        (False, False), (False, True), (True, False), (True, True), (True, False),
    ]  # fmt: skip
    assert await dnc.listed(asked) == [(False, False), (False, False)] + [(True, False)] * 3
    assert await dnc.listed(asked, other) == [(False, False)] * 2 + [(True, False)] * 3
    assert await dnc.listed([], cid) == []
    with pytest.raises(NotFound):
        await dnc.listed(asked, 999_999)
    await dnc.remove([both])
    assert await dnc.listed([both], cid) == [(False, True)]


async def test_lists_normalise_and_are_separate(store: RedisStore, dnc: DncStore) -> None:
    cid = await store.create_campaign("dnc", "trunk1", "{}")
    other = await store.create_campaign("other", "trunk1", "{}")
    assert await dnc.add(["(212) 555-0100", "+1 212 555 0100", "212.555.0101"]) == 2
    assert await dnc.add(["+12125550101"]) == 0
    assert await dnc.add(["212 555 0102"], campaign=cid) == 1
    assert await dnc.count() == 2
    assert await dnc.count(cid) == 1
    assert await dnc.count(other) == 0
    assert await dnc.contains("+12125550100")
    assert await dnc.contains("212-555-0100")
    assert not await dnc.contains("+12125550102")  # only on the campaign's list
    assert await dnc.contains("+12125550102", cid)
    assert not await dnc.contains("+12125550102", other)
    assert not await dnc.contains("not a number")
    assert await dnc.blocked("+12125550100", other)  # global
    assert await dnc.blocked("(212) 555-0102", cid)  # campaign
    assert not await dnc.blocked("+12125550102", other)
    assert await dnc.remove(["2125550100", "+12125550199"]) == 1
    assert not await dnc.blocked("+12125550100", cid)
    fr = DncStore(store, default_region="FR")
    assert await fr.add(["06 12 34 56 78"]) == 1
    assert await dnc.contains("+33 6 12 34 56 78")


async def test_invalid_numbers_refuse_the_whole_call(
    store: RedisStore, dnc: DncStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    before = await snapshot(redis_client, namespace)
    bad = ["+12125550100", "12", "abc", *(str(i) for i in range(10))]
    with pytest.raises(ValidationError, match=r"12 invalid phone numbers: '12' \(too short\)"):
        await dnc.add(bad)
    with pytest.raises(ValidationError, match="and 7 more"):
        await dnc.remove(bad)
    with pytest.raises(NotFound, match="campaign 77"):
        await dnc.add(["+12125550100"], campaign=77)
    assert await snapshot(redis_client, namespace) == before
    with pytest.raises(ValidationError, match="region"):
        DncStore(store, default_region="XX")
    with pytest.raises(ValueError, match="namespace"):
        DncStore(store, "elsewhere")


async def test_iterate_sees_every_number_once(redis_client: aioredis.Redis, namespace: str) -> None:
    dnc = DncStore(redis_client, namespace)  # built from a bare client
    await dnc.add(numbers(2500))
    got = [n async for n in dnc.iterate(batch=300)]
    assert sorted(got) == numbers(2500)
    assert [n async for n in dnc.iterate(campaign=5)] == []


async def test_number_listed_after_import_is_never_originated(
    store: RedisStore, dnc: DncStore
) -> None:
    cid = await store.create_campaign("dnc", "trunk1", "{}")
    await import_csv(store, cid, stream(csv_bytes("phone", numbers(3))))
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    await dnc.add([numbers(1)[0]], campaign=cid)  # listed after the import
    await dnc.add([numbers(1, start=2)[0]])  # and one globally
    dialed: list[str] = []
    settled = 0
    for i in range(5):
        res = await claim(store, cid, f"call{i}")  # the claim screens against both lists
        if res.kind != "ok":
            assert res.kind == "empty"
            if res.next_due_ms == res.server_ms:  # the call id went to a listed contact
                settled += 1
                continue
            break
        dialed.append(res.phone)  # the engine would originate here
        await finish(store, cid, f"call{i}", res.contact_id, C.ANSWERED)
    assert dialed == [numbers(1, start=1)[0]]
    assert settled == 2
    assert nonzero(await store.counts(cid)) == {C.DO_NOT_CALL: 2, C.ANSWERED: 1}
    skipped = await store.get_contact(cid, 1)
    assert (skipped.status, skipped.attempts, skipped.next_due_ms) == (C.DO_NOT_CALL, 0, None)
    stats = await store.queue_stats(cid)
    assert (stats.inflight, stats.claimed, stats.pending_total) == (0, 0, 0)
    records = await store.records(cid)
    assert [r["rule"] for _, r in records if r.get("rule")] == ["dnc:blocked", "dnc:blocked"]
    assert all(r["status"] == "do_not_call" for _, r in records if r.get("rule"))


async def test_import_screens_against_both_lists(store: RedisStore, dnc: DncStore) -> None:
    cid = await store.create_campaign("dnc", "trunk1", "{}")
    await dnc.add(numbers(10))
    await dnc.add(numbers(10, start=10), campaign=cid)
    report = await import_csv(store, cid, stream(csv_bytes("phone", numbers(30))))
    assert (report.imported, report.dnc, report.pending) == (30, 20, 10)
    assert nonzero(await store.counts(cid)) == {C.PENDING: 10, C.DO_NOT_CALL: 20}


async def test_mark_dnc_pending_after_a_bulk_upload(store: RedisStore, dnc: DncStore) -> None:
    cid = await store.create_campaign("dnc", "trunk1", "{}")
    await import_csv(store, cid, stream(csv_bytes("phone", numbers(3000))))
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    live = await claim(store, cid, "live")  # contact 1: in progress, left alone
    retry = await claim(store, cid, "retry")  # contact 2: a scheduled retry is queued too
    await finish(store, cid, "retry", retry.contact_id, C.RETRY_SCHEDULED, retry_at_ms=1)
    listed = numbers(2, start=0) + numbers(500, start=1000)
    await dnc.add(listed[:250])
    await dnc.add(listed[250:], campaign=cid)
    assert await dnc.mark_dnc_pending(cid, batch=300) == 501
    assert await dnc.mark_dnc_pending(cid) == 0
    counts = nonzero(await store.counts(cid))
    assert counts == {C.PENDING: 2498, C.DO_NOT_CALL: 501, C.IN_PROGRESS: 1}
    assert (await store.queue_stats(cid)).pending_total == 2498
    assert (await store.get_contact(cid, live.contact_id)).status == C.IN_PROGRESS
    assert (await store.get_contact(cid, retry.contact_id)).status == C.DO_NOT_CALL
    with pytest.raises(NotFound):
        await dnc.mark_dnc_pending(404)


async def test_mark_dnc_pending_while_engines_claim(store: RedisStore, dnc: DncStore) -> None:
    cid = await store.create_campaign("dnc", "trunk1", "{}")
    await import_csv(store, cid, stream(csv_bytes("phone", numbers(2000))))
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    await dnc.add(numbers(1000), campaign=cid)

    async def claimer(n: int) -> list[int]:
        got = []
        for i in range(200):
            res = await claim(store, cid, f"e{n}-{i}")
            if res.kind == "ok":
                got.append(res.contact_id)
        return got

    moved, *claimed = await asyncio.gather(
        dnc.mark_dnc_pending(cid, batch=100), *map(claimer, range(3))
    )
    taken = [c for group in claimed for c in group]
    counts = nonzero(await store.counts(cid))
    # a listed contact is settled either by the sweep or by the claim that reached it first,
    # and never claimed for a call
    assert moved <= 1000
    assert counts[C.DO_NOT_CALL] == 1000
    assert all(c > 1000 for c in taken)
    assert counts[C.IN_PROGRESS] == len(taken)
    assert sum(counts.values()) == 2000


async def test_add_from_call(store: RedisStore, dnc: DncStore) -> None:
    cid = await store.create_campaign("dnc", "trunk1", "{}")
    other = await store.create_campaign("other", "trunk1", "{}")
    assert await dnc.add_from_call("+12125550100", cid)
    assert not await dnc.add_from_call("+12125550100", cid)
    assert await dnc.blocked("+12125550100", cid)
    assert not await dnc.blocked("+12125550100", other)
    assert await dnc.add_from_call("+12125550101", cid, scope="global")
    assert await dnc.blocked("+12125550101", other)
    with pytest.raises(ValidationError, match="scope"):
        await dnc.add_from_call("+12125550101", cid, scope="everywhere")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="invalid phone number"):
        await dnc.add_from_call("12", cid)
    await store.delete_campaign(other)
    with pytest.raises(NotFound):
        await dnc.add_from_call("+12125550102", other)
    assert not await store.client.exists(store.keys.campaign_dnc(other))
