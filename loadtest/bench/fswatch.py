"""FreeSWITCH seen from the outside: per-call events on FreeSWITCH's own clock, channel counts.

The FreeSWITCH twin of :mod:`loadtest.bench.watch`. A watcher has an ESL session of its own
(the stack's ESL password, like the engine's; JSON events) subscribed to ``CHANNEL_CREATE``,
``CHANNEL_HANGUP_COMPLETE`` and ``BACKGROUND_JOB``. Times are the events'
``Event-Date-Timestamp`` (microseconds since the epoch on FreeSWITCH's clock, the same clock as
``time.time()`` on this machine). A bgapi's ``BACKGROUND_JOB`` goes to every session subscribed
to it, so a watcher also sees the jobs of the engine's originates.

Also here: the bench's FreeSWITCH caps (:func:`raise_caps`) and a fresh FreeSWITCH
(:func:`fresh_freeswitch`), the counterpart of ``common.fresh_asterisk``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from dialer.pbx.esl.client import EslClient, EslSettings
from dialer.pbx.esl.codec import EslEvent
from ops.localstack import stack as localstack
from ops.localstack.procs import is_alive
from ops.localstack.stack import StackInfo

WATCHED = ("CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE", "BACKGROUND_JOB")
# The generated switch.conf caps FreeSWITCH at 200 new sessions a second and 1,000 sessions
# (ops/localstack/freeswitch.py): below what this host can push, so the bench raises both at
# run time (``fsctl``) on its own FreeSWITCH, after every start. The stack's config is unchanged.
BENCH_SPS = 5000
BENCH_MAX_SESSIONS = 20000


def esl_settings(info: StackInfo, events: tuple[str, ...] = WATCHED) -> EslSettings:
    """The bench's own sessions (the raw loop, the watchers) take their events as JSON: a
    CHANNEL_HANGUP_COMPLETE (~240 headers) parses in ~0.1 ms instead of ~0.5 ms as plain text,
    CPU the benchmark would otherwise take from the switch and the engine on the same cores."""
    base = EslSettings.from_url(info.esl_url)
    return replace(
        base, events=events, event_format="json", event_queue_size=200_000, command_timeout=20.0
    )


def fs_time(event: EslEvent) -> float:
    """The event's ``Event-Date-Timestamp`` in epoch seconds (now, if it has none)."""
    stamp = event.get("Event-Date-Timestamp")
    return int(stamp) / 1e6 if stamp and stamp.isdigit() else time.time()


def job_result(body: str) -> str:
    """An originate's BACKGROUND_JOB body: ``Success`` for ``+OK <uuid>``, else its first line."""
    text = body.strip()
    return "Success" if text.startswith("+OK") else (text.splitlines() or ["?"])[0][:60]


@dataclass
class FsObserved:
    """What one watcher saw of the calls whose Unique-ID (or Job-UUID) starts with ``prefix``."""

    prefix: str
    created: dict[str, float] = field(default_factory=dict)  # call id -> CHANNEL_CREATE time
    ended: dict[str, float] = field(default_factory=dict)  # call id -> HANGUP_COMPLETE time
    answered: dict[str, float] = field(default_factory=dict)  # call id -> answer epoch (s)
    causes: dict[str, int | None] = field(default_factory=dict)  # call id -> q850 cause
    jobs: dict[str, str] = field(default_factory=dict)  # call id -> job_result()
    events: int = 0  # events of those calls
    events_all: int = 0  # every event the session received
    by_event: Counter[str] = field(default_factory=Counter)
    disconnects: int = 0

    def feed(self, event: EslEvent) -> None:
        self.events_all += 1
        name = event.name
        uid = event.job_uuid if name == "BACKGROUND_JOB" else event.unique_id
        if name is None or uid is None or not uid.startswith(self.prefix):
            return
        self.events += 1
        self.by_event[name] += 1
        if name == "CHANNEL_CREATE":
            self.created.setdefault(uid, fs_time(event))
        elif name == "CHANNEL_HANGUP_COMPLETE":
            self.ended.setdefault(uid, fs_time(event))
            cause = event.get("variable_hangup_cause_q850") or ""
            self.causes[uid] = int(cause) if cause.isdigit() else None
            answer_us = event.get("variable_answer_uepoch") or "0"
            if answer_us.isdigit() and int(answer_us) > 0:
                self.answered[uid] = int(answer_us) / 1e6
        elif name == "BACKGROUND_JOB":
            self.jobs.setdefault(uid, job_result(event.body))

    def max_in_window(self, window: float = 1.0) -> int:
        """Most channels FreeSWITCH created in any ``window`` seconds, on its own clock."""
        ordered = sorted(self.created.values())
        best, lo = 0, 0
        for hi, t in enumerate(ordered):
            while t - ordered[lo] >= window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def max_live(self) -> int:
        """The most calls alive at once by their CHANNEL_CREATE / HANGUP_COMPLETE times."""
        moves = sorted(
            [(t, 1) for t in self.created.values()] + [(t, -1) for t in self.ended.values()]
        )
        live = best = 0
        for _, step in moves:
            live += step
            best = max(best, live)
        return best


async def consume(client: EslClient, observed: FsObserved) -> None:
    """Feed every event of ``client`` to ``observed`` until cancelled or the client closes."""
    async with aclosing(client.events()) as stream:
        async for item in stream:
            if isinstance(item, EslEvent):
                observed.feed(item)
            elif not item.connected:
                observed.disconnects += 1


@asynccontextmanager
async def watch(
    info: StackInfo, prefix: str = "dlr-", *, events: tuple[str, ...] = WATCHED
) -> AsyncIterator[FsObserved]:
    """Watch FreeSWITCH's calls with ``prefix`` while the block runs (subscribed to
    ``events``)."""
    observed = FsObserved(prefix)
    async with EslClient(esl_settings(info, events)) as client, asyncio.TaskGroup() as tg:
        task = tg.create_task(consume(client, observed))
        try:
            yield observed
        finally:
            task.cancel()


async def channels(client: EslClient, prefix: str) -> int:
    """Channels FreeSWITCH has now whose uuid starts with ``prefix`` (``show channels``)."""
    listing: dict[str, Any] = json.loads(await client.api("show", "channels", "as", "json") or "{}")
    return sum(
        1 for row in listing.get("rows") or [] if str(row.get("uuid", "")).startswith(prefix)
    )


async def wait_no_channels(info: StackInfo, prefix: str, *, within: float) -> bool:
    """Poll until FreeSWITCH has no channel with ``prefix`` (True) or ``within`` s pass."""
    deadline = time.monotonic() + within
    async with EslClient(esl_settings(info, events=())) as client:
        while await channels(client, prefix):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.2)
    return True


async def raise_caps(info: StackInfo) -> dict[str, str]:
    """Raise this FreeSWITCH's sessions-per-second and max-sessions (until it restarts)."""
    async with EslClient(esl_settings(info, events=())) as client:
        return {
            "sps": (await client.api("fsctl", "sps", str(BENCH_SPS))).strip(),
            "max_sessions": (
                await client.api("fsctl", "max_sessions", str(BENCH_MAX_SESSIONS))
            ).strip(),
        }


async def fresh_freeswitch(info: StackInfo) -> StackInfo:
    """Kill the stack's FreeSWITCH, start it again (in place: same ports and config) and raise
    its caps; returns the stack's new info."""
    current = localstack.load(info.workdir) or info
    print("  (restarting FreeSWITCH)", flush=True)
    started = time.monotonic()
    await asyncio.to_thread(localstack.terminate_now, current.freeswitch_pid)
    fresh = await asyncio.to_thread(
        localstack.up, current.name, current.workdir, with_freeswitch=True
    )
    if fresh.freeswitch_pid == current.freeswitch_pid or not is_alive(fresh.freeswitch_pid):
        raise RuntimeError("FreeSWITCH was not restarted")
    await raise_caps(fresh)
    print(f"  (FreeSWITCH restarted in {time.monotonic() - started:.1f} s)", flush=True)
    return fresh


def rate_overshoot(observed: FsObserved, cps: float) -> int:
    """Channels created beyond ``ceil(cps)`` in the busiest second (0: never above the rate)."""
    return max(0, observed.max_in_window() - math.ceil(cps))
