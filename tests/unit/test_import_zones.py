"""The CSV importer's time-zone column (local hours), against a real Redis: an explicit IANA
zone beats the number's zones, an empty cell leaves them, a bad zone refuses the file at its
line like any malformed record."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from dialer.domain.zones import ZoneGroup
from dialer.importer import ImportRefused, import_csv
from dialer.store import RedisStore
from dialer.store.zones import zone_groups
from tests.unit.import_helpers import csv_bytes, snapshot, stream

pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def group_of(store: RedisStore, cid: int, contact_id: int) -> ZoneGroup:
    gid = int(await store.client.hget(store.keys.contact(cid, contact_id), "zg") or 0)
    return (await zone_groups(store.client, store.keys, cid)).get(gid, ZoneGroup())


async def test_an_explicit_zone_beats_the_number(store: RedisStore) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    rows = ["+18005550100,America/Chicago", "+18005550101,", "+12125550100, Europe/Paris "]
    report = await import_csv(store, cid, stream(csv_bytes("phone,timezone", rows)))
    assert report.imported == 3
    assert await group_of(store, cid, 1) == ZoneGroup("US", ("America/Chicago",))
    toll_free = await group_of(store, cid, 2)  # no zone given: every zone of the number
    assert {"America/New_York", "Pacific/Honolulu"} <= set(toll_free.zones)
    assert await group_of(store, cid, 3) == ZoneGroup("US", ("Europe/Paris",))
    # the zone stays a variable of the contact as well
    assert (await store.get_contact(cid, 1)).vars == {"timezone": "America/Chicago"}


async def test_contacts_of_one_zone_share_a_group(store: RedisStore) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    rows = [f"+1212555{i:04d}" for i in range(5)] + [f"+33612345{i:03d}" for i in range(3)]
    await import_csv(store, cid, stream(csv_bytes("phone", rows)))
    groups = await zone_groups(store.client, store.keys, cid)
    assert sorted(groups.values(), key=lambda g: g.region) == [
        ZoneGroup("FR", ("Europe/Paris",)),
        ZoneGroup("US", ("America/New_York",)),
    ]
    queues = [await store.client.zcard(store.keys.zone_queue(cid, gid)) for gid in sorted(groups)]
    assert sorted(queues) == [3, 5]


async def test_a_bad_zone_is_reported_at_its_line(
    store: RedisStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    cid = await store.create_campaign("imp", "trunk1", "{}")
    rows = ["+12125550100,America/New_York", "+12125550101,Mars/Olympus", "+12125550102,EST5"]
    before = await snapshot(redis_client, namespace)
    with pytest.raises(ImportRefused, match="2 errors: line 3: unknown time zone 'Mars/Olympus'"):
        await import_csv(store, cid, stream(csv_bytes("phone,tz", rows)))
    assert await snapshot(redis_client, namespace) == before
