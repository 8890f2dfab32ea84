"""Caller IDs on the SIP wire: the carrier simulator logs the From user of every INVITE.

One campaign per switch, its contacts in four lists: the campaign's rotating pool (dialed by
two engines sharing one rotation), a list with a local-presence pool, a list with a fixed
caller id, and a list whose local pool has no number near the callee (its fallback). What the
simulator saw in each INVITE's From header must be what the dialer chose and recorded.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from dialer.domain.callerid import CallerIdPool, CallerIdSource, PoolMode
from dialer.domain.campaign import CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CampaignStatus
from dialer.engine.control import CampaignControl
from dialer.store.callerid import set_list_caller_id
from dialer.store.models import ContactInput
from dialer.store.redis_store import RedisStore
from ops.localstack.numberplan import Behaviour, number
from ops.localstack.stack import StackInfo
from tests.integration.engine_helpers import engine_settings, running_engine, wait_status

pytestmark = [pytest.mark.integration, pytest.mark.redis]

ROTATION = ("+12015550101", "+13125550102", "+14155550103")
LOCAL = CallerIdPool(("+13125550111", "+12015550122"), PoolMode.LOCAL, fallback="+14155550133")
FAR = CallerIdPool(("+13125550111", "+16175550112"), PoolMode.LOCAL, fallback="+14155550133")
FIXED = '"Support" <+15005550144>'
_LINE = re.compile(r"INVITE to=(\S*) from=(\S*)")


def number_of(caller_id: str) -> str:
    """The number of a caller id (``"Name" <+1...>`` -> ``+1...``)."""
    return caller_id.rpartition("<")[2].rstrip(">")


def from_users(log: Path) -> dict[str, list[str]]:
    """Dialed user (without +) -> the From users of its INVITEs, as the simulator logged them
    (``sipp/from.log`` of the stack: ops.localstack.sipp.SippLayout.from_log)."""
    seen: dict[str, list[str]] = {}
    if log.exists():
        for m in _LINE.finditer(log.read_text(errors="replace")):
            seen.setdefault(m.group(1).lstrip("+"), []).append(m.group(2))
    return seen


async def wait_from_users(log: Path, dialed: list[str], within: float) -> dict[str, list[str]]:
    deadline = time.monotonic() + within
    while True:
        seen = from_users(log)
        if all(d.lstrip("+") in seen for d in dialed) or time.monotonic() > deadline:
            return {d: seen.get(d.lstrip("+"), []) for d in dialed}
        await asyncio.sleep(0.1)


async def test_the_simulator_sees_the_chosen_from_user(
    stack: StackInfo, namespace: str, pbx: str
) -> None:
    store = RedisStore.from_url(stack.redis_url, namespace=namespace)
    base = random.Random().randrange(0, 9000)
    phones = [number(Behaviour.BUSY, base + i) for i in range(12)]
    rotated, local, fixed, far = phones[:9], phones[9:10], phones[10:11], phones[11:]
    settings = CampaignSettings(
        name="caller ids",
        trunk=stack.trunk,
        max_channels=3,
        cps=30.0,
        ring_timeout=5.0,
        caller_id="+15005550100",  # the pool wins over it
        caller_id_pool=CallerIdPool(ROTATION),
        retry=RetryPolicy(max_attempts=1),
    )
    lists: list[int] = []
    control = CampaignControl(store)
    cid = await control.create(settings)
    for group in (rotated, local, fixed, far):
        lid = await store.add_list(cid)
        await store.add_contacts(cid, lid, [ContactInput(p) for p in group])
        lists.append(lid)
    await set_list_caller_id(store, cid, lists[1], CallerIdSource(None, LOCAL))
    await set_list_caller_id(store, cid, lists[2], CallerIdSource(FIXED))
    await set_list_caller_id(store, cid, lists[3], CallerIdSource(None, FAR))

    engines = [engine_settings(stack, namespace, pbx=pbx, engine_id=f"e{i}") for i in (1, 2)]
    async with running_engine(engines[0]), running_engine(engines[1]):
        await control.start(cid)
        await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
    records = [r for _, r in await store.records(cid, count=100)]
    await store.aclose()
    wire = await wait_from_users(stack.workdir / "sipp" / "from.log", phones, within=10)

    # one call per contact (no retry); its INVITE (and any retransmission) with one From user
    assert sorted(r["phone"] for r in records) == sorted(phones)
    assert all(len(set(users)) == 1 for users in wire.values()), wire
    seen = {phone: users[0] for phone, users in wire.items()}
    recorded = {r["phone"]: r["caller_id"] for r in records}
    for phone in phones:  # what the dialer recorded is what the callee's side saw
        assert seen[phone] == number_of(recorded[phone]), (phone, seen[phone], recorded[phone])
    # the shared rotation: 9 calls over 3 numbers, by two engines -> 3 each
    assert Counter(recorded[p] for p in rotated) == {n: 3 for n in ROTATION}
    assert Counter(seen[p] for p in rotated) == {n: 3 for n in ROTATION}
    assert [seen[p] for p in local] == ["+12015550122"]  # 201 = the callee's area
    assert [recorded[p] for p in fixed] == [FIXED]
    assert [seen[p] for p in fixed] == ["+15005550144"]
    assert [seen[p] for p in far] == ["+14155550133"]  # no 201 number: the fallback
