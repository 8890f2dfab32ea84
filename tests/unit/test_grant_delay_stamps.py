"""The CPS margin from the switch's own channel stamps (dialer.engine.pacing.GrantDelay
``observe_switch``): the spread of the grant-to-channel delays, blind to a clock offset between
Redis and the switch, bounded, and the engine-side estimate whenever stamps are missing."""

from __future__ import annotations

import heapq
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.engine.pacing import GrantDelay, MarginBounds, MarginSource
from tests.unit.test_grant_delay import _limited_grants, _most_in_one_second

T0 = 1_700_000_000_000.0
# a clock offset between Redis and the switch: up to a minute either way
OFFSETS = st.floats(min_value=-60_000, max_value=60_000)
QUIET = MarginBounds(switch_min_samples=8, switch_trust_ms=0, stale_batches=5)


def _batches(est: GrantDelay, n: int, delay: float = 2.0) -> None:
    for i in range(n):
        est.observe(T0 + i * 50, T0 + i * 50 + delay)


def _stamps(est: GrantDelay, delays: list[float], offset: float = 0.0, start: float = T0) -> None:
    """One call granted every 5 ms from ``start``, each created ``delay`` later (by a switch
    clock ``offset`` ms off)."""
    for i, d in enumerate(delays):
        est.observe_switch(start + i * 5, start + i * 5 + d + offset)


def test_engine_side_until_enough_stamps_then_their_spread() -> None:
    est = GrantDelay(QUIET)
    _batches(est, 20)  # engine side: 2 ms + 10 for the switch
    assert est.margin_ms() == 12
    assert est.statistics().source is MarginSource.ENGINE
    _stamps(est, [20.0, 31.0, 25.0, 22.0, 40.0, 21.0, 28.0])  # one short of switch_min_samples
    assert est.margin_ms() == 12
    est.observe_switch(T0, T0 + 24.0)
    # 40 - 20 = 20 ms of spread, plus the stamps' 2 ms of slack: not the 40 ms of delay
    assert est.margin_ms() == 22
    stats = est.statistics()
    assert stats.source is MarginSource.SWITCH
    assert (stats.switch_samples, stats.switch_spread_ms) == (8, 20.0)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=300), min_size=8, max_size=300),
    st.floats(min_value=-3_600_000, max_value=3_600_000),
)
def test_a_clock_offset_between_redis_and_the_switch_changes_nothing(
    delays: list[float], offset: float
) -> None:
    """The same delays read on a switch whose clock is ``offset`` ms off (up to an hour either
    way: negative "delays" included) give the same margin, within float rounding."""
    plain, shifted = GrantDelay(QUIET), GrantDelay(QUIET)
    _stamps(plain, delays)
    _stamps(shifted, delays, offset)
    assert abs(plain.margin_ms() - shifted.margin_ms()) <= 1
    b = QUIET
    # the delays as the estimator reads them: differences of epoch-ms stamps, whose float
    # rounding (about 2e-4 ms at 1.7e12) can take a delay of 2.00001 down to 2.0
    read = [(T0 + i * 5 + d) - (T0 + i * 5) for i, d in enumerate(delays)]
    spread = max(read) - min(read)
    assert plain.margin_ms() == max(b.floor_ms, min(b.ceiling_ms, math.ceil(spread) + 2))


def test_a_slow_channel_or_an_early_one_widens_the_margin_at_once() -> None:
    est = GrantDelay(QUIET)
    _stamps(est, [10.0] * 40)
    assert est.margin_ms() == QUIET.floor_ms
    est.observe_switch(T0, T0 + 27.5)  # a late channel: no waiting for the next recompute
    assert est.margin_ms() == 20
    est.observe_switch(T0, T0 + 1.0)  # an early one lowers the minimum: wider too
    assert est.margin_ms() == 29


def test_a_stall_counts_for_two_seconds_of_grants() -> None:
    est = GrantDelay(QUIET)
    _stamps(est, [5.0] * 20 + [900.0])
    assert est.margin_ms() == QUIET.ceiling_ms  # bounded: a quarter of the rate at most
    stall = T0 + 20 * 5
    _stamps(est, [5.0] * 10, start=stall + QUIET.recent_ms - 100)
    assert est.margin_ms() == QUIET.ceiling_ms  # a claim may still meet the stalled call's window
    _stamps(est, [5.0] * 10, start=stall + QUIET.recent_ms + 1)
    assert est.margin_ms() == QUIET.floor_ms
    assert est.statistics().switch_spread_ms == 0.0


def test_missing_stamps_fall_back_to_the_engine_side() -> None:
    est = GrantDelay(QUIET)
    _batches(est, 20, delay=6.0)
    _stamps(est, [3.0, 4.0] * 10)
    assert est.statistics().source is MarginSource.SWITCH
    assert est.margin_ms() == QUIET.floor_ms
    _batches(est, QUIET.stale_batches)  # stamps still expected: not stale yet
    assert est.statistics().source is MarginSource.SWITCH
    _batches(est, 1, delay=6.0)  # one batch too many without a stamp (Newchannel not sent)
    assert est.statistics().source is MarginSource.ENGINE
    assert est.margin_ms() == 16  # 6 ms + the 10-ms switch allowance
    est.observe_switch(T0, T0 + 3.5)  # stamps again
    assert est.margin_ms() == QUIET.floor_ms


def test_stamps_are_trusted_once_they_span_the_warm_up() -> None:
    """A fresh switch's first channels come slower than the rest: their minimum would make the
    margin short, so the engine side decides for the first ``switch_trust_ms`` of grants."""
    b = MarginBounds(switch_min_samples=8, switch_trust_ms=3000)
    est = GrantDelay(b)
    _batches(est, 20)
    _stamps(est, [30.0] * 100)  # 0.5 s of grants: many stamps, too short a time
    assert est.statistics().source is MarginSource.ENGINE
    assert est.margin_ms() == 12
    est.observe_switch(T0 + 3000, T0 + 3000 + 31.0)
    assert est.statistics().source is MarginSource.SWITCH


def test_stamps_off_and_odd_stamps_are_ignored() -> None:
    off = GrantDelay(MarginBounds(use_stamps=False, switch_min_samples=1))
    _batches(off, 20)
    _stamps(off, [50.0, 1.0])
    assert (off.margin_ms(), off.statistics().switch_samples) == (12, 0)
    est = GrantDelay(QUIET)
    for bad in (math.nan, math.inf, -math.inf):
        est.observe_switch(T0, bad)
    assert est.statistics().switch_samples == 0
    assert est.statistics().source is MarginSource.INITIAL
    assert est.margin_ms() == QUIET.initial_ms


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=40),
    st.lists(st.floats(min_value=0, max_value=3000), min_size=20, max_size=200),
    st.lists(st.floats(min_value=0, max_value=120), min_size=200, max_size=200),
    OFFSETS,
)
def test_the_spread_keeps_the_switch_clock_within_the_limit(
    limit: int, requests: list[float], delays: list[float], offset: float
) -> None:
    """Grants by a window of 1000 + margin (Redis's clock), channels stamped by a switch whose
    clock is ``offset`` off, each after one of the delays the margin was computed from: at most
    ``limit`` channels in any second of the switch's clock."""
    # 1 ms of slack: the offset's float rounding must not decide a tie at exactly 1000 ms
    b = MarginBounds(
        floor_ms=0, initial_ms=0, switch_min_samples=1, switch_trust_ms=0, stamp_slack_ms=1
    )
    est = GrantDelay(b)
    _stamps(est, delays, offset)
    grants = _limited_grants(requests, limit, 1000 + est.margin_ms())
    channels = [g + delays[i % len(delays)] + offset for i, g in enumerate(grants)]
    assert _most_in_one_second(channels) <= limit


def _online(
    limit: int, delays: list[float], offset: float, trusted_after: int, late: list[float]
) -> list[float]:
    """claim.lua's window driven by the estimator as the engine drives it: each claim reads
    the margin at ``t`` (the engine's clock, ``offset`` ms off Redis's too) and runs in Redis
    ``late`` ms later (the writer's round trip, a stall), where it is granted when fewer than
    ``limit`` grants lie in the last ``1000 + margin`` ms; each stamp is fed when its channel
    is created (the switch's clock, ``offset`` ms off). A blocked claim comes back when the
    window or a stamp may let it through (faster than any pacing: the worst case). The
    channels' times, by the switch's clock."""
    bounds = MarginBounds(
        switch_min_samples=trusted_after, switch_trust_ms=0, initial_ms=250, stale_batches=10**6
    )
    est = GrantDelay(bounds)
    grants: list[float] = []
    pending: list[tuple[float, float]] = []  # heap of (created, granted)
    t, k = 0.0, 0
    while len(grants) < len(delays):
        while pending and pending[0][0] <= t:  # the stamps created by now
            created, granted = heapq.heappop(pending)
            est.observe_switch(granted, created + offset)
        margin = est.margin_ms(t + offset)
        runs = max(t + late[k % len(late)], grants[-1] if grants else 0.0)
        k += 1
        if len(grants) < limit or grants[-limit] <= runs - 1000 - margin:
            heapq.heappush(pending, (runs + delays[len(grants)], runs))
            est.observe(runs, runs + offset)  # written at once: the engine's part is 0
            grants.append(runs)
            t = runs + 1
            continue
        opens = grants[-limit] + 1000 + margin - late[k % len(late)]
        t = max(t + 1, min(opens, pending[0][0] if pending else opens))
    return [g + d + offset for g, d in zip(grants, delays, strict=True)]


@settings(max_examples=80, deadline=None)
@given(
    st.integers(min_value=1, max_value=8),
    st.lists(st.floats(min_value=0, max_value=200), min_size=1, max_size=4),
    st.lists(st.floats(min_value=0, max_value=200), min_size=10, max_size=120),
    OFFSETS,
    st.lists(st.floats(min_value=0, max_value=400), min_size=1, max_size=8),
)
def test_online_the_margin_rises_before_a_slow_channel_can_collide(
    limit: int, first: list[float], rest: list[float], offset: float, late: list[float]
) -> None:
    """Fed as it goes (a slow channel's stamp arrives within its delay, long before the call
    one window later is claimed), the margin keeps the switch's clock within the limit,
    stalls and late claims included, once the fastest delay is among those seen (``first``:
    the calls before the stamps are trusted, 250 ms of margin meanwhile)."""
    low = min(first)
    delays = first + [max(low, d) for d in rest]
    channels = _online(limit, delays, offset, len(first), late)
    assert _most_in_one_second(channels) <= limit
