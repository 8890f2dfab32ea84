"""Calling hours in the control commands and claim.lua, against a real redis-server.

The claim script refuses by the Redis server's clock once the deadline written with the move
to Running has passed; the commands compute that deadline (and the next opening of a
Scheduled campaign) from the settings and an injected clock.
"""

from __future__ import annotations

import json
import time as wall
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from dialer.domain.campaign import CampaignSettings
from dialer.domain.hours import CLOSE_GUARD_S, END_DATE_PASSED, OUTSIDE_HOURS
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.engine.control import CampaignControl
from dialer.errors import TransitionRefused
from dialer.store import RedisStore
from tests.unit.store_helpers import claim, contacts

pytestmark = pytest.mark.redis

S = CampaignStatus
MONDAY_NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp()
WINDOW = {"timezone": "UTC", "start": "09:00", "end": "17:00", "days": ["mon", "tue"]}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def campaign(store: RedisStore, n: int = 3, **settings: object) -> int:
    s = CampaignSettings.from_dict(
        {"name": "hours", "trunk": "trunk1", "max_channels": 5, "cps": 10, **settings}
    )
    cid = await store.create_campaign(s.name, s.trunk, json.dumps(s.to_dict()))
    list_id = await store.add_list(cid)
    await store.add_contacts(cid, list_id, contacts(n))
    return cid


async def test_start_inside_the_hours_writes_the_claim_deadline(store: RedisStore) -> None:
    clock = Clock(MONDAY_NOON)
    cid = await campaign(store, window=WINDOW)
    result = await CampaignControl(store, clock=clock).start(cid)
    assert result.status is S.RUNNING
    record = await store.get_campaign(cid)
    close = datetime(2026, 12, 7, 17, 0, tzinfo=UTC).timestamp()
    assert record.open_until_ms == int((close - CLOSE_GUARD_S) * 1000)
    assert record.opens_at_ms is None


async def test_start_and_resume_outside_the_hours_land_in_scheduled(store: RedisStore) -> None:
    clock = Clock(MONDAY_NOON + 6 * 3600)  # Monday 18:00
    control = CampaignControl(store, clock=clock)
    cid = await campaign(store, window=WINDOW)
    assert (await control.start(cid)).status is S.SCHEDULED
    record = await store.get_campaign(cid)
    tuesday_nine = datetime(2026, 12, 8, 9, 0, tzinfo=UTC).timestamp()
    assert (record.status_reason, record.opens_at_ms) == (OUTSIDE_HOURS, tuesday_nine * 1000)
    # paused while Scheduled, resumed while still closed: Scheduled again, not Running
    await control.pause(cid)
    assert (await store.get_campaign(cid)).status is S.PAUSED
    assert (await control.resume(cid)).status is S.SCHEDULED
    # open: the engine's supervisor moves it to Running with a deadline
    clock.now = tuesday_nine + 1
    assert await control.open_window(await store.get_campaign(cid)) is S.RUNNING
    assert (await store.get_campaign(cid)).open_until_ms is not None


async def test_the_claim_script_refuses_after_the_deadline_by_its_own_clock(
    store: RedisStore,
) -> None:
    cid = await campaign(store)
    now_ms = int(wall.time() * 1000)
    await store.transition(cid, {S.DRAFT}, S.RUNNING, open_until_ms=now_ms + 60_000)
    assert (await claim(store, cid, "call-1")).kind == "ok"
    await store.transition(cid, {S.RUNNING}, S.SCHEDULED)
    await store.transition(cid, {S.SCHEDULED}, S.RUNNING, open_until_ms=now_ms - 1)
    refused = await claim(store, cid, "call-2")
    assert refused.kind == "closed"
    assert (await store.get_contact(cid, 2)).status is CallStatus.PENDING  # nothing taken
    # a move to Running without a deadline clears the old one
    await store.transition(cid, {S.RUNNING}, S.PAUSED)
    await store.transition(cid, {S.PAUSED}, S.RUNNING)
    assert (await claim(store, cid, "call-3")).kind == "ok"


async def test_close_window_schedules_the_next_opening(store: RedisStore) -> None:
    clock = Clock(MONDAY_NOON)
    control = CampaignControl(store, clock=clock)
    cid = await campaign(store, window=WINDOW)
    await control.start(cid)
    # the claim script refused at the deadline (one guard before the close)
    clock.now = datetime(2026, 12, 7, 17, 0, tzinfo=UTC).timestamp() - CLOSE_GUARD_S
    assert await control.close_window(cid) is S.SCHEDULED
    record = await store.get_campaign(cid)
    assert record.status_reason == OUTSIDE_HOURS
    assert record.opens_at_ms == datetime(2026, 12, 8, 9, 0, tzinfo=UTC).timestamp() * 1000
    assert await control.close_window(cid) is S.SCHEDULED  # not Running: nothing to do


async def test_the_end_date_ends_the_campaign_and_settles_the_undialed(
    store: RedisStore,
) -> None:
    ends = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
    clock = Clock(MONDAY_NOON)
    control = CampaignControl(store, clock=clock)
    cid = await campaign(store, n=3, ends_at=ends.isoformat())
    await control.start(cid)
    record = await store.get_campaign(cid)
    assert record.open_until_ms == int((ends.timestamp() - CLOSE_GUARD_S) * 1000)
    clock.now = ends.timestamp()
    assert await control.close_window(cid) is S.CANCELLING
    assert await control.drained(cid) is S.CANCELLED
    record = await store.get_campaign(cid)
    assert record.status_reason == END_DATE_PASSED
    assert (await store.counts(cid)).get(CallStatus.NOT_DIALED) == 3
    # a campaign that can never dial again cannot start
    late = await campaign(store, ends_at=(ends - timedelta(hours=1)).isoformat())
    with pytest.raises(TransitionRefused, match="can never dial again"):
        await control.start(late)


async def test_before_the_start_date_it_is_scheduled(store: RedisStore) -> None:
    starts = datetime(2026, 12, 9, 8, 0, tzinfo=UTC)
    clock = Clock(MONDAY_NOON)
    control = CampaignControl(store, clock=clock)
    cid = await campaign(store, starts_at=starts.isoformat())
    assert (await control.start(cid)).status is S.SCHEDULED
    record = await store.get_campaign(cid)
    assert (record.status_reason, record.opens_at_ms) == (
        "before its start date",
        starts.timestamp() * 1000,
    )
    assert await control.open_window(record) is S.SCHEDULED
    clock.now = starts.timestamp()
    assert await control.open_window(await store.get_campaign(cid)) is S.RUNNING


async def test_a_scheduled_campaign_past_its_end_date_ends(store: RedisStore) -> None:
    ends = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
    clock = Clock(MONDAY_NOON + 5 * 3600 + 30 * 60)  # Monday 17:30, the window is closed
    control = CampaignControl(store, clock=clock)
    cid = await campaign(store, window=WINDOW, ends_at=ends.isoformat())
    with pytest.raises(TransitionRefused, match="can never dial again"):
        await control.start(cid)  # no opening is left before Monday 18:00
    clock.now = MONDAY_NOON - 4 * 3600  # Monday 08:00: it opens at 09:00
    assert (await control.start(cid)).status is S.SCHEDULED
    clock.now = ends.timestamp()
    assert await control.open_window(await store.get_campaign(cid)) is S.CANCELLING
