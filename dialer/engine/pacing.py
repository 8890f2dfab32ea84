"""The CPS window's margin, following the measured grant-to-switch delay (sans-IO).

A claim grants at most ``ceil(cps)`` calls per window (claim.lua, by Redis's clock); the switch
creates each channel some milliseconds later, by a varying amount. If the first call of a window
took ``d_first`` ms to reach the switch and a call granted one window later took ``d_last``,
the two channels are ``window + d_last - d_first`` apart on the switch's clock; a window of
``1000 + margin`` ms therefore never shows ``limit + 1`` channels in one second by the
switch's clock as long as ``d_first - d_last <= margin``. Delays are never negative, so a
margin at least as large as the longest delay is enough.

A fixed margin (40 ms before this module) has to cover the worst switch it may meet and costs
``margin / 1000`` of the rate on every switch (0.96 of it at 40 ms). A delay has two parts: the
engine's (the grant, by Redis's ``TIME``: the claim reply's ``server_ms``, to the moment the
engine writes the batch's originates, on its clock), which :class:`GrantDelay` measures, and
the switch's (the write to the channel), which the engine does not see: the originate's
answer comes before the channel on both switches (Asterisk's Async originate, FreeSWITCH's
bgapi) and the engine reads it late on purpose when events are many (AMI reads gathered for
20 ms), so it is a fixed allowance, ``switch_ms`` (10: the raw AMI loop's send -> Newchannel was
3.7-6.2 ms p99 on a quiet Asterisk here, 4.5-18 ms p99 claim -> Newchannel in the pacing runs).
The margin is a high quantile of the last ``window`` engine-side delays plus ``switch_ms``,
rounded up, within ``[floor_ms, ceiling_ms]``: ~10-15 ms on a quiet engine, more as soon as it
falls behind (one slow batch in ``window`` lifts it at once at quantile 1.0). Until
``min_samples`` delays have been seen it answers ``initial_ms`` (the old fixed margin).
A switch that falls behind (seconds of lag past its knee) is not covered by any margin that
keeps the rate: loadtest/README.md.

Cost: :meth:`GrantDelay.observe` appends to a bounded deque; the quantile is recomputed (one
sort of ``window`` floats) every ``recompute_every`` observations, not per claim.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MarginBounds:
    """How :class:`GrantDelay` turns delays into a margin (milliseconds)."""

    floor_ms: int = 4  # never less
    switch_ms: int = 10  # added to the measured delay: the switch's part, which no reply shows
    ceiling_ms: int = 250  # never more: a quarter of the rate at most
    initial_ms: int = 40  # until min_samples delays are known (the former fixed margin)
    window: int = 256  # delays kept (one per claim batch: ~13 s at 20 claims a second)
    min_samples: int = 16
    quantile: float = 1.0  # of the window's delays (1.0: the largest)
    recompute_every: int = 8

    def __post_init__(self) -> None:
        if self.switch_ms < 0:
            raise ValueError("switch_ms must be at least 0")
        if not 0 <= self.floor_ms <= self.ceiling_ms:
            raise ValueError("need 0 <= floor_ms <= ceiling_ms")
        if not self.floor_ms <= self.initial_ms <= self.ceiling_ms:
            raise ValueError("initial_ms must lie within [floor_ms, ceiling_ms]")
        if not 1 <= self.min_samples <= self.window:
            raise ValueError("need 1 <= min_samples <= window")
        if not 0.5 <= self.quantile <= 1.0:
            raise ValueError("quantile must lie within [0.5, 1.0]")
        if self.recompute_every < 1:
            raise ValueError("recompute_every must be at least 1")


@dataclass(frozen=True, slots=True)
class GrantDelayStats:
    samples: int
    margin_ms: int
    last_ms: float | None
    max_ms: float | None  # the largest delay kept


class GrantDelay:
    """Online estimate of the CPS window's margin from grant-to-switch delays (ms)."""

    def __init__(self, bounds: MarginBounds | None = None) -> None:
        self.bounds = bounds or MarginBounds()
        self._delays: deque[float] = deque(maxlen=self.bounds.window)
        self._since = 0  # observations since the margin was last computed
        self._margin = self.bounds.initial_ms

    def observe(self, granted_ms: float, reported_ms: float) -> None:
        """One batch granted at ``granted_ms`` (Redis's clock) whose originates were written to
        the switch at ``reported_ms`` (the engine's clock)."""
        delay = reported_ms - granted_ms
        self._delays.append(delay if delay > 0 else 0.0)  # NaN counts as 0 too
        self._since += 1
        b = self.bounds
        n = len(self._delays)
        if n >= b.min_samples and (self._since >= b.recompute_every or n == b.min_samples):
            self._margin = self._compute()
            self._since = 0
        elif n >= b.min_samples and self._delays[-1] > self._margin:
            self._margin = self._compute()  # a slow batch lifts the margin at once
            self._since = 0

    def margin_ms(self) -> int:
        """The margin to pass with the next claim."""
        return self._margin

    def statistics(self) -> GrantDelayStats:
        delays = self._delays
        return GrantDelayStats(
            samples=len(delays),
            margin_ms=self._margin,
            last_ms=delays[-1] if delays else None,
            max_ms=max(delays) if delays else None,
        )

    def _compute(self) -> int:
        b = self.bounds
        ordered = sorted(self._delays)
        k = min(len(ordered) - 1, max(0, math.ceil(b.quantile * len(ordered)) - 1))
        value = ordered[k]
        if not math.isfinite(value):
            return b.ceiling_ms
        return max(b.floor_ms, min(b.ceiling_ms, math.ceil(value) + b.switch_ms))
