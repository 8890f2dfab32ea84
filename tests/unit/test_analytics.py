"""Campaign analytics: the pure tally, and the loader on a real Redis with engine-shaped records."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from dialer.analytics import (
    RecordTally,
    build_analytics,
    campaign_analytics,
    nearest_rank,
)
from dialer.domain.statuses import CallStatus
from dialer.errors import NotFound
from dialer.store import QueueStats, RedisStore
from tests.unit.analytics_helpers import scenario
from tests.unit.store_helpers import running_campaign

S = CallStatus
EMPTY_QUEUE = QueueStats(0, 0, None, 0, 0)


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


# -- pure -------------------------------------------------------------------------------------


def test_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert nearest_rank(values, 50) == 5.0
    assert nearest_rank(values, 90) == 9.0
    assert nearest_rank(values, 91) == 10.0
    assert nearest_rank(values, 100) == 10.0
    assert nearest_rank(values, 0) == 1.0
    assert nearest_rank([7.0], 90) == 7.0
    assert nearest_rank([], 50) is None


def test_tally_counts_days_durations_amd_and_abandons() -> None:
    tally = RecordTally()
    day1, day2 = "1709287200000", "1709373600000"  # 2024-03-01T10:00Z, 2024-03-02T10:00Z
    tally.add(
        {"status": "answered", "ended_ms": day1, "duration_s": "10.000", "amd_status": "HUMAN"}
    )
    tally.add({"status": "answered", "ended_ms": day2, "duration_s": "20.000", "abandoned": "1"})
    tally.add({"status": "voicemail", "ended_ms": day2, "duration_s": "5", "amd_status": "MACHINE"})
    tally.add({"status": "busy", "ended_ms": day1})
    tally.add({"status": "answered", "duration_s": "nan"})  # no day, no usable duration
    tally.add({"status": "answered", "ended_ms": "soon", "duration_s": "x"})
    counts = {S.ANSWERED: 4, S.BUSY: 1, S.PENDING: 2, S.NOT_DIALED: 5, S.DO_NOT_CALL: 1}
    queue = QueueStats(pending_due_now=2, pending_total=2, next_due_ms=123, inflight=1, claimed=0)
    a = build_analytics(7, counts, queue, tally)
    assert a.campaign_id == 7
    assert a.attempts_total == 6
    assert a.attempts_by_status == {"answered": 4, "busy": 1, "voicemail": 1}
    assert [(d.day, d.attempts, d.answered) for d in a.per_day] == [
        ("2024-03-01", 2, 1),
        ("2024-03-02", 2, 1),
    ]
    assert (a.talk.count, a.talk.mean_s, a.talk.p50_s, a.talk.p90_s) == (2, 15.0, 10.0, 20.0)
    assert (a.human_answers, a.voicemail_answers) == (4, 1)
    assert a.amd == {"HUMAN": 1, "MACHINE": 1, "none": 3}
    assert (a.abandoned, a.abandon_rate) == (1, 0.25)
    # success: answered contacts / contacts finished after being called (answered + busy);
    # never-dialed, do-not-call and queued contacts are left out
    assert (a.contacts_answered, a.contacts_finished, a.success_rate) == (4, 5, 0.8)
    assert a.contacts_total == 13
    assert a.contacts[S.REJECTED] == 0
    assert (a.queue.pending, a.queue.in_flight, a.queue.due_now, a.queue.next_due_ms) == (
        2, 1, 2, 123,
    )  # fmt: skip


def test_nothing_yet() -> None:
    a = build_analytics(1, {S.PENDING: 3}, EMPTY_QUEUE, RecordTally())
    assert (a.success_rate, a.abandon_rate, a.attempts_total, a.per_day) == (None, None, 0, ())
    assert a.talk.count == 0
    assert a.talk.mean_s is None
    d = a.to_dict()
    assert d["success_rate"] is None
    assert d["contacts"] == {s.value: (3 if s is S.PENDING else 0) for s in S}


# -- with Redis -------------------------------------------------------------------------------


@pytest.mark.redis
async def test_engine_shaped_records(store: RedisStore) -> None:
    cid, written = await scenario(store)
    a = await campaign_analytics(store, cid)
    assert a.attempts_total == 6
    assert a.attempts_by_status == {"answered": 3, "busy": 1, "rejected": 1, "voicemail": 1}
    assert [(d.day, d.attempts, d.answered) for d in a.per_day] == [
        ("2024-03-01", 3, 1),
        ("2024-03-02", 3, 2),
    ]
    assert a.talk.count == 3
    assert a.talk.mean_s == pytest.approx((12.5 + 30 + 40) / 3)
    assert (a.talk.p50_s, a.talk.p90_s) == (30.0, 40.0)
    assert (a.human_answers, a.voicemail_answers) == (3, 1)
    assert a.amd == {"HUMAN": 1, "MACHINE": 1, "NOTSURE": 1, "none": 1}
    assert (a.abandoned, a.abandon_rate) == (0, 0.0)
    nonzero = {s: n for s, n in a.contacts.items() if n}
    assert nonzero == {
        S.ANSWERED: 3,
        S.REJECTED: 1,
        S.PENDING: 1,
        S.INVALID_NUMBER: 1,
        S.DO_NOT_CALL: 1,
    }
    assert (a.contacts_answered, a.contacts_finished, a.success_rate) == (3, 4, 0.75)
    assert (a.queue.pending, a.queue.retry_scheduled, a.queue.in_flight) == (1, 0, 0)
    assert a.queue.due_now == 1
    # paging does not change anything, whatever the page size
    for page in (1, 2, 5, 6, 7):
        assert await campaign_analytics(store, cid, page=page) == a
    d = a.to_dict()
    assert d["per_day"] == [
        {"day": "2024-03-01", "attempts": 3, "answered": 1},
        {"day": "2024-03-02", "attempts": 3, "answered": 2},
    ]
    assert d["talk"] == {"count": 3, "mean_s": a.talk.mean_s, "p50_s": 30.0, "p90_s": 40.0}
    assert d["queue"] == {
        "pending": 1,
        "retry_scheduled": 0,
        "in_flight": 0,
        "due_now": 1,
        "next_due_ms": a.queue.next_due_ms,
    }
    assert written[0].record["status"] == "answered"


@pytest.mark.redis
async def test_many_records_stream_in_pages(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    cid, _ = await running_campaign(store, 1)
    base = 1_709_287_200_000  # 2024-03-01T10:00Z
    async with redis_client.pipeline(transaction=False) as pipe:
        for i in range(2500):
            answered = i % 4 == 0
            fields: Any = {
                "status": "answered" if answered else "no_answer",
                "ended_ms": str(base + i * 60_000),  # one a minute: 2500 minutes ~ 1.7 days
                "duration_s": f"{i % 100}.000" if answered else "0.000",
            }
            pipe.xadd(store.keys.records(cid), fields)
        await pipe.execute()
    a = await campaign_analytics(store, cid, page=1000)
    assert a.attempts_total == 2500
    assert a.attempts_by_status == {"answered": 625, "no_answer": 1875}
    assert sum(d.attempts for d in a.per_day) == 2500
    assert [d.day for d in a.per_day] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert a.per_day[0].attempts == 14 * 60  # 10:00 to midnight
    assert a.talk.count == 625
    durations = sorted(float(i % 100) for i in range(0, 2500, 4))
    assert a.talk.p90_s == durations[int(0.9 * 625 + 0.999) - 1]
    assert a.talk.mean_s == pytest.approx(sum(durations) / 625)


@pytest.mark.redis
async def test_missing_campaign(store: RedisStore) -> None:
    with pytest.raises(NotFound):
        await campaign_analytics(store, 999)
