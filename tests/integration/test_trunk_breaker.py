"""Trunk health on the real stack (issue 17, item 3): the stack's dead trunk trips its breaker.

The dead trunk (``stack.dead_trunk``) points to a port where nothing listens: Asterisk gives up
after the full ring timeout (Reason 3, cause 19/480), exactly as for a callee who never
answers. One test, three acts, on one engine with a short run limit and cool-down:

1. trip: a campaign on the dead trunk (no backup) trips the breaker after ``SILENT_RUN``
   unanswered calls; the calls in flight then are not charged; no channel is made on the
   trunk during the cool-down; the contacts never dialed keep their attempts; the campaign
   shows the reason (``dialer status`` and the API's reason) and the metric reads open;
2. failover: with ``backup_trunk`` set to the live carrier trunk, the campaign dials there while
   the breaker is open (its probes on the dead trunk fail and are not charged) and completes,
   every contact answered through the backup;
3. recovery: a carrier simulator started on the dead trunk's port brings the trunk back; the
   next probe is answered and closes the breaker; a campaign on that trunk completes on it.

Channels are counted on Asterisk's side (``watch_switch``), by the call ids of the records.

The switch's own view (both switches): ``carrier-dead-qualified`` points to the same dead port
with PJSIP qualify on (pbx-config/asterisk/pjsip.conf) or gateway pings (FreeSWITCH); the switch
marks it Unreachable / DOWN (and would refuse every originate at once). The engine reads that
state when a campaign starts using the trunk and follows the switch's events
(dialer.engine.switchview): the breaker opens before a claim round could be charged, the
Reachable / UP event of a carrier started on that port ends the hold and the probe closes the
breaker, and the carrier's going away opens it again at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from dialer.cli.status import snapshot, summary_lines
from dialer.domain.breaker import BreakerLimits, BreakerState
from dialer.domain.campaign import CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.domain.why import BlockerCode
from dialer.pbx.ami.client import AmiClient, AmiSettings
from dialer.pbx.ami.codec import Message
from dialer.pbx.asterisk.contacts import CONTACT_EVENT
from dialer.pbx.esl.client import EslClient, EslSettings
from dialer.pbx.esl.codec import EslEvent
from dialer.pbx.freeswitch.gateways import GATEWAY_EVENTS, parse_xmlstatus
from dialer.store.breaker import BreakerStore, BreakerView
from dialer.store.redis_store import RedisStore
from dialer.store.why import explain
from ops.localstack import sipp
from ops.localstack.numberplan import Behaviour, number
from ops.localstack.ports import free_port
from tests.integration.engine_helpers import (
    engine_settings,
    new_campaign,
    running_engine,
    wait_status,
)
from tests.integration.monitor import watch_switch

pytestmark = [pytest.mark.integration, pytest.mark.redis]
log = logging.getLogger(__name__)

SILENT_RUN = 4  # unanswered calls in a row that open the breaker here (default 30)
COOLDOWN = 3.0  # seconds (default 30)
CHANNELS = 2
RING_TIMEOUT = 2.0  # the dead trunk's calls last this long
CONTACTS = 10
FAST_RETRY = RetryPolicy(
    max_attempts=3,
    delays={CallStatus.NO_ANSWER: 5.0, CallStatus.TECHNICAL_ERROR: 0.5},
    technical_backoff=1.0,
    technical_retry_limit=50,
)


@pytest.fixture
async def store(stack: Any, namespace: str) -> AsyncIterator[RedisStore]:
    s = RedisStore.from_url(stack.redis_url, namespace=namespace)
    yield s
    await s.aclose()


def settings(stack: Any, name: str, **kw: Any) -> CampaignSettings:
    return CampaignSettings(
        name=name,
        trunk=stack.dead_trunk,
        max_channels=CHANNELS,
        cps=10.0,
        ring_timeout=RING_TIMEOUT,
        retry=FAST_RETRY,
        **kw,
    )


async def wait_breaker(
    breakers: BreakerStore, trunk: str, wanted: BreakerState, within: float, reason: str = ""
) -> BreakerView:
    deadline = time.monotonic() + within
    while True:
        view = await breakers.view(trunk)
        if view.state is wanted and (not reason or view.reason == reason):
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"breaker of {trunk} still {view} after {within} s")
        await asyncio.sleep(0.02)


async def records_of(store: RedisStore, cid: int) -> list[dict[str, str]]:
    return [rec for _, rec in await store.records(cid, count=10_000)]


def metric(engine: Any, name: str, trunk: str) -> float | None:
    value = engine.metrics.registry.get_sample_value(name, {"trunk": trunk})
    return None if value is None else float(value)


QUALIFIED = "carrier-dead-qualified"


def carrier_on_dead_port(stack: Any, workdir: Path) -> sipp.SippLayout:
    """A carrier simulator's layout on the dead trunks' port (rendered, not started)."""
    layout = sipp.SippLayout(
        workdir=workdir,
        sip_port=stack.dead_port,
        media_port=free_port(),
        control_port=free_port(),
    )
    sipp.render_scenario(layout)
    return layout


async def wait_unavailable(stack: Any, pbx: str, within: float) -> None:
    """Until the switch finds the qualified trunk down (Asterisk: its contact Unavailable;
    FreeSWITCH: its gateway DOWN)."""
    deadline = time.monotonic() + within
    while True:
        if pbx == "asterisk":
            lines = stack.asterisk_cli("pjsip show contacts").splitlines()
            if any(f"{QUALIFIED}/sip:" in line and "Unavail" in line for line in lines):
                return
        else:
            async with EslClient(EslSettings.from_url(stack.esl_url)) as client:
                body = await client.api("sofia", "xmlstatus", "gateway", QUALIFIED)
            if parse_xmlstatus(body) == (QUALIFIED, "DOWN"):
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{QUALIFIED} not down on {pbx} after {within} s")
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class View:
    """What each switch says of the qualified trunk, and where it says it."""

    down: str  # the event's status when unreachable
    up: str
    reason: str  # the breaker's reason when the switch opened it


VIEWS = {
    "asterisk": View("Unreachable", "Reachable", "switch: contact Unreachable"),
    "freeswitch": View("DOWN", "UP", "switch: gateway DOWN"),
}


@asynccontextmanager
async def switch_events(stack: Any, pbx: str) -> AsyncIterator[list[tuple[float, str]]]:
    """The qualified trunk's state changes as the switch stamped them: (epoch seconds,
    status), read on a connection of the test's own (Asterisk: ContactStatus; FreeSWITCH:
    sofia::gateway_state)."""
    seen: list[tuple[float, str]] = []

    async def read_ami() -> None:
        ami = replace(AmiSettings.from_url(stack.ami_url), events="system")
        async with AmiClient(ami) as client:
            async for item in client.events(1.0):
                if isinstance(item, Message) and item.event == CONTACT_EVENT:
                    if item.get("EndpointName") == QUALIFIED:
                        seen.append((float(item["Timestamp"]), item["ContactStatus"]))

    async def read_esl() -> None:
        esl = replace(EslSettings.from_url(stack.esl_url), events=GATEWAY_EVENTS)
        async with EslClient(esl) as client:
            async for item in client.events(1.0):
                if isinstance(item, EslEvent) and item.get("Gateway") == QUALIFIED:
                    stamp = int(item["Event-Date-Timestamp"]) / 1e6
                    seen.append((stamp, item["Ping-Status"]))

    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(read_ami() if pbx == "asterisk" else read_esl())
        try:
            yield seen
        finally:
            task.cancel()


async def wait_event(seen: list[tuple[float, str]], status: str, within: float) -> float:
    deadline = time.monotonic() + within
    while not [t for t, s in seen if s == status]:
        if time.monotonic() > deadline:
            raise AssertionError(f"no switch event {status} within {within} s: {seen}")
        await asyncio.sleep(0.05)
    return max(t for t, s in seen if s == status)


@pytest.mark.alone  # the breaker opens within 3 s of the switch's Unreachable
async def test_the_switchs_view_opens_and_closes_the_qualified_trunk(
    stack: Any, store: RedisStore, namespace: str, tmp_path: Path, pbx: str
) -> None:
    """PJSIP qualify / gateway pings feed the breaker: open before any originate, closed by
    the probe once the switch says the trunk is up, open again at once when it says down."""
    view = VIEWS[pbx]
    breakers = BreakerStore(store)
    await breakers.reset(QUALIFIED)
    await wait_unavailable(stack, pbx, within=15)
    phones = [number(Behaviour.HOLD, 7200 + i, hold_s=1) for i in range(4)]
    control, cid = await new_campaign(
        store, replace(settings(stack, "qualified"), trunk=QUALIFIED), phones
    )
    limits = BreakerLimits(failure_run=3, silent_run=SILENT_RUN, cooldown=60.0)
    cfg = engine_settings(stack, namespace, pbx=pbx, breaker=limits)
    layout = carrier_on_dead_port(stack, tmp_path / "qualified")
    async with (
        running_engine(cfg) as engine,
        watch_switch(stack, pbx) as seen,
        switch_events(stack, pbx) as contact,
    ):
        # -- the switch's state read at the start: open, nothing originated ---------------------
        started = time.time()
        await control.start(cid)
        opened = await wait_breaker(breakers, QUALIFIED, BreakerState.OPEN, within=10)
        await asyncio.sleep(1.0)  # a claim would have gone out by now
        shown = summary_lines(await snapshot(store, cid))[0]
        why = await explain(store, cid)  # the API's why view
        state_metric = metric(engine, "dialer_trunk_breaker_state", QUALIFIED)
        trips = metric(engine, "dialer_trunk_breaker_trips_total", QUALIFIED)
        assert opened.reason == view.reason
        assert opened.held != ()
        # the first claim on the trunk waited for the engine to read the switch's word on it
        assert await records_of(store, cid) == []  # no originate, no attempt
        assert f"breaker open ({view.reason})" in shown
        assert [b.code for b in why.blockers] == [BlockerCode.TRUNK_BREAKER]
        assert f"breaker open ({view.reason})" in why.blockers[0].message
        assert state_metric == BreakerState.OPEN.gauge
        assert trips == 1
        # -- the carrier comes back: Reachable ends the hold, the probe closes it --------------
        pid = sipp.start(layout)
        try:
            sipp.wait_ready(layout, pid)
            reachable_at = await wait_event(contact, view.up, within=15)
            await wait_breaker(breakers, QUALIFIED, BreakerState.CLOSED, within=15)
            closed_at = time.time()
            await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=30)
            records = await records_of(store, cid)
            answered = {r["call_id"] for r in records}
            await seen.wait_until(lambda o: answered <= o.answered, within=10)
            first_channel = min(seen.created_at[c] for c in answered)
            contacts = [await store.get_contact(cid, k) for k in range(1, 5)]
            assert {c.status for c in contacts} == {CallStatus.ANSWERED}
            assert [c.attempts for c in contacts] == [1] * 4  # one call each: the answered one
            assert len(answered) == 4
            # -- the carrier goes away while a campaign dials: Unreachable opens it at once ----
            phones = [number(Behaviour.RING_NO_ANSWER, 7300 + i) for i in range(20)]
            control, cid2 = await new_campaign(
                store,
                replace(settings(stack, "qualified-2"), trunk=QUALIFIED, max_channels=1),
                phones,
            )
            before = set(seen.created_at)
            await control.start(cid2)
            await wait_channel(seen, before, within=10)
        finally:
            sipp.stop(pid)
        unreachable_at = await wait_event(contact, view.down, within=15)
        # (FreeSWITCH: a dead port answers 503 at once, so the failure run may open it first;
        # the switch's word then holds it)
        reopened = await wait_breaker(
            breakers, QUALIFIED, BreakerState.OPEN, within=10, reason=view.reason
        )
        await asyncio.sleep(RING_TIMEOUT + 1.5)  # the call in flight ends; nothing new
        await control.pause(cid2)
        await wait_status(store, cid2, {CampaignStatus.PAUSED}, within=15)
        records2 = await records_of(store, cid2)
    late = [
        r for r in records2
        if seen.created_at.get(r["call_id"], 0) > reopened.opened_ms / 1000 + 0.5
    ]  # fmt: skip
    log.warning(
        "switch view (%s): open %.2f s after the start, no originate before; up -> first "
        "channel %.3f s, breaker closed %.2f s after the event; down -> breaker open %.3f s",
        pbx, opened.opened_ms / 1000 - started, first_channel - reachable_at,
        closed_at - reachable_at, reopened.opened_ms / 1000 - unreachable_at,
    )  # fmt: skip
    assert reopened.reason == view.reason
    assert reopened.opened_ms / 1000 - unreachable_at < 3
    assert first_channel - reachable_at < 5
    assert late == []  # nothing dialed on the trunk once the switch said Unreachable


async def wait_channel(seen: Any, before: set[str], within: float) -> None:
    """Until Asterisk made a channel not in ``before``."""
    deadline = time.monotonic() + within
    while not set(seen.created_at) - before:
        if time.monotonic() > deadline:
            raise AssertionError(f"no new channel within {within} s")
        await asyncio.sleep(0.05)


async def test_dead_trunk_trips_fails_over_and_recovers(
    stack: Any, store: RedisStore, namespace: str, tmp_path: Path
) -> None:
    dead, live = stack.dead_trunk, stack.trunk
    breakers = BreakerStore(store)
    await breakers.reset(dead)
    await breakers.reset(live)
    phones = [number(Behaviour.HOLD, 7000 + i, hold_s=1) for i in range(CONTACTS)]
    control, cid = await new_campaign(store, settings(stack, "dead-trunk"), phones)
    limits = BreakerLimits(failure_run=3, silent_run=SILENT_RUN, cooldown=COOLDOWN)
    cfg = engine_settings(stack, namespace, breaker=limits, lease_ms=6000)
    async with running_engine(cfg) as engine, watch_switch(stack, "asterisk") as seen:
        # -- 1. trip ---------------------------------------------------------------------------
        started = time.time()
        await control.start(cid)
        opened = await wait_breaker(breakers, dead, BreakerState.OPEN, within=30)
        tripped_at = time.time()
        await asyncio.sleep(COOLDOWN * 0.6)  # inside the cool-down: nothing dialed on it
        reason = await breakers.campaign_reason(await store.get_campaign(cid))
        shown = summary_lines(await snapshot(store, cid))[0]  # `dialer status`'s first line
        await control.pause(cid)
        await wait_status(store, cid, {CampaignStatus.PAUSED}, within=15)
        paused_reason = (await store.get_campaign(cid)).status_reason
        records = await records_of(store, cid)
        dialed = [r["call_id"] for r in records]
        on_switch = [c for c in dialed if c in seen.created_at]
        first_channel = min(seen.created_at[c] for c in on_switch)
        # claims granted in the round trip before the trip's report may still originate
        # just after it; none later than that
        late = [c for c in on_switch if seen.created_at[c] > opened.opened_ms / 1000 + 0.5]
        charged = [r for r in records if r["status"] == CallStatus.NO_ANSWER]
        cut = [r for r in records if r["rule"] == "trunk:open"]
        contacts = [await store.get_contact(cid, k) for k in range(1, CONTACTS + 1)]
        untouched = [c for c in contacts if c.attempts == 0 and c.status is CallStatus.PENDING]
        state_metric = metric(engine, "dialer_trunk_breaker_state", dead)
        trips_metric = metric(engine, "dialer_trunk_breaker_trips_total", dead)
        log.warning(
            "trip: %d calls on the dead trunk (%d recorded no answer, their attempts given "
            "back at the trip; %d cut by the open breaker, not charged), time to trip %.2f s "
            "from its first channel; %d of %d contacts untouched",
            len(on_switch), len(charged), len(cut), opened.opened_ms / 1000 - first_channel,
            len(untouched), CONTACTS,
        )  # fmt: skip
        assert len(charged) == SILENT_RUN  # the run that tripped it, recorded as seen
        assert len(on_switch) == len(dialed) <= SILENT_RUN + CHANNELS
        assert len(cut) == len(dialed) - SILENT_RUN  # in flight at the trip: not charged
        assert all(r["contact_status"] == CallStatus.RETRY_SCHEDULED for r in cut)
        assert late == []  # the claim script refused every claim once it was open
        assert len(untouched) == CONTACTS - len(dialed) > 0
        assert sum(c.attempts for c in contacts) == 0  # the trip gave the run's back
        assert sorted(c.status for c in contacts) == sorted(
            [CallStatus.PENDING] * len(untouched) + [CallStatus.RETRY_SCHEDULED] * len(dialed)
        )
        assert reason == f"trunk {dead} unavailable: breaker open ({opened.reason})"
        assert reason in shown
        assert "Running" in shown
        assert paused_reason == ""  # a person's pause: the trunk's reason shows while Running
        assert state_metric == BreakerState.OPEN.gauge
        assert trips_metric == 1
        assert "calls in a row reached nobody" in opened.reason
        assert tripped_at - started < 20

        # -- 2. failover to the backup trunk ---------------------------------------------------
        data = settings(stack, "dead-trunk", backup_trunk=live).to_dict()
        await store.update_settings(cid, json.dumps(data), allowed={CampaignStatus.PAUSED})
        await control.resume(cid)
        await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
        before = len(records)
        records = await records_of(store, cid)
        contacts = [await store.get_contact(cid, k) for k in range(1, CONTACTS + 1)]
        answered = [r for r in records if r["status"] == CallStatus.ANSWERED]
        probes = [r for r in records[before:] if r["trunk"] == dead]
        assert {r["rule"] for r in probes} <= {"trunk:open"}  # failed probes: not charged
        assert {c.status for c in contacts} == {CallStatus.ANSWERED}
        assert {r["trunk"] for r in answered} == {live}
        assert {r["call_id"] for r in answered} <= seen.answered  # answered on Asterisk
        assert (await breakers.view(dead)).state is not BreakerState.CLOSED
        log.warning(
            "failover: %d answered on %s, %d records in all, %d probes on the dead trunk",
            len(answered), live, len(records), len(probes),
        )  # fmt: skip

        # -- 3. the trunk comes back: the half-open probe closes the breaker -------------------
        layout = carrier_on_dead_port(stack, tmp_path / "revived")
        pid = sipp.start(layout)
        try:
            sipp.wait_ready(layout, pid)
            back_at = time.time()
            cooldown_left = (await breakers.view(dead)).retry_ms / 1000 - back_at
            phones = [number(Behaviour.HOLD, 7100 + i, hold_s=1) for i in range(4)]
            control, cid2 = await new_campaign(store, settings(stack, "revived"), phones)
            await control.start(cid2)
            closed = await wait_breaker(breakers, dead, BreakerState.CLOSED, within=COOLDOWN + 20)
            recovered_at = time.time()
            await wait_status(store, cid2, {CampaignStatus.COMPLETED}, within=30)
        finally:
            sipp.stop(pid)
        records = await records_of(store, cid2)
        assert {r["status"] for r in records} == {CallStatus.ANSWERED}
        assert {r["trunk"] for r in records} == {dead}
        assert {r["call_id"] for r in records} <= seen.answered
        assert closed.trips == 1
        await asyncio.sleep(1.2)  # the gauges are refreshed every second
        assert metric(engine, "dialer_trunk_breaker_state", dead) == BreakerState.CLOSED.gauge
        log.warning(
            "recovery: breaker closed %.2f s after the trunk came back (cool-down left then "
            "%.2f s; half-open probe answered)", recovered_at - back_at, cooldown_left,
        )  # fmt: skip
