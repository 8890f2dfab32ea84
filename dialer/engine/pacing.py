"""The CPS window's margin, following the measured grant-to-channel delay (sans-IO).

A claim grants at most ``ceil(cps)`` calls per window (claim.lua, by Redis's clock); the switch
creates each channel some milliseconds later, by a varying amount. If the first call of a window
took ``d_first`` ms to reach the switch and a call granted one window later took ``d_last``,
the two channels are ``window + d_last - d_first`` apart on the switch's clock; a window of
``1000 + margin`` ms therefore never shows ``limit + 1`` channels in one second by the
switch's clock as long as ``d_first - d_last <= margin``: the margin has to cover the *spread*
of the delays (the largest minus the smallest), not the delays themselves.

A fixed margin (40 ms before this module) has to cover the worst switch it may meet and costs
``margin / 1000`` of the rate on every switch (0.96 of it at 40 ms). :class:`GrantDelay`
follows the delays instead, from two sources:

- **The switch's own stamps** (:meth:`GrantDelay.observe_switch`, one per call): the grant (the
  claim reply's ``server_ms``, Redis's ``TIME``) to the channel's creation by the switch's clock
  (Asterisk: Newchannel's ``Timestamp``, manager.conf ``timestampevents``; FreeSWITCH:
  CHANNEL_CREATE's ``Event-Date-Timestamp``). This is the whole delay, the engine's part and
  the switch's. The margin is the largest delay of the calls whose window the claim can still
  meet (granted in the last ``1000 + ceiling_ms + guard_ms`` before it, by Redis's clock) less
  the smallest of the last ``low_window_ms``, plus ``stamp_slack_ms`` (the stamps' millisecond
  rounding), within ``[floor_ms, ceiling_ms]``. Why so short a memory: a call's window is open
  to the claims of the next ``1000 + margin`` ms only, and its stamp comes within
  milliseconds of its channel, long before the call one window later is claimed; so the
  margin rises *before* the claim a slow channel could collide with, and falls 1.3 s after a
  stall instead of holding a long window's worst for tens of seconds. The youngest calls count
  too: a claim may reach Redis later than it asked for its margin (the writer's round trip, an
  engine stall), and a later claim only meets fewer old calls. The claim's time on Redis's
  clock is the engine's less the smallest (write - grant) of the batches (:meth:`observe`):
  early by the engine's quickest write, which errs wide. The smallest delay stands for the
  next calls' (unknown yet): a call faster than any of the last ``low_window_ms`` would be
  short by the difference, which is why the stamps are trusted only after
  ``switch_min_samples`` and ``switch_trust_ms`` (a freshly started switch creates its first
  channels more slowly than the next ones). **Clock offset**: Redis and the switch are
  different hosts in production, so a delay reads ``true delay + offset``; the margin is a
  difference of two delays, in which a constant offset cancels (a negative "delay" is fine).
  A clock step on either host widens it for ``low_window_ms`` at most (the margin rises, up to
  ``ceiling_ms``: rate lost for a while, never an overshoot); drift (ppm) is nothing over 30 s.
  A clock that jitters widens the spread by its jitter: FreeSWITCH's event stamps ran up to
  34 ms behind the host's clock here, which costs as much rate as the fixed margin
  (loadtest/README.md), so by default only Asterisk's stamps are followed
  (:func:`stamps_followed`).
- **The engine's part alone** (:meth:`GrantDelay.observe`, one per claim batch): grant to the
  moment the engine writes the batch's originates, on its clock, plus ``switch_ms`` for the
  switch's part, which no reply shows (the originate's answer comes before the channel on both
  switches). The fallback: used until ``switch_min_samples`` stamps are known and whenever no
  stamp came for ``stale_batches`` batches (a manager.conf without the Newchannel filter, an
  Asterisk without ``timestampevents``). Until ``min_samples`` batches are known it answers
  ``initial_ms`` (the old fixed margin).

Why both and not the switch alone: at 200 CPS Asterisk takes 15-25 ms more to create a
channel than at 100, which the engine-side estimate cannot see (209 channels in one second,
loadtest/README.md "Adaptive CPS margin"); the stamps see it. A switch that falls behind by
seconds past its knee is not covered by any margin that keeps the rate (``ceiling_ms``).

Cost: a stamp is two sliding extremes (monotonic deques, O(1) amortized, no sort); a batch's
engine-side delay appends to a bounded deque whose quantile is recomputed (one sort of
``window`` floats) every ``recompute_every`` batches or at once when a delay exceeds the margin.
Measured in loadtest/README.md (the engine's CPU per call, with and without stamps).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class MarginBounds:
    """How :class:`GrantDelay` turns delays into a margin (milliseconds)."""

    floor_ms: int = 4  # never less
    switch_ms: int = 10  # added to the engine-side delay: the switch's part, which no reply shows
    ceiling_ms: int = 250  # never more: a quarter of the rate at most
    initial_ms: int = 40  # until min_samples delays are known (the former fixed margin)
    window: int = 256  # delays kept (one per claim batch: ~13 s at 20 claims a second)
    min_samples: int = 16
    quantile: float = 1.0  # of the window's delays (1.0: the largest)
    recompute_every: int = 8
    # the switch's stamps (one per call), by grant time (Redis's clock): the largest delay of
    # the calls whose window the next claim can meet (granted since 1000 + ceiling_ms + guard_ms
    # before it; without the claim's time: the last recent_ms) less the smallest of the last
    # low_window_ms
    recent_ms: int = 2000
    guard_ms: int = 50  # the claim's time on Redis's clock is an estimate: errs this much wider
    low_window_ms: int = 30_000
    switch_min_samples: int = 64  # stamps before they are trusted (the minimum is known)
    switch_trust_ms: int = 3000  # and this long after the first: a fresh switch warms up
    stamp_slack_ms: int = 2  # grant and stamp are each rounded to the millisecond or finer
    stale_batches: int = 64  # this many claim batches without a stamp: back to the engine's
    use_stamps: bool = True  # False: the engine-side estimate alone (DIALER_RATE_STAMPS=off)

    def __post_init__(self) -> None:
        if self.switch_ms < 0 or self.stamp_slack_ms < 0:
            raise ValueError("switch_ms and stamp_slack_ms must be at least 0")
        if not 0 <= self.floor_ms <= self.ceiling_ms:
            raise ValueError("need 0 <= floor_ms <= ceiling_ms")
        if not self.floor_ms <= self.initial_ms <= self.ceiling_ms:
            raise ValueError("initial_ms must lie within [floor_ms, ceiling_ms]")
        if not 1 <= self.min_samples <= self.window:
            raise ValueError("need 1 <= min_samples <= window")
        if self.switch_min_samples < 1 or self.switch_trust_ms < 0:
            raise ValueError("need switch_min_samples >= 1 and switch_trust_ms >= 0")
        if not 1000 + self.ceiling_ms <= self.recent_ms <= self.low_window_ms:
            raise ValueError("need 1000 + ceiling_ms <= recent_ms <= low_window_ms")
        if not 0 <= self.guard_ms <= 1000:
            raise ValueError("guard_ms must lie within [0, 1000]")
        if not 0.5 <= self.quantile <= 1.0:
            raise ValueError("quantile must lie within [0.5, 1.0]")
        if self.recompute_every < 1:
            raise ValueError("recompute_every must be at least 1")
        if self.stale_batches < 1:
            raise ValueError("stale_batches must be at least 1")


class MarginSource(StrEnum):
    """Where the margin in force comes from."""

    INITIAL = "initial"  # nothing measured yet: initial_ms
    ENGINE = "engine"  # the engine-side delays plus switch_ms
    SWITCH = "switch"  # the spread of the switch's stamps


@dataclass(frozen=True, slots=True)
class GrantDelayStats:
    samples: int
    margin_ms: int
    last_ms: float | None
    max_ms: float | None  # the largest engine-side delay kept
    source: MarginSource = MarginSource.INITIAL
    switch_samples: int = 0
    switch_spread_ms: float | None = None  # the stamps' delays: largest minus smallest kept


def stamps_followed(setting: bool | None, switch: str) -> bool:
    """Whether the margin follows ``switch``'s channel stamps (``setting``: DIALER_RATE_STAMPS,
    None when unset). By default Asterisk's only: FreeSWITCH stamps its events with its own
    timer-driven clock, which ran up to 34 ms behind the host's here (claim -> CHANNEL_CREATE
    lags below zero), so the spread of its stamps is mostly that jitter, a margin as costly as
    the fixed one (loadtest/README.md); the engine-side estimate did better there."""
    return setting if setting is not None else switch != "freeswitch"


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class GrantDelay:
    """Online estimate of the CPS window's margin from grant-to-channel delays (ms)."""

    def __init__(self, bounds: MarginBounds | None = None) -> None:
        self.bounds = bounds or MarginBounds()
        self._delays: deque[float] = deque(maxlen=self.bounds.window)
        self._since = 0  # observations since the margin was last computed
        self._margin = self.bounds.initial_ms
        # the switch's stamps, (granted_ms, delay) in grant order: _highs' delays decrease
        # (its first is the largest of the calls the next claim can meet), _lows' increase
        # (the smallest of the last low_window_ms): sliding extremes, O(1) per stamp, no sort
        self._highs: deque[tuple[float, float]] = deque()
        self._lows: deque[tuple[float, float]] = deque()
        # the engine's clock less Redis's at the grants: the smallest (write - grant) of the
        # batches, a little early (by the engine's quickest write): the claim's time on Redis's
        self._leads: deque[tuple[float, float]] = deque()
        self._newest = -math.inf  # the latest grant stamped
        self._first = math.inf  # the first grant stamped
        self._stamps = 0
        self._trusted = False  # switch_min_samples stamps over switch_trust_ms of grants
        self._batches_without_stamp = 0
        self._last = self._margin  # the margin last handed out

    def observe(self, granted_ms: float, reported_ms: float) -> None:
        """One batch granted at ``granted_ms`` (Redis's clock) whose originates were written to
        the switch at ``reported_ms`` (the engine's clock)."""
        delay = reported_ms - granted_ms
        self._delays.append(delay if delay > 0 else 0.0)  # NaN counts as 0 too
        if math.isfinite(delay) and math.isfinite(granted_ms):
            since = granted_ms - self.bounds.low_window_ms
            _slide(self._leads, granted_ms, delay, since, larger=False)
        self._since += 1
        self._batches_without_stamp += 1
        b = self.bounds
        n = len(self._delays)
        if n >= b.min_samples and (self._since >= b.recompute_every or n == b.min_samples):
            self._margin = self._compute()
            self._since = 0
        elif n >= b.min_samples and self._delays[-1] > self._margin:
            self._margin = self._compute()  # a slow batch lifts the margin at once
            self._since = 0

    def observe_switch(self, granted_ms: float, created_ms: float) -> None:
        """One call granted at ``granted_ms`` (Redis's clock) whose channel the switch created
        at ``created_ms`` (the switch's clock; the two may be offset: only differences count).
        A stamp that is not a finite number is ignored."""
        delay = created_ms - granted_ms
        b = self.bounds
        if not (math.isfinite(delay) and math.isfinite(granted_ms)) or not b.use_stamps:
            return
        self._stamps += 1
        self._batches_without_stamp = 0
        newest = self._newest = max(self._newest, granted_ms)
        _slide(self._highs, granted_ms, delay, newest - b.recent_ms, larger=True)
        _slide(self._lows, granted_ms, delay, newest - b.low_window_ms, larger=False)
        self._first = min(self._first, granted_ms)
        self._trusted = (
            self._stamps >= b.switch_min_samples and newest - self._first >= b.switch_trust_ms
        )

    def margin_ms(self, now_ms: float | None = None) -> int:
        """The margin to pass with the next claim, made at ``now_ms`` (the engine's clock;
        None: unknown, and the stamps of the last ``recent_ms`` all count)."""
        if not self._stamps_fresh():
            self._last = self._margin
            return self._margin
        b = self.bounds
        if now_ms is not None and self._leads:
            # the claim's time on Redis's clock, early by the engine's quickest write: a call
            # granted before it less a second and the ceiling cannot meet its window (a claim
            # that runs later than asked meets even fewer); younger ones can, the youngest
            # included (a claim may run a second late: an engine stall)
            since = now_ms - self._leads[0][1] - 1000 - b.ceiling_ms - b.guard_ms
            highs = self._highs
            while highs and highs[0][0] < since:
                highs.popleft()
        if not self._highs or not self._lows:
            self._last = b.floor_ms  # no call whose window this claim can meet
        else:
            spread = self._highs[0][1] - self._lows[0][1]
            self._last = max(b.floor_ms, min(b.ceiling_ms, math.ceil(spread) + b.stamp_slack_ms))
        return self._last

    def statistics(self) -> GrantDelayStats:
        delays = self._delays
        if self._stamps_fresh():
            source = MarginSource.SWITCH
        else:
            engine = len(delays) >= self.bounds.min_samples
            source = MarginSource.ENGINE if engine else MarginSource.INITIAL
        highs, lows = self._highs, self._lows
        top = highs[0][1] if highs else -math.inf
        return GrantDelayStats(
            samples=len(delays),
            margin_ms=self._last,  # the last one handed out
            last_ms=delays[-1] if delays else None,
            max_ms=max(delays) if delays else None,
            source=source,
            switch_samples=self._stamps,
            switch_spread_ms=top - lows[0][1] if lows and math.isfinite(top) else None,
        )

    def _stamps_fresh(self) -> bool:
        return self._trusted and self._batches_without_stamp <= self.bounds.stale_batches

    def _compute(self) -> int:
        b = self.bounds
        value = _quantile(sorted(self._delays), b.quantile)
        if not math.isfinite(value):
            return b.ceiling_ms
        return max(b.floor_ms, min(b.ceiling_ms, math.ceil(value) + b.switch_ms))


def _slide(
    kept: deque[tuple[float, float]], granted: float, delay: float, since: float, *, larger: bool
) -> None:
    """Add one (grant, delay) to a sliding extreme (``larger``: the maximum, else the minimum)
    and drop what was granted before ``since``. An entry it outdoes leaves, and passes on its
    later grant time (a stamp that comes out of order keeps the extreme a little longer: the
    margin errs wide, never narrow)."""
    while kept and (kept[-1][1] <= delay if larger else kept[-1][1] >= delay):
        granted = max(granted, kept.pop()[0])
    kept.append((granted, delay))
    while kept[0][0] < since:
        kept.popleft()
        if not kept:
            return
