"""Each behaviour of the carrier simulator, through the real Asterisk, as AMI reports it.

These are the ground-truth raw values for the outcome mapping (recorded in
pbx-config/asterisk/README.md): OriginateResponse Response/Reason, Hangup Cause/TechCause,
the DialerAMD and DialerResult UserEvents of the dialplan. The connection is manager.conf's
watching user, so they also prove its event filters: a call brings exactly Newchannel, Newstate
(Up only), OriginateResponse, Hangup and the dialplan's UserEvents. The dialer's own user gets
only OriginateResponse, Hangup and the UserEvents (``test_the_dialer_user_gets_two_events_...``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from dialer.errors import ActionFailed
from dialer.pbx.ami.client import AmiClient
from dialer.pbx.ami.codec import Message
from ops.localstack.numberplan import PREFIX, Behaviour, number
from ops.localstack.stack import StackInfo

pytestmark = pytest.mark.integration

B = Behaviour
RING_TIMEOUT_MS = 4000


@dataclass
class CallTrace:
    """Every AMI event of one originated call (matched on its ChannelId), timed."""

    call_id: str
    started: float
    events: list[tuple[float, Message]] = field(default_factory=list)

    def all(self, event: str, **match: str) -> list[Message]:
        return [
            m
            for _, m in self.events
            if m.event == event and all(m.get(k) == v for k, v in match.items())
        ]

    def one(self, event: str, **match: str) -> Message:
        found = self.all(event, **match)
        assert len(found) == 1, f"{self.call_id}: {len(found)} {event} {match}: {self.names()}"
        return found[0]

    def at(self, event: str, **match: str) -> float:
        for t, m in self.events:
            if m.event == event and all(m.get(k) == v for k, v in match.items()):
                return t
        raise AssertionError(f"{self.call_id}: no {event} {match}: {self.names()}")

    def has(self, event: str) -> bool:
        return any(m.event == event for _, m in self.events)

    def names(self) -> list[str]:
        return [m.event or "?" for _, m in self.events]

    def call_events(self) -> Counter[str]:
        """How many events of each name the call brought, the dialplan's UserEvents aside."""
        return Counter(name for name in self.names() if name != "UserEvent")

    @property
    def ended(self) -> bool:
        return self.has("OriginateResponse") and self.has("Hangup")


class CallWatcher:
    """Routes the events of one AMI connection to the calls it originated."""

    def __init__(self, ami: AmiClient, stack: StackInfo) -> None:
        self.ami = ami
        self.stack = stack
        self.calls: dict[str, CallTrace] = {}
        self.changed = asyncio.Condition()

    async def route(self) -> None:
        async for item in self.ami.events():
            if not isinstance(item, Message):
                continue
            trace = self.calls.get(item.get("Uniqueid") or "")
            if trace is not None:
                trace.events.append((time.monotonic() - trace.started, item))
                async with self.changed:
                    self.changed.notify_all()

    async def originate(
        self,
        dialed: str,
        *,
        trunk: str | None = None,
        timeout_ms: int = 10_000,
        variables: Mapping[str, str] | None = None,
    ) -> CallTrace:
        call_id = f"sim-{secrets.token_hex(6)}"
        trace = CallTrace(call_id, time.monotonic())
        self.calls[call_id] = trace
        response = await self.ami.send_action(
            "Originate",
            {
                "Channel": f"PJSIP/{dialed}@{trunk or self.stack.trunk}",
                "ChannelId": call_id,
                "Context": self.stack.originate_context,
                "Exten": self.stack.originate_exten,
                "Priority": "1",
                "Async": "true",
                "Timeout": str(timeout_ms),
            },
            variables={"DIALER_MAX_TALK": "20", **(variables or {})},
        )
        assert response.get("Response") == "Success", response
        return trace

    async def wait(
        self, trace: CallTrace, until: Callable[[CallTrace], bool], within: float = 30.0
    ) -> CallTrace:
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(lambda: until(trace))
        return trace

    async def call(
        self,
        dialed: str,
        *,
        trunk: str | None = None,
        timeout_ms: int = 10_000,
        variables: Mapping[str, str] | None = None,
    ) -> CallTrace:
        trace = await self.originate(
            dialed, trunk=trunk, timeout_ms=timeout_ms, variables=variables
        )
        return await self.wait(trace, lambda t: t.ended)


@asynccontextmanager
async def watching(ami: AmiClient, stack: StackInfo) -> AsyncIterator[CallWatcher]:
    watcher = CallWatcher(ami, stack)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(watcher.route())
        try:
            yield watcher
        finally:
            task.cancel()


def serial() -> int:
    return secrets.randbelow(10_000)


@pytest.fixture
async def calls(ami: AmiClient, stack: StackInfo) -> AsyncIterator[CallWatcher]:
    async with watching(ami, stack) as watcher:
        yield watcher


# What manager.conf lets through of a call that was answered, and of one that was not.
ANSWERED_EVENTS = Counter(["Newchannel", "Newstate", "OriginateResponse", "Hangup"])
UNANSWERED_EVENTS = Counter(["Newchannel", "OriginateResponse", "Hangup"])


async def test_the_dialer_user_gets_two_events_per_call_and_the_hangup_state(
    stack: StackInfo,
) -> None:
    """What the engine's correlator relies on: OriginateResponse and Hangup only, the Hangup's
    ChannelState 6 for an answered call and not for a rejected one, and the channel's name in a
    Success response."""
    from tests.integration.conftest import ami_settings

    async with AmiClient(ami_settings(stack, events="call,user", watch=False)) as dialer_ami:
        async with watching(dialer_ami, stack) as calls:
            answered = await calls.call(
                number(B.HOLD, serial(), hold_s=1), variables={"DIALER_AMD": "0"}
            )
            busy = await calls.call(number(B.BUSY, serial()))
    assert answered.call_events() == Counter(["OriginateResponse", "Hangup"]), answered.names()
    assert busy.call_events() == Counter(["OriginateResponse", "Hangup"]), busy.names()
    response = answered.one("OriginateResponse")
    assert response.get("Response") == "Success"
    assert (response.get("Channel") or "").startswith(f"PJSIP/{stack.trunk}-")
    assert response.get("Channel") == answered.one("Hangup").get("Channel")
    assert answered.one("Hangup").get("ChannelState") == "6"
    assert busy.one("Hangup").get("ChannelState") != "6"
    assert busy.one("OriginateResponse").get("Response") == "Failure"


def assert_answered(trace: CallTrace) -> None:
    response = trace.one("OriginateResponse")
    assert (response.get("Response"), response.get("Reason")) == ("Success", "4")
    trace.one("Newstate", ChannelStateDesc="Up")
    assert trace.call_events() == ANSWERED_EVENTS, trace.names()


def amd_of(trace: CallTrace) -> tuple[str | None, str | None]:
    event = trace.one("UserEvent", UserEvent="DialerAMD")
    return event.get("Status"), event.get("Cause")


# -- answered ---------------------------------------------------------------------------------


async def test_wait_for_bye_holds_until_our_side_hangs_up(calls: CallWatcher) -> None:
    # DIALER_MAX_TALK=2: the dialplan's TIMEOUT(absolute) hangs up; SIPp waits for that BYE.
    trace = await calls.call(
        number(B.WAIT_FOR_BYE, serial()), variables={"DIALER_AMD": "0", "DIALER_MAX_TALK": "2"}
    )
    assert_answered(trace)
    hangup = trace.one("Hangup")
    assert (hangup.get("Cause"), hangup.get("TechCause")) == ("16", None)
    talk = trace.at("Hangup") - trace.at("Newstate", ChannelStateDesc="Up")
    assert 1.8 <= talk <= 3.5, talk


async def test_hold_hangs_up_after_the_coded_seconds(calls: CallWatcher) -> None:
    trace = await calls.call(number(B.HOLD, serial(), hold_s=3), variables={"DIALER_AMD": "0"})
    assert_answered(trace)
    hangup = trace.one("Hangup")
    # The far end's BYE (no Reason header) leaves the cause unset: 0 "Unknown".
    assert (hangup.get("Cause"), hangup.get("Cause-txt"), hangup.get("TechCause")) == (
        "0",
        "Unknown",
        None,
    )
    talk = trace.at("Hangup") - trace.at("Newstate", ChannelStateDesc="Up")
    assert 2.8 <= talk <= 4.0, talk


async def test_human_is_detected_and_the_call_can_be_hung_up(calls: CallWatcher) -> None:
    trace = await calls.originate(number(B.HUMAN, serial()), variables={"DIALER_AMD": "1"})
    await calls.wait(trace, lambda t: bool(t.all("UserEvent", UserEvent="DialerAMD")))
    status, cause = amd_of(trace)
    assert status == "HUMAN"
    assert cause == "HUMAN-800-800"
    assert trace.at("UserEvent") < 3.0
    channel = trace.one("Newchannel").get("Channel")
    await calls.ami.send_action("Hangup", {"Channel": channel or ""})
    await calls.wait(trace, lambda t: t.ended)
    assert_answered(trace)
    hangup = trace.one("Hangup")
    # An AMI Hangup without a Cause field leaves the cause unset, like the far end's BYE.
    assert (hangup.get("Cause"), hangup.get("TechCause")) == ("0", None)
    assert not trace.all("UserEvent", UserEvent="DialerResult")


async def test_silence_without_rtp_is_notsure_after_5_seconds(calls: CallWatcher) -> None:
    trace = await calls.originate(number(B.WAIT_FOR_BYE, serial()), variables={"DIALER_AMD": "1"})
    await calls.wait(trace, lambda t: bool(t.all("UserEvent", UserEvent="DialerAMD")))
    status, cause = amd_of(trace)
    assert status == "NOTSURE"
    assert (cause or "").startswith("TOOLONG-")
    assert 4.5 <= trace.at("UserEvent") <= 6.0
    await calls.ami.send_action("Hangup", {"Channel": trace.one("Newchannel").get("Channel") or ""})
    await calls.wait(trace, lambda t: t.ended)
    assert_answered(trace)


async def test_voicemail_is_detected_as_machine_and_hung_up(calls: CallWatcher) -> None:
    trace = await calls.call(number(B.VOICEMAIL, serial()), variables={"DIALER_AMD": "1"})
    assert_answered(trace)
    status, cause = amd_of(trace)
    assert status == "MACHINE"
    assert cause == "LONGGREETING-1500-1500"
    assert (trace.one("Hangup").get("Cause"), trace.one("Hangup").get("TechCause")) == ("16", None)
    assert trace.at("Hangup") < 4.0


async def test_opt_out_digit_9_gives_result_dnc(calls: CallWatcher) -> None:
    trace = await calls.call(number(B.HUMAN_OPT_OUT, serial()), variables={"DIALER_AMD": "1"})
    assert_answered(trace)
    assert amd_of(trace)[0] == "HUMAN"
    result = trace.one("UserEvent", UserEvent="DialerResult")
    assert result.get("Result") == "dnc"
    assert result.get("At") is None
    assert trace.one("Hangup").get("Cause") == "16"


async def test_callback_digit_2_gives_result_callback_in_an_hour(calls: CallWatcher) -> None:
    trace = await calls.call(number(B.HUMAN_CALLBACK, serial()), variables={"DIALER_AMD": "1"})
    assert_answered(trace)
    assert amd_of(trace)[0] == "HUMAN"
    result = trace.one("UserEvent", UserEvent="DialerResult")
    assert result.get("Result") == "callback"
    assert abs(int(result.get("At") or 0) - (time.time() + 3600)) < 60
    assert trace.one("Hangup").get("Cause") == "16"


async def test_ivr_runs_without_amd_when_disabled(calls: CallWatcher) -> None:
    trace = await calls.call(number(B.HUMAN_OPT_OUT, serial()), variables={"DIALER_AMD": "0"})
    assert_answered(trace)
    assert not trace.all("UserEvent", UserEvent="DialerAMD")
    assert trace.one("UserEvent", UserEvent="DialerResult").get("Result") == "dnc"


# -- not answered -----------------------------------------------------------------------------


async def test_ring_no_answer_ends_at_the_originate_timeout(calls: CallWatcher) -> None:
    trace = await calls.call(number(B.RING_NO_ANSWER, serial()), timeout_ms=RING_TIMEOUT_MS)
    response = trace.one("OriginateResponse")
    assert (response.get("Response"), response.get("Reason")) == ("Failure", "3")
    hangup = trace.one("Hangup")
    assert (hangup.get("Cause"), hangup.get("TechCause")) == ("19", "480")
    assert trace.call_events() == UNANSWERED_EVENTS, trace.names()  # no Ringing Newstate
    assert 3.8 <= trace.at("Hangup") <= 5.5


REJECTIONS = [
    # behaviour, Hangup Cause, TechCause (SIP)
    (B.UNAVAILABLE_480, "19", "480"),
    (B.NOT_FOUND_404, "1", "404"),
    (B.BUSY, "17", "486"),
    (B.ADDRESS_INCOMPLETE_484, "28", "484"),
    (B.DECLINE_603, "21", "603"),
    (B.UNAVAILABLE_503, "34", "503"),
]


@pytest.mark.parametrize(("behaviour", "cause", "tech_cause"), REJECTIONS)
async def test_rejection(
    calls: CallWatcher, behaviour: Behaviour, cause: str, tech_cause: str
) -> None:
    trace = await calls.call(number(behaviour, serial()))
    response = trace.one("OriginateResponse")
    assert (response.get("Response"), response.get("Reason")) == ("Failure", "0")
    hangup = trace.one("Hangup")
    assert (hangup.get("Cause"), hangup.get("TechCause")) == (cause, tech_cause)
    assert trace.call_events() == UNANSWERED_EVENTS, trace.names()
    assert trace.at("Hangup") < 1.0


async def test_number_outside_the_plan_gets_500(calls: CallWatcher) -> None:
    trace = await calls.call(f"{PREFIX}99{serial():04d}")
    assert trace.one("OriginateResponse").get("Reason") == "0"
    hangup = trace.one("Hangup")
    assert (hangup.get("Cause"), hangup.get("TechCause")) == ("38", "500")
    assert trace.call_events() == UNANSWERED_EVENTS, trace.names()


async def test_unreachable_trunk_looks_like_no_answer(calls: CallWatcher, stack: StackInfo) -> None:
    trace = await calls.call(
        number(B.WAIT_FOR_BYE, serial()), trunk=stack.dead_trunk, timeout_ms=RING_TIMEOUT_MS
    )
    response = trace.one("OriginateResponse")
    assert (response.get("Response"), response.get("Reason")) == ("Failure", "3")
    hangup = trace.one("Hangup")
    assert (hangup.get("Cause"), hangup.get("TechCause")) == ("19", "480")
    assert trace.call_events() == UNANSWERED_EVENTS, trace.names()
    assert 3.8 <= trace.at("OriginateResponse") <= 5.5


async def test_unknown_endpoint_fails_without_a_channel(calls: CallWatcher) -> None:
    trace = await calls.originate(number(B.HOLD, serial(), hold_s=1), trunk="no-such-trunk")
    await calls.wait(trace, lambda t: t.has("OriginateResponse"), within=10)
    response = trace.one("OriginateResponse")
    assert (response.get("Response"), response.get("Reason")) == ("Failure", "0")
    assert response.get("Uniqueid") == trace.call_id
    channels = await calls.ami.send_action_list("CoreShowChannels")
    assert not [c for c in channels if c.get("Uniqueid") == trace.call_id]
    assert trace.names() == ["OriginateResponse"]


# -- everything at once, on one connection ----------------------------------------------------


@dataclass(frozen=True)
class Case:
    dialed: str
    reason: str  # OriginateResponse Reason
    cause: str  # Hangup Cause
    tech_cause: str | None = None  # Hangup TechCause
    amd: str | None = None  # DialerAMD Status
    result: str | None = None  # DialerResult Result
    trunk: str | None = None
    timeout_ms: int = 10_000
    variables: Mapping[str, str] = field(default_factory=lambda: {"DIALER_AMD": "1"})


async def test_all_behaviours_at_once(calls: CallWatcher, stack: StackInfo) -> None:
    cases = [
        Case(number(B.HOLD, serial(), hold_s=2), "4", "0", variables={"DIALER_AMD": "0"}),
        Case(number(B.VOICEMAIL, serial()), "4", "16", amd="MACHINE"),
        Case(number(B.HUMAN_OPT_OUT, serial()), "4", "16", amd="HUMAN", result="dnc"),
        Case(number(B.HUMAN_CALLBACK, serial()), "4", "16", amd="HUMAN", result="callback"),
        Case(number(B.RING_NO_ANSWER, serial()), "3", "19", "480", timeout_ms=RING_TIMEOUT_MS),
        Case(
            number(B.WAIT_FOR_BYE, serial()),
            "3",
            "19",
            "480",
            trunk=stack.dead_trunk,
            timeout_ms=RING_TIMEOUT_MS,
        ),
        *(Case(number(b, serial()), "0", cause, tech) for b, cause, tech in REJECTIONS),
    ]
    traces = await asyncio.gather(
        *(
            calls.call(c.dialed, trunk=c.trunk, timeout_ms=c.timeout_ms, variables=c.variables)
            for c in cases
        )
    )
    for case, trace in zip(cases, traces, strict=True):
        hangup = trace.one("Hangup")
        amd = trace.all("UserEvent", UserEvent="DialerAMD")
        results = trace.all("UserEvent", UserEvent="DialerResult")
        seen = Case(
            case.dialed,
            trace.one("OriginateResponse").get("Reason") or "",
            hangup.get("Cause") or "",
            hangup.get("TechCause"),
            amd[0].get("Status") if amd else None,
            results[0].get("Result") if results else None,
            case.trunk,
            case.timeout_ms,
            case.variables,
        )
        assert seen == case


# -- the dialer's AMI user --------------------------------------------------------------------


async def test_ami_user_has_what_the_dialer_needs_and_no_more(ami: AmiClient) -> None:
    await ami.send_action("Ping")
    await ami.send_action_list("CoreShowChannels")
    for action, fields in (
        ("Filter", {"Operation": "Add", "Filter": "Event: Hangup"}),  # needs "system"
        ("GetConfig", {"Filename": "manager.conf"}),  # needs "system" or "config"
        ("Command", {"Command": "core show version"}),  # needs "command"
        ("UpdateConfig", {"SrcFilename": "x.conf", "DstFilename": "x.conf"}),  # needs "config"
        ("UserEvent", {"UserEvent": "DialerResult", "Result": "dnc"}),  # needs "user"
    ):
        with pytest.raises(ActionFailed, match="Permission denied"):
            await ami.send_action(action, fields)
