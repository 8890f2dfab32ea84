"""Faults on the real stack: the PBX dies, Redis restarts, hostile contact data, plan limits."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from dialer.domain.campaign import CampaignSettings, PlanLimits
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.engine.control import PBX_DOWN_REASON, PLAN_LIMIT_REASON
from dialer.errors import UnsafeValue, ValidationError
from dialer.pbx.ami.client import AmiClient
from dialer.pbx.base import OriginateRequest
from dialer.pbx.esl.codec import EslEvent
from dialer.pbx.freeswitch.adapter import FreeSwitchAdapter, FreeSwitchSettings, encode_value
from dialer.pbx.sanitize import channel_variables, safe_value
from dialer.store.models import ContactInput
from dialer.store.redis_store import RedisStore
from ops.localstack import stack as localstack
from ops.localstack.freeswitch import esl_api
from ops.localstack.numberplan import Behaviour, number
from ops.localstack.procs import is_alive
from tests.integration.conftest import ami_settings, freeswitch_missing
from tests.integration.engine_helpers import (
    engine_processes,
    engine_settings,
    new_campaign,
    nonzero,
    running_engine,
    wait_status,
)
from tests.integration.faults_helpers import (
    ensure_switch,
    kill_switch,
    start_switch,
    watching_freeswitch,
)
from tests.integration.monitor import Observed, watch_asterisk, watch_switch

pytestmark = [pytest.mark.integration, pytest.mark.redis]
log = logging.getLogger(__name__)
S = CallStatus


def settings(stack: Any, **kw: Any) -> CampaignSettings:
    base: dict[str, Any] = dict(
        name="faults",
        trunk=stack.trunk,
        max_channels=5,
        cps=10.0,
        ring_timeout=5.0,
        retry=RetryPolicy(max_attempts=2, delays={S.TECHNICAL_ERROR: 0.5}),
    )
    base.update(kw)
    return CampaignSettings(**base)


@pytest.fixture
def stack(faulty_stack: Any) -> Any:
    """These tests kill and restart Asterisk and Redis: never the session's shared stack."""
    return faulty_stack


@pytest.fixture
async def store(stack: Any, namespace: str):
    s = RedisStore.from_url(stack.redis_url, namespace=namespace)
    yield s
    await s.aclose()


# The crash race (README "When a call ends while no engine owns it"): an answer the switch
# stamped just before a SIGKILL may never reach the engine; that call is judged ringing
# (technical error) and redialed. Measured from the answer's stamp to the engine's receipt: at
# most 72 ms on FreeSWITCH, 12 ms on Asterisk, under load; this bound is 7 times that.
ANSWER_RACE_S = 0.5
KILL_SLACK = 0.05  # the kill's time is taken just before the SIGKILL is sent


@pytest.mark.alone  # answers within ANSWER_RACE_S of the kill
async def test_pbx_crash_pauses_campaigns_and_they_resume_when_it_is_back(
    stack: Any, store: RedisStore, namespace: str, pbx: str
) -> None:
    """The switch SIGKILLed with answered calls live: the engine pauses the campaign with the
    reason at once, resumes it when the switch is back (restarted in place), and settles the
    calls the crash cut: answered -> Answered, cut (never redialed), ringing -> redialed.
    Counted on the switch's side too (its own events: one answered channel per number)."""
    phones = [number(Behaviour.HOLD, i, hold_s=2) for i in range(30)]
    control, cid = await new_campaign(store, settings(stack), phones)
    info = localstack.load(stack.workdir) or stack
    seen: list[Observed] = []
    try:
        async with running_engine(engine_settings(stack, namespace, pbx=pbx)) as engine:
            async with watch_switch(info, pbx) as before:  # closed before the switch dies
                seen.append(before)
                await control.start(cid)
                async with asyncio.timeout(20):
                    while (await store.counts(cid))[S.ANSWERED] < 5:
                        await asyncio.sleep(0.05)
            killed_at, killed_epoch = time.monotonic(), time.time()
            kill_switch(info, pbx)  # SIGKILL: calls in flight are cut
            await wait_status(store, cid, {CampaignStatus.PAUSING, CampaignStatus.PAUSED}, within=5)
            paused_after = time.monotonic() - killed_at
            campaign = await store.get_campaign(cid)
            assert campaign.status_reason == PBX_DOWN_REASON
            assert not engine.pbx.connected
            await asyncio.sleep(1.0)
            restarting = time.monotonic()
            info = start_switch(info, pbx)
            back = time.monotonic()
            async with watch_switch(info, pbx) as after:
                seen.append(after)
                await wait_status(store, cid, {CampaignStatus.RUNNING}, within=30)
                recovered = time.monotonic() - back
                await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=90)
    finally:
        info = ensure_switch(info, pbx)
    log.warning(
        "%s SIGKILL: campaign paused %.2f s after the kill; switch restarted in %.2f s; "
        "campaign running again %.2f s after the switch answered",
        pbx, paused_after, back - restarting, recovered,
    )  # fmt: skip
    assert paused_after < 5
    records = [r for _, r in await store.records(cid, count=1000)]
    counts = nonzero(await store.counts(cid))
    # nobody lost; an answered call the crash cut is Answered, cut: final, never redialed
    assert set(counts) <= {S.ANSWERED, S.ANSWERED_CUT}
    assert sum(counts.values()) == 30
    per_contact = Counter(r["contact"] for r in records)
    answered = Counter(r["contact"] for r in records if r["status"] in ("answered", "answered_cut"))
    assert set(answered.values()) == {1}  # nobody answered twice
    cut = [r for r in records if r["status"] not in ("answered",)]
    assert len(cut) <= 5  # at most the calls in flight at the crash were cut
    assert {r["status"] for r in cut} <= {"answered_cut", "technical_error"}
    assert all(r["end_source"] == "lost" and r["originate_failed"] == "0" for r in cut)
    # a call cut while answered keeps what the switch reported (Asterisk: the
    # OriginateResponse's Success, 4; FreeSWITCH reports no such reason) and is not redialed;
    # one cut while ringing is redialed as its dial 2 but still its attempt 1
    answered_cut = [r for r in cut if r["status"] == "answered_cut"]
    reason = "4" if pbx == "asterisk" else ""
    assert all(r["originate_reason"] == reason and r["answered_ms"] for r in answered_cut)
    assert all(per_contact[r["contact"]] == 1 for r in answered_cut)
    redials = {r["contact"] for r in cut if r["status"] == "technical_error"}
    assert sum(per_contact.values()) == 30 + len(redials)
    if redials:
        assert {(r["dial"], r["attempt"]) for r in records if r["contact"] in redials} == {
            ("1", "1"),
            ("2", "1"),
        }
    # the switch's side: every answered channel has its record, no number answered twice
    # (the channels cut by the crash were seen answered by the first watcher)
    phone_of = {r["call_id"]: r["phone"] for r in records}
    per_phone: Counter[str] = Counter()
    for observed in seen:
        per_phone.update(observed.answered_per(phone_of))
    assert "?" not in per_phone, "an answered channel without a record"
    assert len(per_phone) >= 30 - len(cut)  # every call answered after the restart seen too
    # A number answered twice on the switch's side is the crash race and only that: its first
    # call answered on the switch in the last moment before the kill, the answer never reached
    # the engine (the switch writes each event to each connection in turn; SIGKILL drops what
    # it had not written yet), so the engine judged it by what it knew: ringing, redialed.
    answered_at = {cid: at for observed in seen for cid, at in observed.answered_at.items()}
    status_of = {r["call_id"]: r["status"] for r in records}
    late = {  # call id -> its answer on the switch, seconds before the kill
        cid: killed_epoch - answered_at[cid]
        for cid in answered_at
        if per_phone[phone_of[cid]] > 1 and status_of[cid] == "technical_error"
    }
    log.warning(
        "%s crash: %d answered cut, %d ringing redialed, %d numbers answered twice (their "
        "first answer %s s before the kill on the switch's clock); last answers before the "
        "kill: %s s",
        pbx, len(answered_cut), len(redials), sum(1 for n in per_phone.values() if n > 1),
        sorted(round(t, 3) for t in late.values()),
        sorted(round(killed_epoch - t, 3) for t in answered_at.values() if t < killed_epoch)[:5],
    )  # fmt: skip
    assert set(per_phone.values()) <= {1, 2}
    assert len(late) == sum(1 for n in per_phone.values() if n > 1), (late, per_phone)
    assert all(-KILL_SLACK <= t <= ANSWER_RACE_S for t in late.values()), late


async def test_redis_restart_loses_nothing_and_dials_nobody_twice(stack, store, namespace):
    phones = [number(Behaviour.HOLD, i, hold_s=2) for i in range(30)]
    control, cid = await new_campaign(store, settings(stack), phones)
    info = localstack.load(stack.workdir) or stack
    try:
        async with running_engine(engine_settings(stack, namespace)):
            await control.start(cid)
            async with asyncio.timeout(20):
                while (await store.counts(cid))[S.ANSWERED] < 5:
                    await asyncio.sleep(0.05)
            localstack.kill_redis(info)  # SIGTERM: the AOF is written
            await asyncio.sleep(2.0)  # calls end while Redis is away: results wait in memory
            info = localstack.start_redis(info)
            back = time.monotonic()
            await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
            log.info(
                "Redis restart: completed %.1f s after Redis was back", time.monotonic() - back
            )
    finally:
        if not is_alive(info.redis_pid):
            localstack.start_redis(info)
    records = [r for _, r in await store.records(cid, count=1000)]
    assert len(records) == 30
    assert len({r["contact"] for r in records}) == 30
    assert nonzero(await store.counts(cid)) == {S.ANSWERED: 30}


REDIS_CAP = 20
REDIS_LEASE_MS = 3000
REDIS_OUTAGE_S = 6.0  # twice the lease


async def test_redis_killed_longer_than_the_lease_answers_nobody_twice(
    stack: Any, store: RedisStore, namespace: str, tmp_path: Path
) -> None:
    """Issue 15's fault row with short times: two engine processes (3-s leases) at a 20-channel
    cap, Redis SIGKILLed for 6 s while answered calls (3-s holds) end, then restarted in place.

    SIGKILL loses no acknowledged write here: Redis write()s the AOF before it replies, and
    ``appendfsync everysec`` only decides what a power cut (the OS's page cache) loses, so this
    is the row's outage: leases expire while the engines cannot renew them or write results.
    Measured on Asterisk's side: numbers answered twice, channels never above the cap, every
    contact settled with its records, and the time from Redis back to the first new channel."""
    phones = [number(Behaviour.HOLD, i, hold_s=3) for i in range(3 * REDIS_CAP)]
    plan = settings(stack, name="redis-outage", max_channels=REDIS_CAP, cps=50.0)
    control, cid = await new_campaign(store, plan, phones)
    fast = engine_settings(stack, namespace, lease_ms=REDIS_LEASE_MS)
    info = localstack.load(stack.workdir) or stack
    try:
        async with watch_asterisk(ami_settings(stack)) as seen:
            with engine_processes(fast, 2, logs=tmp_path) as procs:
                await asyncio.sleep(1.0)
                await control.start(cid)
                async with asyncio.timeout(20):  # at the cap, most calls answered
                    while (
                        len(seen.created_at) - len(seen.ended_at) < REDIS_CAP
                        or len(seen.answered - set(seen.ended_at)) < REDIS_CAP // 2
                    ):
                        await asyncio.sleep(0.02)
                localstack.kill_redis(info, hard=True)
                killed = time.monotonic()
                live_at_kill = len(seen.created_at) - len(seen.ended_at)
                answered_at_kill = seen.answered - set(seen.ended_at)
                await asyncio.sleep(REDIS_OUTAGE_S)
                ended_in_outage = answered_at_kill & set(seen.ended_at)
                created_in_outage = len(seen.originated_after(killed))
                restarting = time.monotonic()
                info = localstack.start_redis(info)  # returns once Redis answers
                back = time.monotonic()
                await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=90)
                completed = time.monotonic() - back
                assert all(p.poll() is None for p in procs)  # both engines rode it out
                first_new = min(
                    (t for t in seen.new_channels.values() if t > restarting), default=None
                )
    finally:
        if not is_alive(info.redis_pid):
            localstack.start_redis(info)
    records = [r for _, r in await store.records(cid, count=10_000)]
    counts = nonzero(await store.counts(cid))
    per_answered = seen.answered_per({r["call_id"]: r["phone"] for r in records})
    twice = sum(1 for phone, n in per_answered.items() if phone != "?" and n > 1)
    dialed = Counter(r["phone"] for r in records)
    sources = Counter(r["end_source"] for r in records)
    outage_sources = Counter(r["end_source"] for r in records if r["call_id"] in ended_in_outage)
    # the engines reconnect as soon as Redis accepts them, which can be before start_redis
    # returns: measured from the restart, with Redis's own start (AOF replay) in it
    recovery = None if first_new is None else first_new - restarting
    log.warning(
        "Redis SIGKILL %.0f s (lease %.0f s): %d live, %d answered at the kill, %d of them "
        "ended in the outage (their ends: %s), %d channels created in it; answered twice %d, "
        "dialed twice %d, "
        "ends %s, unknown %d, max_live %d, max_channels %d (cap %d), first new channel "
        "%s s after the restart (Redis up in %.2f s), completed %.1f s after",
        REDIS_OUTAGE_S, REDIS_LEASE_MS / 1000, live_at_kill, len(answered_at_kill),
        len(ended_in_outage), dict(outage_sources), created_in_outage, twice,
        sum(1 for n in dialed.values() if n > 1), dict(sources), sources["unknown"],
        seen.max_live, seen.max_channels, REDIS_CAP,
        "none" if recovery is None else f"{recovery:.2f}", back - restarting, completed,
    )  # fmt: skip
    assert ended_in_outage  # the row's case happened: answered calls ended while Redis was away
    assert created_in_outage == 0  # nothing dialed without Redis
    assert "?" not in per_answered, "an answered channel without a record"
    assert twice == 0  # nobody answered twice
    assert seen.max_live <= REDIS_CAP
    assert seen.listings_off() == [], seen.listings_off()
    assert seen.max_listed_live <= REDIS_CAP, seen.max_listed_live  # the switch's own listing
    # nobody lost: every contact final, one record per channel Asterisk made
    assert sum(counts.values()) == len(phones)
    assert counts == {S.ANSWERED: len(phones)}
    assert set(dialed) == set(phones)
    assert len(records) == len(seen.created_at)
    assert sources["unknown"] == 0
    assert recovery is not None


INJECTION = "Mallory\r\nAction: Command\r\nCommand: core stop now\r\n\r\n"


async def test_hostile_contact_data_never_reaches_the_ami_wire(stack, store, namespace):
    contacts = [
        ContactInput(number(Behaviour.HOLD, 0, hold_s=1), {"name": INJECTION}),
        ContactInput(number(Behaviour.HOLD, 1, hold_s=1), {INJECTION: "value"}),
        ContactInput(number(Behaviour.HOLD, 2, hold_s=1), {"x": 'a,b=c\x00"(d)[e]' * 50}),
        ContactInput(number(Behaviour.HOLD, 3, hold_s=1), {"é€😀": "ünïcödé ☎"}),
        ContactInput("+1201\r\nAction: Command", {"name": "bad number"}),
    ]
    control, cid = await new_campaign(store, settings(stack), [])
    with pytest.raises(ValidationError, match="contact 2: variable .* not valid text"):
        await control.add_list(cid, [contacts[0], ContactInput("+12015010001", {"x": "\ud800"})])
    await control.add_list(cid, contacts)
    async with running_engine(engine_settings(stack, namespace)):
        await control.start(cid)
        await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=30)
    assert nonzero(await store.counts(cid)) == {S.ANSWERED: 4, S.INVALID_NUMBER: 1}
    async with AmiClient(ami_settings(stack)) as ami:  # Asterisk is still running
        assert (await ami.send_action("Ping")).response == "Success"
    assert "core stop" not in stack.asterisk_cli("core show uptime").lower()


async def test_plan_limit_pauses_and_stop_marks_the_rest_plan_limit_exceeded(
    stack, store, namespace
):
    phones = [number(Behaviour.HOLD, i, hold_s=1) for i in range(20)]
    plan = settings(stack, max_channels=2, limits=PlanLimits(max_attempts_total=6))
    control, cid = await new_campaign(store, plan, phones)
    async with running_engine(engine_settings(stack, namespace)):
        await control.start(cid)
        await wait_status(store, cid, {CampaignStatus.PAUSED}, within=30)
        campaign = await store.get_campaign(cid)
        assert campaign.status_reason == PLAN_LIMIT_REASON
        await control.resume(cid)  # still over the plan: paused again, nothing dialed
        await wait_status(store, cid, {CampaignStatus.PAUSED}, within=10)
        await control.stop(cid)
        await wait_status(store, cid, {CampaignStatus.CANCELLED}, within=10)
    counts = nonzero(await store.counts(cid))
    dialed = counts[S.ANSWERED]
    assert 6 <= dialed <= 6 + 2  # the limit, plus at most the calls already in flight
    assert counts == {S.ANSWERED: dialed, S.PLAN_LIMIT_EXCEEDED: 20 - dialed}


# FreeSWITCH's own syntax in the places contact data goes: {} and [] blocks, the , between
# variables, ' quoting, =, ${...} expansion (${system(...)} would run a shell command), the
# ^^: array delimiter, the :_: and | dial-string separators, and ESL framing (CR/LF/NUL).
VICTIM = number(Behaviour.HOLD, 99, hold_s=1)  # a number no payload may get dialed


def esl_payloads(marker: str) -> list[str]:
    return [
        f"{marker}\n\nbgapi originate sofia/gateway/carrier/+12015000000 &park()\n\n",
        f"{marker}\r\nContent-Length: 0\r\n\r\nx\x00y",
        f"{marker},DIALER_AMD=1,DIALER_MAX_TALK=1",
        f"{marker}}}sofia/gateway/carrier/+12015000000 &park() {{x=y",
        f"{marker}'x=y',z='",
        f"{marker}=a=b==c",
        f"{marker}${{system(touch /tmp/{marker})}}",
        f"{marker}${{bgapi(originate sofia/gateway/carrier/+12015000000 &park())}}",
        f"^^:{marker}:DIALER_AMD=1:x=y",
        f"{marker}[DIALER_MAX_TALK=1]sofia/x:_:sofia/y|z",
        f"{marker}:_:sofia/gateway/carrier/{VICTIM}",  # :_: separates originate legs
        f"{marker},sofia/gateway/carrier/{VICTIM}|sofia/gateway/carrier/{VICTIM}",
        f"{marker}\\,\\'\\}}%7D%2C%00",
    ]


@pytest.fixture
def freeswitch_only(stack: Any) -> None:
    reason = freeswitch_missing()
    if reason:
        pytest.skip(reason)


def carrying(event: EslEvent, marker: str) -> dict[str, str]:
    """The channel variables (and other headers) of ``event`` whose value holds ``marker``."""
    return {k: v for k, v in event.headers if marker in v}


async def test_hostile_contact_data_never_reaches_the_esl_wire(
    stack: Any, store: RedisStore, namespace: str, freeswitch_only: None
) -> None:
    """FreeSWITCH's own syntax and ESL framing in contact fields (names and values), in the
    campaign's caller id name and in numbers, dialed by the engine on FreeSWITCH. Proved from
    FreeSWITCH's side: each value is in its own channel variable (CHANNEL_HANGUP_COMPLETE) as
    the exact bytes given (the engine turns control characters into spaces first), no other
    variable holds any of it, each call ran the same applications as a harmless one, no other
    channel was made, nothing was expanded (no file, no extra originate) and FreeSWITCH
    still answers."""
    marker = f"dialer-esl-{secrets.token_hex(5)}"
    hostile = esl_payloads(marker)
    caller_name = f"{marker},x='y'}}{{${{uuid}}^^:[a=b]"  # the domain allows 64 characters
    contacts = [ContactInput(number(Behaviour.HOLD, 0, hold_s=1), {"serial": "control"})]
    for i, value in enumerate(hostile, start=1):
        contacts.append(ContactInput(number(Behaviour.HOLD, i, hold_s=1), {"note": value}))
    names = {f"{marker},DIALER_AMD=1": "a", f"x}}{{y=z\r\n{marker}": "b", f"^^:{marker}": "c"}
    contacts.append(ContactInput(number(Behaviour.HOLD, 20, hold_s=1), names))
    # phone -> channel variable -> the exact value: the engine's reduced name, the value with
    # control characters as spaces (dialer/pbx/sanitize.py)
    expected = {c.phone: channel_variables(c.vars) for c in contacts}
    assert len(expected[contacts[-1].phone]) == 3
    for c in contacts:
        for name, value in expected[c.phone].items():
            assert re.fullmatch(r"DIALER_VAR_[A-Za-z0-9_]+", name)
            assert value in {safe_value(v) for v in c.vars.values()}
    bad_numbers = [
        "+1201\r\n\r\nbgapi originate",
        "+12015010001}{x=y",
        "+1201,5010001",
        "[x=y]+12015010001",
        "+12015010001^^:x",
        "+12015010001 &park()",
        "+1201501${system(touch /tmp/x)}",
    ]
    plan = settings(stack, amd=False, caller_id=f'"{caller_name}" <+12015550100>')
    control, cid = await new_campaign(store, plan, [])
    await control.add_list(cid, contacts)
    _, bad_cid = await new_campaign(store, settings(stack, name="bad-numbers"), [])
    refused = 0
    for phone in bad_numbers:  # each alone: the list refuses a bad one or marks it invalid
        try:
            await control.add_list(bad_cid, [ContactInput(phone, {"serial": "bad number"})])
        except ValidationError:
            refused += 1
    async with watching_freeswitch(stack) as seen:
        async with running_engine(engine_settings(stack, namespace, pbx="freeswitch")):
            await control.start(cid)
            await control.start(bad_cid)
            await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
            await wait_status(store, bad_cid, {CampaignStatus.COMPLETED}, within=30)
        await asyncio.sleep(1.0)  # time for anything an expansion would have started
    records = [r for _, r in await store.records(cid, count=1000)]
    counts = nonzero(await store.counts(cid))
    bad_records = [r for _, r in await store.records(bad_cid, count=1000)]
    # a bad number is Invalid number, or what the list made of it: a plain E.164 number
    bad_dialed = {r["call_id"]: r for r in bad_records if r["status"] != "invalid_number"}
    assert all(re.fullmatch(r"\+[0-9]{8,15}", r["phone"]) for r in bad_dialed.values())
    assert not await asyncio.to_thread(Path("/tmp", marker).exists)  # ${system(...)} never ran
    body = esl_api(stack.esl_port, stack.esl_password, "status")
    assert body is not None
    assert "is ready" in body  # FreeSWITCH still answers
    calls = {r["call_id"]: r for r in records if r["phone"] in expected}
    log.warning(
        "hostile data on FreeSWITCH: %d of %d contacts answered, counts %s; bad numbers: %d "
        "of %d refused by the list, %s, dialed as %s; %d channels",
        len(calls), len(contacts), dict(counts), refused, len(bad_numbers),
        dict(Counter(r["status"] for r in bad_records)),
        sorted(r["phone"] for r in bad_dialed.values()), len(seen.created),
    )  # fmt: skip
    assert {r["status"] for r in calls.values()} == {"answered"}
    assert len(calls) == len(contacts)
    # no channel but the calls themselves, each to the number of its record
    assert seen.created == {c: r["phone"] for c, r in [*calls.items(), *bad_dialed.items()]}
    assert set(seen.ended) >= set(calls)
    control_id = next(c for c, r in calls.items() if r["phone"] == contacts[0].phone)
    control_apps = seen.executed[control_id]
    assert control_apps[:3] == ["sched_hangup", "set", "transfer"], control_apps
    for call_id, record in calls.items():
        event = seen.ended[call_id]
        for name, value in expected[record["phone"]].items():  # the exact bytes, alone
            # FreeSWITCH keeps the percent-encoded text the adapter sent (url_decode gives the
            # value back); the watcher reads JSON events, which carry it as it is
            got = event.get(f"variable_{name}")
            assert got == encode_value(value), (name, got)
            assert unquote(got) == value
        assert event.get("variable_DIALER_AMD") == "0"  # the campaign's, not a contact's
        assert event.get("variable_origination_caller_id_name") == encode_value(caller_name)
        assert event.get("variable_origination_caller_id_number") == "+12015550100"
        own = expected[record["phone"]]
        leaked = {  # any other header with a piece of a payload: a split or an expansion
            k
            for k, v in carrying(event, marker).items()
            if encode_value(own.get(k.removeprefix("variable_"), "")) != v
            and v != encode_value(caller_name)
        }
        assert not leaked, {k: event.get(k) for k in leaked}
        # the same dialplan path as the harmless call: nothing else was run
        assert (
            seen.executed[call_id][: len(control_apps)]
            == control_apps[: len(seen.executed[call_id])]
        ), seen.executed[call_id]


async def test_newlines_and_originate_syntax_sent_straight_through_the_adapter(
    stack: Any, freeswitch_only: None
) -> None:
    """The adapter's own checks, without the engine's sanitising in front: ESL framing in api
    arguments is refused before anything is written (the connection carries on), call ids,
    numbers, trunks and variable names outside their grammar are refused, and values with raw
    control characters reach the channel as the exact bytes given."""
    marker = f"dialer-raw-{secrets.token_hex(5)}"
    frame = "\n\nbgapi originate sofia/gateway/carrier/+12015000000 &park()\n\n"
    value = f"{marker}\r\n\x00\x1b}}{{,:_:'=${{uuid}}^^:[x=y]|\\\tend"
    caller = f"{marker}\r\n\x00 Mallory,x=y"
    adapter = FreeSwitchAdapter(FreeSwitchSettings.from_url(stack.esl_url))
    call_id = f"dlr-raw-{secrets.token_hex(4)}"

    def request(**kw: Any) -> OriginateRequest:
        base: dict[str, Any] = dict(
            call_id=call_id,
            trunk=stack.trunk,
            number=number(Behaviour.HOLD, 0, hold_s=1),
            context="dialer-outbound",
            ring_timeout=5.0,
            variables={"DIALER_AMD": "0"},
        )
        base.update(kw)
        return OriginateRequest(**base)

    async with watching_freeswitch(stack) as seen, adapter:
        await adapter.hangup(f"dlr-x{frame}")  # not a call id: nothing sent
        for args in ((f"x{frame}",), ("x\r", "y"), ("x\x00y",)):
            with pytest.raises(UnsafeValue):
                await adapter.esl.api("uuid_kill", *args)
        refused = [
            request(call_id=f"dlr-{frame}"),
            request(number=f"+12015010000{frame}"),
            request(number="+12015010000,sofia/gateway/carrier/+12015000000"),
            request(number="+12015010000:_:sofia/gateway/carrier/+12015000000"),
            request(trunk=f"carrier/+12015000000|sofia/gateway/{stack.trunk}"),
            request(variables={f"x{frame}": "1"}),
            request(variables={"a,b=c": "1"}),
        ]
        for bad in refused:
            with pytest.raises(ValidationError):
                await adapter.originate(bad)
        assert "is ready" in await adapter.esl.api("status")  # the connection carries on
        variables = {"DIALER_AMD": "0", "DIALER_VAR_raw": value}
        await adapter.originate(request(caller_id=caller, variables=variables))
        async with asyncio.timeout(20):
            while call_id not in seen.ended:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
    event = seen.ended[call_id]
    log.warning(
        "adapter straight: %d refused, channels %s, raw value back %r",
        len(refused), sorted(seen.created), event.get("variable_DIALER_VAR_raw"),
    )  # fmt: skip
    assert list(seen.created) == [call_id]  # the one valid call, nothing else
    raw = event.get("variable_DIALER_VAR_raw")
    assert raw == encode_value(value)  # the exact bytes, percent-encoded as sent
    assert raw is not None
    assert unquote(raw) == value
    assert event.get("variable_origination_caller_id_name") == encode_value(caller)
    assert event.get("variable_DIALER_AMD") == "0"
    sent = (encode_value(value), encode_value(caller))
    whole = (*sent, f'"{sent[1]}" <0000000000>')  # FreeSWITCH's own caller_id
    assert not {k: v for k, v in carrying(event, marker).items() if v not in whole}
