"""Retry timing on the real stack: a due retry is dialed at its time, not behind fresh contacts.

Two campaigns run at once on one engine, on Asterisk and on FreeSWITCH (the ``pbx`` fixture),
the same shape each: 6 busy numbers first (486 at once; retry 3 s later), then 80 fresh
numbers that answer and hang up after 1 s, dialed at 8 calls per second with channels to spare
(40; about 10 are used). The fresh contacts keep the rate busy for 10 s, so every retry comes
due while fresh contacts are due too.
``retries_first`` must dial each retry at its time; ``due_time`` (the order before the setting)
shows what the setting fixes: its retries wait for the fresh contacts.

Lateness is measured on the switch's clock: the retry channel's creation time by the switch
(Asterisk's Newchannel ``Timestamp``, FreeSWITCH's CHANNEL_CREATE ``Event-Date-Timestamp``)
less the retry time the engine recorded for the first call (both on this host's clock).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from typing import Any

import pytest

from dialer.domain.campaign import CampaignSettings
from dialer.domain.dialorder import DialOrder
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store.redis_store import RedisStore
from loadtest.bench import retrylate
from loadtest.bench.common import RESULT_PREFIX, parse_result
from ops.localstack.numberplan import Behaviour, number
from tests.integration.engine_helpers import (
    engine_settings,
    new_campaign,
    running_engine,
    wait_status,
)
from tests.integration.monitor import Observed, watch_switch

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.alone]  # lateness

S = CallStatus
BUSY, FRESH, CPS, DELAY = 6, 80, 8.0, 3.0
ON_TIME_S = 1.0  # a retry's lateness bound with retries_first (pacing step: 0.125 s)


@pytest.fixture
async def store(stack: Any, namespace: str):
    s = RedisStore.from_url(stack.redis_url, namespace=namespace)
    yield s
    await s.aclose()


def campaign_settings(stack: Any, order: DialOrder) -> CampaignSettings:
    return CampaignSettings(
        name=f"retry timing {order}",
        trunk=stack.trunk,
        max_channels=40,
        cps=CPS,
        ring_timeout=5.0,
        retry=RetryPolicy(max_attempts=2, delays={S.BUSY: DELAY}),
        dial_order=order,
    )


def timings(
    records: list[dict[str, str]], seen: Observed
) -> tuple[list[float], list[float], list[float]]:
    """Per retried contact, its retry's lateness (switch's creation time less the recorded
    retry time, s) and its creation time; and the creation times of the fresh calls."""
    due: dict[str, float] = {}
    for rec in records:
        if rec["dial"] == "1" and rec["retry_at_ms"]:
            due[rec["contact"]] = int(rec["retry_at_ms"]) / 1000
    retries = [rec for rec in records if rec["dial"] == "2"]
    late = [seen.created_at[rec["call_id"]] - due[rec["contact"]] for rec in retries]
    created = [seen.created_at[rec["call_id"]] for rec in retries]
    fresh = [
        seen.created_at[rec["call_id"]]
        for rec in records
        if rec["dial"] == "1" and not rec["retry_at_ms"]
    ]
    return late, created, fresh


async def test_due_retries_are_dialed_at_their_time(
    stack: Any, store: RedisStore, namespace: str, pbx: str
):
    runs = {}
    for k, order in enumerate((DialOrder.RETRIES_FIRST, DialOrder.DUE_TIME)):
        base = k * 1000
        phones = [number(Behaviour.BUSY, base + i) for i in range(BUSY)]
        phones += [number(Behaviour.HOLD, base + 100 + i, hold_s=1) for i in range(FRESH)]
        control, cid = await new_campaign(store, campaign_settings(stack, order), phones)
        runs[order] = (control, cid)
    async with watch_switch(stack, pbx) as seen:
        async with running_engine(engine_settings(stack, namespace, pbx=pbx)):
            for control, cid in runs.values():
                await control.start(cid)
            for _, cid in runs.values():
                await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=90)
        await asyncio.sleep(0.3)  # the last events reach the watcher
    result = {}
    for order, (_, cid) in runs.items():
        records = [rec for _, rec in await store.records(cid, count=10_000)]
        assert len(records) == FRESH + 2 * BUSY, order
        missing = [rec["call_id"] for rec in records if rec["call_id"] not in seen.created_at]
        assert not missing, (order, missing)
        result[order] = timings(records, seen)

    late, created, fresh = result[DialOrder.RETRIES_FIRST]
    assert len(late) == BUSY
    # the rate was contended: fresh contacts, all due before the retries, were still waiting
    # (and dialed) after the last retry went out
    assert sum(1 for t in fresh if t > max(created)) >= 10, (created, fresh)
    # never early (10 ms: the Timestamp's and the record's rounding), and on time
    assert min(late) >= -0.01, late
    assert max(late) <= ON_TIME_S, late

    late_due, _, _ = result[DialOrder.DUE_TIME]
    assert len(late_due) == BUSY
    # the old order: every retry waited for the fresh contacts uploaded before it
    assert statistics.median(late_due) > 3.0, late_due
    logging.getLogger(__name__).info(
        "%s: retry lateness (s) retries_first %s; due_time %s",
        pbx,
        sorted(round(x, 3) for x in late),
        sorted(round(x, 3) for x in late_due),
    )


async def test_retrylate_bench_runs_end_to_end(stack: Any, capsys: pytest.CaptureFixture[str]):
    """``python -m loadtest.bench retrylate`` with tiny counts on the session's stack."""
    params = retrylate.Params(contacts=30, busy_every=5, cps=10.0, max_channels=30, delay_s=1.0)
    await retrylate.run(stack, params, quick=True)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith(RESULT_PREFIX)]
    assert len(lines) == 1
    r = parse_result(lines[0])
    assert r["benchmark"] == "retrylate"
    runs = r["runs"]
    assert isinstance(runs, list)
    assert [run["dial_order"] for run in runs] == ["retries_first", "interleave", "due_time"]
    for run in runs:
        assert (run["calls"], run["retries"], run["missing"]) == (36, 6, 0), run
        assert run["completed"] is True
        assert -10 <= run["lateness_ms"]["min"] <= run["lateness_ms"]["max"]
    assert runs[0]["lateness_ms"]["max"] <= 1000
    assert r["retries_first_met"] is True
