"""Watches the switch from the outside while the engine runs: channel count and originate times.

It uses its own AMI or ESL connection, independent of the engine's, so the limits are checked on
what the switch itself saw (``watch_switch(stack, pbx)``): the dialer's channels (call ids
starting ``dlr-``), created, answered and ended, each timed by the switch's own clock, and
samples of the switch's channel list.

- Asterisk: Newchannel / Newstate / Hangup, timed by their ``Timestamp`` header
  (``timestampevents``), and ``CoreShowChannels`` samples.
- FreeSWITCH: CHANNEL_CREATE / CHANNEL_ANSWER / CHANNEL_HANGUP_COMPLETE, timed by their
  ``Event-Date-Timestamp`` (microseconds since the epoch), and ``show channels as json``
  samples (the ``rows`` key is left out when there are none).

Both switches run on this machine, so their clock is ``time.time()``'s: a test can compare an
acknowledgement's time with the switch's event times (:meth:`Observed.created_after`). Give or
take: FreeSWITCH stamps events with a cached time that its timer thread updates
(``switch_micro_time_now``: the wall clock at start-up plus the monotonic clock), which ran
0-40 ms behind ``time.time()`` here under load (channels stamped before the claim that made
them); the order of its own events is kept. Being the start-up wall clock plus the monotonic
one, FreeSWITCH's clock keeps any step of the system clock after its start out of its stamps:
on a CI machine whose clock was stepped during a run, every stamp of one switch ran 0.20-0.24 s
behind ``time.time()`` (calls "created before they were due", "ended before the stop"). So the
watcher first has the switch re-read the system clock (``fsctl sync_clock``,
``switch_time_sync``), as an outside tester syncs the clocks it compares; Asterisk stamps with
the system clock itself (``ast_tvnow``).

Two measures of concurrency:

- ``max_live``: the most calls between their creation and their hang-up at any moment, by the
  events' timestamps. The engine frees a channel only after it has read the hang-up event, so
  this can never exceed the limit: the limit the tests hold strictly.
- ``max_channels``: the most channels a listing held. A listing is not a snapshot of that
  instant. Asterisk walks its channel container while writing each entry to the socket, and a
  channel stays in it for a moment after its Hangup event (it is destroyed when its last
  reference goes); FreeSWITCH lists from its core database, where a channel stays 120-150 ms
  after its CHANNEL_HANGUP_COMPLETE. So under load a listing can hold calls that have ended and
  the ones that replaced them (14 listed at a limit of 10 was seen, on Asterisk).
- ``max_listed_live``: the most channels a listing held that had not hung up by the switch's
  own stamps when it answered. It is held to the limit beside ``max_live``;
  :meth:`Observed.listings_off` checks each listing against the events (a channel the events
  never reported, or more listed live than the events had alive). Each listing is judged on
  the switch's stamps, not on when this watcher read an event: under load the watcher's
  events trail (25 listed against 20 alive was once computed from reading times, when 20
  hang-ups were still unread).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from dialer.pbx.ami.client import AmiClient, AmiSettings
from dialer.pbx.ami.codec import Message
from dialer.pbx.esl.client import EslClient, EslSettings
from dialer.pbx.esl.codec import EslEvent


def most_in_window(times: Iterable[float], window: float) -> int:
    """The most of ``times`` (seconds) in any ``window`` seconds."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@dataclass(frozen=True)
class Listing:
    """One listing of the switch's channels: asked and answered (epoch seconds here), and the
    dialer channels (call ids) it held."""

    asked: float
    answered: float
    uids: frozenset[str]


@dataclass
class Observed:
    channel_samples: list[tuple[float, int]] = field(default_factory=list)
    # each listing: asked and answered here (epoch seconds, comparable with the switch's
    # stamps), and the dialer channels it held
    listings: list[Listing] = field(default_factory=list)
    # call id -> its hang-up first seen here (monotonic)
    ended_seen: dict[str, float] = field(default_factory=dict)
    # call id -> first seen here (monotonic)
    new_channels: dict[str, float] = field(default_factory=dict)
    # call id -> the switch's own creation time (Newchannel Timestamp, CHANNEL_CREATE
    # Event-Date-Timestamp; epoch seconds)
    created_at: dict[str, float] = field(default_factory=dict)
    # call id -> the switch's own hang-up time (Hangup, CHANNEL_HANGUP_COMPLETE)
    ended_at: dict[str, float] = field(default_factory=dict)
    # call ids whose channel answered (Asterisk: state Up; FreeSWITCH: CHANNEL_ANSWER, or an
    # answer epoch in the hang-up)
    answered: set[str] = field(default_factory=set)
    # call id -> the switch's own answer time (Asterisk: the Timestamp of the Newstate to Up;
    # FreeSWITCH: CHANNEL_ANSWER's Event-Date-Timestamp, else the hang-up's answer_uepoch)
    answered_at: dict[str, float] = field(default_factory=dict)

    def answered_per(self, phone_of: dict[str, str]) -> dict[str, int]:
        """Answered channels per number (``phone_of``: call id -> number, from the records);
        an answered call without a record counts under ``?``."""
        per: dict[str, int] = {}
        for uid in self.answered:
            phone = phone_of.get(uid, "?")
            per[phone] = per.get(phone, 0) + 1
        return per

    @property
    def max_channels(self) -> int:
        return max((n for _, n in self.channel_samples), default=0)

    @property
    def max_live(self) -> int:
        """The most calls alive at once by the switch's creation and hang-up times."""
        moves = sorted(
            [(t, 1) for t in self.created_at.values()] + [(t, -1) for t in self.ended_at.values()]
        )  # a hang-up sorts before a creation of the same instant
        live = best = 0
        for _, step in moves:
            live += step
            best = max(best, live)
        return best

    def max_in_window(self, window: float = 1.0) -> int:
        """Most channels the switch created in any ``window`` seconds, on the switch's clock."""
        return most_in_window(self.created_at.values() or self.new_channels.values(), window)

    def listed_live(self, listing: Listing) -> set[str]:
        """The channels of ``listing`` not yet hung up when it was answered, by the switch's
        hang-up stamps: a listing is no snapshot, and a channel stays listed a moment after its
        hang-up (module docstring)."""
        return {u for u in listing.uids if self.ended_at.get(u, math.inf) > listing.answered}

    @property
    def max_listed_live(self) -> int:
        """The most channels a listing held that were still up at its answer: the switch's
        own count, to hold to a limit beside :attr:`max_live`."""
        return max((len(self.listed_live(x)) for x in self.listings), default=0)

    def listings_off(self, slack: float = 0.05) -> list[tuple[float, int, int, list[str]]]:
        """Listings the events do not explain: a listed channel the events never reported,
        or more channels listed live than the events had alive at that instant (created by
        the switch's stamp before the answer, ``slack`` for FreeSWITCH's cached clock; not
        hung up): ``(answered, listed live, alive, unknown channels)`` each. Read it once the
        block has ended, when every event is in."""
        off = []
        for x in self.listings:
            unknown = sorted(x.uids - self.created_at.keys())
            live = len(self.listed_live(x))
            alive = sum(
                1
                for uid, created in self.created_at.items()
                if created <= x.answered + slack and self.ended_at.get(uid, math.inf) > x.answered
            )
            if unknown or live > alive:
                off.append((x.answered, live, alive, unknown))
        return off

    def delivery_spread(self, sent_at: dict[str, float]) -> float:
        """How unevenly calls reached the switch: the spread (max - min) of each call's creation
        time on the switch minus its ``sent_at`` (epoch seconds: e.g. the records'
        ``claimed_ms``), over the calls in both. A rate limit kept at grant time holds on the
        switch's clock in any window shorter by this much than the one kept."""
        lags = [self.created_at[cid] - t for cid, t in sent_at.items() if cid in self.created_at]
        return max(lags) - min(lags) if lags else 0.0

    def originated_after(self, t: float) -> list[str]:
        """Calls whose channel this watcher first saw after ``t`` (monotonic)."""
        return [cid for cid, seen in self.new_channels.items() if seen > t]

    def created_after(self, epoch: float) -> list[str]:
        """Calls whose channel the switch created after ``epoch`` by its own clock (the
        events' timestamps; the switch runs on this machine, so its clock is ``time.time``)."""
        return [cid for cid, at in self.created_at.items() if at > epoch]

    async def wait_until(self, done: Callable[[Observed], bool], within: float = 5.0) -> None:
        """Poll until ``done(self)``: this watcher's events can trail the engine's own (the
        switch writes each event to every connection in turn). AssertionError after
        ``within`` seconds."""
        deadline = time.monotonic() + within
        while not done(self):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the switch's events not seen within {within} s: {len(self.created_at)} "
                    f"created, {len(self.answered)} answered, {len(self.ended_at)} ended"
                )
            await asyncio.sleep(0.02)

    def max_sample_gap(self) -> float:
        ts = [t for t, _ in self.channel_samples]
        return max((b - a for a, b in zip(ts, ts[1:], strict=False)), default=0.0)


@asynccontextmanager
async def _sampling(
    observed: Observed,
    events: Callable[[], Coroutine[Any, Any, None]],
    listed: Callable[[], Coroutine[Any, Any, set[str]]],
    sample_every: float,
) -> AsyncIterator[None]:
    """Runs a watcher's ``events`` reader and samples the switch's channel list (``listed``:
    the dialer channels in one listing) every ``sample_every`` s, until the block ends."""

    async def sample() -> None:
        while True:
            asked = time.time()
            uids = await listed()
            answered = time.time()
            observed.channel_samples.append((time.monotonic(), len(uids)))
            observed.listings.append(Listing(asked, answered, frozenset(uids)))
            await asyncio.sleep(sample_every)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(events()), tg.create_task(sample())]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()


@asynccontextmanager
async def watch_asterisk(
    ami: AmiSettings, *, sample_every: float = 0.04
) -> AsyncIterator[Observed]:
    observed = Observed()
    async with AmiClient(ami) as client:

        async def events() -> None:
            async for item in client.events():
                if isinstance(item, Message) and item.event in ("Newchannel", "Newstate", "Hangup"):
                    uid = item.get("Uniqueid") or ""
                    if not uid.startswith("dlr-"):
                        continue
                    stamp = item.get("Timestamp")
                    if item.get("ChannelState") == "6":
                        observed.answered.add(uid)
                        observed.answered_at.setdefault(uid, float(stamp) if stamp else time.time())
                    if item.event == "Newstate":
                        continue
                    if item.event == "Hangup":
                        observed.ended_at.setdefault(uid, float(stamp) if stamp else time.time())
                        observed.ended_seen.setdefault(uid, time.monotonic())
                        continue
                    observed.new_channels.setdefault(uid, time.monotonic())
                    if stamp:
                        observed.created_at.setdefault(uid, float(stamp))

        async def listed() -> set[str]:
            items = await client.send_action_list("CoreShowChannels")
            uids = (i.get("Uniqueid") or "" for i in items)
            return {u for u in uids if u.startswith("dlr-")}

        async with _sampling(observed, events, listed, sample_every):
            yield observed


FREESWITCH_EVENTS = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE")


def _fs_time(event: EslEvent) -> float:
    stamp = event.get("Event-Date-Timestamp")  # microseconds since the epoch
    return int(stamp) / 1e6 if stamp and stamp.isdigit() else time.time()


@asynccontextmanager
async def watch_freeswitch(esl_url: str, *, sample_every: float = 0.04) -> AsyncIterator[Observed]:
    """:func:`watch_asterisk` for FreeSWITCH: the dialer's channels (``dlr-`` Unique-IDs) by
    FreeSWITCH's own events and ``show channels`` samples, on an ESL connection of its own."""
    observed = Observed()
    base = EslSettings.from_url(esl_url)
    settings = EslSettings(
        host=base.host, port=base.port, password=base.password, events=FREESWITCH_EVENTS
    )
    async with EslClient(settings) as client:
        await client.api("fsctl", "sync_clock")  # the switch's clock is the system's (-ERR raises)

        async def events() -> None:
            async with aclosing(client.events()) as stream:
                async for item in stream:
                    if not isinstance(item, EslEvent):
                        continue
                    uid = item.unique_id or ""
                    if not uid.startswith("dlr-"):
                        continue
                    if item.name == "CHANNEL_CREATE":
                        observed.new_channels.setdefault(uid, time.monotonic())
                        observed.created_at.setdefault(uid, _fs_time(item))
                    elif item.name == "CHANNEL_ANSWER":
                        observed.answered.add(uid)
                        observed.answered_at.setdefault(uid, _fs_time(item))
                    elif item.name == "CHANNEL_HANGUP_COMPLETE":
                        observed.ended_at.setdefault(uid, _fs_time(item))
                        observed.ended_seen.setdefault(uid, time.monotonic())
                        answered = item.get("variable_answer_epoch") or "0"
                        if answered not in ("", "0"):
                            observed.answered.add(uid)
                            usec = item.get("variable_answer_uepoch") or ""
                            at = int(usec) / 1e6 if usec.isdigit() else float(answered)
                            observed.answered_at.setdefault(uid, at)

        async def listed() -> set[str]:
            listing: dict[str, Any] = json.loads(
                await client.api("show", "channels", "as", "json") or "{}"
            )
            uids = (str(row.get("uuid", "")) for row in listing.get("rows") or [])
            return {u for u in uids if u.startswith("dlr-")}

        async with _sampling(observed, events, listed, sample_every):
            yield observed


def watch_switch(stack: Any, pbx: str, *, sample_every: float = 0.04) -> Any:
    """The watcher of the switch a test runs on (``pbx``: ``"asterisk"`` or ``"freeswitch"``);
    an async context manager yielding :class:`Observed`."""
    if pbx == "freeswitch":
        return watch_freeswitch(stack.esl_url, sample_every=sample_every)
    ami = AmiSettings(
        host=stack.ami_host,
        port=stack.ami_port,
        username=stack.ami_watch_username,
        secret=stack.ami_secret,
    )
    return watch_asterisk(ami, sample_every=sample_every)
