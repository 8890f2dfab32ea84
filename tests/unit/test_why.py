"""dialer.domain.why: each blocker from a snapshot, and the snapshot read from a real Redis."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from dialer.cli.why import why_lines
from dialer.domain.breaker import BreakerState
from dialer.domain.campaign import CallingWindow, CampaignSettings, PlanLimits, TrunkLimits
from dialer.domain.hours import BEFORE_START, OUTSIDE_HOURS
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.domain.why import (
    PBX_DOWN_REASON,
    PLAN_LIMIT_REASON,
    BlockerCode,
    EngineBeat,
    TrunkSnapshot,
    WhySnapshot,
    why,
)
from dialer.engine import control
from dialer.errors import NotFound
from dialer.store import RedisStore
from dialer.store.engines import EngineRegistry
from dialer.store.why import explain
from tests.unit.api_helpers import VIEWER, api_client
from tests.unit.store_helpers import claim, running_campaign

NOW = 1_800_000_000_000
SETTINGS = CampaignSettings(name="why", trunk="carrier", max_channels=4, cps=2.0)
ENGINE = EngineBeat("e1/abcd", NOW + 8_000, True, {"carrier": (10, 5.0)})


def snap(**changes: Any) -> WhySnapshot:
    base = WhySnapshot(
        campaign_id=7,
        now_ms=NOW,
        status=CampaignStatus.RUNNING,
        status_reason="",
        settings=SETTINGS,
        counts={CallStatus.PENDING: 5},
        pending=5,
        next_due_ms=NOW - 1000,
        inflight=1,
        started_last_s=2,
        engines=(ENGINE,),
        trunks=(TrunkSnapshot("carrier", 1),),
    )
    return replace(base, **changes)


def codes(s: WhySnapshot) -> list[BlockerCode]:
    return [b.code for b in why(s).blockers]


def test_nothing_holds_it_back_it_is_dialing_with_its_rate_and_channels() -> None:
    report = why(snap())
    assert report.dialing
    assert report.blockers == ()
    assert report.summary == (
        "dialing: 1 of 4 channels in use, 2 calls started in the last second (cps 2)"
    )
    assert report.to_dict()["blockers"] == []
    assert why_lines(report) == [f"why: {report.summary}"]


def test_no_engine_alive() -> None:
    dead = replace(ENGINE, expires_ms=NOW - 1)
    for engines in ((), (dead,)):
        report = why(snap(engines=engines))
        assert not report.dialing
        assert [b.code for b in report.blockers] == [BlockerCode.NO_ENGINE]
        assert report.engines_alive == 0
        assert report.blockers[0].clears_at_ms is None


def test_window_closed_scheduled_names_the_next_opening() -> None:
    opens = NOW + 3_600_000 + 120_000
    report = why(
        snap(status=CampaignStatus.SCHEDULED, status_reason=OUTSIDE_HOURS, opens_at_ms=opens)
    )
    (blocker,) = report.blockers
    assert blocker.code is BlockerCode.WINDOW_CLOSED
    assert blocker.clears_at_ms == opens
    assert "2027-01-15T09:02:00+00:00 (in 1 h 2 min)" in blocker.message
    assert blocker.to_dict()["clears_at"] == "2027-01-15T09:02:00+00:00"


def test_before_start_is_its_own_code() -> None:
    s = snap(status=CampaignStatus.SCHEDULED, status_reason=BEFORE_START, opens_at_ms=NOW + 5000)
    assert codes(s) == [BlockerCode.BEFORE_START]
    assert why(s).blockers[0].clears_at_ms == NOW + 5000


def test_running_past_its_claim_deadline_is_closed_until_the_next_opening() -> None:
    # NOW is Friday 2027-01-15 08:00 UTC; the window 07:00-08:00 UTC on Mondays: the claim
    # deadline has passed, the next opening is Monday 07:00
    window = CallingWindow.from_dict(
        {"timezone": "UTC", "start": "07:00", "end": "08:00", "days": ["mon"]}
    )
    s = snap(settings=replace(SETTINGS, window=window), open_until_ms=NOW - 1)
    (blocker,) = why(s).blockers
    assert blocker.code is BlockerCode.WINDOW_CLOSED
    monday = datetime(2027, 1, 18, 7, 0, tzinfo=UTC).timestamp() * 1000
    assert blocker.clears_at_ms == monday
    assert "they open again at 2027-01-18T07:00:00+00:00" in blocker.message


def test_every_contact_waiting_for_a_retry_names_the_next_due() -> None:
    due = NOW + 90_000
    s = snap(
        counts={CallStatus.RETRY_SCHEDULED: 3, CallStatus.RESCHEDULED: 1, CallStatus.BUSY: 2},
        pending=4,
        next_due_ms=due,
        inflight=0,
    )
    (blocker,) = why(s).blockers
    assert blocker.code is BlockerCode.NOTHING_DUE
    assert blocker.clears_at_ms == due
    assert "(3 for a retry, 1 for a callback)" in blocker.message
    assert "(in 1 min 30 s)" in blocker.message


def test_no_contact_left() -> None:
    s = snap(pending=0, next_due_ms=None, inflight=2, counts={CallStatus.IN_PROGRESS: 2})
    (blocker,) = why(s).blockers
    assert blocker.code is BlockerCode.NO_CONTACTS
    assert blocker.message == "no contact left to dial; 2 calls still in flight"


def test_the_campaigns_channels_full() -> None:
    s = snap(inflight=4, trunks=(TrunkSnapshot("carrier", 4),))
    assert codes(s) == [BlockerCode.CHANNELS_FULL]
    assert why(s).blockers[0].message.startswith("all 4 channels of the campaign")


def test_the_trunk_full_by_its_published_limit_shared_with_other_campaigns() -> None:
    s = snap(inflight=1, trunks=(TrunkSnapshot("carrier", 10),))
    (blocker,) = why(s).blockers
    assert blocker.code is BlockerCode.TRUNK_FULL
    assert "10 of its 10 channels in use (1 by this campaign)" in blocker.message
    # an engine that disagrees: the smallest limit holds; an unlimited trunk is never full
    tight = replace(ENGINE, owner="e2", trunks={"carrier": (8, None)})
    assert codes(snap(trunks=(TrunkSnapshot("carrier", 8),), engines=(ENGINE, tight))) == [
        BlockerCode.TRUNK_FULL
    ]
    unlimited = replace(ENGINE, trunks={"carrier": (None, None)})
    assert codes(snap(trunks=(TrunkSnapshot("carrier", 500),), engines=(unlimited,))) == []


def test_the_trunk_breaker_open_clears_at_its_probe_time() -> None:
    t = TrunkSnapshot("carrier", 0, BreakerState.OPEN, "5 failures in a row", NOW + 20_000)
    (blocker,) = why(snap(trunks=(t,))).blockers
    assert blocker.code is BlockerCode.TRUNK_BREAKER
    assert blocker.clears_at_ms == NOW + 20_000
    assert blocker.message.startswith(
        "trunk carrier unavailable: breaker open (5 failures in a row); a probe call may go"
    )
    half = TrunkSnapshot("carrier", 1, BreakerState.HALF_OPEN, probe_until_ms=NOW + 60_000)
    (blocker,) = why(snap(trunks=(half,))).blockers
    assert "half-open" in blocker.message
    assert blocker.clears_at_ms == NOW + 60_000


def test_an_open_breaker_with_a_closed_backup_trunk_dials_on_the_backup() -> None:
    settings = replace(SETTINGS, backup_trunk="spare")
    primary = TrunkSnapshot("carrier", 0, BreakerState.OPEN, "silent", NOW + 20_000)
    report = why(snap(settings=settings, trunks=(primary, TrunkSnapshot("spare", 1))))
    assert report.dialing
    assert "on backup trunk spare (carrier's breaker is open)" in report.summary
    backup = TrunkSnapshot("spare", 0, BreakerState.OPEN, "silent", NOW + 5_000)
    (blocker,) = why(snap(settings=settings, trunks=(primary, backup))).blockers
    assert blocker.code is BlockerCode.TRUNK_BREAKER
    assert "; backup trunk spare unavailable" in blocker.message
    assert blocker.clears_at_ms == NOW + 5_000  # the first trunk to come back


def test_pbx_unavailable_paused_by_the_engines_or_seen_by_every_engine() -> None:
    paused = snap(status=CampaignStatus.PAUSED, status_reason=PBX_DOWN_REASON)
    assert codes(paused) == [BlockerCode.PBX_UNAVAILABLE]
    down = replace(ENGINE, pbx_connected=False)
    assert codes(snap(engines=(down,))) == [BlockerCode.PBX_UNAVAILABLE]
    # one engine still connected: that one dials
    assert codes(snap(engines=(down, replace(ENGINE, owner="e2")))) == []
    # not listed twice when the engines paused it and still see it down
    assert codes(replace(paused, engines=(down,))) == [BlockerCode.PBX_UNAVAILABLE]


def test_plan_limit_paused_or_reached() -> None:
    limited = replace(SETTINGS, limits=PlanLimits(max_attempts_total=100, max_minutes=10))
    paused = snap(
        status=CampaignStatus.PAUSED,
        status_reason=PLAN_LIMIT_REASON,
        settings=limited,
        usage_attempts=100,
        usage_talk_seconds=300,
    )
    (blocker,) = why(paused).blockers
    assert blocker.code is BlockerCode.PLAN_LIMIT
    assert blocker.message == (
        "paused: its plan limit is reached (100 of 100 attempts used, 5.0 of 10 minutes used)"
    )
    reached = snap(settings=limited, usage_attempts=40, usage_talk_seconds=600)
    assert codes(reached) == [BlockerCode.PLAN_LIMIT]
    assert codes(replace(reached, usage_talk_seconds=599)) == []


def test_statuses_that_do_not_dial() -> None:
    assert codes(snap(status=CampaignStatus.DRAFT)) == [BlockerCode.NOT_STARTED]
    paused = snap(status=CampaignStatus.PAUSED, status_reason="")
    assert codes(paused) == [BlockerCode.PAUSED]
    for final in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.CANCELLING):
        # a final campaign needs no engine: that is not listed
        assert codes(snap(status=final, engines=())) == [BlockerCode.FINISHED]
    # a paused one without engines: both hold it back
    assert codes(replace(paused, engines=())) == [BlockerCode.PAUSED, BlockerCode.NO_ENGINE]


def test_several_blockers_are_all_listed_in_order() -> None:
    t = TrunkSnapshot("carrier", 10, BreakerState.OPEN, "silent", NOW + 1000)
    s = snap(trunks=(t,), inflight=4, pending=0, engines=(replace(ENGINE, pbx_connected=False),))
    assert codes(s) == [
        BlockerCode.PBX_UNAVAILABLE,
        BlockerCode.TRUNK_BREAKER,
        BlockerCode.CHANNELS_FULL,
        BlockerCode.NO_CONTACTS,
    ]
    report = why(s)
    assert report.summary.startswith("not dialing: the PBX is unreachable")
    lines = why_lines(report)
    assert lines[0] == "why: not dialing"
    assert lines[1].startswith("  pbx_unavailable  the PBX is unreachable")
    assert "[clears " in lines[2]
    assert json.loads(json.dumps(report.to_dict()))["blockers"][1]["code"] == "trunk_breaker"


def test_the_status_reasons_are_the_engines() -> None:
    assert control.PBX_DOWN_REASON == PBX_DOWN_REASON
    assert control.PLAN_LIMIT_REASON == PLAN_LIMIT_REASON


# -- the snapshot read from Redis -----------------------------------------------------------


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def test_the_store_reads_a_snapshot_of_one_instant(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 3, trunk="carrier")
    settings = replace(SETTINGS, backup_trunk="spare")
    await store.client.hset(store.keys.campaign(cid), "settings", json.dumps(settings.to_dict()))
    # no engine yet
    assert [b.code for b in (await explain(store, cid)).blockers] == [BlockerCode.NO_ENGINE]
    registry = EngineRegistry(store)
    limits = {"carrier": TrunkLimits("carrier", 2, 1)}
    await registry.beat("e1/x", pbx_connected=True, trunks=limits)
    (alive,) = await registry.alive()
    assert alive.trunks == {"carrier": (2, 1.0)}
    report = await explain(store, cid)
    assert report.dialing
    assert report.engines_alive == 1
    # two calls claimed: the trunk's 2 channels are full; the breaker opens; a rate is seen
    for n in (1, 2):
        assert (await claim(store, cid, f"c{n}", trunk="carrier", cps=10.0)).kind == "ok"
    retry = await store.client.time()
    await store.client.hset(
        store.keys.trunk_breaker("carrier"),
        mapping={"state": "open", "retry_ms": int(retry[0]) * 1000 + 30_000, "reason": "x"},
    )
    await store.client.hset(store.keys.trunk_breaker("spare"), mapping={"state": "open"})
    report = await explain(store, cid)
    assert [b.code for b in report.blockers] == [BlockerCode.TRUNK_BREAKER]
    assert report.inflight == 2
    assert report.started_last_s == 2
    await store.client.delete(store.keys.trunk_breaker("carrier"))
    assert [b.code for b in (await explain(store, cid)).blockers] == [BlockerCode.TRUNK_FULL]
    # the engine leaves: nobody dials
    await registry.leave("e1/x")
    assert BlockerCode.NO_ENGINE in [b.code for b in (await explain(store, cid)).blockers]
    with pytest.raises(NotFound):
        await explain(store, cid + 100)


async def test_an_engine_silent_past_its_ttl_is_dead(store: RedisStore) -> None:
    registry = EngineRegistry(store)
    await registry.beat("e1/x", pbx_connected=False, trunks={}, ttl_ms=0)
    await registry.beat("e2/y", pbx_connected=False, trunks={})
    assert [b.owner for b in await registry.alive()] == ["e2/y"]
    await store.client.hset(store.keys.engines, "junk", "not json")
    assert [b.owner for b in await registry.alive()] == ["e2/y"]


async def test_the_api_route_for_a_viewer(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 1, trunk="carrier")
    await store.client.hset(store.keys.campaign(cid), "settings", json.dumps(SETTINGS.to_dict()))
    async with api_client(store) as client:
        assert (await client.get(f"/campaigns/{cid}/why")).status_code == 401
        response = await client.get(f"/campaigns/{cid}/why", headers=VIEWER)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["dialing"] is False
        assert body["blockers"][0]["code"] == "no_engine"
        assert body["max_channels"] == 4
        missing = await client.get(f"/campaigns/{cid + 1}/why", headers=VIEWER)
        assert missing.status_code == 404
