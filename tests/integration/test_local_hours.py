"""Local calling hours on the real stack: a campaign whose contacts are in two zones, one open
and one closed right now; only the open zone's numbers are dialed, counted on Asterisk."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from dialer.domain.campaign import CallingWindow, CampaignSettings
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.domain.why import BlockerCode
from dialer.domain.zones import ZoneGroup
from dialer.engine.control import CampaignControl
from dialer.store import ContactInput
from dialer.store.redis_store import RedisStore
from dialer.store.why import explain
from ops.localstack.numberplan import Behaviour, number
from tests.integration.conftest import ami_settings
from tests.integration.engine_helpers import engine_settings, running_engine
from tests.integration.monitor import watch_asterisk

pytestmark = [pytest.mark.integration, pytest.mark.redis]
OPEN = ZoneGroup("", ("Etc/UTC",))
CLOSED = ZoneGroup("", ("Asia/Dhaka",))  # UTC+6 all year: 6 h past the UTC window
N = 6


@pytest.fixture
async def store(stack: Any, namespace: str):
    s = RedisStore.from_url(stack.redis_url, namespace=namespace)
    yield s
    await s.aclose()


async def test_only_the_open_zones_numbers_are_dialed(
    stack: Any, store: RedisStore, namespace: str
) -> None:
    hour = datetime.now(UTC).hour
    window = CallingWindow.from_dict(
        {
            "timezone": "UTC",
            "start": f"{(hour - 1) % 24:02d}:00",
            "end": f"{(hour + 2) % 24:02d}:00",
        }
    )
    settings = CampaignSettings(
        name="local hours",
        trunk=stack.trunk,
        max_channels=10,
        cps=10.0,
        ring_timeout=5.0,
        window=window,
        local_hours=True,
    )
    control = CampaignControl(store)
    cid = await control.create(settings)
    people = [  # alternately open and closed, the closed one first in the queue
        ContactInput(number(Behaviour.HOLD, i, hold_s=1), zone_group=group.key)
        for i in range(2 * N)
        for group in [(CLOSED, OPEN)[i % 2]]
    ]
    await control.add_list(cid, people)
    async with (
        running_engine(engine_settings(stack, namespace)),
        watch_asterisk(ami_settings(stack)) as seen,
    ):
        assert (await control.start(cid)).status is CampaignStatus.RUNNING
        deadline = time.monotonic() + 30
        while (await store.counts(cid))[CallStatus.ANSWERED] < N:
            assert time.monotonic() < deadline, await store.counts(cid)
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # time for a wrong call to show on the switch
        report = await explain(store, cid)
    assert len(seen.created_at) == N, sorted(seen.created_at)
    statuses = [(await store.get_contact(cid, i + 1)).status for i in range(2 * N)]
    assert statuses[1::2] == [CallStatus.ANSWERED] * N
    assert statuses[0::2] == [CallStatus.PENDING] * N
    (blocker,) = [b for b in report.blockers if b.code is BlockerCode.LOCAL_HOURS]
    assert f"{N} in ?? (Asia/Dhaka)" in blocker.message
    assert (await store.get_campaign(cid)).status is CampaignStatus.RUNNING
