"""An engine process killed (SIGKILL) with calls in flight: another engine settles them.

On both switches (``pbx``): the survivor finds the orphans in the switch's own channel list
(Asterisk ``CoreShowChannels``, FreeSWITCH ``show channels as json``), adopts them by their
unique id (the call id: ``ChannelId`` / ``origination_uuid``) and follows them to their end.
Checked from the switch's side too: one channel per number, every channel with its record.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import Counter
from typing import Any

import pytest

from dialer.domain.campaign import CampaignSettings
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
from tests.integration.monitor import watch_switch

pytestmark = [pytest.mark.integration, pytest.mark.redis]
log = logging.getLogger(__name__)


async def test_killed_engine_calls_are_adopted_and_nobody_is_dialed_twice(
    stack: Any, namespace: str, pbx: str
) -> None:
    store = RedisStore.from_url(stack.redis_url, namespace=namespace)
    phones = [number(Behaviour.HOLD, i, hold_s=4) for i in range(12)]
    settings = CampaignSettings(
        name="crash", trunk=stack.trunk, max_channels=6, cps=50.0, ring_timeout=5.0
    )
    control, cid = await new_campaign(store, settings, phones)
    fast = engine_settings(stack, namespace, pbx=pbx, lease_ms=1500)
    try:
        async with watch_switch(stack, pbx) as seen:
            with engine_processes(fast, 1) as (victim,):
                await asyncio.sleep(1.0)
                await control.start(cid)
                async with asyncio.timeout(10):  # the victim's 6 calls answered on the switch
                    while len(seen.answered - set(seen.ended_at)) < 6:
                        await asyncio.sleep(0.02)
                os.kill(victim.pid, signal.SIGKILL)  # 6 answered calls in flight, owner gone
                killed = time.monotonic()
                victim.wait(5)
            live_at_kill = {c for c in seen.created_at if c not in seen.ended_at}
            counts = nonzero(await store.counts(cid))
            assert counts.get(CallStatus.IN_PROGRESS) == 6
            async with running_engine(fast):
                await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
            settled = time.monotonic() - killed
        records = [r for _, r in await store.records(cid, count=100)]
        final_counts = nonzero(await store.counts(cid))
    finally:
        await store.aclose()
    per_answered = seen.answered_per({r["call_id"]: r["phone"] for r in records})
    adopted = [r for r in records if r["engine"] != "proc-0"]
    log.warning(
        "%s: engine SIGKILL with %d calls live on the switch; %d records by the survivor, "
        "switch channels %d, answered per number %s, ends of the adopted calls %s, "
        "all settled %.1f s after the kill",
        pbx, len(live_at_kill), len(adopted), len(seen.created_at),
        sorted(set(per_answered.values())),
        dict(Counter(r["end_source"] for r in records if r["call_id"] in live_at_kill)), settled,
    )  # fmt: skip
    assert len(live_at_kill) == 6  # the switch held the victim's 6 answered calls
    assert len(records) == 12
    assert len({r["contact"] for r in records}) == 12  # none dialed twice, none lost
    assert final_counts == {CallStatus.ANSWERED: 12}
    assert len(adopted) >= 6  # the orphans were followed to their end by the survivor
    # the switch's side: 12 channels, each answered once, one per number, each with a record
    assert len(seen.created_at) == 12
    assert "?" not in per_answered, "an answered channel without a record"
    assert per_answered == {p: 1 for p in phones}
    adopted_ids = {r["call_id"] for r in adopted}
    assert live_at_kill <= adopted_ids  # every call live at the kill was settled by the survivor
    assert {r["end_source"] for r in records if r["call_id"] in live_at_kill} <= {"events", "seen"}
