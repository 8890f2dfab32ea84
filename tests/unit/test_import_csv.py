"""import_csv against a real Redis: statuses, dedupe, DNC, all-or-nothing, rollback, progress."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus, CampaignStatus, ListStatus
from dialer.errors import NotFound, TransitionRefused, ValidationError
from dialer.importer import MAX_DETAILS, ColumnMapping, ImportRefused, import_csv
from dialer.store import RedisStore
from dialer.store.dnc import DncStore, ImportLedger
from tests.unit.import_helpers import (
    ChangingFile,
    csv_bytes,
    nonzero,
    phones_of,
    snapshot,
    stream,
    unseekable,
)
from tests.unit.store_helpers import claim

pytestmark = pytest.mark.redis

C = CallStatus


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+1212{2000000 + start + i:07d}" for i in range(n)]


async def test_statuses_duplicates_dnc_and_report(store: RedisStore) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    dnc = DncStore(store)
    await dnc.add(["212-555-0199"])  # global
    await dnc.add(["(212) 555-0198"], campaign=cid)
    data = csv_bytes(
        "Phone,Name,Ref",
        [
            "(212) 555-0100,Ann,r1",  # 2 pending
            "+1 212 555 0100,Ann again,r2",  # 3 duplicate of line 2
            "12345,Short,r3",  # 4 invalid
            "+12125550199,Global dnc,r4",  # 5 dnc (global)
            "2125550198,Campaign dnc,r5",  # 6 dnc (campaign)
            "12345,Short again,r6",  # 7 invalid numbers are not deduped
            "212.555.0101,Bob,r7",  # 8 pending
        ],
    )
    report = await import_csv(store, cid, stream(data))
    assert report.list_id == 1
    assert (report.rows, report.imported, report.duplicates) == (7, 6, 1)
    assert (report.invalid_numbers, report.dnc, report.pending) == (2, 2, 2)
    assert (report.errors, report.error_count) == ((), 0)
    assert [(w.line, w.reason) for w in report.warnings] == [
        (4, "invalid number '12345': too short"),
        (7, "invalid number '12345': too short"),
    ]
    assert nonzero(await store.counts(cid)) == {C.PENDING: 2, C.INVALID_NUMBER: 2, C.DO_NOT_CALL: 2}
    assert await phones_of(store, cid) == [
        "+12125550100",
        "12345",
        "+12125550199",
        "+12125550198",
        "12345",
        "+12125550101",
    ]
    ann = await store.get_contact(cid, 1)
    assert (ann.status, ann.vars, ann.list_id) == (C.PENDING, {"name": "Ann", "Ref": "r1"}, 1)
    # only the two pending contacts are ever dialed
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    got = [await claim(store, cid, f"k{i}") for i in range(3)]
    assert [(r.kind, r.phone) for r in got] == [
        ("ok", "+12125550100"),
        ("ok", "+12125550101"),
        ("empty", ""),
    ]


async def test_duplicates_across_lists_and_10000_duplicate_rows(store: RedisStore) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    first = await import_csv(store, cid, stream(csv_bytes("phone", numbers(3))))
    assert (first.imported, first.duplicates) == (3, 0)
    rows = ["+12125559999"] * 10_000 + numbers(2) + numbers(1, start=50)
    second = await import_csv(store, cid, stream(csv_bytes("phone", rows)))
    assert second.list_id == 2
    assert (second.rows, second.imported, second.duplicates) == (10_003, 2, 10_001)
    assert await phones_of(store, cid, list_id=2) == ["+12125559999", numbers(1, start=50)[0]]
    assert await store.list_status(cid) == {1: ListStatus.ACTIVE, 2: ListStatus.ACTIVE}


async def test_concurrent_imports_into_one_campaign_dedupe_atomically(store: RedisStore) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    data = csv_bytes("phone", numbers(3000))
    reports = await asyncio.gather(
        *(import_csv(store, cid, stream(data), batch=100) for _ in range(3))
    )
    assert sum(r.imported for r in reports) == 3000
    assert sum(r.duplicates for r in reports) == 6000
    assert sorted(await phones_of(store, cid)) == numbers(3000)


async def test_region_and_explicit_mapping(store: RedisStore) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    data = "Numéro;Client;Fuseau;Phone\n06 12 34 56 78;Zoë;Europe/Paris;x\n".encode()
    mapping = ColumnMapping(phone="numéro", name="client", timezone="fuseau")
    report = await import_csv(store, cid, stream(data), mapping=mapping, default_region="fr")
    assert report.imported == 1
    contact = await store.get_contact(cid, 1)
    assert contact.phone == "+33612345678"
    assert contact.vars == {"name": "Zoë", "timezone": "Europe/Paris", "Phone": "x"}


async def test_progress_and_unseekable_stream(store: RedisStore) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    seen: list[int] = []
    report = await import_csv(
        store, cid, unseekable(csv_bytes("phone", numbers(2500))), batch=1000, progress=seen.append
    )
    assert report.imported == 2500
    assert seen == [1000, 2000, 2500]


async def test_campaign_must_be_draft_or_paused(
    store: RedisStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    await import_csv(store, cid, stream(csv_bytes("phone", numbers(2))))
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    before = await snapshot(redis_client, namespace)
    with pytest.raises(TransitionRefused, match="Running"):
        await import_csv(store, cid, stream(csv_bytes("phone", numbers(2, start=10))))
    assert await snapshot(redis_client, namespace) == before
    await store.transition(cid, {CampaignStatus.RUNNING}, CampaignStatus.PAUSED)
    report = await import_csv(store, cid, stream(csv_bytes("phone", numbers(2, start=10))))
    assert (report.list_id, report.imported) == (2, 2)
    with pytest.raises(NotFound):
        await import_csv(store, 999, stream(csv_bytes("phone", numbers(1))))
    with pytest.raises(ValidationError, match="region"):
        await import_csv(store, cid, stream(csv_bytes("phone", numbers(1))), default_region="ZZ")


async def test_errors_are_listed_up_to_the_limit_and_all_counted(
    store: RedisStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    rows = [f"{n},x" if i % 2 else f"{n},x,extra" for i, n in enumerate(numbers(2500))]
    before = await snapshot(redis_client, namespace)
    with pytest.raises(ImportRefused, match="import refused, 1250 errors: line 2: 3 fields") as e:
        await import_csv(store, cid, stream(csv_bytes("phone,name", rows)))
    report = e.value.report
    assert (report.error_count, len(report.errors), report.rows) == (1250, MAX_DETAILS, 2500)
    assert report.errors[1].line == 4
    assert await snapshot(redis_client, namespace) == before


async def test_a_file_changed_between_the_passes_is_rolled_back(
    store: RedisStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    await import_csv(store, cid, stream(csv_bytes("phone", numbers(5))))
    await DncStore(store).add(numbers(1, start=2600), campaign=cid)
    before = await snapshot(redis_client, namespace)
    good = csv_bytes("phone,name", [f"{n},a" for n in numbers(3000)])
    ragged = good.replace(f"{numbers(1, start=2500)[0]},a".encode(), b"+1,a,b")  # row 2501
    with pytest.raises(ImportRefused, match="line 2502: 3 fields"):
        await import_csv(store, cid, ChangingFile(good, ragged).as_binary())
    longer = good + csv_bytes("phone,name", ["+12125551234,late"]).split(b"\n", 1)[1]
    with pytest.raises(ImportRefused, match="3000 rows validated, 3001 read"):
        await import_csv(store, cid, ChangingFile(good, longer).as_binary())
    after = await snapshot(redis_client, namespace)
    seq_keys = {store.keys.list_seq(cid).encode(), store.keys.contact_seq(cid).encode()}
    assert {k: v for k, v in after.items() if k not in seq_keys} == {
        k: v for k, v in before.items() if k not in seq_keys
    }


async def test_failure_half_way_rolls_back(
    store: RedisStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    await import_csv(store, cid, stream(csv_bytes("phone", numbers(5))))
    before = await snapshot(redis_client, namespace)

    def explode(done: int) -> None:
        if done >= 2000:
            raise RuntimeError("progress consumer died")

    data = csv_bytes("phone", numbers(3000, start=3))  # 2 duplicates of the first list
    with pytest.raises(RuntimeError, match="consumer died"):
        await import_csv(store, cid, stream(data), progress=explode)
    after = await snapshot(redis_client, namespace)
    assert after.pop(store.keys.contact_seq(cid).encode()) != before.pop(
        store.keys.contact_seq(cid).encode()
    )
    after.pop(store.keys.list_seq(cid).encode())
    before.pop(store.keys.list_seq(cid).encode())
    assert after == before
    assert await redis_client.scard(store.keys.phones(cid)) == 5


async def test_cancelled_import_rolls_back(store: RedisStore) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    first_batch = asyncio.Event()

    def progress(done: int) -> None:
        first_batch.set()

    task = asyncio.create_task(
        import_csv(store, cid, stream(csv_bytes("phone", numbers(20_000))), progress=progress)
    )
    await first_batch.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.list_status(cid) == {}
    assert nonzero(await store.counts(cid)) == {}
    assert await store.client.scard(store.keys.phones(cid)) == 0
    assert (await store.queue_stats(cid)).pending_total == 0


async def test_rollback_keeps_claimed_contacts_and_stops_the_list(store: RedisStore) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    claimed: list[str] = []

    async def start_and_claim() -> None:
        await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
        claimed.append((await claim(store, cid, "early")).phone)

    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []

    def progress(done: int) -> None:
        if done == 1000:  # someone starts the campaign during the import
            tasks.append(loop.create_task(start_and_claim()))
        if done == 3000:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError):
        await import_csv(
            store,
            cid,
            stream(csv_bytes("phone", numbers(5000))),
            progress=progress,
        )
    await asyncio.gather(*tasks)
    assert claimed == [numbers(1)[0]]
    assert await store.list_status(cid) == {1: ListStatus.STOPPED}
    assert nonzero(await store.counts(cid)) == {C.IN_PROGRESS: 1}
    assert await phones_of(store, cid) == claimed


async def test_duplicates_cost_no_redis_work_of_their_own(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch asks Redis about its distinct numbers once, and never about one this import
    added already; the counts are those of asking about every row."""
    asked: list[int] = []
    screen = ImportLedger.screen

    async def counting(self: ImportLedger, cid: int, phones: list[str]) -> list[int]:
        asked.append(len(phones))
        return await screen(self, cid, phones)

    monkeypatch.setattr(ImportLedger, "screen", counting)
    cid = await store.create_campaign("imp", "trunk1", "{}")
    await import_csv(store, cid, stream(csv_bytes("phone", numbers(2, start=90))))
    rows = ["+12125559999"] * 4500 + numbers(3) * 500 + numbers(2, start=90) * 100
    asked.clear()
    report = await import_csv(store, cid, stream(csv_bytes("phone", rows)), batch=1000)
    assert (report.rows, report.imported, report.duplicates) == (6200, 4, 6196)
    assert sum(asked) == 4 + 2  # the 4 new numbers once; the 2 of the first list once each
    assert await phones_of(store, cid, list_id=2) == ["+12125559999", *numbers(3)]
