"""Callbacks set through the HTTP API, dialed by a real engine on Asterisk, timed by the switch.

Two campaigns run on one engine. Campaign A (no calling hours; three numbers that answer and
hang up after 1 s):

- contact 1 gets a callback 3 s ahead while the campaign is a Draft;
- contact 3 gets one 30 s ahead, then it is moved to 5 s ahead;
- contact 2 is dialed at once (fresh); once it has answered, a callback is set 3 s ahead and
  cancelled: it returns to Answered and must never be dialed again;
- contact 4 is dialed at once too; once it has answered, a callback is set 2 s ahead while the
  campaign runs: it is dialed a second time, at that time.

Campaign B's calling hours open 8 s after the start: a callback asked for 2 s ahead is moved by
the API to the opening (the answer says so) and dialed then, not before.

Times are the switch's: the creation time of each channel (Asterisk's Newchannel
``Timestamp``; the switch runs on this host's clock) against the due time the API answered.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from dialer.api import Role, create_app
from dialer.domain.campaign import CallingWindow, CampaignSettings
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store.redis_store import RedisStore
from ops.localstack.numberplan import Behaviour, number
from tests.integration.engine_helpers import (
    engine_settings,
    new_campaign,
    running_engine,
    wait_status,
)
from tests.integration.monitor import watch_switch

pytestmark = [pytest.mark.integration, pytest.mark.redis]

OPERATOR, VIEWER = "cb-operator-token-0123456789", "cb-viewer-token-01234567890"
HEADERS = {"Authorization": f"Bearer {OPERATOR}"}
# a callback dials within this of its time: the runner looks at an idle campaign every
# 0.5 s, then the claim and the Originate (ms); slack for the loaded 2-core machine
ON_TIME_S = 1.5
EARLY_S = 0.01  # the Newchannel Timestamp's and the due time's rounding
log = logging.getLogger(__name__)


@pytest.fixture
async def store(stack: Any, namespace: str) -> AsyncIterator[RedisStore]:
    s = RedisStore.from_url(stack.redis_url, namespace=namespace)
    yield s
    await s.aclose()


@pytest.fixture
async def api(store: RedisStore) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(store, tokens={OPERATOR: Role.OPERATOR, VIEWER: Role.VIEWER})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


async def set_callback(api: httpx.AsyncClient, cid: int, kid: int, at: float) -> dict[str, Any]:
    response = await api.post(
        f"/campaigns/{cid}/contacts/{kid}/callback", json={"at": iso(at)}, headers=HEADERS
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_contact(store: RedisStore, cid: int, kid: int, status: CallStatus) -> None:
    deadline = time.monotonic() + 20
    while (await store.get_contact(cid, kid)).status is not status:
        assert time.monotonic() < deadline, f"contact {kid} never {status}"
        await asyncio.sleep(0.02)


@pytest.mark.alone  # lateness by the switch's clock
async def test_callbacks_dial_at_their_time_and_not_when_cancelled(
    stack: Any, store: RedisStore, namespace: str, api: httpx.AsyncClient
) -> None:
    phones = [number(Behaviour.HOLD, 300 + i, hold_s=1) for i in range(4)]
    base = CampaignSettings(
        name="callbacks", trunk=stack.trunk, max_channels=5, cps=5.0, ring_timeout=5.0
    )
    control, a = await new_campaign(store, base, phones)
    t0 = time.time()
    first = await set_callback(api, a, 1, t0 + 3)
    await set_callback(api, a, 3, t0 + 30)
    moved = await set_callback(api, a, 3, t0 + 5)
    assert moved["replaced"] == "operator"
    listed = (
        await api.get(f"/campaigns/{a}/callbacks", headers={"Authorization": f"Bearer {VIEWER}"})
    ).json()
    assert [c["contact_id"] for c in listed["callbacks"]] == [1, 3]

    opening = math.ceil(time.time()) + 8
    window = CallingWindow(
        "UTC",
        datetime.fromtimestamp(opening, UTC).time(),
        datetime.fromtimestamp(opening + 3600, UTC).time(),
    )
    hours = CampaignSettings(
        name="callback hours",
        trunk=stack.trunk,
        max_channels=5,
        cps=5.0,
        ring_timeout=5.0,
        window=window,
    )
    _, b = await new_campaign(store, hours, [number(Behaviour.HOLD, 310, hold_s=1)])
    outside = await set_callback(api, b, 1, time.time() + 2)
    assert outside["moved_by_hours"] is True
    assert outside["due_ms"] == opening * 1000

    async with watch_switch(stack, "asterisk") as seen:
        async with running_engine(engine_settings(stack, namespace)):
            assert (await control.start(a)).status is CampaignStatus.RUNNING
            assert (await control.start(b)).status is CampaignStatus.SCHEDULED
            assert (await store.get_contact(a, 1)).status is CallStatus.RESCHEDULED
            await wait_contact(store, a, 2, CallStatus.ANSWERED)  # dialed at once, fresh
            cancelled = await set_callback(api, a, 2, time.time() + 3)
            assert cancelled["previous_status"] == "answered"
            response = await api.delete(f"/campaigns/{a}/contacts/2/callback", headers=HEADERS)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "answered"
            assert response.json()["next_due_ms"] is None
            await wait_contact(store, a, 4, CallStatus.ANSWERED)
            again = await set_callback(api, a, 4, time.time() + 2)
            assert again["previous_status"] == "answered"
            await wait_status(store, a, {CampaignStatus.COMPLETED}, within=30)
            done = time.time()
            await wait_status(store, b, {CampaignStatus.COMPLETED}, within=30)
        await asyncio.sleep(0.3)  # the last events reach the watcher

    due = {
        (a, 1): first["due_ms"] / 1000,
        (a, 3): moved["due_ms"] / 1000,
        (a, 4): again["due_ms"] / 1000,
        (b, 1): outside["due_ms"] / 1000,
    }
    calls: dict[tuple[int, int], list[str]] = {}
    for cid in (a, b):
        for _, rec in await store.records(cid, count=100):
            calls.setdefault((cid, int(rec["contact_id"])), []).append(rec["call_id"])
    # every contact dialed once, contact 4 twice: the cancelled callback of contact 2, due
    # well before the campaign completed, never dialed
    dials = {(a, 1): 1, (a, 2): 1, (a, 3): 1, (a, 4): 2, (b, 1): 1}
    assert {k: len(v) for k, v in calls.items()} == dials
    assert cancelled["due_ms"] / 1000 < done - 0.5
    channels = {
        k: [seen.created_at[c] for c in v if c in seen.created_at] for k, v in calls.items()
    }
    assert {k: len(v) for k, v in channels.items()} == dials  # as the switch saw them
    late = {k: max(channels[k]) - t for k, t in due.items()}
    log.info("callback lateness by the switch's clock (s): %s", late)
    shown = {f"{cid}/{kid}": round(v, 3) for (cid, kid), v in late.items()}
    print(f"\ncallback lateness (s), campaign/contact: {shown}")  # noqa: T201
    for k, lateness in late.items():
        assert -EARLY_S <= lateness <= ON_TIME_S, (k, lateness)
    assert channels[(a, 2)][0] < due[(a, 1)]  # the fresh contact went at once
    assert (await store.get_contact(a, 2)).status is CallStatus.ANSWERED
