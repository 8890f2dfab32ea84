"""The FreeSWITCH adapter (and its ESL client) against a protocol-faithful fake server.

No real FreeSWITCH can be installed on these machines: tests/unit/esl_fake.py follows
mod_event_socket.c and mod_sofia's cause mapping, and the recorded transcripts of
tests/data/esl check the correlator with real events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, suppress
from dataclasses import replace
from typing import Any

import pytest

from dialer.domain.calls import AmdStatus, DialplanResult, RawOutcome
from dialer.domain.outcome import classify
from dialer.domain.statuses import CallStatus
from dialer.errors import ActionFailed, ActionTimeout, ConfigError, PbxUnavailable, ValidationError
from dialer.pbx.base import (
    CallAnswered,
    CallEnded,
    ChannelCreated,
    OriginateRequest,
    PbxEvent,
    PbxState,
)
from dialer.pbx.esl.client import EslClient, EslSettings
from dialer.pbx.esl.codec import EslCodec, EslEvent
from dialer.pbx.freeswitch.adapter import (
    FreeSwitchAdapter,
    FreeSwitchSettings,
    encode_value,
    originate_args,
    parse_show_channels,
)
from dialer.pbx.freeswitch.correlate import FOLLOWED_EVENTS, CallCorrelator
from dialer.pbx.freeswitch.record import hangup_hook
from tests.unit.esl_fake import PASSWORD, WAIT, FakeFreeSwitch, Scenario
from tests.unit.esl_transcripts import transcript

pytestmark = pytest.mark.timeout(20)

NUMBER = "+12015550100"


@pytest.fixture(autouse=True)
def no_asyncio_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No task or future of the client may end with an error nobody saw."""
    yield
    errors = [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.fixture
async def fake() -> AsyncIterator[FakeFreeSwitch]:
    server = FakeFreeSwitch()
    await server.start()
    yield server
    await server.stop()


def esl_settings(fake: FakeFreeSwitch, **changes: Any) -> EslSettings:
    base = EslSettings(
        port=fake.port,
        password=PASSWORD,
        events=FOLLOWED_EVENTS,
        reconnect_min=0.05,
        reconnect_max=0.2,
        keepalive_interval=0,
        command_timeout=2.0,
    )
    return replace(base, **changes)


class Running:
    """An adapter in use, with its event stream collected in the background."""

    def __init__(self, adapter: FreeSwitchAdapter) -> None:
        self.adapter = adapter
        self.events: list[PbxEvent] = []
        self._changed = asyncio.Event()

    async def collect(self) -> None:
        async with aclosing(self.adapter.events()) as stream:
            async for event in stream:
                self.events.append(event)
                self._changed.set()

    async def wait(self, predicate: Any) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def ended(self, call_id: str) -> list[CallEnded]:
        return [e for e in self.events if isinstance(e, CallEnded) and e.call_id == call_id]

    def answered(self, call_id: str) -> list[CallAnswered]:
        return [e for e in self.events if isinstance(e, CallAnswered) and e.call_id == call_id]

    async def wait_ended(self, call_id: str) -> CallEnded:
        await self.wait(lambda: self.ended(call_id))
        return self.ended(call_id)[0]

    def states(self) -> list[bool]:
        return [e.connected for e in self.events if isinstance(e, PbxState)]


@pytest.fixture
async def running(fake: FakeFreeSwitch) -> AsyncIterator[Running]:
    settings = FreeSwitchSettings(esl=esl_settings(fake), failure_grace=0.3)
    async with FreeSwitchAdapter(settings) as adapter:
        run = Running(adapter)
        task = asyncio.create_task(run.collect())
        try:
            yield run
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


def request(call_id: str, number: str = NUMBER, **changes: Any) -> OriginateRequest:
    base = OriginateRequest(
        call_id=call_id, trunk="carrier", number=number, context="dialer-outbound", ring_timeout=30
    )
    return replace(base, **changes)


async def settle_with_marker(run: Running, fake: FakeFreeSwitch, job: str) -> None:
    """Wait until everything FreeSWITCH sent about ``job`` was consumed by the adapter.

    The fake fires the job's BACKGROUND_JOB, then a marker call is answered and hung up: its
    CallEnded comes after every earlier event (one connection, one ordered stream).
    """
    await fake.wait_for(
        lambda: any(
            e.get("Job-UUID") == job and e["Event-Name"] == "BACKGROUND_JOB" for e in fake.fired
        )
    )
    fake.scenarios["+19990000000"] = Scenario("answer", sip=200, hold=0.0)
    await run.adapter.originate(request(marker(job), "+19990000000"))
    await run.wait_ended(marker(job))


def marker(job: str) -> str:
    return f"marker-{job[-8:]}"


# -- calls ----------------------------------------------------------------------------------


async def test_answered_call(running: Running, fake: FakeFreeSwitch) -> None:
    fake.scenarios[NUMBER] = Scenario("answer", sip=200, hold=0.05)
    await running.adapter.originate(request("dlr-0001", caller_id='"Sales" <+33100000000>'))

    ended = await running.wait_ended("dlr-0001")
    assert ended.raw == RawOutcome(answered=True, q850_cause=16, sip_code=200)
    assert ended.answered_at is not None
    assert ended.started_at is not None
    assert ended.started_at <= ended.answered_at <= ended.ended_at
    assert len(running.answered("dlr-0001")) == 1
    assert classify(ended.raw).status is CallStatus.ANSWERED
    assert running.states()[0] is True

    command = await fake.wait_command("bgapi originate")
    assert command.headers == {"Job-UUID": "dlr-0001"}
    assert command.line == (
        "bgapi originate {origination_uuid=dlr-0001,dialer_call_id=dlr-0001,originate_timeout=30,"
        "ignore_early_media=true,origination_caller_id_number=+33100000000,"
        "origination_caller_id_name=Sales,origination_nested_vars=true,"
        f"api_hangup_hook={hangup_hook()}}}sofia/gateway/carrier/+12015550100 s XML dialer-outbound"
    )
    assert running.adapter.followed_calls == 0


FAILURES = [
    # id, scenario, expected raw, expected status
    ("busy", Scenario("fail", "USER_BUSY", 17, 486), (17, 486), CallStatus.BUSY),
    (
        "busy-job-first",
        Scenario("fail", "USER_BUSY", 17, 486, job_first=True),
        (17, 486),
        CallStatus.BUSY,
    ),
    ("480", Scenario("fail", "NO_USER_RESPONSE", 18, 480), (18, 480), CallStatus.NO_ANSWER),
    ("ring-timeout", Scenario("fail", "NO_ANSWER", 19), (19, None), CallStatus.NO_ANSWER),
    ("404", Scenario("fail", "UNALLOCATED_NUMBER", 1, 404), (1, 404), CallStatus.INVALID_NUMBER),
    (
        "503",
        Scenario("fail", "NORMAL_TEMPORARY_FAILURE", 41, 503),
        (41, 503),
        CallStatus.TECHNICAL_ERROR,
    ),
    ("603", Scenario("fail", "CALL_REJECTED", 21, 603), (21, 603), CallStatus.REJECTED),
]


@pytest.mark.parametrize(
    ("scenario", "expected", "status"),
    [case[1:] for case in FAILURES],
    ids=[case[0] for case in FAILURES],
)
async def test_unanswered_calls_end_once_with_the_raw_cause(
    running: Running,
    fake: FakeFreeSwitch,
    scenario: Scenario,
    expected: tuple[int, int | None],
    status: CallStatus,
) -> None:
    fake.scenarios[NUMBER] = scenario
    await running.adapter.originate(request("dlr-fail", ring_timeout=1.5))

    ended = await running.wait_ended("dlr-fail")
    assert ended.raw == RawOutcome(answered=False, q850_cause=expected[0], sip_code=expected[1])
    assert ended.answered_at is None
    assert classify(ended.raw).status is status
    await settle_with_marker(running, fake, "dlr-fail")
    assert len(running.ended("dlr-fail")) == 1  # the later BACKGROUND_JOB ended nothing more
    assert running.answered("dlr-fail") == []
    command = await fake.wait_command("bgapi originate")
    assert ",originate_timeout=2," in command.line  # ceil(1.5)


async def test_originate_that_makes_no_channel_fails_at_once(
    running: Running, fake: FakeFreeSwitch
) -> None:
    fake.scenarios[NUMBER] = Scenario("no_channel", "INVALID_GATEWAY", 0)
    await running.adapter.originate(request("dlr-nogw"))

    ended = await running.wait_ended("dlr-nogw")
    assert ended.raw == RawOutcome(answered=False, originate_failed=True, originate_reason=808)
    assert classify(ended.raw).status is CallStatus.TECHNICAL_ERROR


async def test_failed_job_whose_hangup_never_comes_ends_after_the_grace(
    running: Running, fake: FakeFreeSwitch
) -> None:
    fake.scenarios[NUMBER] = Scenario("fail", "USER_BUSY", 17, 486, no_hangup=True)
    await running.adapter.originate(request("dlr-grace"))

    ended = await running.wait_ended("dlr-grace")
    assert ended.raw == RawOutcome(answered=False, q850_cause=17)
    assert ended.started_at is not None
    assert ended.ended_at - ended.started_at >= 0.3


async def test_amd_comes_from_the_hangup_and_no_custom_event_is_subscribed(
    running: Running, fake: FakeFreeSwitch
) -> None:
    """dialer.xml times the greeting itself and reports through the hang-up's variables: the
    adapter subscribes to no CUSTOM event, so a mod_avmd beep never reaches it."""
    variables = {"dialer_amd_status": "MACHINE", "dialer_amd_cause": "LONGGREETING-1500"}
    fake.scenarios[NUMBER] = Scenario("answer", sip=200, beep=True, hold=0.1, variables=variables)
    await running.adapter.originate(request("dlr-amd"))

    ended = await running.wait_ended("dlr-amd")
    assert ended.raw.answered
    assert (ended.raw.amd_status, ended.raw.amd_cause) == (AmdStatus.MACHINE, "LONGGREETING-1500")
    assert classify(ended.raw).status is CallStatus.VOICEMAIL
    assert not [c.line for c in fake.commands if "CUSTOM" in c.line]


def test_a_custom_event_changes_nothing() -> None:
    """Even delivered (another subscription on a shared connection), a beep is not a result."""
    correlator = CallCorrelator()
    correlator.follow("u1", 1.0)
    beep = EslEvent(
        headers=(
            ("Event-Name", "CUSTOM"),
            ("Event-Subclass", "avmd::beep"),
            ("Unique-ID", "u1"),
            ("Beep-Status", "DETECTED"),
        )
    )
    assert correlator.feed(beep, 2.0) == []
    hangup = EslEvent(
        headers=(
            ("Event-Name", "CHANNEL_HANGUP_COMPLETE"),
            ("Unique-ID", "u1"),
            ("Hangup-Cause", "NORMAL_CLEARING"),
            ("variable_answer_epoch", "2"),
        )
    )
    (ended,) = correlator.feed(hangup, 3.0)
    assert isinstance(ended, CallEnded)
    assert ended.raw == RawOutcome(answered=True, q850_cause=16)


async def test_dialplan_variables_carry_amd_and_callback(
    running: Running, fake: FakeFreeSwitch
) -> None:
    variables = {
        "dialer_amd_status": "HUMAN",
        "dialer_amd_cause": "HUMAN-800-800",
        "dialer_result": "callback",
        "dialer_callback_at": "1900000000",
    }
    fake.scenarios[NUMBER] = Scenario("answer", sip=200, hold=0.05, variables=variables)
    await running.adapter.originate(request("dlr-cb"))

    ended = await running.wait_ended("dlr-cb")
    assert ended.raw.amd_status is AmdStatus.HUMAN
    assert ended.raw.amd_cause == "HUMAN-800-800"
    assert ended.raw.dialplan_result is DialplanResult.CALLBACK
    assert ended.raw.callback_at == 1900000000.0
    assert classify(ended.raw).status is CallStatus.RESCHEDULED


async def test_refused_bgapi_raises_and_forgets_the_call(
    running: Running, fake: FakeFreeSwitch
) -> None:
    fake.scenarios[NUMBER] = Scenario("refuse")
    with pytest.raises(ActionFailed, match="permission denied"):
        await running.adapter.originate(request("dlr-refused"))
    assert running.adapter.followed_calls == 0


async def test_connection_lost_mid_originate_is_never_resent(
    running: Running, fake: FakeFreeSwitch
) -> None:
    fake.scenarios[NUMBER] = Scenario("drop")
    with pytest.raises(PbxUnavailable, match="not re-sent"):
        await running.adapter.originate(request("dlr-drop"))
    await running.wait(lambda: running.states() == [True, False, True])
    await fake.wait_sessions(2)
    assert running.adapter.connected
    assert len(fake.named("bgapi originate")) == 1
    assert running.adapter.followed_calls == 1  # kept for reconciliation
    assert await running.adapter.live_calls() == {}
    assert len(fake.named("bgapi originate")) == 1

    fake.scenarios[NUMBER] = Scenario("answer", sip=200, hold=0.0)
    await running.adapter.originate(request("dlr-after"))
    await running.wait_ended("dlr-after")
    assert [c.line.split(",")[0] for c in fake.named("bgapi originate")] == [
        "bgapi originate {origination_uuid=dlr-drop",
        "bgapi originate {origination_uuid=dlr-after",
    ]


async def test_live_calls_and_hangup(running: Running, fake: FakeFreeSwitch) -> None:
    fake.scenarios[NUMBER] = Scenario("answer", sip=200)
    await running.adapter.originate(request("dlr-live"))
    await running.wait(lambda: running.answered("dlr-live"))

    assert await running.adapter.live_calls() == {"dlr-live": True}
    await running.adapter.hangup("dlr-live")
    ended = await running.wait_ended("dlr-live")
    assert ended.raw == RawOutcome(answered=True, q850_cause=16, sip_code=200)
    assert await running.adapter.live_calls() == {}
    await running.adapter.hangup("dlr-live")  # gone: "-ERR No such channel!" is a no-op
    await running.adapter.hangup("not a call id")  # never sent
    assert [c.line for c in fake.named("api uuid_kill")] == ["api uuid_kill dlr-live"] * 2


async def test_events_of_other_calls_are_ignored(running: Running, fake: FakeFreeSwitch) -> None:
    fake.fire([("Event-Name", "CHANNEL_ANSWER"), ("Unique-ID", "someone-else")])
    fake.fire([("Event-Name", "CHANNEL_HANGUP_COMPLETE"), ("Unique-ID", "someone-else")])
    fake.fire([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "someone-else")], "-ERR X\n")
    await settle_with_marker(running, fake, "someone-else")
    events = [e for e in running.events if not isinstance(e, PbxState)]
    created = [e.call_id for e in events if isinstance(e, ChannelCreated)]
    assert created == [marker("someone-else")]  # the marker call's own channel stamp only
    assert [e for e in events if not isinstance(e, ChannelCreated)] == [
        *running.answered(marker("someone-else")),
        *running.ended(marker("someone-else")),
    ]


async def test_adopted_call_ends_when_its_hangup_comes(
    running: Running, fake: FakeFreeSwitch
) -> None:
    running.adapter.adopt("dlr-adopted", answered=True)
    fake.fire(
        [
            ("Event-Name", "CHANNEL_HANGUP_COMPLETE"),
            ("Unique-ID", "dlr-adopted"),
            ("Hangup-Cause", "NORMAL_CLEARING"),
            ("variable_hangup_cause_q850", "16"),
        ]
    )
    ended = await running.wait_ended("dlr-adopted")
    assert ended.raw == RawOutcome(answered=True, q850_cause=16)
    running.adapter.adopt("dlr-forgotten", answered=False)
    running.adapter.forget("dlr-forgotten")
    assert running.adapter.followed_calls == 0


@pytest.mark.parametrize("fmt", ["json", "plain"])
async def test_event_formats(fake: FakeFreeSwitch, fmt: str) -> None:
    """JSON is the default; plain text still works the same."""
    changes = {"event_format": fmt} if fmt == "plain" else {}
    settings = FreeSwitchSettings(esl=esl_settings(fake, **changes), park=True)
    async with FreeSwitchAdapter(settings) as adapter:
        run = Running(adapter)
        async with asyncio.TaskGroup() as group:
            task = group.create_task(run.collect())
            fake.scenarios[NUMBER] = Scenario("fail", "USER_BUSY", 17, 486)
            await adapter.originate(request("dlr-json"))
            ended = await run.wait_ended("dlr-json")
            task.cancel()
    assert ended.raw == RawOutcome(answered=False, q850_cause=17, sip_code=486)
    assert fake.sessions[0].fmt == fmt
    assert fake.named("bgapi originate")[0].line.endswith(
        "sofia/gateway/carrier/+12015550100 &park()"
    )
    assert fake.named("exit")  # a clean goodbye on close


# -- the ESL client -------------------------------------------------------------------------


async def test_wrong_password_and_acl_refusal_fail_the_first_connect(
    fake: FakeFreeSwitch,
) -> None:
    with pytest.raises(PbxUnavailable, match="-ERR invalid"):
        async with EslClient(esl_settings(fake, password="wrong")):
            pass
    fake.reject_acl = True
    with pytest.raises(PbxUnavailable, match="rude-rejection Access Denied"):
        async with EslClient(esl_settings(fake)):
            pass


async def test_nothing_listening_is_unavailable() -> None:
    server = FakeFreeSwitch()
    await server.start()
    port = server.port
    await server.stop()
    with pytest.raises(PbxUnavailable, match="cannot connect"):
        async with EslClient(EslSettings(port=port, password="x", connect_timeout=1)):
            pass


async def test_a_timed_out_command_keeps_its_place_in_the_reply_queue(
    fake: FakeFreeSwitch,
) -> None:
    async with EslClient(esl_settings(fake)) as esl:
        with pytest.raises(ActionTimeout, match="not re-sent"):
            await esl.api("msleep", "300", timeout=0.05)
        # The late "+OK" of msleep must not be taken for uptime's reply.
        assert await esl.api("uptime") == "4242\n"
        assert esl.statistics().pending_replies == 0
        with pytest.raises(ActionFailed, match="Command not found"):
            await esl.api("nosuchapi")
        assert await esl.api("nosuchapi", check=False) == "-ERR nosuchapi Command not found!\n"
        stats = esl.statistics()
    assert stats.connects == 1
    assert stats.commands_sent == 4


async def test_filters_and_subscription_are_sent_on_connect(fake: FakeFreeSwitch) -> None:
    settings = esl_settings(fake, filters=(("Event-Name", "BACKGROUND_JOB"),))
    async with EslClient(settings) as esl:
        assert esl.connected
    lines = [c.line for c in fake.commands]
    assert lines == [
        f"auth {PASSWORD}",
        "filter Event-Name BACKGROUND_JOB",
        "event json CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB",
        "exit",
    ]


async def test_keepalive_notices_a_silent_server(fake: FakeFreeSwitch) -> None:
    settings = esl_settings(fake, keepalive_interval=0.1, command_timeout=0.2)
    async with EslClient(settings) as esl:
        await fake.wait_command("api uptime")
        hung = asyncio.ensure_future(esl.api("msleep", "1000", timeout=5))
        await esl.wait_disconnected()
        with pytest.raises(PbxUnavailable):
            await hung
        async with asyncio.timeout(WAIT):
            await esl.wait_connected()
        assert esl.statistics().reconnects == 1


def test_settings_from_url_and_checks() -> None:
    settings = FreeSwitchSettings.from_url("esl://:s%40cret@fs.example:8022?format=json")
    assert settings.esl.password == "s@cret"
    assert settings.esl.port == 8022
    assert settings.esl.event_format == "json"
    assert settings.esl.events == (*FOLLOWED_EVENTS, "CUSTOM", "sofia::gateway_state")
    assert "s@cret" not in repr(settings)
    with pytest.raises(ConfigError):
        EslSettings.from_url("ami://x")
    with pytest.raises(ConfigError):
        EslSettings.from_url("esl://:x@h?nope=1")
    with pytest.raises(ConfigError):
        EslSettings(password="a\nb")
    with pytest.raises(ConfigError):
        EslSettings(events=("CHANNEL_ANSWER\n\nexit",))
    with pytest.raises(ConfigError):
        EslSettings(event_format="xml")


# -- sans-IO parts: the originate line, show channels, recorded events ----------------------


def test_originate_args_escape_contact_values_and_keep_reserved_variables() -> None:
    # without the end record's hang-up hook (the adapter's own ${...}: test_freeswitch_record)
    settings = FreeSwitchSettings(esl=EslSettings(), end_records=False)
    hostile = "x},origination_uuid=evil ${system(rm)} 'q' \\ M\u00fcller=1"
    args = originate_args(
        request("dlr-esc", variables={"DIALER_VAR_NAME": hostile, "ORIGINATION_UUID": "evil"}),
        settings,
    )
    endpoint = args[0]
    block = endpoint[1 : endpoint.index("}")]
    assert endpoint.endswith("}sofia/gateway/carrier/+12015550100")
    assert block.count("origination_uuid=") == 1
    assert "evil" not in block.split("DIALER_VAR_NAME=")[0]
    assert f"DIALER_VAR_NAME={encode_value(hostile)}" in block
    assert all(ch not in block for ch in " '\\{$")
    assert encode_value("M\u00fcller, J.") == "M%C3%BCller%2C%20J."
    assert args[1:] == ["s", "XML", "dialer-outbound"]


@pytest.mark.parametrize(
    "changes",
    [
        {"number": "12 34"},
        {"number": "+1; exit"},
        {"trunk": "car rier"},
        {"call_id": "x" * 37},
        {"call_id": "dlr 1"},
        {"exten": "s s"},
        {"context": "a}b"},
        {"variables": {"BAD NAME": "x"}},
    ],
)
def test_originate_args_refuse_unusable_requests(changes: dict[str, Any]) -> None:
    bad = replace(request("dlr-bad"), **changes)
    with pytest.raises(ValidationError):
        originate_args(bad, FreeSwitchSettings(esl=EslSettings()))


def test_show_channels_output() -> None:
    (response,) = EslCodec().receive_data(transcript("webitel_show_channels_json.txt"))
    assert parse_show_channels(response.body) == {"d16592f8-e9c2-409d-a994-13c033b282ab": True}
    assert parse_show_channels('{"row_count":0}') == {}
    rows = '{"row_count":1,"rows":[{"uuid":"u1","callstate":"RINGING"}]}'
    assert parse_show_channels(rows) == {"u1": False}
    with pytest.raises(ActionFailed):
        parse_show_channels("-ERR no reply")
    with pytest.raises(ActionFailed):
        parse_show_channels('{"rows": 3}')


def test_recorded_hangup_complete_through_the_correlator() -> None:
    (event,) = EslCodec().receive_data(transcript("cgrates_channel_hangup_complete.txt"))
    assert isinstance(event, EslEvent)
    correlator = CallCorrelator()
    correlator.follow("e3133bf7-dcde-4daf-9663-9a79ffcef5ad", 1436280728.0)
    (ended,) = correlator.feed(event, 1436280794.0)
    assert ended == CallEnded(
        call_id="e3133bf7-dcde-4daf-9663-9a79ffcef5ad",
        raw=RawOutcome(answered=True, q850_cause=16, sip_code=200),
        ended_at=1436280794.0,
        answered_at=1436280728.971147,
        started_at=1436280728.0,
    )
    assert len(correlator) == 0


def test_recorded_failed_background_job_through_the_correlator() -> None:
    items = EslCodec().receive_data(transcript("neventsocket_bgapi_originate_failure.txt"))
    job = items[-1]
    assert isinstance(job, EslEvent)
    correlator = CallCorrelator()
    correlator.follow("call-1", 1.0)
    correlator.bind_job("43e14ab9-38b1-4187-9f08-e13f35136bb2", "call-1")
    (ended,) = correlator.feed(job, 2.0)
    assert isinstance(ended, CallEnded)
    assert ended.call_id == "call-1"
    assert ended.raw == RawOutcome(
        answered=False, q850_cause=102, originate_failed=True, originate_reason=102
    )
    assert correlator.feed(job, 3.0) == []  # the same job again ends nothing


# -- the switch's end records of calls followed to their end -------------------------------


async def test_records_of_calls_ended_by_events_are_deleted_in_groups_and_on_close(
    fake: FakeFreeSwitch,
) -> None:
    """One ``global_setvar <record>=`` per call that ended by its events, sent once
    ``end_record_drop_batch`` of them wait (here 2), the rest when the adapter closes."""
    settings = FreeSwitchSettings(
        esl=esl_settings(fake), park=True, end_record_drop_batch=2, end_record_drop_delay=60
    )
    fake.scenarios[NUMBER] = Scenario("fail", "USER_BUSY", 17, 486)
    deletes = "api global_setvar dialer_end_"
    async with FreeSwitchAdapter(settings) as adapter:
        run = Running(adapter)
        async with asyncio.TaskGroup() as group:
            task = group.create_task(run.collect())
            await adapter.originate(request("dlr-rec-1"))
            await run.wait_ended("dlr-rec-1")
            await asyncio.sleep(0.05)
            assert not fake.named(deletes)  # one waits: not yet
            await adapter.originate(request("dlr-rec-2"))
            await run.wait_ended("dlr-rec-2")
            await fake.wait_for(lambda: len(fake.named(deletes)) == 2)
            await adapter.originate(request("dlr-rec-3"))
            await run.wait_ended("dlr-rec-3")
            task.cancel()
        assert len(fake.named(deletes)) == 2
    lines = [c.line for c in fake.commands]
    assert lines[-2:] == ["api global_setvar dialer_end_dlr-rec-3=", "exit"]
    assert [c.line for c in fake.named(deletes)] == [
        f"api global_setvar dialer_end_dlr-rec-{i}=" for i in (1, 2, 3)
    ]


async def test_commands_of_one_loop_turn_go_out_in_one_write(fake: FakeFreeSwitch) -> None:
    """Concurrent commands share one write (one system call), each still gets its own reply
    in order; a command alone goes out by itself."""
    async with EslClient(esl_settings(fake)) as esl:
        conn = esl._conn
        assert conn is not None
        writes: list[bytes] = []
        write = conn.writer.write

        def counting(
            data: bytes | bytearray | memoryview,
        ) -> None:  # a spy on our own writer: the bytes still go out
            writes.append(bytes(data))
            write(data)

        conn.writer.write = counting  # type: ignore[method-assign]
        replies = await asyncio.gather(
            esl.api("uptime"), esl.api("nosuchapi", check=False), esl.api("uptime")
        )
        assert list(replies) == ["4242\n", "-ERR nosuchapi Command not found!\n", "4242\n"]
        assert writes == [b"api uptime\n\napi nosuchapi\n\napi uptime\n\n"]
        assert await esl.api("uptime") == "4242\n"
        assert writes[1:] == [b"api uptime\n\n"]
