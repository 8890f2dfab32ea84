"""Campaign records: create, list, settings, CAS transitions, control channel, delete."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.errors import NotFound, StoreError, TransitionRefused
from dialer.store import RedisStore
from tests.unit.store_helpers import claim, finish, publish, running_campaign

pytestmark = pytest.mark.redis

S = CampaignStatus


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def test_create_and_get(store: RedisStore) -> None:
    settings = json.dumps({"max_channels": 5, "greeting": "Grüß Gott"})
    cid = await store.create_campaign("Spring", "trunk-a", settings)
    rec = await store.get_campaign(cid)
    assert (rec.id, rec.name, rec.trunk, rec.status) == (cid, "Spring", "trunk-a", S.DRAFT)
    assert json.loads(rec.settings_json) == {"max_channels": 5, "greeting": "Grüß Gott"}
    assert rec.created_ms == rec.updated_ms > 0
    assert rec.status_reason == ""


async def test_missing_campaign_is_not_found(store: RedisStore) -> None:
    with pytest.raises(NotFound, match="campaign 999"):
        await store.get_campaign(999)
    with pytest.raises(NotFound):
        await store.transition(999, {S.DRAFT}, S.RUNNING)
    with pytest.raises(NotFound):
        await store.counts(999)
    with pytest.raises(NotFound):
        await store.add_list(999)
    with pytest.raises(NotFound):
        await claim(store, 999, "c1")


async def test_bad_trunk_name_refused(store: RedisStore) -> None:
    with pytest.raises(ValueError, match="trunk"):
        await store.create_campaign("x", "a:b", "{}")


async def test_list_newest_first_with_filter_and_paging(store: RedisStore) -> None:
    ids = [await store.create_campaign(f"c{i}", "t", "{}") for i in range(7)]
    for cid in ids[::2]:  # 0, 2, 4, 6 running
        await store.transition(cid, {S.DRAFT}, S.RUNNING)
    everything = await store.list_campaigns(limit=100)
    assert [c.id for c in everything] == ids[::-1]
    assert [c.id for c in await store.list_campaigns(offset=2, limit=3)] == ids[::-1][2:5]
    running = await store.list_campaigns(S.RUNNING, limit=100)
    assert [c.id for c in running] == [ids[6], ids[4], ids[2], ids[0]]
    page = await store.list_campaigns(S.RUNNING, offset=1, limit=2)
    assert [c.id for c in page] == [ids[4], ids[2]]
    assert await store.list_campaigns(S.PAUSED) == []


async def test_transition_cas(store: RedisStore) -> None:
    cid = await store.create_campaign("x", "t", "{}")
    assert await store.transition(cid, {S.DRAFT, S.SCHEDULED}, S.RUNNING, "started") == S.RUNNING
    rec = await store.get_campaign(cid)
    assert (rec.status, rec.status_reason) == (S.RUNNING, "started")
    with pytest.raises(TransitionRefused, match=r"campaign \d+ is running.*cannot become paused"):
        await store.transition(cid, {S.PAUSING}, S.PAUSED)
    assert (await store.get_campaign(cid)).status == S.RUNNING


async def test_transition_is_atomic_under_contention(store: RedisStore) -> None:
    cid = await store.create_campaign("x", "t", "{}")
    await store.transition(cid, {S.DRAFT}, S.RUNNING)

    async def pause() -> bool:
        try:
            await store.transition(cid, {S.RUNNING}, S.PAUSING)
        except TransitionRefused:
            return False
        return True

    wins = await asyncio.gather(*(pause() for _ in range(30)))
    assert sum(wins) == 1


async def test_transition_publishes_on_control_channel(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    cid = await store.create_campaign("x", "t", "{}")
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(store.keys.control)
    try:
        await store.transition(cid, {S.DRAFT}, S.RUNNING)
        await publish(store, f"{cid}:wake")
        got: list[bytes] = []
        async with asyncio.timeout(5):
            while len(got) < 2:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if msg is not None:
                    got.append(msg["data"])
        assert got == [f"{cid}:running".encode(), f"{cid}:wake".encode()]
    finally:
        await pubsub.aclose()


async def test_update_settings_only_in_allowed_status(store: RedisStore) -> None:
    cid = await store.create_campaign("x", "t", '{"a": 1}')
    await store.update_settings(cid, '{"a": 2}', allowed={S.DRAFT, S.PAUSED})
    assert (await store.get_campaign(cid)).settings_json == '{"a": 2}'
    await store.transition(cid, {S.DRAFT}, S.RUNNING)
    with pytest.raises(TransitionRefused, match="is running"):
        await store.update_settings(cid, '{"a": 3}', allowed={S.DRAFT, S.PAUSED})
    assert (await store.get_campaign(cid)).settings_json == '{"a": 2}'
    with pytest.raises(NotFound):
        await store.update_settings(12345, "{}", allowed={S.DRAFT})


async def test_delete_removes_keys_but_keeps_records(
    store: RedisStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    cid, _ = await running_campaign(store, 2500)
    other, _ = await running_campaign(store, 3)
    done = await claim(store, cid, "call-done")
    assert await finish(store, cid, "call-done", done.contact_id)
    live = await claim(store, cid, "call-live")
    assert live.kind == "ok"

    await store.delete_campaign(cid, batch=700)

    with pytest.raises(NotFound):
        await store.get_campaign(cid)
    assert [c.id for c in await store.list_campaigns()] == [other]
    left = [k async for k in redis_client.scan_iter(match=f"{namespace}:c:{cid}:*")]
    assert left == []
    assert not await redis_client.exists(store.keys.campaign(cid))
    records = await store.records(cid)
    assert [fields["call_id"] for _, fields in records] == ["call-done"]
    assert await redis_client.zscore(store.keys.records_index, str(cid)) is not None
    # a late finish of a live call still frees the trunk lease and records the attempt
    assert await redis_client.ttl(store.keys.call("call-live")) > 0
    assert await redis_client.zscore(store.keys.trunk_inflight("trunk1"), "call-live")
    assert await finish(store, cid, "call-live", live.contact_id)
    assert await redis_client.zscore(store.keys.trunk_inflight("trunk1"), "call-live") is None
    assert len(await store.records(cid)) == 2
    # the other campaign is untouched
    assert (await store.counts(other))[CallStatus.PENDING] == 3
    with pytest.raises(NotFound):
        await store.delete_campaign(cid)


async def test_redis_errors_become_store_error(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    cid = await store.create_campaign("x", "t", "{}")
    await redis_client.set(store.keys.lists(cid), "not a hash")
    with pytest.raises(StoreError, match="WRONGTYPE"):
        await store.add_list(cid)


async def test_campaigns_in_scans_once_for_several_statuses(store: RedisStore) -> None:
    ids = [await store.create_campaign(f"c{i}", "trunk1", "{}") for i in range(7)]
    for cid in ids[:3]:
        await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    await store.transition(ids[3], {CampaignStatus.DRAFT}, CampaignStatus.SCHEDULED)
    found = await store.campaigns_in(
        (CampaignStatus.RUNNING, CampaignStatus.SCHEDULED, CampaignStatus.PAUSING), page=2
    )
    assert [c.id for c in found[CampaignStatus.RUNNING]] == ids[2::-1]  # newest first
    assert [c.id for c in found[CampaignStatus.SCHEDULED]] == [ids[3]]
    assert found[CampaignStatus.PAUSING] == []
    assert set(found) == {CampaignStatus.RUNNING, CampaignStatus.SCHEDULED, CampaignStatus.PAUSING}
    # the scan reads the active index only: finished or draft campaigns cost nothing
    await store.transition(ids[0], {CampaignStatus.RUNNING}, CampaignStatus.COMPLETED)
    await store.delete_campaign(ids[1])
    index = await store.client.zrange(store.keys.active_campaigns, 0, -1)
    assert sorted(int(str(c, "ascii") if isinstance(c, bytes) else str(c)) for c in index) == [
        ids[2],
        ids[3],
    ]
    with pytest.raises(ValueError, match="active statuses"):
        await store.campaigns_in((CampaignStatus.DRAFT,))


async def _evalsha_calls(client: aioredis.Redis) -> int:
    """EVALSHA commands that ran (not those refused with NOSCRIPT before the script's first
    load on this server)."""
    stats = (await client.info("commandstats")).get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)) - int(stats.get("failed_calls", 0))


async def test_campaigns_in_reads_a_page_and_its_hashes_in_one_round_trip(
    store: RedisStore,
) -> None:
    ids = [await store.create_campaign(f"c{i}", "trunk1", "{}") for i in range(5)]
    for cid in ids:
        await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    # a campaign whose hash is gone but still indexed (being deleted) is skipped
    await store.client.delete(store.keys.campaign(ids[2]))
    before = await _evalsha_calls(store.client)
    found = await store.campaigns_in((CampaignStatus.RUNNING,), page=2)
    assert await _evalsha_calls(store.client) - before == 3  # pages of 2, 2 and 1
    running = found[CampaignStatus.RUNNING]
    assert [c.id for c in running] == [ids[4], ids[3], ids[1], ids[0]]
    assert [c.name for c in running] == ["c4", "c3", "c1", "c0"]
    assert all(c.status is CampaignStatus.RUNNING and c.trunk == "trunk1" for c in running)


async def test_campaign_stats_reads_hash_queue_and_counts_at_once(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 5)
    await claim(store, cid, "call-1")
    await store.client.zadd(store.keys.pending(cid), {"000000000005": 9_999_999_999_999})
    before = await _evalsha_calls(store.client)
    campaign, stats, counts = await store.campaign_stats(cid)
    assert await _evalsha_calls(store.client) - before == 1
    assert (campaign.id, campaign.status) == (cid, CampaignStatus.RUNNING)
    assert (stats.pending_total, stats.pending_due_now, stats.claimed) == (4, 3, 1)
    assert stats.next_due_ms is not None
    assert stats.next_due_ms < 9_999_999_999_999
    assert (counts[CallStatus.PENDING], counts[CallStatus.IN_PROGRESS]) == (4, 1)
    assert counts[CallStatus.ANSWERED] == 0  # every status present
    assert await store.queue_stats(cid) == stats
    with pytest.raises(NotFound):
        await store.campaign_stats(999_999)
    empty = await store.queue_stats(999_999)
    assert (empty.pending_total, empty.next_due_ms, empty.inflight) == (0, None, 0)


async def test_active_index_is_rebuilt_for_an_older_store(store: RedisStore) -> None:
    ids = [await store.create_campaign(f"c{i}", "trunk1", "{}") for i in range(5)]
    await store.transition(ids[1], {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    await store.transition(ids[3], {CampaignStatus.DRAFT}, CampaignStatus.PAUSED)
    await store.client.delete(store.keys.active_campaigns)  # as a store from before the index
    assert (await store.campaigns_in((CampaignStatus.RUNNING,)))[CampaignStatus.RUNNING] == []
    assert await store.rebuild_active_index(page=2) == 1
    assert await store.rebuild_active_index(page=2) == 1  # idempotent
    running = (await store.campaigns_in((CampaignStatus.RUNNING,)))[CampaignStatus.RUNNING]
    assert [c.id for c in running] == [ids[1]]
