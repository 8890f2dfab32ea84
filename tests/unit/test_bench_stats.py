"""The benchmarks' own arithmetic (loadtest/bench): percentiles, rates, windows, refill matching."""

from __future__ import annotations

import os

import pytest

from loadtest.bench.common import (
    RESULT_PREFIX,
    cpu_seconds,
    emit,
    max_in_window,
    parse_result,
    percentile,
    rate,
)
from loadtest.bench.refill import refill_gaps
from loadtest.bench.watch import Observed


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) is None


def test_rate_of_even_events():
    assert rate([i / 100 for i in range(500)]) == pytest.approx(100.0)
    assert rate([1.0]) == 0.0


def test_rate_of_bursts_is_the_long_run_rate():
    # 50 grants at once every 1.04 s (a sliding window of 1040 ms): 48.08 per second
    times = [k * 1.04 + i * 1e-4 for k in range(20) for i in range(50)]
    assert rate(times) == pytest.approx(50 / 1.04, rel=0.03)


def test_max_in_window_is_half_open():
    assert max_in_window([0.0, 0.5, 0.999, 1.0, 1.5]) == 3
    assert max_in_window([0.0, 1.0, 2.0]) == 1
    assert max_in_window([]) == 0


def test_refill_gaps_next_and_one_to_one():
    # cap 2: originates at 0 and 0 are the ramp-up; two hangups at 1.0 refilled at 1.002, 1.004
    originates = [0.0, 0.0, 1.002, 1.004]
    hangups = [1.0, 1.0, 2.1, 2.2]  # the last two come after the last originate
    assert refill_gaps(hangups, originates, 2, one_to_one=False) == pytest.approx([0.002, 0.002])
    assert refill_gaps(hangups, originates, 2, one_to_one=True) == pytest.approx([0.002, 0.004])


def test_result_line_round_trip(capsys):
    emit("demo", True, {"cps": 12.5, "steps": [1, 2]})
    line = capsys.readouterr().out.strip()
    assert line.startswith(RESULT_PREFIX)
    assert "\n" not in line
    assert parse_result(line) == {"benchmark": "demo", "quick": True, "cps": 12.5, "steps": [1, 2]}
    with pytest.raises(ValueError, match="not a result line"):
        parse_result("cps 12")


def test_cpu_seconds_of_this_process_grows():
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds(os.getpid()) > before


def test_calls_alive_by_events():
    seen = Observed("dlr-")
    seen.created.update({"dlr-1": 1.0, "dlr-2": 2.0, "dlr-3": 3.0})
    seen.ended.update({"dlr-1": 3.0, "dlr-2": 4.0})  # dlr-3 starts as dlr-1 ends
    assert seen.max_live_by_events() == 2
    assert seen.max_live_by_events(3.5, 5.0) == 2  # dlr-2 and dlr-3 alive at 3.5
    assert seen.max_live_by_events(4.5, 5.0) == 1
    assert seen.max_live_by_events(0.0, 0.5) == 0
    assert seen.live() == 1
