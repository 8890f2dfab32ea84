"""AmiClient against an in-test AMI server fake that speaks the wire protocol (ami_fake.py).

Real-Asterisk tests live with the integration stack.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing, suppress
from typing import TypeVar

import pytest

from dialer.errors import (
    ActionFailed,
    ActionTimeout,
    ConfigError,
    PbxUnavailable,
    UnsafeValue,
)
from dialer.pbx.ami import TICK, AmiClient, AmiSettings, ConnectionState, Message, Tick
from tests.unit.ami_fake import (
    SECRET,
    WAIT,
    Action,
    FakeAmi,
    FakeSession,
    core_show_channels,
    eventually,
    frame,
    settings_for,
)

pytestmark = pytest.mark.timeout(20)

T = TypeVar("T")


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmi]:
    server = FakeAmi()
    await server.start()
    yield server
    await server.stop()


async def next_item(stream: AsyncIterator[T]) -> T:
    async with asyncio.timeout(WAIT):
        return await anext(stream)


async def next_state(stream: AsyncIterator[Message | ConnectionState]) -> ConnectionState:
    """The next ConnectionState, skipping events."""
    while True:
        item = await next_item(stream)
        if isinstance(item, ConnectionState):
            return item


# -- connect and login -------------------------------------------------------------------------


async def test_login_then_events_mask_and_connected_state(fake: FakeAmi) -> None:
    clock_values = iter([100.0, 200.0, 300.0])
    async with AmiClient(
        settings_for(fake, events="call,user"), clock=lambda: next(clock_values)
    ) as ami:
        assert ami.connected
        async with aclosing(ami.events()) as stream:
            assert await next_item(stream) == ConnectionState(True, "connected", 100.0)
        stats = ami.statistics()
        assert stats.connected
        assert stats.connects == 1
        assert stats.reconnects == 0

    login, events = fake.named("Login")[0], fake.named("Events")[0]
    assert login.get("Username") == "dialer"
    assert login.get("Secret") == SECRET
    assert login.get("Events") == "off"  # events come on only after the filters
    assert events.get("EventMask") == "call,user"
    assert [a.name for a in fake.actions] == ["Login", "Events", "Logoff"]


async def test_events_off_sends_no_events_action(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake, events="off")):
        pass
    assert [a.name for a in fake.actions] == ["Login", "Logoff"]


async def test_bad_secret_raises_pbx_unavailable(fake: FakeAmi) -> None:
    client = AmiClient(settings_for(fake, secret="wrong"))
    with pytest.raises(PbxUnavailable, match="refused the login: Authentication failed"):
        await client.__aenter__()
    assert not client.connected


async def test_nothing_listening_raises_pbx_unavailable(fake: FakeAmi) -> None:
    await fake.stop()
    with pytest.raises(PbxUnavailable, match="cannot connect"):
        async with AmiClient(settings_for(fake)):
            pass


async def test_silent_server_times_out_as_pbx_unavailable() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never sends a banner
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        settings = AmiSettings(port=port, secret=SECRET, connect_timeout=0.2)
        with pytest.raises(PbxUnavailable, match="timed out"):
            async with AmiClient(settings):
                pass
    finally:
        server.close()
        await server.wait_closed()


async def test_events_sent_during_login_follow_the_connected_state(fake: FakeAmi) -> None:
    async def login(session: FakeSession, action: Action) -> None:
        await session.reply(action, Message="Authentication accepted")
        await session.send(
            frame(Event="FullyBooted", Privilege="system,all", Status="Fully Booted")
        )

    fake.handlers["Login"] = login
    async with AmiClient(settings_for(fake)) as ami, aclosing(ami.events()) as stream:
        first, second = await next_item(stream), await next_item(stream)
        assert isinstance(first, ConnectionState)
        assert first.connected
        assert isinstance(second, Message)
        assert second.event == "FullyBooted"


# -- actions ---------------------------------------------------------------------------------


async def test_concurrent_actions_answered_out_of_order(fake: FakeAmi) -> None:
    held: list[tuple[FakeSession, Action]] = []

    async def hold(session: FakeSession, action: Action) -> None:
        held.append((session, action))
        if len(held) == 5:
            for waiting_session, waiting in reversed(held):
                await waiting_session.reply(waiting, Marker=waiting.get("Marker") or "")

    fake.handlers["Custom"] = hold
    async with AmiClient(settings_for(fake)) as ami:
        responses = await asyncio.gather(
            *(ami.send_action("Custom", {"Marker": f"m{i}"}) for i in range(5))
        )
        assert [r["Marker"] for r in responses] == [f"m{i}" for i in range(5)]
        assert len({r.action_id for r in responses}) == 5
        assert ami.statistics().pending_actions == 0
        assert ami.statistics().actions_sent == 5


async def test_error_response_raises_action_failed(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake)) as ami:
        with pytest.raises(ActionFailed, match="Nope failed: Invalid/unknown command"):
            await ami.send_action("Nope")
        assert (await ami.send_action("Ping"))["Ping"] == "Pong"  # still usable


async def test_originate_with_variables_reaches_the_wire_once(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake)) as ami:
        response = await ami.send_action(
            "Originate",
            [("Channel", "PJSIP/0612345678@carrier"), ("Async", "true")],
            variables={"DIALER_CALL_ID": "c-1", "NAME": "Smith, John"},
        )
        assert response["Message"] == "Originate successfully queued"
    (originate,) = fake.named("Originate")
    variables = [v for k, v in originate.headers if k == "Variable"]
    assert variables == ["DIALER_CALL_ID=c-1", "NAME=Smith\\, John"]


async def test_unsafe_value_raises_and_writes_nothing(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake)) as ami:
        with pytest.raises(UnsafeValue):
            await ami.send_action("Originate", {"Exten": "s\r\nAction: Command\r\nCommand: x"})
        await ami.send_action("Ping")
    assert fake.named("Originate") == []
    assert fake.named("Command") == []


async def test_timeout_raises_action_timeout_and_is_not_resent(fake: FakeAmi) -> None:
    async def never(session: FakeSession, action: Action) -> None:
        return None

    fake.handlers["Originate"] = never
    async with AmiClient(settings_for(fake)) as ami:
        with pytest.raises(ActionTimeout, match="may have run"):
            await ami.send_action("Originate", {"Channel": "PJSIP/1"}, timeout=0.1)
        assert ami.statistics().pending_actions == 0
        await ami.send_action("Ping")
    assert len(fake.named("Originate")) == 1


async def test_originate_in_flight_when_connection_drops_is_never_resent(fake: FakeAmi) -> None:
    async def drop(session: FakeSession, action: Action) -> None:
        session.drop()

    fake.handlers["Originate"] = drop
    async with AmiClient(settings_for(fake)) as ami, aclosing(ami.events()) as stream:
        assert (await next_state(stream)).connected
        with pytest.raises(PbxUnavailable, match="not re-sent"):
            await ami.send_action("Originate", {"Channel": "PJSIP/0612345678@carrier"})

        lost = await next_state(stream)
        assert not lost.connected
        assert "closed by the PBX" in lost.reason or "connection error" in lost.reason
        assert (await next_state(stream)).connected
        await ami.send_action("Ping")  # the new session works, and comes after any re-send

        assert len(fake.sessions) == 2
        assert len(fake.named("Originate")) == 1
        stats = ami.statistics()
        assert stats.connects == 2
        assert stats.reconnects == 1


async def test_not_connected_fails_at_once(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake, reconnect_min=5, reconnect_max=5)) as ami:
        fake.sessions[0].drop()
        async with asyncio.timeout(WAIT):
            await ami.wait_disconnected()
        assert not ami.connected
        with pytest.raises(PbxUnavailable, match="not connected"):
            await ami.send_action("Ping")
        assert fake.named("Ping") == []


async def test_filters_are_applied_before_events_after_every_login(fake: FakeAmi) -> None:
    filters = ("Event: Hangup", "Event: OriginateResponse")
    async with AmiClient(settings_for(fake, filters=filters)) as ami:
        fake.sessions[0].drop()
        await fake.wait_sessions(2)
        await eventually(lambda: ami.statistics().connects == 2)

    for session in (1, 2):
        names = [a.name for a in fake.actions if a.session == session]
        assert names[:4] == ["Login", "Filter", "Filter", "Events"]
        applied = [a for a in fake.named("Filter") if a.session == session]
        assert [a.get("Filter") for a in applied] == list(filters)
        assert {a.get("Operation") for a in applied} == {"Add"}


async def test_refused_filter_fails_the_first_connect(fake: FakeAmi) -> None:
    async def refuse(session: FakeSession, action: Action) -> None:
        await session.reply(action, "Error", Message="Filter Permission Denied")

    fake.handlers["Filter"] = refuse
    with pytest.raises(PbxUnavailable, match="filter 'Event: Hangup'"):
        async with AmiClient(settings_for(fake, filters=("Event: Hangup",))):
            pass


async def test_reconnect_keeps_trying_until_login_works(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake)) as ami, aclosing(ami.events()) as stream:
        await next_state(stream)
        fake.secret = "changed"  # the next logins are refused...
        fake.sessions[0].drop()
        assert not (await next_state(stream)).connected
        await fake.wait_sessions(3)
        fake.secret = SECRET  # ...until the PBX accepts again
        assert (await next_state(stream)).connected
        assert ami.connected


# -- lists and events ------------------------------------------------------------------------


async def test_send_action_list_collects_items_and_leaves_other_events(fake: FakeAmi) -> None:
    async def channels(session: FakeSession, action: Action) -> None:
        aid = action.action_id
        await session.reply(action, EventList="start", Message="Channels will follow")
        await session.send(frame(Event="CoreShowChannel", ActionID=aid, Channel="PJSIP/a-1"))
        await session.send(frame(Event="Newstate", Channel="PJSIP/z-9", ChannelState="5"))
        await session.send(frame(Event="CoreShowChannel", ActionID=aid, Channel="PJSIP/b-2"))
        await session.send(
            frame(Event="CoreShowChannelsComplete", ActionID=aid, EventList="Complete")
        )

    fake.handlers["CoreShowChannels"] = channels
    async with AmiClient(settings_for(fake)) as ami, aclosing(ami.events()) as stream:
        items = await ami.send_action_list("CoreShowChannels")
        assert [i["Channel"] for i in items] == ["PJSIP/a-1", "PJSIP/b-2"]
        assert {i.event for i in items} == {"CoreShowChannel"}
        await next_state(stream)
        newstate = await next_item(stream)
        assert isinstance(newstate, Message)
        assert newstate.event == "Newstate"


async def test_empty_list(fake: FakeAmi) -> None:
    async def none(session: FakeSession, action: Action) -> None:
        await core_show_channels(session, action, [])

    fake.handlers["CoreShowChannels"] = none
    async with AmiClient(settings_for(fake)) as ami:
        assert await ami.send_action_list("CoreShowChannels") == []


async def test_list_action_error(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake)) as ami:
        with pytest.raises(ActionFailed):
            await ami.send_action_list("NoSuchList")


async def test_originate_response_event_goes_to_events_not_to_the_action(fake: FakeAmi) -> None:
    async def originate(session: FakeSession, action: Action) -> None:
        await session.reply(action, Message="Originate successfully queued")
        await session.send(
            frame(
                Event="OriginateResponse",
                Privilege="call,all",
                ActionID=action.action_id,
                Response="Success",
                Channel="PJSIP/carrier-00000001",
                Reason="4",
                Uniqueid="1700000000.1",
            )
        )

    fake.handlers["Originate"] = originate
    async with AmiClient(settings_for(fake)) as ami, aclosing(ami.events()) as stream:
        await next_state(stream)
        response = await ami.send_action("Originate", {"Channel": "PJSIP/1", "Async": "true"})
        event = await next_item(stream)
        assert isinstance(event, Message)
        assert event.event == "OriginateResponse"
        assert event.action_id == response.action_id
        assert event["Reason"] == "4"


async def test_utf8_split_across_tcp_writes(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake)) as ami, aclosing(ami.events()) as stream:
        await next_state(stream)
        data = "Event: Newchannel\r\nCallerIDName: Müller\r\n\r\n".encode()
        cut = data.index(b"\xc3") + 1
        session = fake.sessions[0]
        await session.send(data[:cut])
        await asyncio.sleep(0.05)  # two TCP segments, two reads
        await session.send(data[cut:])
        event = await next_item(stream)
        assert isinstance(event, Message)
        assert event["CallerIDName"] == "Müller"


async def test_bounded_queue_applies_back_pressure_and_drops_nothing(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake, event_queue_size=3)) as ami:
        session = fake.sessions[0]
        await session.send(b"".join(frame(Event="Test", Seq=str(i)) for i in range(20)))
        await eventually(lambda: ami.statistics().queue_size == 3)
        await asyncio.sleep(0.05)
        assert ami.statistics().queue_size == 3  # full; the reader waits instead of dropping

        seen: list[str] = []
        async with aclosing(ami.events()) as stream:
            assert isinstance(await next_item(stream), ConnectionState)
            while len(seen) < 20:
                item = await next_item(stream)
                assert isinstance(item, Message)
                seen.append(item["Seq"])
        assert seen == [str(i) for i in range(20)]
        assert ami.statistics().events_received == 20


async def test_back_pressure_is_not_mistaken_for_a_dead_peer(fake: FakeAmi) -> None:
    settings = settings_for(fake, event_queue_size=2, keepalive_interval=0.05, action_timeout=0.2)
    async with AmiClient(settings) as ami:
        await fake.sessions[0].send(b"".join(frame(Event="Test", Seq=str(i)) for i in range(6)))
        await eventually(lambda: ami.statistics().queue_size == 2)
        await asyncio.sleep(0.5)  # the reader is held far longer than a Ping timeout
        async with aclosing(ami.events()) as stream:
            items = [await next_item(stream) for _ in range(7)]
        assert isinstance(items[0], ConnectionState)
        assert [i["Seq"] for i in items[1:] if isinstance(i, Message)] == [str(i) for i in range(6)]
        assert ami.connected
        assert ami.statistics().connects == 1
        assert len(fake.sessions) == 1


async def test_wait_connected_and_disconnected(fake: FakeAmi) -> None:
    ami = AmiClient(settings_for(fake, reconnect_min=0.2, reconnect_max=0.2))
    async with ami:
        await ami.wait_connected()
        fake.sessions[0].drop()
        async with asyncio.timeout(WAIT):
            await ami.wait_disconnected()
            await ami.wait_connected()
    with pytest.raises(PbxUnavailable, match="closed"):
        await ami.wait_connected()
    await ami.wait_disconnected()


async def test_a_consumer_that_raises_does_not_kill_the_reader(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake)) as ami:
        session = fake.sessions[0]

        async def consume_and_fail() -> None:
            async for item in ami.events():
                if isinstance(item, Message):
                    raise RuntimeError("consumer bug")

        consumer = asyncio.create_task(consume_and_fail())
        await session.send(frame(Event="Test", Seq="1"))
        with pytest.raises(RuntimeError, match="consumer bug"):
            await consumer

        assert (await ami.send_action("Ping"))["Ping"] == "Pong"
        await session.send(frame(Event="Test", Seq="2"))
        async with aclosing(ami.events()) as stream:  # a new consumer may take over
            item = await next_item(stream)
            assert isinstance(item, Message)
            assert item["Seq"] == "2"


async def test_events_has_a_single_consumer(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake)) as ami, aclosing(ami.events()) as first:
        await next_item(first)
        with pytest.raises(RuntimeError, match="single consumer"):
            await anext(ami.events())


async def test_protocol_error_drops_the_connection_and_reconnects(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake)) as ami, aclosing(ami.events()) as stream:
        await next_state(stream)
        await fake.sessions[0].send(b"Event: Broken\r\nno colon here\r\n\r\n")
        lost = await next_state(stream)
        assert not lost.connected
        assert "protocol error" in lost.reason
        assert (await next_state(stream)).connected


async def test_keepalive_detects_a_dead_peer(fake: FakeAmi) -> None:
    async def deaf(session: FakeSession, action: Action) -> None:
        if session.index > 1:
            await session.reply(action, Ping="Pong")

    fake.handlers["Ping"] = deaf
    settings = settings_for(fake, keepalive_interval=0.1, action_timeout=0.3)
    async with AmiClient(settings) as ami, aclosing(ami.events()) as stream:
        await next_state(stream)
        lost = await next_state(stream)
        assert not lost.connected
        assert "Ping" in lost.reason
        assert (await next_state(stream)).connected
        await asyncio.sleep(0.35)  # pings answered now: no further loss
        assert ami.connected
        assert ami.statistics().actions_sent == 0  # keepalives are not counted


async def test_close_logs_off_and_ends_the_event_stream(fake: FakeAmi) -> None:
    ami = AmiClient(settings_for(fake))
    async with ami:
        stream = ami.events()
        assert (await next_item(stream)).connected  # type: ignore[union-attr]
    assert fake.named("Logoff")
    assert not ami.connected
    closed = await next_item(stream)
    assert closed == ConnectionState(False, "closed", closed.at)  # type: ignore[union-attr]
    with pytest.raises(StopAsyncIteration):
        await next_item(stream)
    with pytest.raises(PbxUnavailable):
        await ami.send_action("Ping")


async def test_close_fails_pending_actions(fake: FakeAmi) -> None:
    async def never(session: FakeSession, action: Action) -> None:
        return None

    fake.handlers["Originate"] = never
    async with AmiClient(settings_for(fake, action_timeout=5)) as ami:
        pending = asyncio.create_task(ami.send_action("Originate", {"Channel": "PJSIP/1"}))
        await fake.wait_action("Originate")
    with pytest.raises(PbxUnavailable, match="closed"):
        await pending


# -- ticks ------------------------------------------------------------------------------------


async def collect_for(
    stream: AsyncIterator[Message | ConnectionState | Tick], seconds: float
) -> list[tuple[float, Message | ConnectionState | Tick]]:
    """Every item ``stream`` yields within ``seconds``, with the loop time it came at."""
    loop = asyncio.get_running_loop()
    items: list[tuple[float, Message | ConnectionState | Tick]] = []
    with suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for item in stream:
                items.append((loop.time(), item))
    return items


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


async def test_idle_stream_yields_a_tick_every_period_without_polling(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake)) as ami, aclosing(ami.events(0.05)) as stream:
        start = asyncio.get_running_loop().time()
        items = await collect_for(stream, 0.33)
    assert isinstance(items[0][1], ConnectionState)
    ticks = [at for at, item in items if item is TICK]
    assert len(items) == len(ticks) + 1  # nothing else: one wake-up per tick, no busy loop
    assert 3 <= len(ticks) <= 7, ticks  # ~6; fewer only on a loaded machine
    assert all(0.045 <= gap <= 0.2 for gap in gaps([start, *ticks])), gaps([start, *ticks])


async def test_ticks_keep_coming_while_events_flow(fake: FakeAmi) -> None:
    async def flood() -> None:
        for seq in range(1000):
            await fake.sessions[0].send(frame(Event="Test", Seq=str(seq)))
            await asyncio.sleep(0.002)

    async with AmiClient(settings_for(fake)) as ami, aclosing(ami.events(0.05)) as stream:
        start = asyncio.get_running_loop().time()
        async with asyncio.TaskGroup() as group:
            sender = group.create_task(flood())
            items = await collect_for(stream, 0.3)
            sender.cancel()
    events = [item for _, item in items if isinstance(item, Message)]
    assert [e["Seq"] for e in events] == [str(i) for i in range(len(events))]  # in order
    assert len(events) >= 20
    ticks = [at for at, item in items if item is TICK]
    assert len(ticks) >= 3
    assert max(gaps([start, *ticks])) <= 0.2, gaps([start, *ticks])


async def test_events_without_tick_never_yield_tick(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake)) as ami, aclosing(ami.events()) as stream:
        await fake.sessions[0].send(frame(Event="Test", Seq="1"))
        items = [item for _, item in await collect_for(stream, 0.15)]
    assert len(items) == 2
    assert isinstance(items[0], ConnectionState)
    assert isinstance(items[1], Message)


async def test_closed_client_ends_a_ticking_stream(fake: FakeAmi) -> None:
    ami = AmiClient(settings_for(fake))
    async with ami:
        stream = ami.events(0.02)
        assert isinstance(await next_item(stream), ConnectionState)
    rest = [item for _, item in await collect_for(stream, WAIT)]
    (closed,) = [i for i in rest if i is not TICK]
    assert isinstance(closed, ConnectionState)
    assert (closed.connected, closed.reason) == (False, "closed")


@pytest.mark.parametrize("tick", [0.0, -1.0, float("inf"), float("nan")])
async def test_tick_must_be_a_positive_period(fake: FakeAmi, tick: float) -> None:
    async with AmiClient(settings_for(fake)) as ami:
        with pytest.raises(ValueError, match="tick"):
            await anext(ami.events(tick))
        async with aclosing(ami.events(1.0)) as stream:  # the stream was not taken
            assert isinstance(await next_item(stream), ConnectionState)


# -- settings --------------------------------------------------------------------------------


def test_settings_from_url() -> None:
    settings = AmiSettings.from_url(
        "ami://dialer:p%40ss%3Aword@10.0.0.5:5039?events=call,user"
        "&filter=Event:%20Hangup&filter=Event:%20Newstate&action_timeout=2.5&event_queue_size=50"
    )
    assert settings.host == "10.0.0.5"
    assert settings.port == 5039
    assert settings.username == "dialer"
    assert settings.secret == "p@ss:word"
    assert settings.events == "call,user"
    assert settings.filters == ("Event: Hangup", "Event: Newstate")
    assert settings.action_timeout == 2.5
    assert settings.event_queue_size == 50
    assert "p@ss" not in repr(settings)


def test_settings_from_url_defaults() -> None:
    settings = AmiSettings.from_url("ami://u:s@pbx")
    assert settings.port == 5038
    assert settings.events == "on"
    assert settings.filters == ()


@pytest.mark.parametrize(
    "url",
    [
        "http://u:s@h:5038",
        "ami://u:s@h:99999",
        "ami://u:s@h?unknown=1",
        "ami://u:s@h?action_timeout=soon",
        "ami://u:s@h?action_timeout=0",
        "ami://u:s%0D%0AAction:%20Command@h",
        "ami://u:s@h?filter=a%0Db",
        "ami://u:s@h?reconnect_min=2&reconnect_max=1",
    ],
)
def test_settings_from_url_refuses(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AmiSettings.from_url(url)
    assert "Command" not in str(caught.value)  # never echoes a secret


def test_settings_refuse_a_string_as_filters() -> None:
    with pytest.raises(ConfigError, match="tuple"):
        AmiSettings(filters="Event: Hangup")  # type: ignore[arg-type]


async def _timed_events(
    ami: AmiClient, session: FakeSession, count: int, gap: float
) -> list[tuple[float, float]]:
    """Send ``count`` events ``gap`` seconds apart; (sent, received) loop times of each."""
    loop = asyncio.get_running_loop()
    sent: list[float] = []
    received: list[float] = []

    async def consume() -> None:
        async with aclosing(ami.events()) as stream:
            while len(received) < count:
                item = await next_item(stream)
                if isinstance(item, Message):
                    assert item["Seq"] == str(len(received))  # in order, none lost
                    received.append(loop.time())

    consumer = asyncio.create_task(consume())
    for i in range(count):
        sent.append(loop.time())
        await session.send(frame(Event="Test", Seq=str(i)))
        await asyncio.sleep(gap)
    await consumer
    return list(zip(sent, received, strict=True))


async def test_sparse_events_are_read_as_they_come(fake: FakeAmi) -> None:
    # 20 ms apart (50 events/s), below coalesce_above: no event waits for a coalescing window
    settings = settings_for(fake, read_coalesce=0.1, coalesce_above=200.0)
    async with AmiClient(settings) as ami:
        times = await _timed_events(ami, fake.sessions[0], 15, 0.02)
    assert max(got - sent for sent, got in times) < 0.05


async def test_busy_stream_is_read_in_batches(fake: FakeAmi) -> None:
    # 4 ms apart (250 events/s), above coalesce_above: once the rate is measured, events are
    # read every read_coalesce seconds, several per read (one wake-up for many)
    settings = settings_for(fake, read_coalesce=0.05, coalesce_above=100.0)
    async with AmiClient(settings) as ami:
        times = await _timed_events(ami, fake.sessions[0], 150, 0.004)
    arrivals = [got for _, got in times[50:]]  # after the first rate period
    batches = 1 + sum(1 for a, b in zip(arrivals, arrivals[1:], strict=False) if b - a > 0.002)
    assert batches <= 25  # 100 events over ~0.4 s: ~8 reads, not ~100
    assert max(got - sent for sent, got in times) < 0.05 + 0.1  # a window, plus slack


async def test_send_actions_answers_each_in_order_with_its_own_error(fake: FakeAmi) -> None:
    async def originate(session: FakeSession, action: Action) -> None:
        if action.get("Channel") == "PJSIP/refused":
            await session.reply(action, "Error", Message="Permission denied")
        elif action.get("Channel") != "PJSIP/silent":
            await session.reply(action, Message="Originate successfully queued")

    fake.handlers["Originate"] = originate
    async with AmiClient(settings_for(fake)) as ami:
        replies = await ami.send_actions(
            [
                ("Originate", {"Channel": "PJSIP/1"}, {"DIALER_CALL_ID": "a"}),
                ("Originate", {"Channel": "PJSIP/refused"}, None),
                ("Originate", {"Channel": "PJSIP/x\r\nAction: Command"}, None),
                ("Originate", {"Channel": "PJSIP/silent"}, None),
                ("Originate", {"Channel": "PJSIP/2"}, None),
            ],
            timeout=0.3,
        )
        ok, refused, unsafe, silent, ok2 = replies
        assert isinstance(ok, Message)
        assert ok.response == "Success"
        assert isinstance(ok2, Message)
        assert ok2.response == "Success"
        assert isinstance(refused, ActionFailed)
        assert isinstance(unsafe, UnsafeValue)  # refused before anything was written
        assert isinstance(silent, ActionTimeout)
        assert ami.statistics().pending_actions == 0
    sent = [a.get("Channel") for a in fake.named("Originate")]
    assert sent == ["PJSIP/1", "PJSIP/refused", "PJSIP/silent", "PJSIP/2"]  # each once


async def test_send_actions_when_not_connected_sends_nothing(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake, reconnect_min=5.0, reconnect_max=5.0)) as ami:
        fake.sessions[0].drop()
        await asyncio.wait_for(ami.wait_disconnected(), WAIT)
        (reply,) = await ami.send_actions([("Originate", {"Channel": "PJSIP/1"}, None)])
        assert isinstance(reply, PbxUnavailable)
    assert fake.named("Originate") == []


async def test_event_batches_hand_over_what_is_queued_in_order(fake: FakeAmi) -> None:
    async with AmiClient(settings_for(fake)) as ami:
        session = fake.sessions[0]
        await session.send(b"".join(frame(Event="Test", Seq=str(i)) for i in range(30)))
        await eventually(lambda: ami.statistics().events_received == 30)
        stream = ami.event_batches(60.0)
        async with aclosing(stream):
            async with asyncio.timeout(WAIT):
                first = await anext(stream)
            assert isinstance(first[0], ConnectionState)
            assert [m["Seq"] for m in first[1:] if isinstance(m, Message)] == [
                str(i) for i in range(30)
            ]  # one batch: everything queued, in order
            await session.send(frame(Event="Test", Seq="30"))
            async with asyncio.timeout(WAIT):
                (later,) = await anext(stream)
            assert isinstance(later, Message)
            assert later["Seq"] == "30"
