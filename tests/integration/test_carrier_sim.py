"""Each behaviour of the carrier simulator, through the real Asterisk and the real FreeSWITCH,
as each switch reports it.

These are the ground-truth raw values for the outcome mapping (pbx-config/README.md puts the two
switches side by side). Every behaviour test takes ``calls``, parametrized over the switches:

- Asterisk: AMI through manager.conf's watching user, so they also prove its event filters: a
  call brings exactly Newchannel, Newstate (Up only), OriginateResponse, Hangup and the
  dialplan's UserEvents (OriginateResponse Response/Reason, Hangup Cause/TechCause, DialerAMD,
  DialerResult). The dialer's own user gets only OriginateResponse, Hangup, the UserEvents
  and its own calls' Newchannel (``test_the_dialer_user_gets_three_events_...``).
- FreeSWITCH: ESL subscribed to exactly what the adapter subscribes to
  (``correlate.FOLLOWED_EVENTS``), originated with the adapter's own ``originate_args``:
  CHANNEL_CREATE, CHANNEL_ANSWER, CHANNEL_HANGUP_COMPLETE (Hangup-Cause, q850,
  sip_term_status or its absence, sip_hangup_disposition, dialer.xml's result variables) and
  the originate's BACKGROUND_JOB.

Each watcher also feeds the events to that switch's own correlator, so a test can check that the
outcome table gives the same attempt status on both switches for the same callee behaviour.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import pytest

from dialer.domain.outcome import classify
from dialer.domain.statuses import CallStatus
from dialer.errors import ActionFailed
from dialer.pbx.ami.client import AmiClient
from dialer.pbx.ami.codec import Message
from dialer.pbx.asterisk.correlate import CallCorrelator as AmiCorrelator
from dialer.pbx.base import CALL_ID_PREFIX, CallEnded, OriginateRequest
from dialer.pbx.esl.client import EslClient, EslSettings
from dialer.pbx.esl.codec import EslEvent
from dialer.pbx.freeswitch.adapter import FreeSwitchSettings, originate_args
from dialer.pbx.freeswitch.correlate import CallCorrelator as EslCorrelator
from ops.localstack.numberplan import PREFIX, Behaviour, number
from ops.localstack.stack import StackInfo

pytestmark = pytest.mark.integration

B = Behaviour
S = CallStatus
RING_TIMEOUT_MS = 4000


@dataclass
class CallTrace:
    """Every event of one originated call (AMI: matched on its ChannelId; ESL: on its
    Unique-ID / Job-UUID), timed from the originate."""

    call_id: str
    started: float
    events: list[tuple[float, Message | EslEvent]] = field(default_factory=list)
    end: CallEnded | None = None  # what the switch's own correlator made of it

    @staticmethod
    def name_of(m: Message | EslEvent) -> str | None:
        return m.event if isinstance(m, Message) else m.name

    def all(self, event: str, **match: str) -> list[Message | EslEvent]:
        return [
            m
            for _, m in self.events
            if self.name_of(m) == event and all(m.get(k) == v for k, v in match.items())
        ]

    def one(self, event: str, **match: str) -> Message | EslEvent:
        found = self.all(event, **match)
        assert len(found) == 1, f"{self.call_id}: {len(found)} {event} {match}: {self.names()}"
        return found[0]

    def at(self, event: str, **match: str) -> float:
        for t, m in self.events:
            if self.name_of(m) == event and all(m.get(k) == v for k, v in match.items()):
                return t
        raise AssertionError(f"{self.call_id}: no {event} {match}: {self.names()}")

    def has(self, event: str) -> bool:
        return any(self.name_of(m) == event for _, m in self.events)

    def names(self) -> list[str]:
        return [self.name_of(m) or "?" for _, m in self.events]

    def call_events(self) -> Counter[str]:
        """How many events of each name the call brought, the dialplan's UserEvents aside."""
        return Counter(name for name in self.names() if name != "UserEvent")

    @property
    def ended(self) -> bool:
        if self.has("OriginateResponse"):  # Asterisk
            return self.has("Hangup")
        if not self.has("BACKGROUND_JOB"):
            return False
        # FreeSWITCH: a job that failed before any channel existed is the whole story.
        return self.has("CHANNEL_HANGUP_COMPLETE") or not self.has("CHANNEL_CREATE")

    @property
    def status(self) -> CallStatus:
        """The attempt status the outcome table gives this call's raw outcome."""
        assert self.end is not None, f"{self.call_id}: the correlator saw no end: {self.names()}"
        return classify(self.end.raw).status

    # -- FreeSWITCH ----------------------------------------------------------------------------

    @property
    def hangup(self) -> EslEvent:
        event = self.one("CHANNEL_HANGUP_COMPLETE")
        assert isinstance(event, EslEvent)
        return event

    def raw(self, *names: str) -> tuple[str | None, ...]:
        """Values of the CHANNEL_HANGUP_COMPLETE (``variable_`` added to lower-case names)."""
        hangup = self.hangup
        return tuple(hangup.get(n if n[0].isupper() else f"variable_{n}") for n in names)

    @property
    def job(self) -> str:
        event = self.one("BACKGROUND_JOB")
        assert isinstance(event, EslEvent)
        return event.body.strip()


class Correlator(Protocol):
    def follow(self, call_id: str, now: float, *, answered: bool = False) -> None: ...


class CallWatcher:
    """Originates on one switch and routes its events to the calls it originated."""

    pbx: str

    def __init__(self, stack: StackInfo) -> None:
        self.stack = stack
        self.id_prefix = "sim-"  # CALL_ID_PREFIX: calls that look like the dialer's own
        self.calls: dict[str, CallTrace] = {}
        self.changed = asyncio.Condition()

    async def _deliver(self, call_id: str, item: Message | EslEvent, ends: list[object]) -> None:
        trace = self.calls.get(call_id)
        if trace is None:
            return
        trace.events.append((time.monotonic() - trace.started, item))
        for ended in ends:
            if isinstance(ended, CallEnded) and ended.call_id == call_id:
                trace.end = ended
        async with self.changed:
            self.changed.notify_all()

    def _new(self) -> CallTrace:
        call_id = f"{self.id_prefix}{secrets.token_hex(6)}"
        trace = CallTrace(call_id, time.monotonic())
        self.calls[call_id] = trace
        return trace

    async def originate(
        self,
        dialed: str,
        *,
        trunk: str | None = None,
        timeout_ms: int = 10_000,
        variables: Mapping[str, str] | None = None,
    ) -> CallTrace:
        raise NotImplementedError

    async def hangup(self, trace: CallTrace) -> None:
        raise NotImplementedError

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


class AmiWatcher(CallWatcher):
    pbx = "asterisk"

    def __init__(self, ami: AmiClient, stack: StackInfo) -> None:
        super().__init__(stack)
        self.ami = ami
        self.correlator = AmiCorrelator()

    async def route(self) -> None:
        async for item in self.ami.events():
            if isinstance(item, Message):
                ends = self.correlator.feed(item, time.time())
                await self._deliver(item.get("Uniqueid") or "", item, list(ends))

    async def originate(
        self,
        dialed: str,
        *,
        trunk: str | None = None,
        timeout_ms: int = 10_000,
        variables: Mapping[str, str] | None = None,
    ) -> CallTrace:
        trace = self._new()
        self.correlator.follow(trace.call_id, time.time())
        response = await self.ami.send_action(
            "Originate",
            {
                "Channel": f"PJSIP/{dialed}@{trunk or self.stack.trunk}",
                "ChannelId": trace.call_id,
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

    async def hangup(self, trace: CallTrace) -> None:
        channel = trace.one("Newchannel").get("Channel")
        await self.ami.send_action("Hangup", {"Channel": channel or ""})


class EslWatcher(CallWatcher):
    pbx = "freeswitch"

    def __init__(self, esl: EslClient, settings: EslSettings, stack: StackInfo) -> None:
        super().__init__(stack)
        self.esl = esl
        self.settings = FreeSwitchSettings(esl=settings)
        self.correlator = EslCorrelator()

    async def route(self) -> None:
        async with aclosing(self.esl.events()) as events:
            async for item in events:
                if isinstance(item, EslEvent):
                    key = item.job_uuid if item.name == "BACKGROUND_JOB" else item.unique_id
                    ends = self.correlator.feed(item, time.time())
                    await self._deliver(key or "", item, list(ends))

    async def originate(
        self,
        dialed: str,
        *,
        trunk: str | None = None,
        timeout_ms: int = 10_000,
        variables: Mapping[str, str] | None = None,
    ) -> CallTrace:
        trace = self._new()
        self.correlator.follow(trace.call_id, time.time())
        request = OriginateRequest(
            call_id=trace.call_id,
            trunk=trunk or self.stack.trunk,
            number=dialed,
            context=self.stack.originate_context,
            exten=self.stack.originate_exten,
            ring_timeout=timeout_ms / 1000,
            variables={"DIALER_MAX_TALK": "20", **(variables or {})},
        )
        args = originate_args(request, self.settings)
        await self.esl.bgapi("originate", *args, job_uuid=trace.call_id)
        return trace

    async def hangup(self, trace: CallTrace) -> None:
        await self.esl.api("uuid_kill", trace.call_id)


@asynccontextmanager
async def watching(watcher: AmiWatcher | EslWatcher) -> AsyncIterator[CallWatcher]:
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(watcher.route())
        try:
            yield watcher
        finally:
            task.cancel()


def serial() -> int:
    return secrets.randbelow(10_000)


def esl_settings(stack: StackInfo) -> EslSettings:
    """The adapter's own ESL settings: the events the engine subscribes to, no more."""
    return FreeSwitchSettings.from_url(stack.esl_url).esl


@pytest.fixture
async def calls(pbx: str, stack: StackInfo) -> AsyncIterator[CallWatcher]:
    """A watcher on the switch ``pbx`` (each test taking it runs on Asterisk and FreeSWITCH)."""
    if pbx == "asterisk":
        from tests.integration.conftest import ami_settings

        async with AmiClient(ami_settings(stack)) as ami, watching(AmiWatcher(ami, stack)) as w:
            yield w
    else:
        settings = esl_settings(stack)
        async with EslClient(settings) as esl:
            await esl.wait_connected()
            async with watching(EslWatcher(esl, settings, stack)) as w:
                yield w


# What manager.conf lets through of a call that was answered, and of one that was not.
ANSWERED_EVENTS = Counter(["Newchannel", "Newstate", "OriginateResponse", "Hangup"])
UNANSWERED_EVENTS = Counter(["Newchannel", "OriginateResponse", "Hangup"])
# What the adapter's ESL subscription brings of a call that was answered, and of one that was not.
FS_ANSWERED = Counter(["CHANNEL_CREATE", "CHANNEL_ANSWER", "BACKGROUND_JOB"])
FS_ANSWERED.update(["CHANNEL_HANGUP_COMPLETE"])
FS_UNANSWERED = Counter(["CHANNEL_CREATE", "BACKGROUND_JOB", "CHANNEL_HANGUP_COMPLETE"])
# Hangup-Cause, q850, sip_term_status, sip_hangup_disposition
FS_RAW = ("Hangup-Cause", "hangup_cause_q850", "sip_term_status", "sip_hangup_disposition")


async def test_the_dialer_user_gets_three_events_per_call_and_the_hangup_state(
    stack: StackInfo,
) -> None:
    """What the engine's correlator relies on: OriginateResponse and Hangup, the Hangup's
    ChannelState 6 for an answered call and not for a rejected one, and the channel's name in a
    Success response; and for the CPS margin, the Newchannel of the dialer's own calls (ids
    starting with ``dlr-``) with Asterisk's Timestamp, and no other channel's."""
    from tests.integration.conftest import ami_settings

    async with AmiClient(ami_settings(stack, events="call,user", watch=False)) as dialer_ami:
        async with watching(AmiWatcher(dialer_ami, stack)) as calls:
            other = await calls.call(number(B.BUSY, serial()))  # not a dialer call id
            calls.id_prefix = CALL_ID_PREFIX
            sent = time.time()
            answered = await calls.call(
                number(B.HOLD, serial(), hold_s=1), variables={"DIALER_AMD": "0"}
            )
            busy = await calls.call(number(B.BUSY, serial()))
    three = Counter(["Newchannel", "OriginateResponse", "Hangup"])
    assert answered.call_events() == three, answered.names()
    assert busy.call_events() == three, busy.names()
    assert other.call_events() == Counter(["OriginateResponse", "Hangup"]), other.names()
    # Asterisk's own clock (timestampevents): this host's here, so close to ours
    stamp = float(answered.one("Newchannel").get("Timestamp") or "nan")
    assert sent - 5 < stamp < time.time() + 5
    response = answered.one("OriginateResponse")
    assert response.get("Response") == "Success"
    assert (response.get("Channel") or "").startswith(f"PJSIP/{stack.trunk}-")
    assert response.get("Channel") == answered.one("Hangup").get("Channel")
    assert answered.one("Hangup").get("ChannelState") == "6"
    assert busy.one("Hangup").get("ChannelState") != "6"
    assert busy.one("OriginateResponse").get("Response") == "Failure"


def assert_answered(trace: CallTrace) -> None:
    """Answered, with exactly the events the dialer's subscription lets through."""
    if trace.has("OriginateResponse"):
        response = trace.one("OriginateResponse")
        assert (response.get("Response"), response.get("Reason")) == ("Success", "4")
        trace.one("Newstate", ChannelStateDesc="Up")
        assert trace.call_events() == ANSWERED_EVENTS, trace.names()
    else:
        assert trace.job == f"+OK {trace.call_id}"
        assert trace.call_events() == FS_ANSWERED, trace.names()
        assert trace.raw("answer_epoch")[0] not in (None, "0")
    assert trace.status in (S.ANSWERED, S.VOICEMAIL, S.DO_NOT_CALL, S.RESCHEDULED)


def answer_time(trace: CallTrace) -> float:
    if trace.has("OriginateResponse"):
        return trace.at("Newstate", ChannelStateDesc="Up")
    return trace.at("CHANNEL_ANSWER")


def end_time(trace: CallTrace) -> float:
    return trace.at("Hangup" if trace.has("OriginateResponse") else "CHANNEL_HANGUP_COMPLETE")


def amd_of(trace: CallTrace) -> tuple[str | None, str | None]:
    if trace.has("OriginateResponse") or trace.has("Newchannel"):
        event = trace.one("UserEvent", UserEvent="DialerAMD")
        return event.get("Status"), event.get("Cause")
    status, cause = trace.raw("dialer_amd_status", "dialer_amd_cause")
    return status, cause


def result_of(trace: CallTrace) -> tuple[str | None, str | None]:
    """The dialplan's result (dnc / callback) and callback time, as each switch reports them."""
    if trace.has("OriginateResponse"):
        found = trace.all("UserEvent", UserEvent="DialerResult")
        assert len(found) <= 1, trace.names()
        return (found[0].get("Result"), found[0].get("At")) if found else (None, None)
    result, at = trace.raw("dialer_result", "dialer_callback_at")
    return result, at


# -- answered ---------------------------------------------------------------------------------


async def test_wait_for_bye_holds_until_our_side_hangs_up(calls: CallWatcher) -> None:
    # DIALER_MAX_TALK=2: the dialplan's absolute limit hangs up; SIPp waits for that BYE.
    trace = await calls.call(
        number(B.WAIT_FOR_BYE, serial()), variables={"DIALER_AMD": "0", "DIALER_MAX_TALK": "2"}
    )
    assert_answered(trace)
    if calls.pbx == "asterisk":
        hangup = trace.one("Hangup")
        assert (hangup.get("Cause"), hangup.get("TechCause")) == ("16", None)
    else:  # our BYE: no sip_term_status
        assert trace.raw(*FS_RAW) == ("NORMAL_CLEARING", "16", None, "send_bye")
    talk = end_time(trace) - answer_time(trace)
    assert 1.8 <= talk <= 3.5, talk
    assert trace.status is S.ANSWERED


async def test_hold_hangs_up_after_the_coded_seconds(calls: CallWatcher) -> None:
    trace = await calls.call(number(B.HOLD, serial(), hold_s=3), variables={"DIALER_AMD": "0"})
    assert_answered(trace)
    if calls.pbx == "asterisk":
        hangup = trace.one("Hangup")
        # The far end's BYE (no Reason header) leaves the cause unset: 0 "Unknown".
        assert (hangup.get("Cause"), hangup.get("Cause-txt"), hangup.get("TechCause")) == (
            "0",
            "Unknown",
            None,
        )
    else:  # FreeSWITCH calls the far end's BYE 16 and records the 200 of it
        assert trace.raw(*FS_RAW) == ("NORMAL_CLEARING", "16", "200", "recv_bye")
    talk = end_time(trace) - answer_time(trace)
    assert 2.8 <= talk <= 4.0, talk
    assert trace.status is S.ANSWERED


async def test_human_is_detected_and_the_call_can_be_hung_up(calls: CallWatcher) -> None:
    if calls.pbx == "asterisk":
        trace = await calls.originate(number(B.HUMAN, serial()), variables={"DIALER_AMD": "1"})
        await calls.wait(trace, lambda t: bool(t.all("UserEvent", UserEvent="DialerAMD")))
        assert amd_of(trace) == ("HUMAN", "HUMAN-800-800")
        assert trace.at("UserEvent") < 3.0
        await calls.hangup(trace)
        await calls.wait(trace, lambda t: t.ended)
        assert_answered(trace)
        hangup = trace.one("Hangup")
        # An AMI Hangup without a Cause field leaves the cause unset, like the far end's BYE.
        assert (hangup.get("Cause"), hangup.get("TechCause")) == ("0", None)
    else:
        # The result travels in the hang-up: decided ~1.3 s after the answer (HUMAN-800 =
        # "Hello?" then 800 ms of silence), then the IVR waits 5 s; uuid_kill at 4.5 s.
        trace = await calls.originate(number(B.HUMAN, serial()), variables={"DIALER_AMD": "1"})
        await calls.wait(trace, lambda t: t.has("CHANNEL_ANSWER"))
        await asyncio.sleep(4.5)
        await calls.hangup(trace)
        await calls.wait(trace, lambda t: t.ended)
        assert_answered(trace)
        assert amd_of(trace) == ("HUMAN", "HUMAN-800")
        assert trace.raw(*FS_RAW) == ("NORMAL_CLEARING", "16", None, "send_bye")
    assert result_of(trace) == (None, None)
    assert trace.status is S.ANSWERED


async def test_silence_without_rtp_is_notsure(calls: CallWatcher) -> None:
    if calls.pbx == "asterisk":  # AMD() gives up after its total analysis time (5 s)
        trace = await calls.originate(
            number(B.WAIT_FOR_BYE, serial()), variables={"DIALER_AMD": "1"}
        )
        await calls.wait(trace, lambda t: bool(t.all("UserEvent", UserEvent="DialerAMD")))
        status, cause = amd_of(trace)
        assert status == "NOTSURE"
        assert (cause or "").startswith("TOOLONG-")
        assert 4.5 <= trace.at("UserEvent") <= 6.0
        await calls.hangup(trace)
        await calls.wait(trace, lambda t: t.ended)
    else:  # no frame to read: undecided until the talk limit (3 s here) ends the call
        trace = await calls.call(
            number(B.WAIT_FOR_BYE, serial()),
            variables={"DIALER_AMD": "1", "DIALER_MAX_TALK": "3"},
        )
        assert amd_of(trace) == ("NOTSURE", "UNDECIDED")
        assert trace.raw(*FS_RAW) == ("NORMAL_CLEARING", "16", None, "send_bye")
        assert 2.8 <= end_time(trace) - answer_time(trace) <= 5.0  # (3, 4] s, plus load
    assert_answered(trace)
    assert trace.status is S.ANSWERED


async def test_voicemail_is_detected_as_machine_and_hung_up(calls: CallWatcher) -> None:
    trace = await calls.call(number(B.VOICEMAIL, serial()), variables={"DIALER_AMD": "1"})
    assert_answered(trace)
    if calls.pbx == "asterisk":
        assert amd_of(trace) == ("MACHINE", "LONGGREETING-1500-1500")
        assert (trace.one("Hangup").get("Cause"), trace.one("Hangup").get("TechCause")) == (
            "16",
            None,
        )
        assert trace.at("Hangup") < 4.0
    else:  # the greeting has no 800 ms pause within 2.3 s of its start
        assert amd_of(trace) == ("MACHINE", "LONGGREETING-1500")
        assert trace.raw(*FS_RAW) == ("NORMAL_CLEARING", "16", None, "send_bye")
        assert 2.0 <= end_time(trace) - answer_time(trace) <= 5.0  # ~2.4 s, plus load
    assert trace.status is S.VOICEMAIL


async def test_opt_out_digit_9_gives_result_dnc(calls: CallWatcher) -> None:
    trace = await calls.call(number(B.HUMAN_OPT_OUT, serial()), variables={"DIALER_AMD": "1"})
    assert_answered(trace)
    assert amd_of(trace)[0] == "HUMAN"
    assert result_of(trace) == ("dnc", None)
    if calls.pbx == "asterisk":
        assert trace.one("Hangup").get("Cause") == "16"
    else:
        assert trace.raw(*FS_RAW) == ("NORMAL_CLEARING", "16", None, "send_bye")
    assert trace.status is S.DO_NOT_CALL


async def test_callback_digit_2_gives_result_callback_in_an_hour(calls: CallWatcher) -> None:
    trace = await calls.call(number(B.HUMAN_CALLBACK, serial()), variables={"DIALER_AMD": "1"})
    assert_answered(trace)
    assert amd_of(trace)[0] == "HUMAN"
    result, at = result_of(trace)
    assert result == "callback"
    assert abs(int(at or 0) - (time.time() + 3600)) < 60
    if calls.pbx == "asterisk":
        assert trace.one("Hangup").get("Cause") == "16"
    else:
        assert trace.raw(*FS_RAW) == ("NORMAL_CLEARING", "16", None, "send_bye")
    assert trace.status is S.RESCHEDULED
    assert trace.end is not None
    assert trace.end.raw.callback_at == float(at or 0)


async def test_ivr_runs_without_amd_when_disabled(calls: CallWatcher) -> None:
    trace = await calls.call(number(B.HUMAN_OPT_OUT, serial()), variables={"DIALER_AMD": "0"})
    assert_answered(trace)
    if calls.pbx == "asterisk":
        assert not trace.all("UserEvent", UserEvent="DialerAMD")
    else:
        assert amd_of(trace) == (None, None)
    assert result_of(trace)[0] == "dnc"
    assert trace.status is S.DO_NOT_CALL


# -- not answered -----------------------------------------------------------------------------


async def test_ring_no_answer_ends_at_the_originate_timeout(calls: CallWatcher) -> None:
    trace = await calls.call(number(B.RING_NO_ANSWER, serial()), timeout_ms=RING_TIMEOUT_MS)
    if calls.pbx == "asterisk":
        response = trace.one("OriginateResponse")
        assert (response.get("Response"), response.get("Reason")) == ("Failure", "3")
        hangup = trace.one("Hangup")
        assert (hangup.get("Cause"), hangup.get("TechCause")) == ("19", "480")
        assert trace.call_events() == UNANSWERED_EVENTS, trace.names()  # no Ringing Newstate
        assert 3.8 <= trace.at("Hangup") <= 5.5
    else:
        # No final response from the callee: no sip_term_status; our CANCEL's 487 is the
        # INVITE's failure status. originate_timeout=4 fired at ~3.5 s (whole-second timer).
        assert trace.job == "-ERR NO_ANSWER"
        assert trace.raw(*FS_RAW) == ("NO_ANSWER", "19", None, "send_cancel")
        assert trace.raw("sip_invite_failure_status") == ("487",)
        assert trace.call_events() == FS_UNANSWERED, trace.names()
        assert 2.9 <= end_time(trace) <= 5.5
    assert trace.status is S.NO_ANSWER


REJECTIONS = [
    # behaviour, Asterisk Hangup Cause, TechCause (SIP); FreeSWITCH Hangup-Cause, q850; status
    (B.UNAVAILABLE_480, "19", "480", "NO_USER_RESPONSE", "18", S.NO_ANSWER),
    (B.NOT_FOUND_404, "1", "404", "UNALLOCATED_NUMBER", "1", S.INVALID_NUMBER),
    (B.BUSY, "17", "486", "USER_BUSY", "17", S.BUSY),
    (B.ADDRESS_INCOMPLETE_484, "28", "484", "INVALID_NUMBER_FORMAT", "28", S.INVALID_NUMBER),
    (B.DECLINE_603, "21", "603", "CALL_REJECTED", "21", S.REJECTED),
    (B.UNAVAILABLE_503, "34", "503", "NORMAL_TEMPORARY_FAILURE", "41", S.TECHNICAL_ERROR),
]


def assert_rejected(
    trace: CallTrace, cause: str, sip: str, fs_cause: str, fs_q850: str, status: CallStatus
) -> None:
    if trace.has("OriginateResponse"):
        response = trace.one("OriginateResponse")
        assert (response.get("Response"), response.get("Reason")) == ("Failure", "0")
        hangup = trace.one("Hangup")
        assert (hangup.get("Cause"), hangup.get("TechCause")) == (cause, sip)
        assert trace.call_events() == UNANSWERED_EVENTS, trace.names()
    else:
        assert trace.job == f"-ERR {fs_cause}"
        assert trace.raw(*FS_RAW) == (fs_cause, fs_q850, sip, "recv_refuse")
        assert trace.raw("proto_specific_hangup_cause") == (f"sip:{sip}",)
        assert trace.call_events() == FS_UNANSWERED, trace.names()
    assert end_time(trace) < 1.0
    assert trace.status is status


@pytest.mark.parametrize(
    ("behaviour", "cause", "tech_cause", "fs_cause", "fs_q850", "status"), REJECTIONS
)
async def test_rejection(
    calls: CallWatcher,
    behaviour: Behaviour,
    cause: str,
    tech_cause: str,
    fs_cause: str,
    fs_q850: str,
    status: CallStatus,
) -> None:
    trace = await calls.call(number(behaviour, serial()))
    assert_rejected(trace, cause, tech_cause, fs_cause, fs_q850, status)


async def test_number_outside_the_plan_gets_500(calls: CallWatcher) -> None:
    trace = await calls.call(f"{PREFIX}99{serial():04d}")
    assert_rejected(trace, "38", "500", "NORMAL_TEMPORARY_FAILURE", "41", S.TECHNICAL_ERROR)


async def test_unreachable_trunk(calls: CallWatcher, stack: StackInfo) -> None:
    """Asterisk: like a phone nobody answers, after the full timeout. FreeSWITCH: the ICMP
    port-unreachable ends it at once as a 503 (a technical error, retried without using up an
    attempt): the two switches differ here, and FreeSWITCH's answer is the truer one."""
    trace = await calls.call(
        number(B.WAIT_FOR_BYE, serial()), trunk=stack.dead_trunk, timeout_ms=RING_TIMEOUT_MS
    )
    if calls.pbx == "asterisk":
        response = trace.one("OriginateResponse")
        assert (response.get("Response"), response.get("Reason")) == ("Failure", "3")
        hangup = trace.one("Hangup")
        assert (hangup.get("Cause"), hangup.get("TechCause")) == ("19", "480")
        assert trace.call_events() == UNANSWERED_EVENTS, trace.names()
        assert 3.8 <= trace.at("OriginateResponse") <= 5.5
        assert trace.status is S.NO_ANSWER
    else:
        assert_rejected(trace, "", "503", "NORMAL_TEMPORARY_FAILURE", "41", S.TECHNICAL_ERROR)


async def test_unknown_endpoint_fails_without_a_channel(calls: CallWatcher) -> None:
    trace = await calls.originate(number(B.HOLD, serial(), hold_s=1), trunk="no-such-trunk")
    if calls.pbx == "asterisk":
        assert isinstance(calls, AmiWatcher)
        await calls.wait(trace, lambda t: t.has("OriginateResponse"), within=10)
        response = trace.one("OriginateResponse")
        assert (response.get("Response"), response.get("Reason")) == ("Failure", "0")
        assert response.get("Uniqueid") == trace.call_id
        channels = await calls.ami.send_action_list("CoreShowChannels")
        assert not [c for c in channels if c.get("Uniqueid") == trace.call_id]
        assert trace.names() == ["OriginateResponse"]
    else:
        assert isinstance(calls, EslWatcher)
        await calls.wait(trace, lambda t: t.ended, within=10)
        assert trace.job == "-ERR INVALID_GATEWAY"
        assert trace.names() == ["BACKGROUND_JOB"]  # no channel: no CHANNEL_* event
        assert trace.call_id not in await calls.esl.api("show", "channels", "as", "json")
        assert trace.end is not None
        assert trace.end.raw.originate_failed
        assert trace.status is S.TECHNICAL_ERROR


# -- everything at once, on one connection ----------------------------------------------------


@dataclass(frozen=True)
class Case:
    dialed: str
    status: CallStatus  # the outcome table's status, the same on both switches
    asterisk: tuple[str, str, str | None]  # OriginateResponse Reason, Hangup Cause, TechCause
    freeswitch: tuple[str, str | None]  # Hangup-Cause, sip_term_status
    amd: str | None = None  # AMD status (Asterisk DialerAMD, FreeSWITCH dialer_amd_status)
    result: str | None = None  # dialplan result (DialerResult, dialer_result)
    trunk: str | None = None
    timeout_ms: int = 10_000
    variables: Mapping[str, str] = field(default_factory=lambda: {"DIALER_AMD": "1"})


def amd_status(trace: CallTrace) -> str | None:
    if trace.has("OriginateResponse"):
        found = trace.all("UserEvent", UserEvent="DialerAMD")
        return found[0].get("Status") if found else None
    return trace.raw("dialer_amd_status")[0]


async def test_all_behaviours_at_once(calls: CallWatcher) -> None:
    """Every callee behaviour at once, on one connection: each switch's raw values, and the
    same statuses on both (but for the dead trunk, see test_unreachable_trunk)."""
    answered = ("4", "16", None)
    fs_ours = ("NORMAL_CLEARING", None)  # we hung up: no sip_term_status
    cases = [
        Case(
            number(B.HOLD, serial(), hold_s=2),
            S.ANSWERED,
            ("4", "0", None),
            ("NORMAL_CLEARING", "200"),
            variables={"DIALER_AMD": "0"},
        ),
        Case(number(B.VOICEMAIL, serial()), S.VOICEMAIL, answered, fs_ours, amd="MACHINE"),
        Case(
            number(B.HUMAN_OPT_OUT, serial()),
            S.DO_NOT_CALL,
            answered,
            fs_ours,
            amd="HUMAN",
            result="dnc",
        ),
        Case(
            number(B.HUMAN_CALLBACK, serial()),
            S.RESCHEDULED,
            answered,
            fs_ours,
            amd="HUMAN",
            result="callback",
        ),
        Case(
            number(B.RING_NO_ANSWER, serial()),
            S.NO_ANSWER,
            ("3", "19", "480"),
            ("NO_ANSWER", None),
            timeout_ms=RING_TIMEOUT_MS,
        ),
        *(
            Case(number(b, serial()), status, ("0", cause, sip), (fs_cause, sip))
            for b, cause, sip, fs_cause, _, status in REJECTIONS
        ),
        Case(
            number(B.WAIT_FOR_BYE, serial()),
            S.NO_ANSWER if calls.pbx == "asterisk" else S.TECHNICAL_ERROR,
            ("3", "19", "480"),
            ("NORMAL_TEMPORARY_FAILURE", "503"),
            trunk=calls.stack.dead_trunk,
            timeout_ms=RING_TIMEOUT_MS,
        ),
    ]
    traces = await asyncio.gather(
        *(
            calls.call(c.dialed, trunk=c.trunk, timeout_ms=c.timeout_ms, variables=c.variables)
            for c in cases
        )
    )
    for case, trace in zip(cases, traces, strict=True):
        if calls.pbx == "asterisk":
            hangup = trace.one("Hangup")
            ast = (
                trace.one("OriginateResponse").get("Reason") or "",
                hangup.get("Cause") or "",
                hangup.get("TechCause"),
            )
            fs = case.freeswitch
        else:
            ast = case.asterisk
            cause, sip = trace.raw("Hangup-Cause", "sip_term_status")
            fs = (cause or "", sip)
        seen = Case(
            case.dialed,
            trace.status,
            ast,
            fs,
            amd_status(trace),
            result_of(trace)[0],
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
