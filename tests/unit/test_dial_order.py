"""Dial order (claim.lua with the retries index): which due contact a claim takes first.

Against the session's real redis-server: fresh contacts due from their upload, retries queued
by finish.lua at their retry time, then claims in each campaign ``dial_order``.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from dialer.cli.files import load_campaign_file
from dialer.domain.campaign import CampaignSettings
from dialer.domain.dialorder import DialOrder
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.errors import ConfigError, ValidationError
from dialer.store import RedisStore
from dialer.store.keys import contact_member
from tests.unit.api_helpers import OPERATOR, SETTINGS, api_client, error_of
from tests.unit.api_helpers import new_campaign as api_campaign
from tests.unit.store_helpers import claim, contacts, finish

pytestmark = pytest.mark.redis

C = CallStatus


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def campaign(store: RedisStore, fresh: int, settings: dict[str, object]) -> tuple[int, int]:
    cid = await store.create_campaign("order", "trunk1", json.dumps(settings))
    list_id = await store.add_list(cid)
    await store.add_contacts(cid, list_id, contacts(fresh))
    # the upload's due time and a later claim's millisecond must differ: a retry due at the
    # claim's millisecond then sorts after every fresh contact, not on a tie by member
    await asyncio.sleep(0.005)
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    return cid, list_id


async def with_retries(store: RedisStore, settings: dict[str, object], retries: int) -> int:
    """A running campaign of 20 contacts whose first ``retries`` were dialed once and are now
    due again (retry time = the claim's own millisecond: due now, after every fresh contact's
    upload time), and the 20 - ``retries`` others still fresh and due."""
    cid, _ = await campaign(store, 20, settings)
    claimed = [await claim(store, cid, f"first{i}") for i in range(retries)]
    assert [r.contact_id for r in claimed] == list(range(1, retries + 1))
    for i, r in enumerate(claimed):
        assert await finish(
            store, cid, f"first{i}", r.contact_id, C.RETRY_SCHEDULED, retry_at_ms=r.server_ms
        )
    return cid


async def order_of(store: RedisStore, cid: int, n: int) -> list[int]:
    out = []
    for i in range(n):
        r = await claim(store, cid, f"next{i}")
        assert r.kind == "ok", r
        out.append(r.contact_id)
    return out


@pytest.mark.parametrize("settings", [{}, {"dial_order": "retries_first"}])
async def test_retries_first_takes_due_retries_before_fresh(
    store: RedisStore, settings: dict[str, object]
) -> None:
    """The default: both due retries go before the 16 fresh contacts that were due earlier."""
    cid = await with_retries(store, settings, 4)
    assert await order_of(store, cid, 6) == [1, 2, 3, 4, 5, 6]
    # and the index is consumed with the queue
    assert await store._r.zcard(store.keys.retries(cid)) == 0


async def test_due_time_keeps_the_queue_order(store: RedisStore) -> None:
    """Strictly by due time: the fresh contacts (uploaded first) go before the retries."""
    cid = await with_retries(store, {"dial_order": "due_time"}, 3)
    assert await order_of(store, cid, 20) == [*range(4, 21), 1, 2, 3]


@pytest.mark.parametrize(
    ("new_every", "expected"), [(2, [1, 4, 2, 5, 3, 6, 7]), (3, [1, 2, 4, 3, 5, 6])]
)
async def test_interleave_takes_one_fresh_in_new_every(
    store: RedisStore, new_every: int, expected: list[int]
) -> None:
    """One claim in ``new_every`` takes the head of the queue while retries are due; once they
    are all dialed, fresh contacts follow in order."""
    cid = await with_retries(store, {"dial_order": "interleave", "new_every": new_every}, 3)
    assert await order_of(store, cid, len(expected)) == expected


async def test_a_retry_not_yet_due_waits(store: RedisStore) -> None:
    cid, _ = await campaign(store, 5, {})
    r = await claim(store, cid, "a")
    later = r.server_ms + 60_000
    assert await finish(store, cid, "a", r.contact_id, C.RETRY_SCHEDULED, retry_at_ms=later)
    assert await order_of(store, cid, 4) == [2, 3, 4, 5]
    empty = await claim(store, cid, "b")
    assert (empty.kind, empty.next_due_ms) == ("empty", later)


async def test_batch_claim_puts_retries_first(store: RedisStore) -> None:
    """One claim.lua call of 5 ids: the 2 due retries, then the fresh contacts in order."""
    cid = await with_retries(store, {}, 2)
    batch = await store.claim_batch(
        cid,
        "trunk1",
        [f"b{i}" for i in range(5)],
        "e1",
        lease_ms=10_000,
        max_channels=None,
        trunk_max_channels=None,
        cps=None,
        trunk_cps=None,
    )
    assert [c.contact_id for c in batch.claims] == [1, 2, 3, 4, 5]


async def test_released_retry_stays_a_retry_released_fresh_does_not(store: RedisStore) -> None:
    cid = await with_retries(store, {}, 1)
    retry = await claim(store, cid, "r")
    fresh = await claim(store, cid, "f")
    assert (retry.contact_id, fresh.contact_id) == (1, 2)
    assert await store.release(cid, "trunk1", "r", 1)
    assert await store.release(cid, "trunk1", "f", 2)
    index = await store._r.zrange(store.keys.retries(cid), 0, -1)
    assert index == [contact_member(1).encode()]
    assert (await store.get_contact(cid, 1)).status == C.RETRY_SCHEDULED
    assert await order_of(store, cid, 3) == [1, 2, 3]


async def test_stale_index_entries_are_dropped_or_followed(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    """A retry that left the queue another way (its list stopped) is skipped and dropped; one
    queued again later in pending is followed there, not dialed early."""
    cid = await with_retries(store, {}, 2)
    pending, index = store.keys.pending(cid), store.keys.retries(cid)
    await redis_client.zrem(pending, contact_member(1))  # as mark_undialed / a DNC import do
    now_ms = int((await redis_client.time())[0]) * 1000
    await redis_client.zadd(pending, {contact_member(2): now_ms + 60_000})  # moved later
    assert await order_of(store, cid, 2) == [3, 4]
    assert await redis_client.zscore(index, contact_member(1)) is None
    assert await redis_client.zscore(index, contact_member(2)) == now_ms + 60_000


async def test_stopped_list_retry_is_settled_not_dialed(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    """stop_list takes the queued retries out of pending (not of the index): the claim drops
    their stale index entries and dials nothing."""
    cid = await with_retries(store, {}, 2)
    list_id = (await store.get_contact(cid, 1)).list_id
    assert await store.stop_list(cid, list_id) == 20
    r = await claim(store, cid, "x")
    assert (r.kind, r.next_due_ms) == ("empty", None)  # nothing left in pending
    assert (await store.get_contact(cid, 1)).status == C.NOT_DIALED
    assert await redis_client.zcard(store.keys.retries(cid)) == 0


async def test_deleting_the_campaign_removes_the_index(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    cid = await with_retries(store, {}, 2)
    assert await redis_client.exists(store.keys.retries(cid)) == 1
    await store.transition(cid, {CampaignStatus.RUNNING}, CampaignStatus.CANCELLED)
    await store.delete_campaign(cid)
    assert await redis_client.exists(store.keys.retries(cid)) == 0


def test_settings_validate_dial_order() -> None:
    base = {"name": "n", "trunk": "t", "max_channels": 1, "cps": 1}
    s = CampaignSettings.from_dict(base)
    assert (s.dial_order, s.new_every) == (DialOrder.RETRIES_FIRST, 3)
    s = CampaignSettings.from_dict({**base, "dial_order": "interleave", "new_every": 2})
    assert (s.dial_order, s.new_every) == (DialOrder.INTERLEAVE, 2)
    assert CampaignSettings.from_json(json.dumps(s.to_dict())) == s
    assert s.to_dict()["dial_order"] == "interleave"
    for bad in ("RETRIES_FIRST", "fifo", "", 1, None):
        with pytest.raises(ValidationError, match="dial_order must be one of"):
            CampaignSettings.from_dict({**base, "dial_order": bad})
    for bad_n in (1, 101, 2.0, True, "3"):
        with pytest.raises(ValidationError, match="new_every must be a whole number"):
            CampaignSettings.from_dict({**base, "new_every": bad_n})


def test_lua_knows_every_dial_order() -> None:
    """claim.lua spells every order other than the default (a missing or unknown value is
    retries_first there); pins its literals to the enum."""
    lua = resources.files("dialer.store").joinpath("lua/claim.lua").read_text()
    for order in DialOrder:
        assert f"'{order.value}'" in lua or f'"{order.value}"' in lua, order


async def test_api_takes_and_refuses_dial_order(store: RedisStore) -> None:
    async with api_client(store) as client:
        cid = await api_campaign(client, dial_order="interleave", new_every=2)
        shown = await client.get(f"/campaigns/{cid}", headers=OPERATOR)
        assert shown.status_code == 200, shown.text
        assert (shown.json()["settings"]["dial_order"], shown.json()["settings"]["new_every"]) == (
            "interleave",
            2,
        )
        bad = await client.post(
            "/campaigns", json={**SETTINGS, "dial_order": "newest"}, headers=OPERATOR
        )
        assert bad.status_code == 422, bad.text
        assert "dial_order must be one of" in error_of(bad)["message"]
        bad = await client.patch(f"/campaigns/{cid}", json={"new_every": 1}, headers=OPERATOR)
        assert bad.status_code == 422, bad.text
        assert "new_every must be a whole number" in error_of(bad)["message"]


def test_campaign_file_refuses_a_bad_dial_order(tmp_path: Path) -> None:
    good = tmp_path / "c.yaml"
    good.write_text("name: n\ntrunk: t\nmax_channels: 2\ncps: 1\ndial_order: due_time\n")
    assert load_campaign_file(good).settings.dial_order is DialOrder.DUE_TIME
    bad = tmp_path / "b.toml"
    bad.write_text('name = "n"\ntrunk = "t"\nmax_channels = 2\ncps = 1\ndial_order = "lifo"\n')
    with pytest.raises(ConfigError, match=r"b\.toml: dial_order must be one of"):
        load_campaign_file(bad)


@pytest.mark.parametrize("order", list(DialOrder))
async def test_concurrent_claims_take_each_contact_once(
    store: RedisStore, order: DialOrder
) -> None:
    """40 claims at once on 20 contacts (8 retries due): each contact exactly once, whichever
    of the two queues it was taken from, and nothing left in either."""
    cid = await with_retries(store, {"dial_order": order.value, "new_every": 2}, 8)
    results = await asyncio.gather(*(claim(store, cid, f"c{i}") for i in range(40)))
    got = sorted(r.contact_id for r in results if r.kind == "ok")
    assert got == list(range(1, 21))
    assert {r.kind for r in results} == {"ok", "empty"}
    assert await store._r.zcard(store.keys.pending(cid)) == 0
    assert await store._r.zcard(store.keys.retries(cid)) == 0
