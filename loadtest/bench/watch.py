"""Asterisk seen from the outside: channel counts and per-call event times on Asterisk's clock.

A watcher has its own AMI session, independent of the engine's: normally manager.conf's
watching user (Newchannel, Newstate Up, OriginateResponse, Hangup and UserEvent), or the
dialer's own user to count what the engine receives.
Times are the events' ``Timestamp`` header (manager.conf sets ``timestampevents = yes``),
epoch seconds on Asterisk's clock, the same clock as ``time.time()`` on this machine.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field

from dialer.pbx.ami.client import AmiClient, AmiSettings
from dialer.pbx.ami.codec import Message


@dataclass
class Observed:
    """What one watcher saw of the calls whose id (Uniqueid) starts with ``prefix``."""

    prefix: str
    created: dict[str, float] = field(default_factory=dict)  # call id -> Newchannel time
    ended: dict[str, float] = field(default_factory=dict)  # call id -> Hangup time
    causes: dict[str, int | None] = field(default_factory=dict)  # call id -> Hangup Cause
    originate: dict[str, str] = field(default_factory=dict)  # call id -> OriginateResponse
    events: int = 0  # events of those calls
    events_all: int = 0  # every event the session received
    by_event: Counter[str] = field(default_factory=Counter)
    # (asked at, answered at, channels): time.time() around each CoreShowChannels
    samples: list[tuple[float, float, int]] = field(default_factory=list)
    disconnects: int = 0

    def feed(self, msg: Message) -> None:
        self.events_all += 1
        name = msg.event
        uid = msg.get("DestUniqueid") if name == "DialEnd" else msg.get("Uniqueid")
        if name is None or uid is None or not uid.startswith(self.prefix):
            return
        self.events += 1
        self.by_event[name] += 1
        stamp = msg.get("Timestamp")
        at = float(stamp) if stamp else time.time()
        if name == "Newchannel":
            self.created.setdefault(uid, at)
        elif name == "Hangup":
            self.ended.setdefault(uid, at)
            cause = msg.get("Cause")
            self.causes[uid] = int(cause) if cause and cause.strip().isdigit() else None
        elif name == "OriginateResponse":
            self.originate.setdefault(uid, msg.get("Response") or "")

    @property
    def max_channels(self) -> int:
        return max((n for _, _, n in self.samples), default=0)

    def max_sample_gap(self) -> float:
        """The longest time between two samples (between the moments they were asked)."""
        times = [t for t, _, _ in self.samples]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)

    def live(self) -> int:
        """Calls seen created and not yet ended."""
        return sum(1 for uid in self.created if uid not in self.ended)

    def _moves(self) -> list[tuple[float, int]]:
        """+1 at each Newchannel, -1 at each Hangup, in time order (a Hangup first on a tie)."""
        ups = [(t, 1) for t in self.created.values()]
        return sorted(ups + [(t, -1) for t in self.ended.values()])

    def max_live_by_events(self, start: float = -math.inf, end: float = math.inf) -> int:
        """The most calls between their Newchannel and their Hangup Timestamps at any moment
        of ``[start, end]`` (by default: ever)."""
        live = 0
        best: int | None = None
        for t, step in self._moves():
            if t > end:
                break
            if t >= start and best is None:
                best = live  # alive at ``start``
            live += step
            if best is not None:
                best = max(best, live)
        return live if best is None else best


async def consume(client: AmiClient, observed: Observed) -> None:
    """Feed every event of ``client`` to ``observed`` until cancelled or the client closes."""
    async with aclosing(client.events()) as stream:
        async for item in stream:
            if isinstance(item, Message):
                observed.feed(item)
            elif not item.connected:
                observed.disconnects += 1


async def channels(client: AmiClient, prefix: str) -> int:
    """Channels Asterisk has now whose Uniqueid starts with ``prefix`` (CoreShowChannels)."""
    items = await client.send_action_list("CoreShowChannels")
    return sum(1 for i in items if (i.get("Uniqueid") or "").startswith(prefix))


async def _sample(client: AmiClient, observed: Observed, every: float) -> None:
    """A sample every ``every`` seconds from the start (not after each answer: no drift)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tick = 0
    while True:
        asked = time.time()
        n = await channels(client, observed.prefix)
        observed.samples.append((asked, time.time(), n))
        tick = max(tick + 1, int((loop.time() - start) / every))
        await asyncio.sleep(max(0.0, start + tick * every - loop.time()))


@asynccontextmanager
async def watch(
    settings: AmiSettings, prefix: str = "dlr-", *, sample_every: float | None = None
) -> AsyncIterator[Observed]:
    """Watch calls with ``prefix`` while the block runs; sample channels every ``sample_every``."""
    observed = Observed(prefix)
    async with AmiClient(settings) as client, asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(consume(client, observed))]
        if sample_every is not None:
            tasks.append(tg.create_task(_sample(client, observed, sample_every)))
        try:
            yield observed
        finally:
            for task in tasks:
                task.cancel()


async def wait_no_channels(settings: AmiSettings, prefix: str, *, within: float) -> bool:
    """Poll until Asterisk has no channel with ``prefix`` (True) or ``within`` s pass."""
    deadline = time.monotonic() + within
    async with AmiClient(settings) as client:
        while await channels(client, prefix):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.2)
    return True
