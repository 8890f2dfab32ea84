"""Goal results and the voicemail drop, end to end on both switches (issue 18 item 6).

The carrier simulator's callees 64 / 65 say "Hello?" and press 1 / 3; the shipped IVR reports
``goal=completed`` / ``goal=failed`` for them (Asterisk: ``Gosub(dialer-goal,...)`` and its
UserEvent ``DialerGoal``; FreeSWITCH: ``dialer_goal``). Callee 66 is an answering machine
(a ~6 s greeting, a beep, then the silence of its recording): with ``DIALER_VM_MESSAGE`` the
dialplan waits for the greeting and the beep to end, plays the message, hangs up; callee 67,
the same machine, hangs up during the message (the record says ``started``). One attempt
each, so the contacts end Completed, Failed and Voicemail (the last attempt ended on voicemail).

Measured from the switch's side on a connection of the test's own: Asterisk's UserEvents and
its ``Newexten`` of ``Playback`` (the watching AMI user of manager.conf), FreeSWITCH's
``CHANNEL_EXECUTE`` / ``CHANNEL_EXECUTE_COMPLETE`` of ``set`` and ``playback``, each with the
switch's own timestamp: the message starts after the greeting ended and plays its full length.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field

import pytest

from dialer.domain.campaign import CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.pbx.ami.client import AmiClient
from dialer.pbx.ami.codec import Message
from dialer.pbx.esl.client import EslClient, EslSettings
from dialer.pbx.esl.codec import EslEvent
from dialer.store.redis_store import RedisStore
from ops.localstack.audio import (
    VM_MESSAGE,
    VM_MESSAGE_SOUND,
    VOICEMAIL_BEEP,
    duration_s,
    install_sound,
)
from ops.localstack.numberplan import Behaviour, number
from ops.localstack.stack import StackInfo

from .conftest import ami_settings
from .engine_helpers import engine_settings, new_campaign, nonzero, running_engine, wait_status

pytestmark = [pytest.mark.integration, pytest.mark.redis]
log = logging.getLogger(__name__)
S = CallStatus

# behaviour: (contacts, final status, the record's goal, the record's voicemail_drop)
PLAN = {
    Behaviour.HUMAN_GOAL_COMPLETED: (2, S.COMPLETED, "completed", ""),
    Behaviour.HUMAN_GOAL_FAILED: (2, S.FAILED, "failed", ""),
    Behaviour.VOICEMAIL_BEEP: (2, S.VOICEMAIL, "", "played"),
    # the machine hangs up 11 s after the answer: 2 s into the message
    Behaviour.VOICEMAIL_HANGS_UP: (1, S.VOICEMAIL, "", "started"),
}


@dataclass
class Seen:
    """Per call id: (switch timestamp, what) of the steps the switch reported."""

    steps: dict[str, list[tuple[float, str]]] = field(default_factory=lambda: defaultdict(list))

    def at(self, call_id: str, what: str) -> float | None:
        return next((t for t, w in self.steps[call_id] if w == what), None)

    def kinds(self, call_id: str) -> list[str]:
        return [w for _, w in self.steps[call_id]]


@asynccontextmanager
async def watch_asterisk(stack: StackInfo) -> AsyncIterator[Seen]:
    seen = Seen()
    async with AmiClient(ami_settings(stack)) as client:

        async def read() -> None:
            async for msg in client.events():
                if not isinstance(msg, Message):
                    continue
                uid = msg.get("Uniqueid") or ""
                if not uid.startswith("dlr-"):
                    continue
                t = float(msg.get("Timestamp") or time.time())
                if msg.event == "Newstate" and msg.get("ChannelState") == "6":
                    seen.steps[uid].append((t, "answer"))
                elif msg.event == "Newexten" and msg.get("Application") == "Playback":
                    seen.steps[uid].append((t, f"playback {msg.get('AppData')}"))
                elif msg.event == "UserEvent" and msg.get("UserEvent") == "DialerGoal":
                    seen.steps[uid].append((t, f"goal {msg.get('Goal')}"))
                elif msg.event == "UserEvent" and msg.get("UserEvent") == "DialerVoicemail":
                    seen.steps[uid].append((t, f"drop {msg.get('Drop')}"))

        task = asyncio.create_task(read())
        try:
            yield seen
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


@asynccontextmanager
async def watch_freeswitch(stack: StackInfo) -> AsyncIterator[Seen]:
    seen = Seen()
    base = EslSettings.from_url(stack.esl_url)
    events = ("CHANNEL_ANSWER", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE")
    settings = EslSettings(host=base.host, port=base.port, password=base.password, events=events)
    async with EslClient(settings) as client:

        async def read() -> None:
            async with aclosing(client.events()) as stream:
                async for ev in stream:
                    if not isinstance(ev, EslEvent) or not (ev.unique_id or "").startswith("dlr-"):
                        continue
                    uid = ev.unique_id or ""
                    t = int(ev.get("Event-Date-Timestamp") or time.time() * 1e6) / 1e6
                    app, data = ev.get("Application"), ev.get("Application-Data") or ""
                    if ev.name == "CHANNEL_ANSWER":
                        seen.steps[uid].append((t, "answer"))
                    elif ev.name == "CHANNEL_EXECUTE" and app == "playback":
                        seen.steps[uid].append((t, f"playback {data}"))
                    elif ev.name == "CHANNEL_EXECUTE_COMPLETE" and app == "playback":
                        response = ev.get("Application-Response")
                        seen.steps[uid].append((t, f"played {data}: {response}"))
                    elif ev.name == "CHANNEL_EXECUTE_COMPLETE" and app == "set":
                        if data.startswith(("dialer_goal=", "dialer_vm_drop=")):
                            seen.steps[uid].append((t, f"set {data}"))

        task = asyncio.create_task(read())
        try:
            yield seen
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_goal_results_and_a_voicemail_drop(
    stack: StackInfo, pbx: str, namespace: str
) -> None:
    dirs = [stack.root / "usr/share/asterisk/sounds", stack.freeswitch_layout().path("sounds")]
    sound_dirs = dirs[:1] if pbx == "asterisk" else dirs[1:]
    message_s = install_sound(VM_MESSAGE, VM_MESSAGE_SOUND, sound_dirs)
    greeting_s = duration_s(stack.workdir / "sipp" / "audio" / "voicemail-beep.pcap")
    greeting_s -= VOICEMAIL_BEEP.silence_s  # the greeting's speech and beep; silence follows
    behaviour_of: dict[str, Behaviour] = {}
    for behaviour, (n, *_) in PLAN.items():
        for _ in range(n):
            behaviour_of[number(behaviour, len(behaviour_of))] = behaviour
    campaign = CampaignSettings(
        name="goals",
        trunk=stack.trunk,
        max_channels=len(behaviour_of),
        cps=20.0,
        ring_timeout=10.0,
        amd=True,
        variables={"DIALER_VM_MESSAGE": VM_MESSAGE_SOUND},
        retry=RetryPolicy(max_attempts=1),
    )
    watch = watch_freeswitch(stack) if pbx == "freeswitch" else watch_asterisk(stack)
    store = RedisStore.from_url(stack.redis_url, namespace=namespace)
    try:
        async with watch as seen:
            control, cid = await new_campaign(store, campaign, list(behaviour_of))
            async with running_engine(engine_settings(stack, namespace, pbx=pbx)):
                await control.start(cid)
                await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
            await asyncio.sleep(0.3)  # the watcher's events may trail the engine's
        counts = nonzero(await store.counts(cid))
        records = [rec for _, rec in await store.records(cid, count=100)]
    finally:
        await store.aclose()

    assert counts == {S.COMPLETED: 2, S.FAILED: 2, S.VOICEMAIL: 3}
    assert len(records) == len(behaviour_of)
    if pbx == "asterisk":  # the switch's own record (AstDB, its hangup handler) keeps them too
        astdb = stack.asterisk_cli("database show dialer")
        for rec in records:
            _, _, goal, drop = PLAN[behaviour_of[rec["phone"]]]
            line = next(x for x in astdb.splitlines() if f"/{rec['call_id']} " in x)
            assert line.rstrip().endswith(f"goal={goal} vm={drop}"), line
    for rec in records:
        behaviour = behaviour_of[rec["phone"]]
        _, status, goal, drop = PLAN[behaviour]
        call = rec["call_id"]
        log.info("%s %s: record %s; switch %s", pbx, behaviour, rec, seen.steps[call])
        assert (rec["status"], rec["contact_status"], rec["goal"]) == (status, status, goal)
        if goal:
            assert rec["rule"] == f"dialplan:goal_{goal}"
            assert rec["voicemail_drop"] == ""
            wire = f"goal {goal}" if pbx == "asterisk" else f"set dialer_goal={goal}"
            assert wire in seen.kinds(call)  # the switch itself reported it
            continue
        assert (rec["rule"], rec["amd_status"], rec["voicemail_drop"]) == (
            "amd:MACHINE",
            "MACHINE",
            drop,
        )
        answer = seen.at(call, "answer")
        kinds = seen.kinds(call)
        if pbx == "asterisk":
            start = seen.at(call, f"playback {VM_MESSAGE_SOUND}")
            end = seen.at(call, "drop played")
            started, played = "drop started", "drop played"
        else:
            start = seen.at(call, f"playback {VM_MESSAGE_SOUND}.wav")
            end = seen.at(call, f"played {VM_MESSAGE_SOUND}.wav: FILE PLAYED")
            started, played = "set dialer_vm_drop=started", "set dialer_vm_drop=played"
        assert answer is not None, seen.steps[call]
        assert start is not None, seen.steps[call]
        assert started in kinds, kinds
        assert start - answer >= greeting_s  # after the greeting and its beep
        if drop == "started":  # cut by the machine's BYE 11 s after the answer
            assert played not in kinds, kinds
            # FreeSWITCH's playback answers FILE PLAYED on a hang-up too: only the dialplan's
            # next step, which a hung-up channel never runs, says the file played to its end
            cut = seen.at(call, f"played {VM_MESSAGE_SOUND}.wav: FILE PLAYED")
            into = None if cut is None else round(cut - start, 2)
            log.info(
                "%s: cut message from %.2f s, reported ended %s s into it",
                pbx,
                start - answer,
                into,
            )
            if cut is not None:
                assert cut - start < message_s - 1.0, (cut - start, message_s)
            continue
        assert kinds.index(started) < kinds.index(played), kinds
        assert end is not None, seen.steps[call]
        log.info(
            "%s: greeting %.2f s, message from %.2f s after the answer, for %.2f s (file %.2f s)",
            pbx,
            greeting_s,
            start - answer,
            end - start,
            message_s,
        )
        # played to its end: the switch took the file's length to play it
        assert end - start >= message_s - 0.25
