"""The engine against the real stack: Redis, Asterisk 22 through AMI, the SIPp carrier simulator."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from dialer.domain.campaign import CampaignSettings
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
    wait_records,
    wait_status,
)
from tests.integration.monitor import watch_asterisk

pytestmark = [pytest.mark.integration, pytest.mark.redis]

S = CallStatus


def settings(stack: Any, **kw: Any) -> CampaignSettings:
    base: dict[str, Any] = dict(
        name="test",
        trunk=stack.trunk,
        max_channels=10,
        cps=20.0,
        ring_timeout=3.0,
        amd=False,
        retry=RetryPolicy(
            max_attempts=2,
            delays={S.BUSY: 0.3, S.NO_ANSWER: 0.3, S.VOICEMAIL: 0.3, S.TECHNICAL_ERROR: 0.3},
            technical_retry_limit=2,
        ),
    )
    base.update(kw)
    return CampaignSettings(**base)


@pytest.fixture
async def store(stack: Any, namespace: str):
    s = RedisStore.from_url(stack.redis_url, namespace=namespace)
    yield s
    await s.aclose()


def ami_settings(stack: Any):
    from dialer.pbx.ami.client import AmiSettings

    return AmiSettings(
        host=stack.ami_host,
        port=stack.ami_port,
        username=stack.ami_watch_username,  # it also receives Newchannel
        secret=stack.ami_secret,
        events="call",
    )


async def records_by_contact(store: RedisStore, cid: int) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for _, rec in await store.records(cid, count=100_000):
        out.setdefault(rec["contact"], []).append(rec)
    return out


# (behaviour, how many contacts, final contact status, attempts per contact)
MIX = [
    (Behaviour.HOLD, 60, S.ANSWERED, 1),
    (Behaviour.BUSY, 40, S.COMPLETED_NO_ANSWER, 2),
    (Behaviour.UNAVAILABLE_480, 40, S.COMPLETED_NO_ANSWER, 2),
    (Behaviour.NOT_FOUND_404, 40, S.INVALID_NUMBER, 1),
    (Behaviour.DECLINE_603, 40, S.REJECTED, 1),
    (Behaviour.RING_NO_ANSWER, 40, S.COMPLETED_NO_ANSWER, 2),
    (Behaviour.UNAVAILABLE_503, 40, S.TECHNICAL_ERROR, 3),
]


async def test_300_contacts_known_mix_end_with_expected_statuses_and_attempts(
    stack, store, namespace
):
    phones, expected_status, expected_attempts = [], Counter[CallStatus](), {}
    serial = 0
    for behaviour, n, status, attempts in MIX:
        for _ in range(n):
            phones.append(number(behaviour, serial, hold_s=1))
            expected_status[status] += 1
            expected_attempts[str(serial)] = (behaviour, attempts)
            serial += 1
    assert len(phones) == 300
    control, cid = await new_campaign(
        store, settings(stack, max_channels=40, cps=60.0, ring_timeout=2.0), phones
    )
    async with running_engine(engine_settings(stack, namespace)):
        await control.start(cid)
        await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=180)

    assert nonzero(await store.counts(cid)) == dict(expected_status)
    by_contact = await records_by_contact(store, cid)
    assert len(by_contact) == 300
    contacts = {}
    for contact_id in by_contact:
        contacts[contact_id] = await store.get_contact(cid, int(contact_id))
    for contact_id, recs in by_contact.items():
        behaviour, attempts = expected_attempts[contacts[contact_id].vars["serial"]]
        assert len(recs) == attempts, (behaviour, recs)
        assert len({r["call_id"] for r in recs}) == attempts
    # The raw values travel into the records.
    sample = {contacts[c].vars["serial"]: recs[0] for c, recs in by_contact.items()}
    busy = next(r for s, r in sample.items() if expected_attempts[s][0] is Behaviour.BUSY)
    assert (busy["q850_cause"], busy["sip_code"], busy["status"]) == ("17", "486", "busy")


@pytest.mark.parametrize("engines", [2, 3])
async def test_engine_processes_share_limits_and_never_dial_a_contact_twice(
    stack, store, namespace, engines
):
    phones = [number(Behaviour.HOLD, i, hold_s=2) for i in range(45)]
    control, cid = await new_campaign(store, settings(stack, max_channels=10, cps=5.0), phones)
    with engine_processes(engine_settings(stack, namespace), engines):
        async with watch_asterisk(ami_settings(stack)) as seen:
            await asyncio.sleep(1.0)  # both processes connected
            await control.start(cid)
            await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=120)
    assert len(seen.new_channels) == 45
    assert len(seen.created_at) == 45  # Asterisk stamped every event (timestampevents)
    assert len(seen.ended_at) == 45
    assert seen.max_live <= 10, seen.max_live  # by Asterisk's own event times
    assert seen.max_live >= 8  # the limit was actually reached (45 calls of 2 s at 5 CPS)
    # the channel list agrees but for a listing that spans a hang-up and its refill (monitor.py)
    assert seen.max_channels <= 11, seen.max_channels
    assert seen.max_in_window(1.0) <= 5, seen.max_in_window(1.0)
    assert seen.max_sample_gap() < 0.25
    records = [r for _, r in await store.records(cid, count=1000)]
    assert len(records) == 45
    assert len({r["contact"] for r in records}) == 45  # nobody dialed twice
    dialers = {r["engine"] for r in records}
    assert dialers <= {f"proc-{i}" for i in range(engines)}
    assert len(dialers) >= 2  # the processes really shared the campaign


async def test_pause_drains_in_flight_and_resume_completes(stack, store, namespace):
    phones = [number(Behaviour.HOLD, i, hold_s=2) for i in range(60)]
    control, cid = await new_campaign(store, settings(stack, max_channels=10, cps=20.0), phones)
    async with (
        running_engine(engine_settings(stack, namespace)),
        watch_asterisk(ami_settings(stack)) as seen,
    ):
        await control.start(cid)
        while len(seen.new_channels) < 15:
            await asyncio.sleep(0.02)
        ack = await control.pause(cid)
        acked_at = time.monotonic()
        assert ack.status in (CampaignStatus.PAUSING, CampaignStatus.PAUSED)
        assert ack.draining > 0
        await wait_status(store, cid, {CampaignStatus.PAUSED}, within=10)
        await asyncio.sleep(0.5)
        assert seen.originated_after(acked_at) == []
        paused_calls = len(seen.new_channels)
        assert 15 <= paused_calls < 60
        assert await wait_records(store, cid, paused_calls, within=5) == paused_calls
        await control.resume(cid)
        await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
    records = [r for _, r in await store.records(cid, count=1000)]
    assert len(records) == 60
    assert len({r["contact"] for r in records}) == 60  # none twice, none lost
    assert nonzero(await store.counts(cid)) == {S.ANSWERED: 60}


async def test_stop_drains_and_marks_the_rest_not_dialed(stack, store, namespace):
    phones = [number(Behaviour.HOLD, i, hold_s=2) for i in range(50)]
    control, cid = await new_campaign(store, settings(stack, max_channels=5, cps=10.0), phones)
    async with (
        running_engine(engine_settings(stack, namespace)),
        watch_asterisk(ami_settings(stack)) as seen,
    ):
        await control.start(cid)
        while len(seen.new_channels) < 8:
            await asyncio.sleep(0.02)
        ack = await control.stop(cid)
        acked_at = time.monotonic()
        await wait_status(store, cid, {CampaignStatus.CANCELLED}, within=10)
        assert seen.originated_after(acked_at) == []
    dialed = len(seen.new_channels)
    assert ack.draining > 0
    assert nonzero(await store.counts(cid)) == {S.ANSWERED: dialed, S.NOT_DIALED: 50 - dialed}
    with pytest.raises(Exception, match="Cancelled"):
        await control.resume(cid)


async def test_stop_with_hangup_ends_live_calls_now(stack, store, namespace):
    phones = [number(Behaviour.WAIT_FOR_BYE, i) for i in range(6)]
    control, cid = await new_campaign(store, settings(stack, max_channels=6, cps=50.0), phones)
    async with (
        running_engine(engine_settings(stack, namespace)),
        watch_asterisk(ami_settings(stack)) as seen,
    ):
        await control.start(cid)
        while not seen.channel_samples or seen.channel_samples[-1][1] < 6:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # answered and talking
        started = time.monotonic()
        await control.stop(cid, hangup=True)
        await wait_status(store, cid, {CampaignStatus.CANCELLED}, within=10)
        assert time.monotonic() - started < 5
    assert nonzero(await store.counts(cid)) == {S.ANSWERED: 6}


async def test_no_channel_failures_carry_the_switch_reason_and_their_own_dial(
    stack, store, namespace
):
    """An endpoint Asterisk does not have: Failure, Reason 0, no channel. Each redial of the
    technical error gets its own dial; none uses an attempt."""
    phones = [number(Behaviour.HOLD, i, hold_s=1) for i in range(2)]
    retry = RetryPolicy(max_attempts=2, delays={S.TECHNICAL_ERROR: 0.1}, technical_retry_limit=1)
    control, cid = await new_campaign(
        store, settings(stack, trunk="no-such-trunk", retry=retry), phones
    )
    async with running_engine(engine_settings(stack, namespace)):
        await control.start(cid)
        await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=30)
    by_contact = await records_by_contact(store, cid)
    assert len(by_contact) == 2
    for recs in by_contact.values():
        seen = [
            (r["dial"], r["attempt"], r["rule"], r["originate_failed"], r["originate_reason"])
            for r in recs
        ]
        assert seen == [
            ("1", "1", "originate_failed", "1", "0"),
            ("2", "1", "originate_failed", "1", "0"),
        ]
    assert nonzero(await store.counts(cid)) == {S.TECHNICAL_ERROR: 2}
