"""``GET /campaigns/{id}/why`` (dialer.store.why.explain) on the real stack (Asterisk).

Four real situations, each checked against what the switch itself saw (``watch_switch``):

- no engine alive: a Running campaign, no engine: ``no_engine``, and the switch made no channel;
- window closed: a campaign whose calling hours are closed now is Scheduled: ``window_closed``,
  clearing at its next opening; the switch made no channel for it;
- every contact waiting for a retry: busy numbers (486), retry in 60 s: once each was called
  once, ``nothing_due`` clearing at the earliest retry time the records hold; the switch made
  exactly one channel per number;
- the trunk full: the engine's DIALER_TRUNKS gives the trunk 2 channels, the campaign holds
  30-s calls: ``trunk_full`` while the switch has exactly 2 of its channels alive; shown by
  ``dialer status`` (a subprocess) and ``GET /campaigns/{id}/why`` too.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dialer.domain.campaign import CallingWindow, CampaignSettings, TrunkLimits
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.domain.why import BlockerCode, WhyReport
from dialer.store.redis_store import RedisStore
from dialer.store.why import explain
from ops.localstack.numberplan import Behaviour, number
from tests.integration.engine_helpers import (
    engine_settings,
    new_campaign,
    running_engine,
    wait_records,
    wait_status,
)
from tests.integration.monitor import watch_switch
from tests.unit.api_helpers import VIEWER, api_client

pytestmark = [pytest.mark.integration, pytest.mark.redis]

PBX = "asterisk"


@pytest.fixture
async def store(stack: Any, namespace: str):
    s = RedisStore.from_url(stack.redis_url, namespace=namespace)
    yield s
    await s.aclose()


def codes(report: WhyReport) -> list[BlockerCode]:
    return [b.code for b in report.blockers]


async def wait_why(store: RedisStore, cid: int, code: BlockerCode, within: float) -> WhyReport:
    deadline = time.monotonic() + within
    while True:
        report = await explain(store, cid)
        if code in codes(report):
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"campaign {cid}: no {code} after {within} s: {report}")
        await asyncio.sleep(0.05)


def closed_window() -> CallingWindow:
    """A one-hour window opening 3 h from now (UTC), every day: closed now."""
    start = datetime.now(UTC) + timedelta(hours=3)
    end = start + timedelta(hours=1)
    return CallingWindow.from_dict(
        {"timezone": "UTC", "start": f"{start:%H:00}", "end": f"{end:%H:00}"}
    )


async def test_why_names_what_holds_each_campaign_back(stack: Any, store: RedisStore, namespace):
    base = CampaignSettings(name="why", trunk=stack.trunk, max_channels=10, cps=20.0)
    held_phones = [number(Behaviour.HOLD, 7100 + i, hold_s=30) for i in range(5)]
    busy_phones = [number(Behaviour.BUSY, 7200 + i) for i in range(3)]
    control, held = await new_campaign(store, base, held_phones)
    retry = RetryPolicy(max_attempts=2, delays={CallStatus.BUSY: 60.0})
    _, busy = await new_campaign(
        store, CampaignSettings(**{**_fields(base), "retry": retry}), busy_phones
    )
    window = closed_window()
    _, closed = await new_campaign(
        store, CampaignSettings(**{**_fields(base), "window": window}), [busy_phones[0]]
    )
    settings = engine_settings(
        stack, namespace, pbx=PBX, trunks={stack.trunk: TrunkLimits(stack.trunk, 2, None)}
    )
    async with watch_switch(stack, PBX) as seen:
        # 1. no engine alive: the held campaign Running, nothing dials it
        await control.start(held)
        report = await explain(store, held)
        assert codes(report) == [BlockerCode.NO_ENGINE], report
        assert report.engines_alive == 0
        assert not report.dialing

        # 2. window closed: Scheduled until its next opening
        assert (await control.start(closed)).status is CampaignStatus.SCHEDULED
        report = await explain(store, closed)
        assert codes(report) == [BlockerCode.WINDOW_CLOSED, BlockerCode.NO_ENGINE], report
        opens_at = (await store.get_campaign(closed)).opens_at_ms
        assert opens_at is not None
        assert report.blockers[0].clears_at_ms == opens_at
        assert opens_at / 1000 - time.time() == pytest.approx(3 * 3600, abs=3600)
        await asyncio.sleep(0.5)
        assert not seen.created_at, "no engine: the switch made no channel"

        # the held campaign paused while the busy one runs (the trunk is shared)
        await control.pause(held)
        async with running_engine(settings):
            # 3. every contact waiting for its retry
            await control.start(busy)
            assert await wait_records(store, busy, 3, within=30) == 3
            report = await wait_why(store, busy, BlockerCode.NOTHING_DUE, within=10)
            assert codes(report) == [BlockerCode.NOTHING_DUE], report
            records = [rec for _, rec in await store.records(busy)]
            retry_at = min(int(rec["retry_at_ms"]) for rec in records)
            assert report.blockers[0].clears_at_ms == retry_at
            assert retry_at / 1000 - time.time() > 50
            busy_calls = {rec["call_id"] for rec in records}
            async with asyncio.timeout(10):
                while not busy_calls <= set(seen.ended_at):
                    await asyncio.sleep(0.05)
            assert busy_calls <= set(seen.created_at)
            assert len(seen.created_at) == 3, "one channel per busy number on the switch"
            # the closed campaign: the engine alive, only its window holds it back
            assert codes(await explain(store, closed)) == [BlockerCode.WINDOW_CLOSED]

            # 4. the trunk full: 2 channels (DIALER_TRUNKS), 30-s calls
            await control.resume(held)
            report = await wait_why(store, held, BlockerCode.TRUNK_FULL, within=20)
            async with asyncio.timeout(10):  # the switch's own count of live channels
                while len(_live(seen)) < 2:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # nothing more starts while it is full
            report = await explain(store, held)
            assert codes(report) == [BlockerCode.TRUNK_FULL], report
            assert report.inflight == 2
            assert len(_live(seen)) == 2, "the switch holds exactly the trunk's 2 channels"
            assert len(seen.created_at) == 3 + 2
            assert "2 of its 2 channels in use" in report.blockers[0].message
            # the faces: dialer status (a subprocess, as an operator runs it) and the API
            shown = await asyncio.to_thread(dialer_status, stack, namespace, held)
            assert "why: not dialing" in shown, shown
            assert "  trunk_full  trunk " in shown, shown
            async with api_client(store) as client:
                response = await client.get(f"/campaigns/{held}/why", headers=VIEWER)
            assert response.status_code == 200, response.text
            assert [b["code"] for b in response.json()["blockers"]] == ["trunk_full"]
            await control.stop(held, hangup=True)
            await wait_status(store, held, {CampaignStatus.CANCELLED}, within=20)
            assert codes(await explain(store, held)) == [BlockerCode.FINISHED]
            await control.stop(busy)
            await control.stop(closed)
    assert len(seen.created_at) == 5


def dialer_status(stack: Any, namespace: str, cid: int) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env.update(DIALER_REDIS_URL=stack.redis_url, DIALER_NAMESPACE=namespace)
    proc = subprocess.run(
        [sys.executable, "-m", "dialer", "status", str(cid)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _fields(settings: CampaignSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


def _live(seen: Any) -> set[str]:
    return set(seen.created_at) - set(seen.ended_at)
