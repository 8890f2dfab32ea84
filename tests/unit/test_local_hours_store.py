"""Local hours in Redis (claim.lua with the zone-group queues), against a real redis-server:
the claim takes the open groups' contacts and leaves the closed groups' waiting, a due retry
of a closed group waits too, holidays close a group, the why view names what waits."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.domain.why import BlockerCode
from dialer.domain.zones import ZoneGroup, zones_now
from dialer.engine.localhours import LocalHours
from dialer.store import ContactInput, RedisStore
from dialer.store.models import ClaimBatch, ZoneClaim
from dialer.store.recycle import recycle_list
from dialer.store.why import explain
from dialer.store.zones import zone_groups
from tests.unit.api_helpers import OPERATOR, SETTINGS, api_client, error_of
from tests.unit.api_helpers import new_campaign as api_campaign
from tests.unit.store_helpers import finish

pytestmark = pytest.mark.redis

C = CallStatus
NY = ZoneGroup("US", ("America/New_York",))
PARIS = ZoneGroup("FR", ("Europe/Paris",))
FAR = 2**50  # a deadline far ahead (ms)


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


def settings(**extra: object) -> str:
    base: dict[str, object] = {"name": "lh", "trunk": "trunk1", "max_channels": 50, "cps": 50}
    return json.dumps({**base, "local_hours": True, **extra})


async def campaign(
    store: RedisStore, people: list[ContactInput], **extra: object
) -> tuple[int, dict[ZoneGroup, int]]:
    """A running campaign of ``people``; its zone groups' gids."""
    cid = await store.create_campaign("lh", "trunk1", settings(**extra))
    list_id = await store.add_list(cid)
    await store.add_contacts(cid, list_id, people)
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    gids = {g: gid for gid, g in (await zone_groups(store.client, store.keys, cid)).items()}
    return cid, gids


def mixed(n: int = 4) -> list[ContactInput]:
    """Contacts 1..n in New York (by their numbers), n+1..2n in Paris, alternately uploaded."""
    ny = [ContactInput(f"+1212555{i:04d}") for i in range(n)]
    paris = [ContactInput(f"+3361234{i:04d}") for i in range(n)]
    return [*ny, *paris]


async def take(
    store: RedisStore, cid: int, n: int, zones: ZoneClaim | None, tag: str = "c"
) -> ClaimBatch:
    return await store.claim_batch(
        cid,
        "trunk1",
        [f"{tag}{i}" for i in range(n)],
        "e1",
        lease_ms=10_000,
        max_channels=None,
        trunk_max_channels=None,
        cps=None,
        trunk_cps=None,
        zones=zones,
    )


def only(*gids: int, next_ms: int | None = None) -> ZoneClaim:
    return ZoneClaim(tuple((g, FAR) for g in gids), next_ms)


async def test_contacts_get_their_zone_group_from_their_number(store: RedisStore) -> None:
    cid, gids = await campaign(store, [*mixed(2), ContactInput("+442071234567", zone_group="")])
    assert set(gids) == {NY, PARIS}
    zg = [await store.client.hget(store.keys.contact(cid, i), "zg") for i in (1, 3, 5)]
    assert zg == [str(gids[NY]).encode(), str(gids[PARIS]).encode(), b"0"]
    assert await store.client.zcard(store.keys.zone_queue(cid, gids[NY])) == 2
    assert await store.client.zcard(store.keys.zone_queue(cid, 0)) == 1


async def test_the_claim_takes_only_open_groups(store: RedisStore) -> None:
    cid, gids = await campaign(store, mixed(4))
    batch = await take(store, cid, 10, only(gids[PARIS], next_ms=123))
    assert [c.contact_id for c in batch.claims] == [5, 6, 7, 8]
    assert batch.stop == "empty"
    assert batch.next_due_ms == 123  # the next opening: New York's four still wait
    assert await store.client.zcard(store.keys.pending(cid)) == 4
    batch = await take(store, cid, 10, only(gids[PARIS], gids[NY]), "d")
    assert [c.contact_id for c in batch.claims] == [1, 2, 3, 4]


async def test_without_local_hours_every_due_contact_goes(store: RedisStore) -> None:
    """ARGV[18] empty: the pending queue as before, and each claim leaves its group queue."""
    cid, gids = await campaign(store, mixed(2))
    batch = await take(store, cid, 10, None)
    assert [c.contact_id for c in batch.claims] == [1, 2, 3, 4]
    for gid in gids.values():
        assert await store.client.zcard(store.keys.zone_queue(cid, gid)) == 0


async def test_no_open_group_claims_nothing(store: RedisStore) -> None:
    cid, _ = await campaign(store, mixed(2))
    batch = await take(store, cid, 4, ZoneClaim((), 987_654))
    assert batch.claims == []
    assert (batch.stop, batch.next_due_ms) == ("empty", 987_654)
    # a group past its deadline (by Redis's clock) is closed too
    batch = await take(store, cid, 4, ZoneClaim(((1, 1000), (2, 1000)), 555))
    assert (batch.claims, batch.next_due_ms) == ([], 555)


async def test_a_due_retry_of_a_closed_group_waits(store: RedisStore) -> None:
    """New York's retry is due (retries_first would take it before any fresh contact), but New
    York is closed: Paris's fresh contacts go; once New York opens its retry goes first."""
    cid, gids = await campaign(store, mixed(2))
    first = await take(store, cid, 1, only(gids[NY]), "a")
    (ny1,) = first.claims
    assert ny1.contact_id == 1
    assert await finish(store, cid, "a0", 1, C.RETRY_SCHEDULED, retry_at_ms=first.server_ms)
    assert await store.client.zcard(store.keys.zone_retries(cid, gids[NY])) == 1
    batch = await take(store, cid, 1, only(gids[PARIS]), "b")
    assert [c.contact_id for c in batch.claims] == [3]
    batch = await take(store, cid, 3, only(gids[PARIS], gids[NY]), "c")
    assert [c.contact_id for c in batch.claims] == [1, 2, 4]  # the retry first, then by due
    assert await store.client.zcard(store.keys.zone_retries(cid, gids[NY])) == 0


async def test_a_released_claim_goes_back_to_its_group(store: RedisStore) -> None:
    cid, gids = await campaign(store, mixed(1))
    (c,) = (await take(store, cid, 1, only(gids[PARIS]))).claims
    assert await store.release(cid, "trunk1", c.call_id, c.contact_id)
    assert await store.client.zcard(store.keys.zone_queue(cid, gids[PARIS])) == 1
    assert [x.contact_id for x in (await take(store, cid, 1, only(gids[PARIS]), "r")).claims] == [2]


async def test_an_entry_whose_contact_left_pending_is_dropped(store: RedisStore) -> None:
    """A contact taken out of pending another way (here by hand, as a do-not-call import or a
    stopped list does) is dropped from its group's queue when the claim meets it."""
    cid, gids = await campaign(store, mixed(2))
    await store.client.zrem(store.keys.pending(cid), "000000000003")
    batch = await take(store, cid, 5, only(gids[PARIS]))
    assert [c.contact_id for c in batch.claims] == [4]
    assert await store.client.zcard(store.keys.zone_queue(cid, gids[PARIS])) == 0


async def test_holidays_close_a_region_on_its_local_date(store: RedisStore) -> None:
    """Today is a holiday in the US only: the runner's zone argument leaves New York out."""
    today = datetime.now(UTC).date()
    holidays = [{"date": d.isoformat(), "regions": ["US"]} for d in _around(today)]
    cid, gids = await campaign(store, mixed(2), holidays=holidays)
    raw = (await store.get_campaign(cid)).settings_json
    gate = LocalHours(store.client, store.keys, cid)
    zones = await gate.claim(CampaignSettings.from_json(raw))
    assert zones is not None
    assert {g for g, _ in zones.open} == {0, gids[PARIS]}
    batch = await take(store, cid, 5, zones)
    assert [c.contact_id for c in batch.claims] == [3, 4]


def _around(day: date) -> list[date]:
    """The UTC date and its neighbours: New York's local date is one of them."""
    return [date.fromordinal(day.toordinal() + k) for k in (-1, 0, 1)]


async def test_the_why_view_says_contacts_wait_for_their_local_hours(store: RedisStore) -> None:
    """A window that is closed in New York right now (and open nowhere else with contacts)."""
    now = time.time()
    ny_hour = datetime.now(UTC).astimezone(ZoneInfo("America/New_York")).hour
    start = f"{(ny_hour + 2) % 24:02d}:00"
    end = f"{(ny_hour + 3) % 24:02d}:00"
    window = {"timezone": "America/New_York", "start": start, "end": end}
    ny_only = [ContactInput(f"+1212555{i:04d}") for i in range(3)]
    cid, gids = await campaign(store, ny_only, window=window)
    report = await explain(store, cid)
    (blocker,) = [b for b in report.blockers if b.code is BlockerCode.LOCAL_HOURS]
    assert "waiting for its local hours" in blocker.message
    assert "3 in US (America/New_York)" in blocker.message
    assert blocker.clears_at_ms is not None
    assert now + 3600 <= blocker.clears_at_ms / 1000 <= now + 3 * 3600
    assert not report.dialing
    # and the claim agrees: nothing goes
    s = CampaignSettings.from_json((await store.get_campaign(cid)).settings_json)
    state = zones_now(now, s.window, {gids[NY]: NY})
    assert gids[NY] not in {g for g, _ in state.open}


async def test_the_why_view_is_quiet_while_an_open_group_has_due_contacts(
    store: RedisStore,
) -> None:
    cid, _ = await campaign(store, mixed(2))  # no window: every group open
    report = await explain(store, cid)
    assert BlockerCode.LOCAL_HOURS not in {b.code for b in report.blockers}


async def test_deleting_the_campaign_removes_the_zone_queues(store: RedisStore) -> None:
    cid, gids = await campaign(store, mixed(2))
    await store.transition(cid, {CampaignStatus.RUNNING}, CampaignStatus.CANCELLED)
    await store.delete_campaign(cid)
    for gid in (0, *gids.values()):
        assert not await store.client.exists(store.keys.zone_queue(cid, gid))
    assert not await store.client.exists(store.keys.zones(cid))


def test_the_zone_argument_is_the_first_deadline_and_a_string_of_bits() -> None:
    """claim.lua's ARGV[18]: one deadline for all (the first close), then one 0/1 per gid."""
    assert ZoneClaim(((2, 9_000), (0, 7_000), (5, 8_000)), 123).to_arg() == "7000:123:101001"
    assert ZoneClaim((), None).to_arg() == "0:-1:"


async def test_recycled_copies_keep_their_zone_groups(store: RedisStore) -> None:
    """Recycled into a new campaign, each copy gets its group's gid there and waits in that
    group's queue: the claim with only Paris open takes only the Paris copies."""
    cid, gids = await campaign(store, mixed(2))
    batch = await take(store, cid, 4, only(*gids.values()))
    for c in batch.claims:
        assert await finish(store, cid, c.call_id, c.contact_id, C.NO_ANSWER)
    await store.transition(cid, {CampaignStatus.RUNNING}, CampaignStatus.COMPLETED)
    report = await recycle_list(store, cid, 1, frozenset({C.NO_ANSWER}), into="new")
    new = report.campaign
    mine = {g: gid for gid, g in (await zone_groups(store.client, store.keys, new)).items()}
    assert set(mine) == {NY, PARIS}
    await store.transition(new, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    taken = await take(store, new, 4, only(mine[PARIS]), "n")
    phones = sorted(c.phone for c in taken.claims)
    assert phones == ["+33612340000", "+33612340001"]


async def test_the_api_takes_and_refuses_local_hours(store: RedisStore) -> None:
    holidays = ["2026-12-25", {"date": "2026-07-04", "regions": ["US"]}]
    async with api_client(store) as client:
        cid = await api_campaign(client, local_hours=True, holidays=holidays)
        shown = (await client.get(f"/campaigns/{cid}", headers=OPERATOR)).json()["settings"]
        assert shown["local_hours"] is True
        assert shown["holidays"] == [
            {"date": "2026-07-04", "regions": ["US"]},
            {"date": "2026-12-25"},
        ]
        bad = await client.post(
            "/campaigns",
            json={**SETTINGS, "local_hours": True, "holidays": ["2026-02-30"]},
            headers=OPERATOR,
        )
        assert bad.status_code == 422, bad.text
        assert "holidays[0].date" in error_of(bad)["message"]
