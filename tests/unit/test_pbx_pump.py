"""The event pump shared by the adapters; the Asterisk adapter's stream end to end (fake AMI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

import pytest

from dialer.domain.calls import RawOutcome
from dialer.pbx.ami import TICK, Tick
from dialer.pbx.asterisk.adapter import AsteriskAdapter, AsteriskSettings
from dialer.pbx.base import (
    CallAnswered,
    CallEnded,
    ConnectionState,
    OriginateRequest,
    PbxEvent,
    PbxState,
)
from dialer.pbx.pump import correlated_batches, correlated_events
from tests.unit.ami_fake import WAIT, Action, FakeAmi, FakeSession, frame, settings_for

pytestmark = pytest.mark.timeout(20)


class Source:
    """A client's ``events`` method: yields the given items, then waits forever (or ends)."""

    def __init__(self, *items: str | ConnectionState | Tick, end: bool = False) -> None:
        self.items = items
        self.end = end
        self.tick: float | None = None
        self.closed = False

    async def events(self, tick: float) -> AsyncGenerator[str | ConnectionState | Tick, None]:
        self.tick = tick
        try:
            for item in self.items:
                yield item
            if not self.end:
                await asyncio.Event().wait()
        finally:
            self.closed = True


class Recorder:
    """A correlator that answers each item and ends one call per expire."""

    def __init__(self) -> None:
        self.fed: list[tuple[str, float]] = []
        self.expired: list[float] = []
        self.disconnects: list[float] = []

    def feed(self, item: str, now: float) -> list[PbxEvent]:
        self.fed.append((item, now))
        return [CallAnswered(call_id=item, at=now)]

    def disconnected(self, now: float) -> None:
        self.disconnects.append(now)

    def expire(self, now: float) -> list[PbxEvent]:
        self.expired.append(now)
        return [
            CallEnded(call_id=f"expired-{len(self.expired)}", raw=RawOutcome(False), ended_at=now)
        ]


def clock() -> float:
    return 1000.0


async def take(stream: AsyncIterator[PbxEvent], count: int) -> list[PbxEvent]:
    async with asyncio.timeout(WAIT):
        return [await anext(stream) for _ in range(count)]


async def test_items_ticks_and_connection_states_in_order() -> None:
    source = Source(ConnectionState(True, "connected", 1.0), "a", TICK, "b", TICK)
    correlator = Recorder()
    pump = correlated_events(source.events, correlator, tick=2.5, clock=clock)
    async with aclosing(pump) as stream:
        events = await take(stream, 5)
    assert source.tick == 2.5
    assert events == [
        PbxState(connected=True, reason="connected", at=1000.0),
        CallAnswered(call_id="a", at=1000.0),
        CallEnded(call_id="expired-1", raw=RawOutcome(False), ended_at=1000.0),
        CallAnswered(call_id="b", at=1000.0),
        CallEnded(call_id="expired-2", raw=RawOutcome(False), ended_at=1000.0),
    ]
    assert correlator.fed == [("a", 1000.0), ("b", 1000.0)]
    assert correlator.expired == [1000.0, 1000.0]  # on ticks only, not per item


async def test_batches_keep_the_order_and_drop_empty_ones() -> None:
    batches: list[list[str | ConnectionState | Tick]] = [
        [ConnectionState(True, "connected", 1.0), "a", TICK],
        ["b"],
        ["c", TICK],
    ]

    async def event_batches(tick: float) -> AsyncGenerator[list[str | ConnectionState | Tick]]:
        for batch in batches:
            yield batch

    correlator = Recorder()
    correlator_quiet = Recorder()
    correlator_quiet.feed = lambda item, now: []  # type: ignore[method-assign]
    pump = correlated_batches(event_batches, correlator, tick=1, clock=clock)
    async with asyncio.timeout(WAIT):
        got = [events async for events in pump]
    assert got == [
        [
            PbxState(connected=True, reason="connected", at=1000.0),
            CallAnswered(call_id="a", at=1000.0),
            CallEnded(call_id="expired-1", raw=RawOutcome(False), ended_at=1000.0),
        ],
        [CallAnswered(call_id="b", at=1000.0)],
        [
            CallAnswered(call_id="c", at=1000.0),
            CallEnded(call_id="expired-2", raw=RawOutcome(False), ended_at=1000.0),
        ],
    ]
    quiet = correlated_batches(event_batches, correlator_quiet, tick=1, clock=clock)
    async with asyncio.timeout(WAIT):
        got = [events async for events in quiet]
    assert [len(b) for b in got] == [2, 1]  # the batch of "b" gave nothing: not yielded


async def test_the_pump_ends_when_the_stream_ends() -> None:
    source = Source("a", ConnectionState(False, "closed", 2.0), end=True)
    pump = correlated_events(source.events, Recorder(), tick=1, clock=clock)
    async with asyncio.timeout(WAIT):
        events = [event async for event in pump]
    assert events == [
        CallAnswered(call_id="a", at=1000.0),
        PbxState(connected=False, reason="closed", at=1000.0),
    ]
    assert source.closed


async def test_closing_the_pump_closes_the_stream() -> None:
    source = Source("a")
    async with aclosing(correlated_events(source.events, Recorder(), tick=1, clock=clock)) as s:
        await take(s, 1)
    assert source.closed


async def test_cancelling_a_waiting_pump_closes_the_stream() -> None:
    source = Source()
    pump = correlated_events(source.events, Recorder(), tick=1, clock=clock)
    waiter = asyncio.create_task(anext(pump))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert source.closed


# -- the Asterisk adapter's stream, against the fake AMI ---------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmi]:
    server = FakeAmi()
    await server.start()
    yield server
    await server.stop()


def channel_event(name: str, call_id: str, **fields: str) -> bytes:
    return frame(Event=name, Channel="PJSIP/carrier-00000001", Uniqueid=call_id, **fields)


def request(call_id: str) -> OriginateRequest:
    return OriginateRequest(
        call_id=call_id, trunk="carrier", number="+12015550000", context="dialer-outbound"
    )


async def collect(adapter: AsteriskAdapter, into: list[PbxEvent]) -> None:
    async with aclosing(adapter.events()) as stream:
        async for event in stream:
            into.append(event)


async def wait_for(events: list[PbxEvent], count: int) -> None:
    async with asyncio.timeout(WAIT):
        while len(events) < count:
            await asyncio.sleep(0.005)


async def test_asterisk_stream_answers_ends_and_expires(fake: FakeAmi) -> None:
    """Answered; a Failure after a channel with no Hangup (ended by a tick); others ignored."""

    async def originate(session: FakeSession, action: Action) -> None:
        call_id = action.get("ChannelId") or ""
        await session.reply(action, Message="Originate successfully queued")
        await session.send(channel_event("Newchannel", call_id, ChannelState="0"))
        await session.send(channel_event("Newchannel", "not-ours", ChannelState="0"))
        if call_id == "answered":
            await session.send(channel_event("Newstate", call_id, ChannelState="6"))
            await session.send(channel_event("OriginateResponse", call_id, Response="Success"))
            await session.send(channel_event("Hangup", call_id, Cause="16"))
        else:  # a channel, then a Failure; the Hangup never comes
            await session.send(
                channel_event("OriginateResponse", call_id, Response="Failure", Reason="3")
            )

    fake.handlers["Originate"] = originate
    settings = AsteriskSettings(ami=settings_for(fake, events="call,user"), failure_grace=0.2)
    events: list[PbxEvent] = []
    async with AsteriskAdapter(settings) as adapter:
        task = asyncio.create_task(collect(adapter, events))
        await adapter.originate(request("answered"))
        await wait_for(events, 3)
        started = asyncio.get_running_loop().time()
        await adapter.originate(request("lost"))
        await wait_for(events, 4)
        waited = asyncio.get_running_loop().time() - started
    async with asyncio.timeout(WAIT):
        await task  # closing the adapter ends its stream
    state, answered, ended, expired, closed = events
    assert closed == PbxState(connected=False, reason="closed", at=closed.at)  # type: ignore[union-attr]
    assert isinstance(state, PbxState)
    assert state.connected
    assert answered == CallAnswered(call_id="answered", at=answered.at)  # type: ignore[union-attr]
    assert isinstance(ended, CallEnded)
    assert ended.call_id == "answered"
    assert ended.raw.answered
    assert ended.raw.q850_cause == 16
    assert isinstance(expired, CallEnded)
    assert expired.call_id == "lost"
    assert not expired.raw.answered
    assert not expired.raw.originate_failed  # it had a channel
    assert expired.raw.originate_reason == 3
    assert 0.2 <= waited <= 0.2 + 0.1 + 0.5, waited  # grace, + at most a tick, + slack
    assert adapter.followed_calls == 0
