"""One campaign with bad stored settings never stops the engine (issue 15, item 5).

Settings written to Redis by hand (a CR/LF in a variable, a text that is not JSON, a negative
max_channels) used to make every engine exit at start, and ``dialer run`` with it. Now such a
campaign is paused with a reason naming the problem, the other campaigns complete, the engine
and the API go on, and the calls a dead engine left in flight for it are still settled.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import UTC, datetime, time
from typing import Any

import httpx
import pytest

from dialer.api import create_app
from dialer.domain.campaign import CallingWindow, CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store.redis_store import RedisStore
from ops.localstack.numberplan import Behaviour, number
from tests.integration.engine_helpers import (
    engine_processes,
    engine_settings,
    new_campaign,
    nonzero,
    running_engine,
    wait_status,
)
from tests.unit.api_helpers import OPERATOR, TOKENS, VIEWER

pytestmark = [pytest.mark.integration, pytest.mark.redis]

EVIL = "a\r\nAction: Command\r\nCommand: core stop now"


def busy(stack: Any, name: str, **kw: Any) -> CampaignSettings:
    return CampaignSettings(
        name=name,
        trunk=stack.trunk,
        max_channels=5,
        cps=50.0,
        ring_timeout=5.0,
        retry=RetryPolicy(max_attempts=1),
        **kw,
    )


async def corrupt(store: RedisStore, cid: int, settings_json: str) -> None:
    """Write the settings as a person with redis-cli would: no check at all."""
    await store.client.hset(store.keys.campaign(cid), "settings", settings_json)


def changed(settings: CampaignSettings, **fields: object) -> str:
    return json.dumps({**settings.to_dict(), **fields})


@pytest.fixture
async def store(stack: Any, namespace: str):
    s = RedisStore.from_url(stack.redis_url, namespace=namespace)
    yield s
    await s.aclose()


async def test_bad_settings_pause_their_campaign_and_nothing_else(stack, store, namespace):
    good_settings = busy(stack, "good")
    control, good = await new_campaign(
        store, good_settings, [number(Behaviour.BUSY, i) for i in range(10)]
    )
    base = busy(stack, "bad")
    bad: dict[int, tuple[str, str]] = {}  # id -> (stored text, what the reason names)
    for text, named in (
        (
            changed(base, variables={"DIALER_VM_MESSAGE": EVIL}),
            "variables.DIALER_VM_MESSAGE must be a sound file name",
        ),
        ("{not json", "not JSON"),
        (changed(base, max_channels=-3), "max_channels must be an integer"),
    ):
        _, cid = await new_campaign(store, base, [number(Behaviour.BUSY, 50 + len(bad))])
        await control.start(cid)
        await corrupt(store, cid, text)
        bad[cid] = (text, named)
    # Scheduled (its hours are closed today) when its settings go bad: open_window reads them
    hour = datetime.now(UTC).hour
    never = CallingWindow("UTC", time((hour + 2) % 24), time((hour + 3) % 24))
    _, scheduled = await new_campaign(
        store, busy(stack, "scheduled", window=never), [number(Behaviour.BUSY, 60)]
    )
    await control.start(scheduled)
    assert (await store.get_campaign(scheduled)).status is CampaignStatus.SCHEDULED
    await corrupt(store, scheduled, "[]")
    bad[scheduled] = ("[]", "must be an object")
    await control.start(good)

    async with running_engine(engine_settings(stack, namespace)) as engine:
        for cid in bad:
            await wait_status(store, cid, {CampaignStatus.PAUSED}, within=20)
        await wait_status(store, good, {CampaignStatus.COMPLETED}, within=60)
        loops = {"supervise", "pbx-events", "writes", "follow-up", "leases"}
        alive = {t.get_name() for t in asyncio.all_tasks() if not t.done()}
        assert loops <= alive  # the engine goes on
        # the API, as `dialer run` serves it beside the engine
        app = create_app(store, tokens=TOKENS, control=engine.control)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
            listed = await api.get("/campaigns", params={"limit": 100}, headers=VIEWER)
            one = {cid: await api.get(f"/campaigns/{cid}", headers=VIEWER) for cid in bad}
            resumed = await api.post(f"/campaigns/{min(bad)}/resume", headers=OPERATOR)

    assert nonzero(await store.counts(good)) == {CallStatus.COMPLETED_NO_ANSWER: 10}
    assert listed.status_code == 200
    views = {c["id"]: c for c in listed.json()["campaigns"]}
    assert views[good]["status"] == "completed"
    assert views[good]["settings_error"] is None
    for cid, (text, named) in bad.items():
        campaign = await store.get_campaign(cid)
        assert campaign.status is CampaignStatus.PAUSED
        assert campaign.status_reason.startswith("invalid settings: ")
        assert named in campaign.status_reason
        assert views[cid]["status_reason"] == campaign.status_reason
        assert views[cid]["settings_error"] == campaign.status_reason
        assert one[cid].status_code == 200
        assert one[cid].json()["status"] == "paused"
        assert (await store.get_campaign(cid)).settings_json == text  # left as found
        assert nonzero(await store.counts(cid)) == {CallStatus.PENDING: 1}  # never dialed
    assert resumed.status_code == 422  # refused until the settings are edited
    assert "invalid settings: " in resumed.json()["error"]["message"]


async def test_results_of_calls_in_flight_are_written_when_settings_go_bad(stack, store, namespace):
    """An engine dies with calls in flight; the settings are then corrupted; the next engine
    pauses the campaign and still follows its orphaned calls to their end."""
    phones = [number(Behaviour.HOLD, i, hold_s=5) for i in range(4)]
    settings = CampaignSettings(
        name="orphans", trunk=stack.trunk, max_channels=4, cps=50.0, ring_timeout=5.0
    )
    control, cid = await new_campaign(store, settings, phones)
    fast = engine_settings(stack, namespace, lease_ms=1500)
    with engine_processes(fast, 1) as (victim,):
        await asyncio.sleep(1.0)
        await control.start(cid)
        async with asyncio.timeout(10):
            while (await store.queue_stats(cid)).inflight < 4:
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # answered, and marked originated
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(5)
    assert nonzero(await store.counts(cid)) == {CallStatus.IN_PROGRESS: 4}
    await corrupt(store, cid, changed(settings, variables={"DIALER_VM_MESSAGE": "x\ny"}))
    async with running_engine(fast):
        await wait_status(store, cid, {CampaignStatus.PAUSED}, within=30)
    records = [r for _, r in await store.records(cid, count=100)]
    campaign = await store.get_campaign(cid)
    assert "variables.DIALER_VM_MESSAGE must be" in campaign.status_reason
    assert len(records) == 4  # every call in flight has its result
    assert nonzero(await store.counts(cid)) == {CallStatus.ANSWERED: 4}
