"""Callbacks set by people: the rules (domain), callback.lua against the session's real
redis-server (claims, cancel, listing), and the race with a claim in flight."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, time, timedelta
from importlib import resources
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from dialer.domain.callbacks import (
    CALLBACK_CAMPAIGN_STATUSES,
    CallbackSource,
    plan_callback,
)
from dialer.domain.campaign import CampaignSettings
from dialer.domain.hours import OUTSIDE_HOURS, CallingWindow
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.engine.callbacks import CallbackCommands
from dialer.engine.control import CampaignControl
from dialer.errors import NotFound, TransitionRefused, ValidationError
from dialer.store import RedisStore
from dialer.store.callbacks import SCAN_SLICE, CallbackChange, CallbackInCall, CallbackStore
from dialer.store.keys import contact_member
from ops.localstack.redis_server import RedisServer, RedisUsers
from tests.unit.store_helpers import claim, contacts, finish

C = CallStatus
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC).timestamp()  # a Monday, 10:00 UTC
OFFICE = CallingWindow("Europe/Paris", time(9), time(18), frozenset(range(5)))


def settings(**changes: object) -> CampaignSettings:
    base = CampaignSettings(name="cb", trunk="trunk1", max_channels=5, cps=5.0)
    return CampaignSettings.from_dict({**base.to_dict(), **changes})


# -- the rules ---------------------------------------------------------------------------------


def test_plan_keeps_a_time_inside_the_hours() -> None:
    plan = plan_callback("2026-12-07T15:00:00+01:00", now=NOW, settings=settings())
    assert plan.due == plan.requested == NOW + 4 * 3600
    assert not plan.moved


def test_plan_moves_a_time_outside_the_hours_to_the_next_opening() -> None:
    s = settings(window=OFFICE.to_dict())
    plan = plan_callback("2026-12-07T20:30:00+01:00", now=NOW, settings=s)  # Monday evening
    assert plan.moved
    assert plan.reason.startswith(OUTSIDE_HOURS)
    assert plan.due == datetime(2026, 12, 8, 8, 0, tzinfo=UTC).timestamp()  # Tue 09:00 Paris
    friday = plan_callback("2026-12-11T19:00:00+01:00", now=NOW, settings=s)
    assert friday.due == datetime(2026, 12, 14, 8, 0, tzinfo=UTC).timestamp()  # Monday


@pytest.mark.parametrize(
    ("at", "problem"),
    [
        ("2026-12-07T10:59:00+01:00", "in the past"),  # 09:59 UTC, now 10:00 UTC
        ("2026-12-07T15:00:00", "UTC offset"),
        ("tomorrow", "ISO 8601"),
        (42, "ISO 8601"),
        ("2027-02-01T10:00:00Z", "end date"),
    ],
)
def test_plan_refuses(at: object, problem: str) -> None:
    s = settings(ends_at="2027-01-01T00:00:00+00:00")
    with pytest.raises(ValidationError, match=problem):
        plan_callback(at, now=NOW, settings=s)


def test_plan_refuses_a_time_with_no_opening_before_the_end_date() -> None:
    s = settings(window=OFFICE.to_dict(), ends_at="2026-12-07T20:00:00+00:00")
    with pytest.raises(ValidationError, match="no opening"):
        plan_callback("2026-12-07T19:30:00+00:00", now=NOW, settings=s)


def test_plan_grace_for_clocks() -> None:
    plan = plan_callback(datetime.fromtimestamp(NOW - 0.5, UTC), now=NOW, settings=settings())
    assert plan.due == NOW
    assert not plan.moved


# -- callback.lua --------------------------------------------------------------------------------


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def running(
    store: RedisStore, n: int, status: CampaignStatus = CampaignStatus.RUNNING
) -> int:
    cid = await store.create_campaign("cb", "trunk1", json.dumps(settings().to_dict()))
    list_id = await store.add_list(cid)
    await store.add_contacts(cid, list_id, contacts(n))
    if status is not CampaignStatus.DRAFT:
        await store.transition(cid, {CampaignStatus.DRAFT}, status)
    return cid


async def queue_of(store: RedisStore, cid: int, kid: int) -> tuple[float | None, float | None]:
    member = contact_member(kid)
    return (
        await store.client.zscore(store.keys.pending(cid), member),
        await store.client.zscore(store.keys.retries(cid), member),
    )


async def schedule(
    cb: CallbackStore, cid: int, kid: int, due_ms: int, *, only_move: bool = False
) -> CallbackChange:
    return await cb.schedule(
        cid,
        kid,
        due_ms=due_ms,
        requested_ms=due_ms,
        allowed=CALLBACK_CAMPAIGN_STATUSES,
        only_move=only_move,
    )


@pytest.mark.redis
async def test_a_callback_is_not_claimed_before_its_time(store: RedisStore) -> None:
    cid = await running(store, 1)
    cb = CallbackStore(store)
    due = await cb.now_ms() + 400
    change = await schedule(cb, cid, 1, due)
    assert (change.before, change.after, change.due_ms) == (C.PENDING, C.RESCHEDULED, due)
    contact = await store.get_contact(cid, 1)
    assert (contact.status, contact.next_due_ms) == (C.RESCHEDULED, due)
    assert await queue_of(store, cid, 1) == (due, due)
    assert (await store.counts(cid))[C.RESCHEDULED] == 1
    early = await claim(store, cid, "early")
    assert early.kind == "empty"
    assert early.next_due_ms == due
    while (r := await claim(store, cid, "due")).kind != "ok":
        assert r.kind == "empty"
        await asyncio.sleep(0.005)
    assert r.contact_id == 1
    assert r.server_ms >= due


@pytest.mark.redis
async def test_a_callback_goes_before_fresh_contacts(store: RedisStore) -> None:
    cid = await running(store, 5)
    cb = CallbackStore(store)
    await schedule(cb, cid, 4, await cb.now_ms())
    first = await claim(store, cid, "c1")
    assert first.contact_id == 4  # retries_first: a due callback counts as a retry


@pytest.mark.redis
async def test_cancel_returns_a_fresh_contact_to_its_place(store: RedisStore) -> None:
    cid = await running(store, 2)
    cb = CallbackStore(store)
    before = await queue_of(store, cid, 2)
    due = await cb.now_ms() + 60_000
    await schedule(cb, cid, 2, due)
    await schedule(cb, cid, 2, due + 1000)  # moved: the earlier state is kept
    change = await cb.cancel(cid, 2, dialplan_status=C.ANSWERED, allowed=CALLBACK_CAMPAIGN_STATUSES)
    assert (change.before, change.after, change.source_before) == (
        C.RESCHEDULED,
        C.PENDING,
        CallbackSource.OPERATOR,
    )
    assert await queue_of(store, cid, 2) == (before[0], None)
    assert (await store.get_contact(cid, 2)).status is C.PENDING
    counts = await store.counts(cid)
    assert (counts[C.PENDING], counts[C.RESCHEDULED]) == (2, 0)
    with pytest.raises(TransitionRefused, match="no callback"):
        await cb.cancel(cid, 2, dialplan_status=C.ANSWERED, allowed=CALLBACK_CAMPAIGN_STATUSES)


@pytest.mark.redis
async def test_cancel_returns_a_final_contact_to_its_final_status(store: RedisStore) -> None:
    cid = await running(store, 1)
    cb = CallbackStore(store)
    r = await claim(store, cid, "a1")
    assert await finish(store, cid, "a1", r.contact_id, C.ANSWERED)
    await schedule(cb, cid, 1, await cb.now_ms() + 60_000)
    change = await cb.cancel(cid, 1, dialplan_status=C.ANSWERED, allowed=CALLBACK_CAMPAIGN_STATUSES)
    assert (change.after, change.due_ms) == (C.ANSWERED, None)
    assert await queue_of(store, cid, 1) == (None, None)


@pytest.mark.redis
async def test_cancel_of_a_dialplan_callback_ends_answered(store: RedisStore) -> None:
    cid = await running(store, 1)
    cb = CallbackStore(store)
    r = await claim(store, cid, "d1")
    due = r.server_ms + 3_600_000
    assert await finish(store, cid, "d1", 1, C.RESCHEDULED, retry_at_ms=due)
    (view,) = await cb.upcoming(cid)
    assert (view.source, view.due_ms, view.requested_ms) == (CallbackSource.DIALPLAN, due, due)
    change = await cb.cancel(cid, 1, dialplan_status=C.ANSWERED, allowed=CALLBACK_CAMPAIGN_STATUSES)
    assert (change.source_before, change.after) == (CallbackSource.DIALPLAN, C.ANSWERED)
    assert await queue_of(store, cid, 1) == (None, None)


@pytest.mark.redis
async def test_earlier_state_goes_stale_once_the_callback_dialed(store: RedisStore) -> None:
    """Operator callback (from pending) dials; the dialplan sets a new one: its cancel ends
    Answered, not back to pending. A claim released undialed keeps the earlier state."""
    cid = await running(store, 1)
    cb = CallbackStore(store)
    await schedule(cb, cid, 1, await cb.now_ms())
    r = await claim(store, cid, "rel")
    assert await store.release(cid, "trunk1", "rel", 1)  # not dialed: dial given back
    (view,) = await cb.upcoming(cid)
    assert view.source is CallbackSource.OPERATOR
    r = await claim(store, cid, "dialed")
    assert r.contact_id == 1
    assert await finish(store, cid, "dialed", 1, C.RESCHEDULED, retry_at_ms=r.server_ms + 9_000)
    change = await cb.cancel(cid, 1, dialplan_status=C.ANSWERED, allowed=CALLBACK_CAMPAIGN_STATUSES)
    assert (change.source_before, change.after) == (CallbackSource.DIALPLAN, C.ANSWERED)


@pytest.mark.redis
async def test_refusals(store: RedisStore) -> None:
    cid = await running(store, 3)
    cb = CallbackStore(store)
    now = await cb.now_ms()
    r = await claim(store, cid, "busy")
    with pytest.raises(CallbackInCall, match="being dialed now"):
        await schedule(cb, cid, r.contact_id, now + 5000)
    with pytest.raises(NotFound):
        await schedule(cb, cid, 99, now + 5000)
    with pytest.raises(NotFound):
        await schedule(cb, 999_999, 1, now + 5000)
    with pytest.raises(TransitionRefused, match="no callback"):
        await schedule(cb, cid, 2, now + 5000, only_move=True)
    await store.client.sadd(store.keys.global_dnc, contacts(3)[2].phone)
    with pytest.raises(TransitionRefused, match="do-not-call"):
        await schedule(cb, cid, 3, now + 5000)
    await store.transition(cid, {CampaignStatus.RUNNING}, CampaignStatus.CANCELLING)
    with pytest.raises(TransitionRefused, match="Cancelling"):
        await schedule(cb, cid, 2, now + 5000)
    assert (await store.get_contact(cid, 2)).status is C.PENDING  # nothing changed


@pytest.mark.redis
async def test_a_claim_in_flight_and_a_callback_never_both_win(store: RedisStore) -> None:
    """Many rounds of a claim racing a callback on a one-contact campaign: either the claim
    takes the contact (the callback gets 409) or the callback moves it (the claim finds
    nothing due) -- never both, never neither."""
    cb = CallbackStore(store)
    wins = {"claim": 0, "callback": 0}
    for i in range(40):
        cid = await running(store, 1)
        due = await cb.now_ms() + 60_000
        if i % 2 == 0:  # either goes first on the wire
            claiming = asyncio.ensure_future(claim(store, cid, f"race{i}"))
            setting = asyncio.ensure_future(schedule(cb, cid, 1, due))
        else:
            setting = asyncio.ensure_future(schedule(cb, cid, 1, due))
            claiming = asyncio.ensure_future(claim(store, cid, f"race{i}"))
        await asyncio.wait([claiming, setting])
        claimed = claiming.result()
        scheduled = setting.exception() or setting.result()
        took = claimed.kind == "ok"
        moved = not isinstance(scheduled, BaseException)
        assert took != moved, (claimed, scheduled)
        if took:
            assert isinstance(scheduled, CallbackInCall)
            assert (await store.get_contact(cid, 1)).status is C.IN_PROGRESS
        else:
            assert (await store.get_contact(cid, 1)).status is C.RESCHEDULED
            assert await queue_of(store, cid, 1) == (due, due)
        wins["claim" if took else "callback"] += 1
    assert sum(wins.values()) == 40
    assert wins["claim"], wins  # both outcomes were exercised
    assert wins["callback"], wins


@pytest.mark.redis
async def test_listing_keeps_callbacks_only_in_due_order(store: RedisStore) -> None:
    cid = await running(store, 6)
    cb = CallbackStore(store)
    now = await cb.now_ms()
    await claim(store, cid, "retry")  # contact 1: a plain retry, not listed
    assert await finish(store, cid, "retry", 1, C.RETRY_SCHEDULED, retry_at_ms=now + 1000)
    await schedule(cb, cid, 5, now + 30_000)
    await schedule(cb, cid, 3, now + 20_000)
    await schedule(cb, cid, 4, now + 40_000)
    views = await cb.upcoming(cid)
    assert [v.contact_id for v in views] == [3, 5, 4]
    assert [v.contact_id for v in await cb.upcoming(cid, limit=2)] == [3, 5]
    assert [v.contact_id for v in await cb.upcoming(cid, after_ms=now + 20_000)] == [5, 4]
    assert views[0].phone == contacts(6)[2].phone
    with pytest.raises(NotFound):
        await cb.upcoming(999_999)


# -- the commands (domain + store) ---------------------------------------------------------------


@pytest.mark.redis
async def test_commands_use_the_campaign_hours(store: RedisStore) -> None:
    """A window that is closed right now: the callback moves to its next opening."""
    now = datetime.now(UTC)
    start = (now + timedelta(hours=2)).time().replace(microsecond=0, second=0)
    end = (now + timedelta(hours=3)).time().replace(microsecond=0, second=0)
    window = {"timezone": "UTC", "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}
    cid = await store.create_campaign("cb", "trunk1", json.dumps(settings(window=window).to_dict()))
    await store.add_contacts(cid, await store.add_list(cid), contacts(1))
    commands = CallbackCommands(store)
    result = await commands.schedule(cid, 1, (now + timedelta(minutes=5)).isoformat())
    assert result.plan.moved
    opening = datetime.combine(now.date(), start, UTC)
    if opening < now:
        opening += timedelta(days=1)
    assert result.plan.due_ms == int(opening.timestamp() * 1000)
    assert (await store.get_contact(cid, 1)).next_due_ms == result.plan.due_ms
    with pytest.raises(ValidationError, match="in the past"):
        await commands.schedule(cid, 1, (now - timedelta(minutes=5)).isoformat())
    change = await commands.cancel(cid, 1)
    assert change.after is C.PENDING


@pytest.mark.redis
async def test_a_draft_holding_only_callbacks_may_start(store: RedisStore) -> None:
    cid = await running(store, 1, CampaignStatus.DRAFT)
    commands = CallbackCommands(store)
    await commands.schedule(cid, 1, datetime.now(UTC) + timedelta(minutes=5))
    assert (await CampaignControl(store).start(cid)).status is CampaignStatus.RUNNING


@pytest.mark.redis
async def test_every_path_runs_under_the_dialer_acl(tmp_path: Path, namespace: str) -> None:
    """ops/redis/users.acl: the dialer user may run every branch of callback.lua and the
    listing (a command outside the ACL fails inside the script only when its branch runs)."""
    server = RedisServer(workdir=tmp_path / "redis-acl", users=RedisUsers.generate())
    server.start()
    store = RedisStore.from_url(server.url, namespace=namespace)
    try:
        cid = await running(store, 3)
        cb = CallbackStore(store)
        now = await cb.now_ms()
        await schedule(cb, cid, 1, now + 60_000)
        await schedule(cb, cid, 1, now + 70_000, only_move=True)
        assert [v.contact_id for v in await cb.upcoming(cid)] == [1]
        allowed = CALLBACK_CAMPAIGN_STATUSES
        assert (await cb.cancel(cid, 1, dialplan_status=C.ANSWERED, allowed=allowed)).after is (
            C.PENDING
        )
        r = await claim(store, cid, "acl1")
        assert await finish(store, cid, "acl1", r.contact_id, C.RESCHEDULED, retry_at_ms=now + 9)
        await schedule(cb, cid, r.contact_id, now + 80_000)  # moves a dialplan callback
        change = await cb.cancel(cid, r.contact_id, dialplan_status=C.ANSWERED, allowed=allowed)
        assert change.after is C.ANSWERED
        await store.stop_list(cid, 1, C.NOT_DIALED)
        with pytest.raises(TransitionRefused, match="stopped"):
            await schedule(cb, cid, 2, now + 60_000)
    finally:
        await store.aclose()
        server.stop()


def test_lua_literals_are_the_python_values() -> None:
    """The statuses and sources callback.lua spells out are CallStatus / CallbackSource values."""
    source = resources.files("dialer.store").joinpath("lua", "callback.lua").read_text("utf-8")
    code = "\n".join(line.split("--", 1)[0] for line in source.split("]]", 1)[1].splitlines())
    literals = set(re.findall(r"'([a-z_]+)'", code))
    words = {s.value for s in CallStatus} | {s.value for s in CallbackSource}
    commands = {"set", "move", "cancel"}
    refusals = {"no_campaign", "campaign", "no_contact", "in_call", "list_stopped", "no_callback"}
    fields = {"status", "list", "phone", "next_due_ms", "last_call", "dials", "ok", "zg"}
    fields |= {f for f in literals if f.startswith("cb_")}
    assert {"rescheduled", "in_progress", "do_not_call", "pending", "operator"} <= literals
    assert literals - commands - refusals - fields <= words, literals - words


@pytest.mark.redis
async def test_listing_spans_several_slices_of_the_retries_queue(store: RedisStore) -> None:
    """More queued retries than one script call reads: the callbacks among them, in order."""
    n = 3 * SCAN_SLICE + 7
    cid = await running(store, n)
    cb = CallbackStore(store)
    now = await cb.now_ms()
    k = store.keys
    async with store.client.pipeline(transaction=False) as pipe:
        for kid in range(1, n + 1):  # every contact a plain retry, due in order
            member = contact_member(kid)
            pipe.zadd(k.pending(cid), {member: now + 60_000 + kid})
            pipe.zadd(k.retries(cid), {member: now + 60_000 + kid})
            pipe.hset(k.contact(cid, kid), mapping={"status": "retry_scheduled"})
        await pipe.execute()
    chosen = [3, SCAN_SLICE - 1, SCAN_SLICE + 1, 2 * SCAN_SLICE + 5, n]
    for kid in reversed(chosen):  # each keeps its place in the queue
        await schedule(cb, cid, kid, now + 60_000 + kid)
    assert [v.contact_id for v in await cb.upcoming(cid)] == chosen
    assert [v.contact_id for v in await cb.upcoming(cid, limit=3)] == chosen[:3]
    after = now + 60_000 + SCAN_SLICE + 1
    assert [v.contact_id for v in await cb.upcoming(cid, after_ms=after)] == chosen[3:]
