"""Recycling on the real stack (Asterisk and FreeSWITCH): a campaign whose contacts end busy,
unanswered and answered completes; its busy and unanswered contacts are recycled into a new
Draft campaign, which dials exactly those numbers: counted on the switch (its channels, by its
own events) and on the SIP wire (the callee simulator's INVITE log), while the first
campaign's history stays.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest

from dialer.domain.campaign import CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store.recycle import recycle_list
from dialer.store.redis_store import RedisStore
from ops.localstack.numberplan import Behaviour, number
from ops.localstack.stack import StackInfo
from tests.integration.engine_helpers import (
    engine_settings,
    new_campaign,
    running_engine,
    wait_status,
)
from tests.integration.monitor import watch_switch

pytestmark = [pytest.mark.integration, pytest.mark.redis]

C = CallStatus
_INVITE = re.compile(r"INVITE to=(\S*) from=")


def invites_since(log: Path, offset: int) -> list[str]:
    """Dialed users (without +) of the INVITEs the simulator logged after byte ``offset``."""
    if not log.exists():
        return []
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return [m.group(1).lstrip("+") for m in _INVITE.finditer(text)]


async def test_recycled_list_dials_exactly_the_chosen(
    stack: StackInfo, namespace: str, pbx: str
) -> None:
    store = RedisStore.from_url(stack.redis_url, namespace=namespace)
    base = random.Random().randrange(0, 9000)
    busy = [number(Behaviour.BUSY, base + i) for i in range(2)]
    unanswered = [number(Behaviour.UNAVAILABLE_480, base + i) for i in range(2, 4)]
    answered = [number(Behaviour.HOLD, base + i, hold_s=1) for i in range(4, 6)]
    settings = CampaignSettings(
        name="recycle",
        trunk=stack.trunk,
        max_channels=6,
        cps=30.0,
        ring_timeout=5.0,
        retry=RetryPolicy(max_attempts=1),
    )
    control, cid = await new_campaign(store, settings, [*busy, *unanswered, *answered])
    engine = engine_settings(stack, namespace, pbx=pbx)
    log = stack.workdir / "sipp" / "from.log"
    async with running_engine(engine):
        await control.start(cid)
        await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
        first = {r["phone"]: r["status"] for _, r in await store.records(cid)}
        assert first == {
            **dict.fromkeys(busy, "busy"),
            **dict.fromkeys(unanswered, "no_answer"),
            **dict.fromkeys(answered, "answered"),
        }
        report = await recycle_list(store, cid, 1, frozenset({C.BUSY, C.NO_ANSWER}), into="new")
        assert report.recycled == 4
        new = report.campaign
        offset = log.stat().st_size if log.exists() else 0
        async with watch_switch(stack, pbx) as seen:
            await control.start(new)
            await wait_status(store, new, {CampaignStatus.COMPLETED}, within=60)
            records = [r for _, r in await store.records(new)]
            await seen.wait_until(lambda o: len(o.ended_at) >= len(records), within=10)
    # the switch made one channel per recycled contact, no more
    calls = {r["call_id"] for r in records}
    assert set(seen.created_at) == calls
    assert len(calls) == 4
    # and the callee side got INVITEs for exactly the recycled numbers
    wire = Counter(invites_since(log, offset))
    assert set(wire) == {p.lstrip("+") for p in [*busy, *unanswered]}
    assert sorted(r["phone"] for r in records) == sorted([*busy, *unanswered])
    # history: the first campaign's records and statuses stay; each copy names its original
    assert len(await store.records(cid)) == 6
    assert (await store.counts(cid))[C.ANSWERED] == 2
    links = {}
    for contact_id in range(1, 5):
        raw = await store.client.hget(store.keys.contact(new, contact_id), "recycled_from")
        assert isinstance(raw, bytes)
        assert raw.startswith(f"{cid}:".encode())
        old = int(raw.split(b":")[1])
        links[(await store.get_contact(new, contact_id)).phone] = (
            await store.get_contact(cid, old)
        ).phone
    assert all(phone == original for phone, original in links.items())
    await store.aclose()
