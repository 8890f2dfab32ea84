"""breaker_report.lua and claim.lua's breaker gate on a real redis-server: every row of the
domain's transition table, the refusals, the single probe, the attempts given back."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources

import pytest
import redis.asyncio as aioredis

from dialer.domain.breaker import (
    BREAKER_TRANSITIONS,
    BreakerEvent,
    BreakerLimits,
    BreakerState,
    Signal,
)
from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store import RedisStore
from dialer.store.breaker import BreakerStore, report_of
from dialer.store.models import ClaimBatch
from ops.localstack.redis_server import RedisServer
from tests.unit.api_helpers import VIEWER, api_client
from tests.unit.store_helpers import running_campaign

pytestmark = pytest.mark.redis

S, E, C = BreakerState, BreakerEvent, CallStatus
TRUNK = "trunk1"
LIMITS = BreakerLimits(failure_run=2, silent_run=3, cooldown=60.0, probe_timeout=30.0)


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


@pytest.fixture
def breakers(store: RedisStore) -> BreakerStore:
    return BreakerStore(store)


async def claim(store: RedisStore, cid: int, *ids: str) -> ClaimBatch:
    return await store.claim_batch(
        cid,
        TRUNK,
        list(ids),
        "e1",
        lease_ms=10_000,
        max_channels=None,
        trunk_max_channels=None,
        cps=None,
        trunk_cps=None,
    )


async def set_state(store: RedisStore, state: BreakerState, **fields: object) -> None:
    values: dict[str, object] = {"state": state.value, "probe_ms": LIMITS.probe_timeout_ms}
    values.update(fields)
    await store.client.hset(store.keys.trunk_breaker(TRUNK), mapping=values)  # type: ignore[arg-type]


async def report(breakers: BreakerStore, *signals: tuple[str, Signal]) -> BreakerState:
    done = await breakers.report(TRUNK, [(c, s, True) for c, s in signals], LIMITS)
    return done.state


# -- every row of BREAKER_TRANSITIONS, made to happen in the scripts ---------------------------

Scenario = Callable[[RedisStore, BreakerStore], Awaitable[BreakerState]]


async def _closed_ok(store: RedisStore, b: BreakerStore) -> BreakerState:
    await report(b, ("c1", Signal.SILENT), ("c2", Signal.FAILURE))
    state = await report(b, ("c3", Signal.OK))
    view = await b.view(TRUNK)
    assert (view.silent_run, view.fail_run) == (0, 0)
    return state


async def _closed_failure(store: RedisStore, b: BreakerStore) -> BreakerState:
    state = await report(b, ("c1", Signal.FAILURE))
    view = await b.view(TRUNK)
    assert (view.silent_run, view.fail_run) == (1, 1)
    return state


async def _closed_silent(store: RedisStore, b: BreakerStore) -> BreakerState:
    state = await report(b, ("c1", Signal.SILENT), ("c2", Signal.SILENT))
    view = await b.view(TRUNK)
    assert (view.silent_run, view.fail_run) == (2, 0)
    return state


async def _closed_trip(store: RedisStore, b: BreakerStore) -> BreakerState:
    done = await b.report(
        TRUNK, [(f"c{i}", Signal.SILENT, True) for i in range(LIMITS.silent_run)], LIMITS
    )
    assert done.trips == 1
    view = await b.view(TRUNK)
    assert view.reason == "3 calls in a row reached nobody"
    assert view.retry_ms - view.opened_ms == LIMITS.cooldown_ms
    assert view.trips == 1
    return done.state


async def _open_ok(store: RedisStore, b: BreakerStore) -> BreakerState:
    await set_state(store, S.OPEN, retry_ms=2**50)
    done = await b.report(TRUNK, [("late", Signal.OK, True)], LIMITS)
    assert done.closes == 1
    return done.state


async def _open_failure(store: RedisStore, b: BreakerStore) -> BreakerState:
    await set_state(store, S.OPEN, retry_ms=2**50)
    state = await report(b, *((f"c{i}", Signal.FAILURE) for i in range(5)))
    assert (await b.view(TRUNK)).retry_ms == 2**50  # the cool-down is not restarted
    return state


async def _open_silent(store: RedisStore, b: BreakerStore) -> BreakerState:
    await set_state(store, S.OPEN, retry_ms=2**50)
    return await report(b, *((f"c{i}", Signal.SILENT) for i in range(5)))


async def _open_probe_granted(store: RedisStore, b: BreakerStore) -> BreakerState:
    cid, _ = await running_campaign(store, 5, trunk=TRUNK)
    await set_state(store, S.OPEN, retry_ms=1)  # the cool-down is over
    batch = await claim(store, cid, "p1", "p2", "p3")
    assert [c.call_id for c in batch.claims] == ["p1"]  # one call: the probe
    assert batch.stop == "trunk"
    view = await b.view(TRUNK)
    assert view.probe == "p1"
    return view.state


async def _half_open_ok(store: RedisStore, b: BreakerStore) -> BreakerState:
    await set_state(store, S.HALF_OPEN, probe="p1", probe_until_ms=2**50)
    return await report(b, ("other", Signal.OK))


async def _half_open_failure(store: RedisStore, b: BreakerStore) -> BreakerState:
    await set_state(store, S.HALF_OPEN, probe="p1", probe_until_ms=2**50)
    return await report(b, ("other", Signal.FAILURE))


async def _half_open_silent(store: RedisStore, b: BreakerStore) -> BreakerState:
    await set_state(store, S.HALF_OPEN, probe="p1", probe_until_ms=2**50)
    return await report(b, ("other", Signal.SILENT))


async def _half_open_probe_granted(store: RedisStore, b: BreakerStore) -> BreakerState:
    cid, _ = await running_campaign(store, 5, trunk=TRUNK)
    await set_state(store, S.HALF_OPEN, probe="lost", probe_until_ms=1)  # it never came back
    batch = await claim(store, cid, "p2")
    assert [c.call_id for c in batch.claims] == ["p2"]
    view = await b.view(TRUNK)
    assert view.probe == "p2"
    return view.state


async def _half_open_probe_ok(store: RedisStore, b: BreakerStore) -> BreakerState:
    await set_state(store, S.HALF_OPEN, probe="p1", probe_until_ms=2**50)
    return await report(b, ("p1", Signal.OK))


async def _half_open_probe_failed(store: RedisStore, b: BreakerStore) -> BreakerState:
    await set_state(store, S.HALF_OPEN, probe="p1", probe_until_ms=2**50)
    state = await report(b, ("p1", Signal.SILENT))
    view = await b.view(TRUNK)
    assert view.reason == "probe call silent (p1)"
    assert view.retry_ms - view.opened_ms == LIMITS.cooldown_ms
    assert view.trips == 0  # a failed probe is no new trip
    return state


async def switch(b: BreakerStore, node: str, *, up: bool) -> BreakerState:
    reason = "switch: contact Reachable" if up else "switch: contact Unreachable"
    return (await b.switch(TRUNK, node, up=up, reason=reason, limits=LIMITS)).state


async def _closed_switch_down(store: RedisStore, b: BreakerStore) -> BreakerState:
    cid, _ = await running_campaign(store, 3, trunk=TRUNK)
    done = await b.switch(
        TRUNK, "n1", up=False, reason="switch: contact Unreachable", limits=LIMITS
    )
    assert done.trips == 1
    view = await b.view(TRUNK)
    assert (view.reason, view.held, view.trips) == ("switch: contact Unreachable", ("n1",), 1)
    assert view.retry_ms - view.opened_ms == LIMITS.switch_hold_ms  # held: no probe before
    batch = await claim(store, cid, "x1")
    assert (batch.stop, batch.claims) == ("trunk", [])
    return done.state


async def _open_switch_down(store: RedisStore, b: BreakerStore) -> BreakerState:
    await set_state(store, S.OPEN, retry_ms=1, opened_ms=5, trips=1)
    state = await switch(b, "n1", up=False)
    view = await b.view(TRUNK)
    assert (view.opened_ms, view.trips, view.held) == (5, 1, ("n1",))  # no new trip
    assert view.retry_ms > 2 * LIMITS.switch_hold_ms  # the hold runs from now
    return state


async def _half_open_switch_down(store: RedisStore, b: BreakerStore) -> BreakerState:
    await set_state(store, S.HALF_OPEN, probe="p1", probe_until_ms=2**50)
    state = await switch(b, "n1", up=False)
    assert (await b.view(TRUNK)).probe == ""  # the probe decides nothing any more
    return state


async def _closed_switch_up(store: RedisStore, b: BreakerStore) -> BreakerState:
    state = await switch(b, "n1", up=True)
    assert (await b.view(TRUNK)).trips == 0
    return state


async def _open_switch_up(store: RedisStore, b: BreakerStore) -> BreakerState:
    cid, _ = await running_campaign(store, 3, trunk=TRUNK)
    await switch(b, "n1", up=False)
    await switch(b, "n2", up=False)
    assert await switch(b, "n1", up=True) is S.OPEN
    assert (await claim(store, cid, "x1")).claims == []  # n2 still holds it
    state = await switch(b, "n2", up=True)
    view = await b.view(TRUNK)
    assert view.held == ()
    batch = await claim(store, cid, "p1", "p2")  # the hold is over: one probe at once
    assert [c.call_id for c in batch.claims] == ["p1"]
    assert (await b.view(TRUNK)).state is S.HALF_OPEN
    return state


async def _half_open_switch_up(store: RedisStore, b: BreakerStore) -> BreakerState:
    await set_state(store, S.HALF_OPEN, probe="p1", probe_until_ms=2**50)
    state = await switch(b, "n1", up=True)
    assert (await b.view(TRUNK)).probe == "p1"
    return state


SCENARIOS: dict[tuple[BreakerState, BreakerEvent], Scenario] = {
    (S.CLOSED, E.OK): _closed_ok,
    (S.CLOSED, E.FAILURE): _closed_failure,
    (S.CLOSED, E.SILENT): _closed_silent,
    (S.CLOSED, E.TRIP): _closed_trip,
    (S.OPEN, E.OK): _open_ok,
    (S.OPEN, E.FAILURE): _open_failure,
    (S.OPEN, E.SILENT): _open_silent,
    (S.OPEN, E.PROBE_GRANTED): _open_probe_granted,
    (S.HALF_OPEN, E.OK): _half_open_ok,
    (S.HALF_OPEN, E.FAILURE): _half_open_failure,
    (S.HALF_OPEN, E.SILENT): _half_open_silent,
    (S.HALF_OPEN, E.PROBE_GRANTED): _half_open_probe_granted,
    (S.HALF_OPEN, E.PROBE_OK): _half_open_probe_ok,
    (S.HALF_OPEN, E.PROBE_FAILED): _half_open_probe_failed,
    (S.CLOSED, E.SWITCH_DOWN): _closed_switch_down,
    (S.OPEN, E.SWITCH_DOWN): _open_switch_down,
    (S.HALF_OPEN, E.SWITCH_DOWN): _half_open_switch_down,
    (S.CLOSED, E.SWITCH_UP): _closed_switch_up,
    (S.OPEN, E.SWITCH_UP): _open_switch_up,
    (S.HALF_OPEN, E.SWITCH_UP): _half_open_switch_up,
}


def test_every_row_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(BREAKER_TRANSITIONS)


@pytest.mark.parametrize("row", list(BREAKER_TRANSITIONS), ids=lambda r: f"{r[0]}-{r[1]}")
async def test_the_scripts_follow_the_table(
    row: tuple[BreakerState, BreakerEvent], store: RedisStore, breakers: BreakerStore
) -> None:
    assert await SCENARIOS[row](store, breakers) is BREAKER_TRANSITIONS[row]


def _lua(name: str) -> str:
    return resources.files("dialer.store").joinpath("lua", f"{name}.lua").read_text("utf-8")


def test_the_scripts_literals_are_the_enums() -> None:
    code = re.sub(r"--\[\[.*?\]\]", "", _lua("breaker_report"), flags=re.S)
    pattern = r"state [~=]= '(\w+)'|state = '(\w+)'|'HSET', key, 'state', '(\w+)'|or '(\w+)'"
    found = {s for group in re.findall(pattern, code) for s in group if s}
    assert found == {s.value for s in S}
    signals = set(re.findall(r"signal [~=]= '(\w+)'", code))
    assert signals <= {s.value for s in Signal}
    assert signals == {"ok", "neutral", "failure"}
    switch = re.sub(r"--\[\[.*?\]\]", "", _lua("breaker_switch"), flags=re.S)
    found = {s for group in re.findall(pattern, switch) for s in group if s}
    assert found <= {s.value for s in S}
    gate = _lua("claim")
    assert "br[1] == 'open' or br[1] == 'half_open'" in gate
    assert "'state', 'half_open'" in gate


# -- the gate ----------------------------------------------------------------------------------


async def test_open_refuses_claims_and_touches_nothing(
    store: RedisStore, breakers: BreakerStore
) -> None:
    cid, _ = await running_campaign(store, 4, trunk=TRUNK)
    await report(breakers, *((f"c{i}", Signal.SILENT) for i in range(LIMITS.silent_run)))
    view = await breakers.view(TRUNK)
    before = (await store.counts(cid), await store.queue_stats(cid))
    batch = await claim(store, cid, "x1", "x2")
    assert (batch.stop, batch.claims) == ("trunk", [])
    assert 0 < batch.wait_ms <= view.retry_ms - batch.server_ms
    assert (await store.counts(cid), await store.queue_stats(cid)) == before
    assert await store.get_call("x1") is None
    # another trunk of the same campaign is not affected
    other = await store.claim_batch(
        cid, "trunk2", ["y1"], "e1", lease_ms=10_000, max_channels=None,
        trunk_max_channels=None, cps=None, trunk_cps=None,
    )  # fmt: skip
    assert [c.call_id for c in other.claims] == ["y1"]


async def test_half_open_refuses_while_its_probe_is_out(
    store: RedisStore, breakers: BreakerStore
) -> None:
    cid, _ = await running_campaign(store, 4, trunk=TRUNK)
    await set_state(store, S.OPEN, retry_ms=1)
    assert [c.call_id for c in (await claim(store, cid, "p1")).claims] == ["p1"]
    batch = await claim(store, cid, "x1")
    assert (batch.stop, batch.claims) == ("trunk", [])
    assert LIMITS.probe_timeout_ms - 1000 < batch.wait_ms <= LIMITS.probe_timeout_ms


async def test_no_probe_without_a_contact(store: RedisStore, breakers: BreakerStore) -> None:
    cid, _ = await running_campaign(store, 0, trunk=TRUNK)
    await set_state(store, S.OPEN, retry_ms=1)
    batch = await claim(store, cid, "p1")
    assert (batch.stop, batch.claims) == ("empty", [])
    assert (await breakers.view(TRUNK)).state is S.OPEN  # the next claim may still probe


@pytest.fixture
async def stores(redis_server: RedisServer, namespace: str) -> AsyncIterator[list[RedisStore]]:
    made = [RedisStore.from_url(redis_server.url, namespace) for _ in range(5)]
    yield made
    for s in made:
        await s.aclose()


async def test_one_probe_among_concurrent_engines(stores: list[RedisStore]) -> None:
    cid, _ = await running_campaign(stores[0], 50, trunk=TRUNK)
    await set_state(stores[0], S.OPEN, retry_ms=1)
    batches = await asyncio.gather(
        *(claim(s, cid, *(f"e{n}-{i}" for i in range(4))) for n, s in enumerate(stores))
    )
    claimed = [c.call_id for b in batches for c in b.claims]
    assert len(claimed) == 1
    assert (await BreakerStore(stores[0]).view(TRUNK)).probe == claimed[0]
    assert sorted(b.stop for b in batches) == ["trunk"] * 5


# -- the attempts of the run that tripped the breaker -----------------------------------------


async def test_a_trip_gives_the_runs_attempts_back(
    store: RedisStore, breakers: BreakerStore
) -> None:
    cid, _ = await running_campaign(store, 6, trunk=TRUNK)
    batch = await claim(store, cid, "a1", "a2", "a3", "a4")
    ends = [  # no answer: two exhausted, one to retry in an hour, one never charged
        ("a1", C.COMPLETED_NO_ANSWER, None, 1),
        ("a2", C.RETRY_SCHEDULED, 2**42, 1),
        ("a3", C.COMPLETED_NO_ANSWER, None, 1),
        ("a4", C.RETRY_SCHEDULED, 2**42, 0),
    ]
    for (call_id, status, retry, used), claimed in zip(ends, batch.claims, strict=True):
        await store.finish(
            cid, TRUNK, call_id, claimed.contact_id, contact_status=status,
            attempts_used=used, tech_failures=0, retry_at_ms=retry, record={},
        )  # fmt: skip
    counts = await store.counts(cid)
    assert (counts[C.COMPLETED_NO_ANSWER], counts[C.RETRY_SCHEDULED]) == (2, 2)
    done = await breakers.report(
        TRUNK,
        [(c, Signal.SILENT, used == 1) for c, _, _, used in ends[:3]]
        + [("a4", Signal.SILENT, False)],
        BreakerLimits(failure_run=2, silent_run=4, cooldown=60.0),
    )
    assert (done.state, done.trips, done.refunded) == (S.OPEN, 1, 3)
    contacts = [await store.get_contact(cid, c.contact_id) for c in batch.claims]
    assert [c.attempts for c in contacts] == [0, 0, 0, 0]
    assert {c.status for c in contacts} == {C.RETRY_SCHEDULED}
    due = [c.next_due_ms for c in contacts]
    assert due[0] == due[1] == due[2] == done.retry_ms  # after the cool-down
    assert due[3] == 2**42  # never charged: left as it was
    counts = await store.counts(cid)
    assert (counts[C.COMPLETED_NO_ANSWER], counts[C.RETRY_SCHEDULED]) == (0, 4)
    stats = await store.queue_stats(cid)
    assert stats.pending_total == 6
    # an attempt comes back once: the same calls tripping it again give nothing back
    await store.client.delete(store.keys.trunk_breaker(TRUNK))
    again = await breakers.report(
        TRUNK,
        [(c, Signal.SILENT, True) for c in ("a1", "a2", "a3", "a4")],
        BreakerLimits(failure_run=2, silent_run=4, cooldown=60.0),
    )
    assert (again.trips, again.refunded) == (1, 0)
    assert [(await store.get_contact(cid, c.contact_id)).attempts for c in batch.claims] == [
        0, 0, 0, 0
    ]  # fmt: skip


async def test_an_answer_ends_the_run(store: RedisStore, breakers: BreakerStore) -> None:
    await report(breakers, ("c1", Signal.SILENT), ("c2", Signal.SILENT))
    await report(breakers, ("c3", Signal.OK))
    assert await store.client.hget(store.keys.trunk_breaker(TRUNK), "run") == b""
    state = await report(breakers, ("c4", Signal.SILENT), ("c5", Signal.SILENT))
    assert state is S.CLOSED
    assert (await breakers.view(TRUNK)).silent_run == 2


async def test_neutral_signals_change_nothing(store: RedisStore, breakers: BreakerStore) -> None:
    await report(breakers, ("c1", Signal.SILENT), ("c2", Signal.SILENT))
    await report(breakers, *((f"n{i}", Signal.NEUTRAL) for i in range(10)))
    view = await breakers.view(TRUNK)
    assert (view.state, view.silent_run) == (S.CLOSED, 2)


async def test_failure_run_trips_first(store: RedisStore, breakers: BreakerStore) -> None:
    state = await report(breakers, ("c1", Signal.FAILURE), ("c2", Signal.FAILURE))
    assert state is S.OPEN
    assert (await breakers.view(TRUNK)).reason == "2 trunk failures in a row"


async def test_reason_for_a_campaign(store: RedisStore, breakers: BreakerStore) -> None:
    settings = CampaignSettings(
        name="c", trunk=TRUNK, max_channels=1, cps=1.0, backup_trunk="trunk2"
    )
    cid = await store.create_campaign("c", TRUNK, json.dumps(settings.to_dict()))
    record = await store.get_campaign(cid)
    assert await breakers.campaign_reason(record) == ""  # Draft
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    record = await store.get_campaign(cid)
    assert await breakers.campaign_reason(record) == ""  # closed
    await report(breakers, ("c1", Signal.FAILURE), ("c2", Signal.FAILURE))
    assert await breakers.campaign_reason(record) == (
        f"trunk {TRUNK} unavailable: breaker open (2 trunk failures in a row); "
        "dialing on backup trunk trunk2"
    )
    await breakers.report("trunk2", [("d1", Signal.FAILURE, True)] * 2, LIMITS)
    shown = await breakers.with_reason(record)
    assert shown.status_reason.endswith(
        "; backup trunk trunk2 unavailable: breaker open (2 trunk failures in a row)"
    )


async def test_the_api_shows_the_reason(store: RedisStore, breakers: BreakerStore) -> None:
    cid, _ = await running_campaign(store, 1, trunk=TRUNK)
    settings = CampaignSettings(name="c", trunk=TRUNK, max_channels=1, cps=1.0)
    await store.client.hset(store.keys.campaign(cid), "settings", json.dumps(settings.to_dict()))
    await report(breakers, ("c1", Signal.FAILURE), ("c2", Signal.FAILURE))
    async with api_client(store) as client:
        one = (await client.get(f"/campaigns/{cid}", headers=VIEWER)).json()
        listed = (await client.get("/campaigns", headers=VIEWER)).json()["campaigns"]
    reason = f"trunk {TRUNK} unavailable: breaker open (2 trunk failures in a row)"
    assert (one["status"], one["status_reason"]) == ("running", reason)
    assert [c["status_reason"] for c in listed if c["id"] == cid] == [reason]


async def test_a_trip_refuses_the_claims_of_its_own_round_trip(
    store: RedisStore, breakers: BreakerStore
) -> None:
    cid, _ = await running_campaign(store, 5, trunk=TRUNK)
    command = store.claim_command(
        cid, TRUNK, ["z1"], "e1", lease_ms=10_000, max_channels=None,
        trunk_max_channels=None, cps=None, trunk_cps=None,
    )  # fmt: skip
    report = breakers.report_command(
        TRUNK, [(f"c{i}", Signal.FAILURE, False) for i in range(2)], LIMITS
    )
    reply = await store.settle_and_claim({}, [], [command], scripts=[report])
    (raw,) = reply.scripts
    assert report_of(raw).trips == 1
    (batch,) = reply.claims
    assert isinstance(batch, ClaimBatch)
    assert (batch.stop, batch.claims) == ("trunk", [])


async def test_the_run_keeps_the_last_calls_across_reports(
    store: RedisStore, breakers: BreakerStore
) -> None:
    limits = BreakerLimits(failure_run=100, silent_run=5, cooldown=60.0)
    key = store.keys.trunk_breaker(TRUNK)
    for batch in ([f"s{i}" for i in range(3)], [f"s{i}" for i in range(3, 7)]):
        await breakers.report(TRUNK, [(c, Signal.SILENT, c != "s4") for c in batch], limits)
        if batch[0] == "s0":
            assert await store.client.hget(key, "run") == b"s0,s1,s2"
    # 7 silent calls tripped it at the 5th (s4, not charged): the run then was s0-s3, given back
    view = await breakers.view(TRUNK)
    assert (view.state, view.trips, view.silent_run) == (S.OPEN, 1, 0)
    assert await store.client.hget(key, "run") == b""
    # a run goes on across reports, charged calls only, until an answer ends it
    await store.client.delete(key)
    await breakers.report(
        TRUNK, [("m0", Signal.SILENT, True), ("m1", Signal.FAILURE, False)], limits
    )
    await breakers.report(TRUNK, [("m2", Signal.SILENT, True)], limits)
    assert await store.client.hget(key, "run") == b"m0,m2"
    await breakers.report(TRUNK, [("m3", Signal.OK, False), ("m4", Signal.SILENT, True)], limits)
    assert await store.client.hget(key, "run") == b"m4"
