"""Several numbers per contact against a real Redis: the rotation after no-contact outcomes
(finish.lua), the shared attempt budget, do-not-call and invalid numbers skipped, the records
and the contact's view; and the CSV importer's alternate columns."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.domain.zones import ZoneGroup
from dialer.engine.control import CampaignControl
from dialer.errors import ValidationError
from dialer.importer import ColumnMapping, import_csv
from dialer.store import ContactInput, RedisStore
from dialer.store.dnc import DncStore
from dialer.store.keys import contact_member
from dialer.store.models import AltNumber, FinishItem
from dialer.store.zones import zone_groups
from tests.unit.import_helpers import csv_bytes, stream
from tests.unit.store_helpers import claim

pytestmark = pytest.mark.redis

C = CallStatus
MAIN, MOBILE, WORK = "+33612340001", "+33612340002", "+12125550100"


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def campaign(store: RedisStore, *alternates: AltNumber) -> int:
    cid = await store.create_campaign("alt", "trunk1", "{}")
    list_id = await store.add_list(cid)
    contact = ContactInput(MAIN, {"n": "1"}, label="home", alternates=alternates)
    await store.add_contacts(cid, list_id, [contact])
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    return cid


async def dial(
    store: RedisStore,
    cid: int,
    call_id: str,
    outcome: CallStatus,
    *,
    status: CallStatus = C.RETRY_SCHEDULED,
    retry_in_ms: int | None = 60_000,
    moves: bool = True,
    used: int = 1,
    listed_meanwhile: str = "",
) -> str:
    """Claim the contact and end its call as ``outcome`` (decided as ``status``, retried
    ``retry_in_ms`` later; ``moves``: the next number due now); returns the phone dialed."""
    r = await claim(store, cid, call_id)
    assert r.kind == "ok", r
    if listed_meanwhile:  # listed do-not-call (globally) during the call
        await store.client.sadd(store.keys.global_dnc_of(cid), listed_meanwhile)
    now = r.server_ms
    item = FinishItem(
        cid,
        "trunk1",
        call_id,
        r.contact_id,
        status,
        used,
        0,
        None if retry_in_ms is None else now + retry_in_ms,
        {"phone": r.phone, "status": outcome.value, "retry_at_ms": "x"},
        next_at_ms=now if moves else None,
        wrap_at_ms=(now if retry_in_ms is None else now + retry_in_ms) if moves else None,
        outcome=outcome.value,
    )
    (applied,) = await store.finish_batch([item])
    assert applied
    return r.phone


async def test_no_contact_moves_to_the_next_number_at_once_then_wraps_after_the_delay(
    store: RedisStore,
) -> None:
    cid = await campaign(store, AltNumber(MOBILE, "mobile"), AltNumber(WORK, "work", ""))
    assert await dial(store, cid, "a1", C.BUSY) == MAIN
    contact = await store.get_contact(cid, 1)
    assert (contact.phone, contact.status, contact.attempts) == (MOBILE, C.RETRY_SCHEDULED, 1)
    assert [(n.label, n.tries, n.last_status, n.current) for n in contact.numbers] == [
        ("home", 1, "busy", False),
        ("mobile", 0, "", True),
        ("work", 0, "", False),
    ]
    assert await dial(store, cid, "a2", C.NO_ANSWER) == MOBILE  # due at once: claimable now
    assert await dial(store, cid, "a3", C.NO_ANSWER) == WORK
    # the list is done: back to the first number, after the retry delay
    contact = await store.get_contact(cid, 1)
    assert contact.phone == MAIN
    r = await claim(store, cid, "a4")
    assert r.kind == "empty"
    assert r.next_due_ms is not None
    assert r.next_due_ms >= r.server_ms + 50_000
    records = [f for _, f in await store.records(cid)]
    assert [(f["phone"], f["phone_label"], f.get("next_phone")) for f in records] == [
        (MAIN, "home", MOBILE),
        (MOBILE, "mobile", WORK),
        (WORK, "work", MAIN),
    ]
    # the record tells when the next attempt is due, as applied (not the decided retry)
    assert records[0]["retry_at_ms"] != "x"
    assert records[0]["contact_status"] == "retry_scheduled"


async def test_answered_stays_and_budget_is_shared(store: RedisStore) -> None:
    cid = await campaign(store, AltNumber(MOBILE, "mobile"))
    await dial(store, cid, "b1", C.NO_ANSWER)
    # the budget is spent (the caller decided Completed without answer): no more dials
    await dial(
        store, cid, "b2", C.NO_ANSWER, status=C.COMPLETED_NO_ANSWER, retry_in_ms=None, moves=False
    )
    contact = await store.get_contact(cid, 1)
    assert (contact.status, contact.attempts, contact.next_due_ms) == (
        C.COMPLETED_NO_ANSWER,
        2,
        None,
    )
    assert [(n.tries, n.last_status) for n in contact.numbers] == [
        (1, "no_answer"),
        (1, "no_answer"),
    ]
    assert (await claim(store, cid, "b3")).kind == "empty"


async def test_do_not_call_alternate_is_skipped(store: RedisStore) -> None:
    cid = await campaign(store, AltNumber(MOBILE, "mobile"), AltNumber(WORK, "work"))
    await store.client.sadd(store.keys.campaign_dnc(cid), MOBILE)
    assert await dial(store, cid, "c1", C.BUSY) == MAIN
    contact = await store.get_contact(cid, 1)
    assert contact.phone == WORK
    assert [n.last_status for n in contact.numbers] == ["busy", "do_not_call", ""]
    assert await dial(store, cid, "c2", C.BUSY) == WORK
    assert (await store.get_contact(cid, 1)).phone == MAIN  # the listed one never dialed


async def test_invalid_number_moves_on_and_is_never_dialed_again(store: RedisStore) -> None:
    cid = await campaign(store, AltNumber(MOBILE, "mobile"))
    await dial(store, cid, "d1", C.BUSY)
    # the mobile is invalid (final as decided; it used no attempt): back to the main one
    assert (
        await dial(
            store, cid, "d2", C.INVALID_NUMBER, status=C.INVALID_NUMBER, retry_in_ms=None, used=0
        )
        == MOBILE
    )
    assert await dial(store, cid, "d3", C.BUSY) == MAIN
    contact = await store.get_contact(cid, 1)
    assert (contact.phone, contact.status) == (MAIN, C.RETRY_SCHEDULED)  # the mobile skipped
    assert [(n.tries, n.last_status) for n in contact.numbers] == [
        (2, "busy"),
        (1, "invalid_number"),
    ]


async def test_last_number_listed_ends_do_not_call(store: RedisStore) -> None:
    cid = await campaign(store, AltNumber(MOBILE, "mobile"))
    await store.client.sadd(store.keys.campaign_dnc(cid), MOBILE)
    await dial(store, cid, "e1", C.BUSY, listed_meanwhile=MAIN)
    contact = await store.get_contact(cid, 1)
    assert (contact.status, contact.next_due_ms) == (C.DO_NOT_CALL, None)
    assert nonzero(await store.counts(cid)) == {C.DO_NOT_CALL: 1}


async def test_dialed_numbers_zone_group(store: RedisStore) -> None:
    cid = await campaign(store, AltNumber(WORK, "work"))
    await dial(store, cid, "f1", C.NO_ANSWER)
    gid = int(await store.client.hget(store.keys.contact(cid, 1), "zg") or 0)
    groups = await zone_groups(store.client, store.keys, cid)
    assert groups[gid] == ZoneGroup("US", ("America/New_York",))  # the work number's zone
    queued = await store.client.zscore(store.keys.zone_prefix(cid) + str(gid), contact_member(1))
    assert queued is not None


async def test_import_alternate_columns(store: RedisStore) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    rows = [
        f"{MAIN},Ann,{MOBILE},",
        f"+33612340011,Bob,not-a-number,{WORK}",
        "bad,Cy,+33612340021,",
        "+33612340031,Di,+33612340031,",
    ]
    report = await import_csv(
        store,
        cid,
        stream(csv_bytes("phone,name,phone2,Work", rows)),
        mapping=ColumnMapping(alt_phones=("phone2", "work")),
    )
    assert report.imported == 4
    assert report.invalid_numbers == 0
    assert [w.line for w in report.warnings] == [3, 4]
    ann, bob, cy, di = [await store.get_contact(cid, i) for i in range(1, 5)]
    assert [(n.number, n.label) for n in ann.numbers] == [(MAIN, "phone"), (MOBILE, "phone2")]
    assert [(n.number, n.label) for n in bob.numbers] == [("+33612340011", "phone"), (WORK, "Work")]
    assert (cy.phone, cy.status) == ("+33612340021", C.PENDING)  # the main was invalid
    assert di.numbers == ()  # the same number twice is one number
    assert ann.vars == {"name": "Ann"}  # the alternates are no variables


def nonzero(counts: dict[CallStatus, int]) -> dict[CallStatus, int]:
    return {s: n for s, n in counts.items() if n}


async def test_add_list_checks_alternates(store: RedisStore) -> None:
    control = CampaignControl(store)
    cid = await store.create_campaign("ctl", "trunk1", "{}")
    bad = ContactInput(MAIN, alternates=(AltNumber("12", "cell"),))
    with pytest.raises(ValidationError, match="contact 1: invalid alternate number '12'"):
        await control.add_list(cid, [bad])
    spaced = ContactInput(MAIN, alternates=(AltNumber("+1 212 555 0100", "work"),))
    await control.add_list(cid, [spaced])
    (number,) = (await store.get_contact(cid, 1)).numbers[1:]
    assert (number.number, number.label) == (WORK, "work")


async def test_import_listed_main_number_goes_on_with_the_alternates(store: RedisStore) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    await DncStore(store).add([MAIN])
    rows = [f"{MAIN},{MOBILE}", "+33612340011,"]
    report = await import_csv(store, cid, stream(csv_bytes("phone,phone2", rows)))
    assert (report.imported, report.dnc) == (2, 0)
    assert [w.line for w in report.warnings] == [2]
    contact = await store.get_contact(cid, 1)
    assert (contact.phone, contact.status, contact.numbers) == (MOBILE, C.PENDING, ())
