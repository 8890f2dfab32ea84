"""Several numbers per contact against a real Redis: the rotation after no-contact outcomes
(finish.lua), the shared attempt budget, do-not-call and invalid numbers skipped, the records
and the contact's view; a number listed after the contact moved to it, skipped at the claim
(claim.lua) and by the bulk marking (dnc_mark_pending.lua); and the CSV importer's alternate
columns."""

from __future__ import annotations

import asyncio
import json

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
from dialer.store.models import AltNumber, ClaimBatch, FinishItem, ZoneClaim
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


# a number listed after the contact moved on to it: claim.lua skips it


async def take(
    store: RedisStore, cid: int, *call_ids: str, zones: ZoneClaim | None = None
) -> ClaimBatch:
    return await store.claim_batch(
        cid, "trunk1", list(call_ids), "e1", lease_ms=10_000, max_channels=None,
        trunk_max_channels=None, cps=None, trunk_cps=None, zones=zones,
    )  # fmt: skip


async def test_number_listed_after_the_move_gives_way_to_the_next_in_the_same_claim(
    store: RedisStore,
) -> None:
    cid = await campaign(store, AltNumber(MOBILE, "mobile"), AltNumber(WORK, "work"))
    assert await dial(store, cid, "g1", C.BUSY) == MAIN  # moved on to the mobile
    await DncStore(store).add([MOBILE], cid)  # listed while the contact waits for its call
    batch = await take(store, cid, "g2")
    (got,) = batch.claims
    assert (got.call_id, got.phone, got.attempts, got.dial) == ("g2", WORK, 1, 2)
    assert (batch.stop, batch.blocked) == ("max", 0)
    contact = await store.get_contact(cid, 1)
    assert (contact.phone, contact.status, contact.attempts) == (WORK, C.IN_PROGRESS, 1)
    assert [(n.tries, n.last_status, n.current) for n in contact.numbers] == [
        (1, "busy", False),
        (0, "do_not_call", False),
        (0, "", True),
    ]
    assert nonzero(await store.counts(cid)) == {C.IN_PROGRESS: 1}
    blocked = (await store.records(cid))[-1][1]
    assert {k: blocked.get(k) for k in ("call_id", "rule", "dial", "attempt", "status")} == {
        "call_id": "g2-dnc",  # the call to WORK is g2
        "rule": "dnc:blocked",
        "dial": "0",
        "attempt": "1",
        "status": "do_not_call",
    }
    assert (blocked["phone"], blocked["phone_label"], blocked["next_phone"]) == (
        MOBILE,
        "mobile",
        WORK,
    )
    assert blocked["contact_status"] == "in_progress"
    # the call goes on as any other: its result counts against the work number
    item = FinishItem(
        cid, "trunk1", "g2", 1, C.ANSWERED, 1, 0, None, {"phone": WORK, "status": "answered"},
        outcome="answered",
    )  # fmt: skip
    (applied,) = await store.finish_batch([item])
    assert applied
    contact = await store.get_contact(cid, 1)
    assert (contact.status, contact.attempts) == (C.ANSWERED, 2)
    assert [n.last_status for n in contact.numbers] == ["busy", "do_not_call", "answered"]


async def test_listed_last_number_goes_back_to_the_first_usable_at_the_wrap_time(
    store: RedisStore,
) -> None:
    """Back to an earlier number only when finish.lua would have gone back to it: at the wrap
    time of the call that moved on (the retry delay), not at once."""
    cid = await campaign(store, AltNumber(MOBILE, "mobile"), AltNumber(WORK, "work"))
    await dial(store, cid, "h1", C.BUSY, retry_in_ms=1_000)
    await dial(store, cid, "h2", C.BUSY, retry_in_ms=1_000)  # now on the work number, due now
    nstate = await store.client.hget(store.keys.contact(cid, 1), "nstate")
    assert nstate is not None
    wrap_at = int(json.loads(nstate)["w"])  # finish.lua's wrap_at_ms, kept for the claim
    await store.client.sadd(store.keys.global_dnc_of(cid), WORK)
    batch = await take(store, cid, "h3", "h3b")  # h3 spent on the listed number's record
    assert (batch.claims, batch.blocked, batch.stop) == ([], 0, "empty")
    assert batch.next_due_ms == wrap_at > batch.server_ms
    contact = await store.get_contact(cid, 1)
    assert (contact.phone, contact.status, contact.attempts) == (MAIN, C.RETRY_SCHEDULED, 2)
    assert contact.next_due_ms == wrap_at
    assert [n.last_status for n in contact.numbers] == ["busy", "busy", "do_not_call"]
    blocked = (await store.records(cid))[-1][1]
    assert (blocked["call_id"], blocked["phone"], blocked["next_phone"]) == ("h3", WORK, MAIN)
    assert (blocked["contact_status"], int(blocked["retry_at_ms"])) == ("retry_scheduled", wrap_at)
    while (await take(store, cid, "h4")).claims == []:  # nothing before the wrap time
        seconds, micros = await store.client.time()
        assert seconds * 1000 + micros // 1000 < wrap_at + 200  # and dialed soon after it
        await asyncio.sleep(0.05)
    # h4 was taken: MAIN, no earlier than the wrap time by Redis's clock
    contact = await store.get_contact(cid, 1)
    assert (contact.phone, contact.status, contact.attempts) == (MAIN, C.IN_PROGRESS, 2)
    assert int(await store.client.hget(store.keys.call("h4"), "claimed_ms") or 0) >= wrap_at


async def test_listed_last_number_goes_back_at_once_when_the_wrap_time_is_past(
    store: RedisStore,
) -> None:
    cid = await campaign(store, AltNumber(MOBILE, "mobile"), AltNumber(WORK, "work"))
    await dial(store, cid, "i1", C.BUSY, retry_in_ms=0)
    await dial(store, cid, "i2", C.BUSY, retry_in_ms=0)  # on the work number; wrap time: now
    await store.client.sadd(store.keys.global_dnc_of(cid), WORK)
    (got,) = (await take(store, cid, "i3")).claims
    assert (got.phone, got.attempts) == (MAIN, 2)  # the mobile, after the work, was busy too


async def test_all_remaining_numbers_listed_ends_do_not_call_at_the_claim(
    store: RedisStore,
) -> None:
    cid = await campaign(store, AltNumber(MOBILE, "mobile"), AltNumber(WORK, "work"))
    await dial(store, cid, "i1", C.BUSY)
    await DncStore(store).add([MOBILE, MAIN], cid)
    await DncStore(store).add([WORK])
    batch = await take(store, cid, "i2", "i3")
    assert (batch.claims, batch.stop, batch.blocked) == ([], "empty", 1)
    contact = await store.get_contact(cid, 1)
    assert (contact.phone, contact.status, contact.next_due_ms) == (MOBILE, C.DO_NOT_CALL, None)
    assert [n.last_status for n in contact.numbers] == ["do_not_call"] * 3
    assert nonzero(await store.counts(cid)) == {C.DO_NOT_CALL: 1}
    record = (await store.records(cid))[-1][1]
    assert (record["call_id"], record["rule"], record["contact_status"]) == (
        "i2",
        "dnc:blocked",
        "do_not_call",
    )
    assert (record["phone"], record["phone_label"], record.get("next_phone")) == (
        MOBILE,
        "mobile",
        None,
    )


async def test_one_number_contact_listed_still_ends_do_not_call(store: RedisStore) -> None:
    cid = await campaign(store)
    await DncStore(store).add([MAIN], cid)
    batch = await take(store, cid, "j1")
    assert (batch.claims, batch.stop, batch.blocked) == ([], "max", 1)
    contact = await store.get_contact(cid, 1)
    assert (contact.status, contact.numbers) == (C.DO_NOT_CALL, ())
    (record,) = [f for _, f in await store.records(cid)]
    assert sorted(record) == [
        "attempt", "call_id", "campaign", "contact", "contact_id", "contact_status", "dial",
        "phone", "rule", "status", "trunk",
    ]  # fmt: skip
    assert (record["rule"], record["contact_status"], record["dial"]) == (
        "dnc:blocked",
        "do_not_call",
        "0",
    )


async def test_next_number_of_a_closed_zone_waits_in_its_group(store: RedisStore) -> None:
    cid = await campaign(store, AltNumber(WORK, "work"))  # main in Paris, work in New York
    groups = {g: gid for gid, g in (await zone_groups(store.client, store.keys, cid)).items()}
    paris, new_york = (
        groups[ZoneGroup("FR", ("Europe/Paris",))],
        groups[ZoneGroup("US", ("America/New_York",))],
    )
    await DncStore(store).add([MAIN], cid)  # listed after the upload: the main is current
    only_paris = ZoneClaim(open=((paris, 2**50),))
    batch = await take(store, cid, "k1", "k2", zones=only_paris)
    assert (batch.claims, batch.blocked) == ([], 0)  # not dialed out of New York's hours
    contact = await store.get_contact(cid, 1)
    assert (contact.phone, contact.status, contact.attempts) == (WORK, C.PENDING, 0)
    assert int(await store.client.hget(store.keys.contact(cid, 1), "zg") or 0) == new_york
    member = contact_member(1)
    assert await store.client.zscore(store.keys.zone_prefix(cid) + str(new_york), member)
    assert await store.client.zscore(store.keys.pending(cid), member)
    assert await store.client.zscore(store.keys.zone_prefix(cid) + str(paris), member) is None
    assert nonzero(await store.counts(cid)) == {C.PENDING: 1}
    (record,) = [f for _, f in await store.records(cid)]
    assert (record["phone"], record["next_phone"], record["contact_status"]) == (
        MAIN,
        WORK,
        "pending",
    )
    assert (await take(store, cid, "k3", zones=only_paris)).claims == []  # still waits
    (got,) = (await take(store, cid, "k4", zones=ZoneClaim(open=((new_york, 2**50),)))).claims
    assert (got.call_id, got.phone, got.attempts) == ("k4", WORK, 0)
    assert len(await store.records(cid)) == 1  # the listed number's record, once


async def test_mark_dnc_pending_leaves_a_contact_with_another_number_to_the_claim(
    store: RedisStore,
) -> None:
    cid = await store.create_campaign("alt", "trunk1", "{}")
    list_id = await store.add_list(cid)
    people = [
        ContactInput(MAIN, label="home", alternates=(AltNumber(MOBILE, "mobile"),)),
        ContactInput("+33612340011", label="home", alternates=(AltNumber(WORK, "work"),)),
        ContactInput("+33612340021"),
    ]
    await store.add_contacts(cid, list_id, people)
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    dnc = DncStore(store)
    await dnc.add([MAIN, "+33612340011", "+33612340021"], cid)
    await dnc.add([WORK])
    assert await dnc.mark_dnc_pending(cid) == 2
    first, second, third = [await store.get_contact(cid, i) for i in (1, 2, 3)]
    assert (first.status, first.phone) == (C.PENDING, MAIN)  # the claim skips its main
    assert [n.last_status for n in first.numbers] == ["", ""]
    assert (second.status, third.status) == (C.DO_NOT_CALL, C.DO_NOT_CALL)
    assert [n.last_status for n in second.numbers] == ["do_not_call", "do_not_call"]
    assert nonzero(await store.counts(cid)) == {C.PENDING: 1, C.DO_NOT_CALL: 2}
    (got,) = (await take(store, cid, "m1")).claims
    assert (got.contact_id, got.phone) == (1, MOBILE)
