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
  the switch's. **Clock offset**: Redis and the switch are different hosts in production, so a
  delay reads ``true delay + offset``; the margin is ``max - min`` of the window's delays, in
  which a constant offset cancels (and a negative "delay" is fine). A clock step on either
  host widens the spread for one window (the margin rises, up to ``ceiling_ms``: rate lost
  for a while, never an overshoot); drift (ppm) is nothing over a window. The margin is that
  spread (``switch_quantile`` of the window's delays minus their minimum) plus
  ``stamp_slack_ms`` (the stamps' millisecond rounding), within ``[floor_ms, ceiling_ms]``.
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

Cost: each observation appends to a bounded deque; a quantile is recomputed (one sort of its
window) every ``recompute_every`` observations (stamps: every ``switch_recompute_every``), or at
once when a delay lies outside what the margin covers. Measured in loadtest/README.md.
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
    # the switch's stamps (one per call): 2048 is ~10 s at 200 CPS, ~40 s at 50
    switch_window: int = 2048
    switch_min_samples: int = 64
    switch_quantile: float = 1.0  # the high end of the spread (1.0: the largest delay)
    switch_recompute_every: int = 32
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
        if not 1 <= self.switch_min_samples <= self.switch_window:
            raise ValueError("need 1 <= switch_min_samples <= switch_window")
        if not (0.5 <= self.quantile <= 1.0 and 0.5 <= self.switch_quantile <= 1.0):
            raise ValueError("quantiles must lie within [0.5, 1.0]")
        if self.recompute_every < 1 or self.switch_recompute_every < 1:
            raise ValueError("recompute intervals must be at least 1")
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


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class GrantDelay:
    """Online estimate of the CPS window's margin from grant-to-channel delays (ms)."""

    def __init__(self, bounds: MarginBounds | None = None) -> None:
        self.bounds = bounds or MarginBounds()
        self._delays: deque[float] = deque(maxlen=self.bounds.window)
        self._since = 0  # observations since the margin was last computed
        self._margin = self.bounds.initial_ms
        # the switch's stamps: grant -> channel (offset included), and their margin
        self._stamps: deque[float] = deque(maxlen=self.bounds.switch_window)
        self._stamps_since = 0
        self._low = math.inf  # the covered range of stamp delays: [_low, _high]
        self._high = -math.inf
        self._switch_margin: int | None = None
        self._batches_without_stamp = 0

    def observe(self, granted_ms: float, reported_ms: float) -> None:
        """One batch granted at ``granted_ms`` (Redis's clock) whose originates were written to
        the switch at ``reported_ms`` (the engine's clock)."""
        delay = reported_ms - granted_ms
        self._delays.append(delay if delay > 0 else 0.0)  # NaN counts as 0 too
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
        at ``created_ms`` (the switch's clock; the two may be offset: only the spread counts).
        A delay that is not a finite number is ignored."""
        delay = created_ms - granted_ms
        if not math.isfinite(delay) or not self.bounds.use_stamps:
            return
        self._stamps.append(delay)
        self._stamps_since += 1
        self._batches_without_stamp = 0
        b = self.bounds
        n = len(self._stamps)
        if n < b.switch_min_samples:
            return
        if (
            self._stamps_since >= b.switch_recompute_every
            or self._switch_margin is None
            or not self._low <= delay <= self._high  # outside the spread: lift it at once
        ):
            self._switch_margin = self._compute_switch()
            self._stamps_since = 0

    def margin_ms(self) -> int:
        """The margin to pass with the next claim."""
        if self._stamps_fresh():
            assert self._switch_margin is not None
            return self._switch_margin
        return self._margin

    def statistics(self) -> GrantDelayStats:
        delays = self._delays
        if self._stamps_fresh():
            source = MarginSource.SWITCH
        else:
            source = (
                MarginSource.ENGINE
                if len(delays) >= self.bounds.min_samples
                else (MarginSource.INITIAL)
            )
        stamps = self._stamps
        return GrantDelayStats(
            samples=len(delays),
            margin_ms=self.margin_ms(),
            last_ms=delays[-1] if delays else None,
            max_ms=max(delays) if delays else None,
            source=source,
            switch_samples=len(stamps),
            switch_spread_ms=max(stamps) - min(stamps) if stamps else None,
        )

    def _stamps_fresh(self) -> bool:
        return (
            self._switch_margin is not None
            and self._batches_without_stamp <= self.bounds.stale_batches
        )

    def _compute(self) -> int:
        b = self.bounds
        value = _quantile(sorted(self._delays), b.quantile)
        if not math.isfinite(value):
            return b.ceiling_ms
        return max(b.floor_ms, min(b.ceiling_ms, math.ceil(value) + b.switch_ms))

    def _compute_switch(self) -> int:
        b = self.bounds
        ordered = sorted(self._stamps)
        self._low, self._high = ordered[0], _quantile(ordered, b.switch_quantile)
        spread = self._high - self._low
        return max(b.floor_ms, min(b.ceiling_ms, math.ceil(spread) + b.stamp_slack_ms))
