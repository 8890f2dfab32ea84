"""Several numbers per contact on the real stack, on each switch: a contact whose main number
is busy and whose mobile answers. The switch sees exactly two channels, in that order (its own
event stamps), the simulator their INVITEs to the two numbers in that order (the mobile dialed
at once: the campaign's default alt_dial "now"), and the records carry both numbers and their
labels. And a number put on a do-not-call list after the contact moved on to it: the switch
never sees it, the claim dials the contact's next number in its place (Asterisk only: the
claim is the switch's business no more than any other claim)."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dialer.domain.altnumbers import AltDial
from dialer.domain.campaign import CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.engine.control import CampaignControl
from dialer.store import ContactInput
from dialer.store.dnc import DncStore
from dialer.store.models import AltNumber, ContactRecord
from dialer.store.redis_store import RedisStore
from ops.localstack.numberplan import Behaviour, number
from tests.integration.engine_helpers import engine_settings, running_engine
from tests.integration.monitor import watch_switch

pytestmark = [pytest.mark.integration, pytest.mark.redis]


_INVITE = re.compile(r"INVITE to=\+?(\d+) ")


def _read(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


async def invites_to(log: Path, numbers: list[str], within: float, *, since: int) -> list[str]:
    """``numbers`` in the order of their INVITEs in the simulator's log, from character
    ``since`` on (the log is the session's: the lines of earlier tests are left out)."""
    wanted = {n.lstrip("+"): n for n in numbers}
    deadline = time.monotonic() + within
    while True:
        text = (await asyncio.to_thread(_read, log))[since:]
        seen = [wanted[m.group(1)] for m in _INVITE.finditer(text) if m.group(1) in wanted]
        if len(seen) >= len(numbers) or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.1)


async def contact_when(
    store: RedisStore, cid: int, done: Callable[[ContactRecord], bool], within: float
) -> ContactRecord:
    """Contact 1 of ``cid`` once ``done`` holds of it (polled; fails after ``within`` s)."""
    deadline = time.monotonic() + within
    while not done(contact := await store.get_contact(cid, 1)):
        assert time.monotonic() < deadline, contact
        await asyncio.sleep(0.05)
    return contact


@pytest.fixture
async def store(stack: Any, namespace: str):
    s = RedisStore.from_url(stack.redis_url, namespace=namespace)
    yield s
    await s.aclose()


async def test_busy_main_then_answering_mobile(
    stack: Any, store: RedisStore, namespace: str, pbx: str
) -> None:
    serial = random.Random().randrange(0, 9000)  # the simulator's log is the session's
    busy, mobile = number(Behaviour.BUSY, serial), number(Behaviour.HOLD, serial + 1, hold_s=1)
    settings = CampaignSettings(
        name="alt numbers",
        trunk=stack.trunk,
        max_channels=2,
        cps=5.0,
        ring_timeout=5.0,
        retry=RetryPolicy(max_attempts=3),  # busy: retried after 300 s, the mobile at once
    )
    log = stack.workdir / "sipp" / "from.log"
    since = len(await asyncio.to_thread(_read, log))
    control = CampaignControl(store)
    cid = await control.create(settings)
    contact = ContactInput(busy, label="home", alternates=(AltNumber(mobile, "mobile"),))
    await control.add_list(cid, [contact])
    async with (
        running_engine(engine_settings(stack, namespace, pbx=pbx)),
        watch_switch(stack, pbx) as seen,
    ):
        assert (await control.start(cid)).status is CampaignStatus.RUNNING
        await contact_when(store, cid, lambda c: c.status is CallStatus.ANSWERED, within=20)
        await seen.wait_until(lambda o: len(o.ended_at) >= 2, within=10)
        await asyncio.sleep(1.0)  # time for a wrong third call to show on the switch
    records = [fields for _, fields in await store.records(cid)]
    assert [(r["phone"], r["phone_label"], r["status"]) for r in records] == [
        (busy, "home", "busy"),
        (mobile, "mobile", "answered"),
    ]
    assert records[0]["next_phone"] == mobile
    # the switch's own view: two channels, created in this order
    by_time = sorted(seen.created_at, key=seen.created_at.__getitem__)
    assert by_time == [r["call_id"] for r in records]
    # and on the SIP wire (the switch's INVITEs, as the simulator logged them), in that order
    assert await invites_to(log, [busy, mobile], within=5, since=since) == [busy, mobile]
    assert seen.answered == {records[1]["call_id"]}
    view = await store.get_contact(cid, 1)
    assert view.attempts == 2
    assert [(n.label, n.tries, n.last_status) for n in view.numbers] == [
        ("home", 1, "busy"),
        ("mobile", 1, "answered"),
    ]


async def test_number_listed_after_the_move_is_never_dialed(
    stack: Any, store: RedisStore, namespace: str
) -> None:
    serial = random.Random().randrange(0, 9000)  # the simulator's log is the session's
    busy, listed = number(Behaviour.BUSY, serial), number(Behaviour.HOLD, serial + 1, hold_s=1)
    work = number(Behaviour.HOLD, serial + 2, hold_s=1)
    settings = CampaignSettings(
        name="alt numbers dnc",
        trunk=stack.trunk,
        max_channels=2,
        cps=5.0,
        ring_timeout=5.0,
        retry=RetryPolicy(max_attempts=3, delays={CallStatus.BUSY: 3.0}),
        alt_dial=AltDial.RETRY_DELAY,  # the mobile waits 3 s: time to list it
    )
    log = stack.workdir / "sipp" / "from.log"
    since = len(await asyncio.to_thread(_read, log))
    control = CampaignControl(store)
    cid = await control.create(settings)
    alternates = (AltNumber(listed, "mobile"), AltNumber(work, "work"))
    await control.add_list(cid, [ContactInput(busy, label="home", alternates=alternates)])
    async with (
        running_engine(engine_settings(stack, namespace, pbx="asterisk")),
        watch_switch(stack, "asterisk") as seen,
    ):
        assert (await control.start(cid)).status is CampaignStatus.RUNNING
        await contact_when(store, cid, lambda c: c.phone == listed, within=10)  # main done
        await DncStore(store).add([listed], cid)
        assert await DncStore(store).mark_dnc_pending(cid) == 0  # left for the claim to skip
        await contact_when(store, cid, lambda c: c.status is CallStatus.ANSWERED, within=15)
        await seen.wait_until(lambda o: len(o.ended_at) >= 2, within=10)
        await asyncio.sleep(1.0)  # time for a wrong third call to show on the switch
    records = [fields for _, fields in await store.records(cid)]
    assert [(r["phone"], r["phone_label"], r["status"]) for r in records] == [
        (busy, "home", "busy"),
        (listed, "mobile", "do_not_call"),
        (work, "work", "answered"),
    ]
    assert (records[1]["rule"], records[1]["next_phone"], records[1]["dial"]) == (
        "dnc:blocked",
        work,
        "0",
    )
    # the listed number's record names the call that dialed in its place
    assert records[1]["call_id"] == records[2]["call_id"] + "-dnc"
    # the switch's own view: one channel for the main number, one for the work number, in
    # this order, none for the listed one
    by_time = sorted(seen.created_at, key=seen.created_at.__getitem__)
    assert by_time == [records[0]["call_id"], records[2]["call_id"]]
    assert seen.answered == {records[2]["call_id"]}
    # and on the SIP wire: INVITEs to the main and work numbers only
    assert await invites_to(log, [busy, listed, work], within=1, since=since) == [busy, work]
    view = await store.get_contact(cid, 1)
    assert view.attempts == 2  # the listed number used none
    assert [(n.label, n.tries, n.last_status) for n in view.numbers] == [
        ("home", 1, "busy"),
        ("mobile", 0, "do_not_call"),
        ("work", 1, "answered"),
    ]
