"""Scrape /metrics during a real campaign: the counters agree with the call records."""

from __future__ import annotations

import asyncio
import urllib.request
from collections import Counter
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dialer.api import serve_metrics
from dialer.domain.campaign import CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store.redis_store import RedisStore
from ops.localstack.numberplan import Behaviour, number
from tests.integration.engine_helpers import (
    engine_settings,
    new_campaign,
    running_engine,
    wait_status,
)

pytestmark = [pytest.mark.integration, pytest.mark.redis]


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


async def test_scraped_counters_agree_with_call_records(stack: Any, namespace: str) -> None:
    store = RedisStore.from_url(stack.redis_url, namespace=namespace)
    mix = [Behaviour.HOLD] * 8 + [Behaviour.BUSY] * 4 + [Behaviour.NOT_FOUND_404] * 4
    phones = [number(b, i, hold_s=1) for i, b in enumerate(mix)]
    settings = CampaignSettings(
        name="metrics",
        trunk=stack.trunk,
        max_channels=6,
        cps=20.0,
        ring_timeout=3.0,
        retry=RetryPolicy(max_attempts=2, delays={CallStatus.BUSY: 0.2}),
    )
    control, cid = await new_campaign(store, settings, phones)
    async with running_engine(engine_settings(stack, namespace)) as engine:
        async with serve_metrics(engine.metrics, port=0) as endpoint:
            await control.start(cid)
            await asyncio.sleep(1.2)
            during = await asyncio.to_thread(scrape, endpoint.url)
            await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
            await asyncio.sleep(1.2)  # one gauge refresh after completion
            after = await asyncio.to_thread(scrape, endpoint.url)
    records = [r for _, r in await store.records(cid, count=1000)]
    await store.aclose()

    assert during["dialer_pbx_connected"][0][1] == 1.0
    by_status = Counter(r["status"] for r in records)
    scraped = {
        labels["status"]: value
        for labels, value in after["dialer_call_results_total"]
        if labels["campaign"] == str(cid)
    }
    assert scraped == {status: float(n) for status, n in by_status.items()}
    assert by_status == {"answered": 8, "busy": 8, "invalid_number": 4}
    originates = sum(
        v for lbl, v in after["dialer_originates_total"] if lbl["campaign"] == str(cid)
    )
    assert originates == len(records) == 20
    durations = {lbl.get("trunk"): v for lbl, v in after["dialer_call_duration_seconds_count"]}
    assert durations[stack.trunk] == 8  # answered calls only
    contacts = {
        lbl["status"]: v for lbl, v in after["dialer_contacts"] if lbl["campaign"] == str(cid)
    }
    assert contacts["answered"] == 8
    assert contacts["completed_no_answer"] == 4
