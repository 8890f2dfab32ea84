"""Crashing and restarting the switch a fault test runs on (``pbx``: the ``pbx`` fixture's
``"asterisk"`` or ``"freeswitch"``), on the stack's recorded ports and secrets; watching what
FreeSWITCH does with each channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager, suppress
from dataclasses import dataclass, field

from dialer.pbx.esl.client import EslClient, EslSettings
from dialer.pbx.esl.codec import EslEvent
from ops.localstack import stack as localstack
from ops.localstack.procs import is_alive
from ops.localstack.stack import StackInfo


def switch_pid(info: StackInfo, pbx: str) -> int:
    return info.freeswitch_pid if pbx == "freeswitch" else info.asterisk_pid


def kill_switch(info: StackInfo, pbx: str) -> None:
    """SIGKILL the switch (a crash: no hang-up is sent, no handler runs) and wait until it is
    gone."""
    if pbx == "freeswitch":
        localstack.terminate_now(info.freeswitch_pid)
    else:
        localstack.kill_asterisk(info, hard=True)


def start_switch(info: StackInfo, pbx: str) -> StackInfo:
    """Start the switch again with the stack's configuration (FreeSWITCH: ``up`` restarts the
    dead part in place); returns once it answers, with the new pids."""
    if pbx == "freeswitch":
        return localstack.up(info.name, info.workdir, with_freeswitch=True)
    return localstack.start_asterisk(info)


def ensure_switch(info: StackInfo, pbx: str) -> StackInfo:
    """The switch running again after a test that killed it, whatever happened in between."""
    if is_alive(switch_pid(info, pbx)):
        return info
    return start_switch(info, pbx)


@dataclass
class FsSeen:
    """The dialer's channels as FreeSWITCH reported them on a watching ESL connection."""

    created: dict[str, str] = field(default_factory=dict)  # call id -> number dialed
    executed: dict[str, list[str]] = field(default_factory=dict)  # call id -> applications
    # call id -> (application, its data) in order
    executed_data: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    ended: dict[str, EslEvent] = field(default_factory=dict)  # CHANNEL_HANGUP_COMPLETE


@asynccontextmanager
async def watching_freeswitch(stack: StackInfo) -> AsyncIterator[FsSeen]:
    """Every channel's creation, applications and CHANNEL_HANGUP_COMPLETE, on an ESL
    connection of its own."""
    base = EslSettings.from_url(stack.esl_url)
    settings = EslSettings(
        host=base.host,
        port=base.port,
        password=base.password,
        events=("CHANNEL_CREATE", "CHANNEL_EXECUTE", "CHANNEL_HANGUP_COMPLETE"),
    )
    seen = FsSeen()
    async with EslClient(settings) as client:

        async def collect() -> None:
            async with aclosing(client.events()) as stream:
                async for item in stream:
                    if not isinstance(item, EslEvent):
                        continue
                    uid = item.unique_id or ""
                    if item.name == "CHANNEL_CREATE":
                        seen.created[uid] = item.get("Caller-Destination-Number") or ""
                    elif item.name == "CHANNEL_EXECUTE":
                        app = item.get("Application") or ""
                        seen.executed.setdefault(uid, []).append(app)
                        data = item.get("Application-Data") or ""
                        seen.executed_data.setdefault(uid, []).append((app, data))
                    elif item.name == "CHANNEL_HANGUP_COMPLETE":
                        seen.ended[uid] = item

        task = asyncio.create_task(collect())
        try:
            yield seen
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
