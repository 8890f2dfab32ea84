"""The CPS window's adaptive margin (dialer.engine.pacing): bounds, start, quantile, and the
property it exists for: a window of 1000 + margin ms by the grant clock never shows limit + 1
channels in one second by the switch's clock while the delays stay within the margin."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.engine.pacing import GrantDelay, MarginBounds

delays_ms = st.lists(
    st.floats(min_value=-50, max_value=2000, allow_nan=False), min_size=0, max_size=400
)


def _fed(delays: list[float], bounds: MarginBounds | None = None) -> GrantDelay:
    """An estimator fed ``delays`` (no switch allowance unless ``bounds`` say so)."""
    est = GrantDelay(bounds or MarginBounds(switch_ms=0))
    for i, d in enumerate(delays):
        granted = 1_700_000_000_000 + i * 50
        est.observe(granted, granted + d)
    return est


def test_initial_until_enough_samples() -> None:
    b = MarginBounds(switch_ms=0)
    est = _fed([1.0] * (b.min_samples - 1))
    assert est.margin_ms() == b.initial_ms == 40
    est.observe(0, 1)
    assert est.margin_ms() == b.floor_ms  # quiet switch: the floor


def test_follows_the_largest_recent_delay_and_forgets_it() -> None:
    b = MarginBounds(switch_ms=0)
    est = _fed([3.0] * 100)
    assert est.margin_ms() == b.floor_ms
    est.observe(0, 17.2)  # one slow batch lifts it at once
    assert est.margin_ms() == 18
    for _ in range(b.window):
        est.observe(0, 2.0)
    assert est.margin_ms() == b.floor_ms  # gone from the window
    assert est.statistics().samples == b.window


def test_quantile_below_one_ignores_rare_outliers() -> None:
    b = MarginBounds(quantile=0.99, window=200, recompute_every=1, switch_ms=0)
    est = _fed([5.0] * 198 + [300.0], b)
    assert est.margin_ms() == 5
    est = _fed([5.0] * 190 + [30.0] * 10, b)
    assert est.margin_ms() == 30


@settings(max_examples=150, deadline=None)
@given(delays_ms)
def test_always_within_bounds(delays: list[float]) -> None:
    b = MarginBounds(switch_ms=0)
    m = _fed(delays, b).margin_ms()
    assert b.floor_ms <= m <= b.ceiling_ms
    if len(delays) < b.min_samples:
        assert m == b.initial_ms


@settings(max_examples=150, deadline=None)
@given(delays_ms)
def test_covers_every_kept_delay_within_the_ceiling(delays: list[float]) -> None:
    b = MarginBounds(switch_ms=0)
    if len(delays) < b.min_samples:
        return
    m = _fed(delays, b).margin_ms()
    kept = [max(0.0, d) for d in delays[-b.window :]]
    assert m >= min(b.ceiling_ms, math.ceil(max(kept)))
    assert m == max(b.floor_ms, min(b.ceiling_ms, math.ceil(max(kept))))


def test_the_switch_allowance_is_added_to_the_measured_delay() -> None:
    b = MarginBounds()
    assert b.switch_ms == 10
    est = _fed([2.5] * 30, b)
    assert est.margin_ms() == 13
    est.observe(0, 300)
    assert est.margin_ms() == b.ceiling_ms


def test_odd_values() -> None:
    b = MarginBounds(switch_ms=0)
    est = _fed([1.0] * 20)
    est.observe(0, math.inf)
    assert est.margin_ms() == b.ceiling_ms
    est = _fed([1.0] * 20)
    est.observe(0, math.nan)  # counts as no delay
    assert est.margin_ms() == b.floor_ms


@pytest.mark.parametrize(
    "kwargs",
    [
        {"floor_ms": 10, "ceiling_ms": 5, "initial_ms": 5},
        {"initial_ms": 300},
        {"min_samples": 0},
        {"min_samples": 300},
        {"quantile": 0.3},
        {"recompute_every": 0},
        {"switch_ms": -1},
    ],
)
def test_bounds_checked(kwargs: dict[str, int | float]) -> None:
    with pytest.raises(ValueError, match="must|need"):
        MarginBounds(**kwargs)  # type: ignore[arg-type]


def _limited_grants(requests: list[float], limit: int, window_ms: int) -> list[float]:
    """claim.lua's sliding window: a grant at t when fewer than ``limit`` grants lie in
    (t - window, t]; a refused request waits until one leaves it."""
    grants: list[float] = []
    for t in sorted(requests):
        at = t
        if len(grants) >= limit:
            at = max(at, grants[-limit] + window_ms)
        grants.append(at)
    return grants


def _most_in_one_second(times: list[float]) -> int:
    ts = sorted(times)
    most, j = 0, 0
    for i, t in enumerate(ts):
        while ts[j] <= t - 1000:
            j += 1
        most = max(most, i - j + 1)
    return most


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=40),
    st.lists(st.floats(min_value=0, max_value=3000), min_size=20, max_size=200),
    st.lists(st.floats(min_value=0, max_value=120), min_size=200, max_size=200),
)
def test_margin_keeps_the_switch_clock_within_the_limit(
    limit: int, requests: list[float], delays: list[float]
) -> None:
    """Grants by a window of 1000 + margin, each reaching the switch after a delay no larger
    than the margin the estimator gave for those delays: at most ``limit`` channels in any
    second of the switch's clock."""
    margin = _fed(delays, MarginBounds(floor_ms=0, initial_ms=0, switch_ms=0)).margin_ms()
    grants = _limited_grants(requests, limit, 1000 + margin)
    channels = [g + delays[i % len(delays)] for i, g in enumerate(grants)]
    assert _most_in_one_second(channels) <= limit
