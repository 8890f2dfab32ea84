"""Every benchmark of loadtest/bench runs end to end with tiny counts on the session's stack.

Each must print exactly one ``RESULT {json}`` line whose figures are sane for what was asked.
Kept small (well under a minute for the six, about half a minute more for the two on
FreeSWITCH): the figures themselves come from ``python -m loadtest.bench all [--pbx
freeswitch]``.
"""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.bench import cost, drain, pacing, refill, scale, throughput
from loadtest.bench.common import RESULT_PREFIX, parse_result
from loadtest.bench.fswatch import BENCH_SPS
from ops.localstack import stack as localstack
from ops.localstack.freeswitch import esl_api
from ops.localstack.procs import is_alive
from ops.localstack.stack import StackInfo
from tests.integration.conftest import freeswitch_missing

pytestmark = [pytest.mark.integration, pytest.mark.alone]  # rates, CPU per call, latencies


def needs_freeswitch(info: StackInfo) -> None:
    if not info.with_freeswitch:
        pytest.skip(freeswitch_missing() or "the stack runs no FreeSWITCH")


def the_result(out: str, benchmark: str) -> dict[str, Any]:
    lines = [line for line in out.splitlines() if line.startswith(RESULT_PREFIX)]
    assert len(lines) == 1, out
    result = parse_result(lines[0])
    assert result["benchmark"] == benchmark
    assert result["quick"] is True
    return result


async def test_throughput(stack, capsys):
    # the session's stack keeps its Asterisk: the other tests hold its pid
    params = throughput.Params(rates=(20,), step_s=1.5, engine_s=2.0, refine=False, fresh=False)
    await throughput.run(stack, params, quick=True)
    r = the_result(capsys.readouterr().out, "throughput")
    step = r["raw_steps"][0]
    assert step["calls"] == 30
    assert step["failed"] == 0
    assert step["clean"] is True
    assert 18 <= step["created_cps"] <= 22
    assert r["capacity_cps"] == 20
    assert r["engine_calls"] == 40
    assert r["engine_failures"] == 0
    assert r["engine_completed"] is True
    # the engine's rate window is 1040 ms for 20 calls: about 0.96 of the raw rate
    assert 0.8 <= r["ratio"] <= 1.05


async def test_throughput_restarts_asterisk_before_each_run(faulty_stack, capsys):
    before = localstack.load(faulty_stack.workdir)
    assert before is not None
    params = throughput.Params(rates=(20, 30), step_s=1.0, engine_s=1.5, refine=False)
    await throughput.run(before, params, quick=True)
    out = capsys.readouterr().out
    r = the_result(out, "throughput")
    assert r["fresh_asterisk"] is True
    assert [s["clean"] for s in r["raw_steps"]] == [True, True]
    assert r["engine_failures"] == 0
    assert out.count("(Asterisk restarted in") == 3  # two raw steps and the engine run
    after = localstack.load(faulty_stack.workdir)
    assert after is not None
    assert after.asterisk_pid != before.asterisk_pid
    assert not is_alive(before.asterisk_pid)
    assert localstack.is_ready(after)


async def test_cost(stack, capsys):
    await cost.run(stack, cost.Params(duration_s=3.0, events_calls=10), rate=20.0, quick=True)
    r = the_result(capsys.readouterr().out, "cost")
    steady = r["steady_us_per_call"]
    assert r["steady_calls"] > 0
    assert steady["engine"] > 0
    assert steady["asterisk"] > 0
    assert r["ratio"] == pytest.approx(steady["engine"] / steady["asterisk"], rel=0.01)
    # manager.conf lets 3 events per call through to the dialer's user (HOLD calls without
    # AMD send no UserEvent; Newchannel: the CPS margin's stamp)
    assert r["events_per_call"] == 3
    assert r["events_by_name"] == {"Newchannel": 10, "OriginateResponse": 10, "Hangup": 10}
    # one round trip per 50-ms step carries its claim (1 call at 20 CPS), the originated marks
    # and the results (up to 3 scripts per call; the supervisor's scans add a few), and the
    # scripts' inner commands are counted too
    assert 1 <= r["redis_commands_per_call"]["evalsha"] <= 4
    assert r["redis_commands_per_call"]["hset"] >= 2  # the claim's and the finish's
    assert r["engine_failures"] == 0


async def test_pacing(stack, capsys):
    params = pacing.Params(contacts=8, max_channels=4, cps=4.0, hold_s=1, engine_counts=(1, 3))
    await pacing.run(stack, params, quick=True)
    r = the_result(capsys.readouterr().out, "pacing")
    assert [run["engines"] for run in r["runs"]] == [1, 3]
    for run in r["runs"]:
        assert run["calls"] == 8
        assert run["failed"] == 0
        assert run["completed"] is True
        assert 1 <= run["max_live_by_events"] <= 4
        assert 1 <= run["max_channels"] <= 5  # a listing can span a hang-up and its refill
        assert 1 <= run["max_per_second"] <= 4
        assert run["samples"] > 10
    assert r["channels_by_events_met"] is True
    assert r["cps_met"] is True


async def test_drain(stack, capsys):
    params = drain.Params(pauses=2, cps=20.0, max_channels=50, run_s=(0.3, 0.5))
    await drain.run(stack, params, quick=True)
    r = the_result(capsys.readouterr().out, "drain")
    assert r["pauses"] == 2
    assert 0 <= r["last_originate_ms"]["p50"] <= r["last_originate_ms"]["max"] < 1000
    # calls in flight end on their own: about the 1-s hold time after the pause
    assert 300 <= r["zero_inflight_ms"]["p50"] <= 5000
    assert r["paused_ms"]["p50"] >= r["command_ms"]["p50"]
    assert r["late_originates"] >= 0


async def test_refill(stack, capsys):
    await refill.run(stack, refill.Params(contacts=30, cap=5), quick=True)
    r = the_result(capsys.readouterr().out, "refill")
    assert r["calls"] == 30
    assert r["failed"] == 0
    assert r["completed"] is True
    for matching in ("next", "one_to_one"):
        figures = r[matching]
        assert 0 < figures["refills"] <= 25
        assert 0 <= figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"] < 1000
    assert r["next"]["p50_ms"] <= r["one_to_one"]["p50_ms"]


async def test_scale(stack, capsys):
    params = scale.Params(contacts=3000, small=300, rounds=100, block=50, flush_after=False)
    await scale.run(stack, params, quick=True)
    r = the_result(capsys.readouterr().out, "scale")
    assert r["contacts"] == 3000
    assert r["import_s"] > 0
    assert 100 <= r["redis_bytes_per_contact"] <= 5000
    for size in ("small", "big"):
        assert 0 < r["round_trip_us"]["p50"][size] < 100_000
        assert r["script_us"][size] > 0
    assert r["ratio_p50"] > 0


# -- FreeSWITCH: the raw ESL loop against the engine, and the engine's cost ------------------


async def test_throughput_on_freeswitch(faulty_stack, capsys):
    # on the module's own stack: FreeSWITCH is restarted before the raw step and the engine run
    needs_freeswitch(faulty_stack)
    before = localstack.load(faulty_stack.workdir)
    assert before is not None
    params = throughput.Params(rates=(20,), step_s=1.5, engine_s=2.0, refine=False)
    await throughput.run(before, params, quick=True, pbx="freeswitch")
    out = capsys.readouterr().out
    r = the_result(out, "throughput")
    assert r["pbx"] == "freeswitch"
    assert r["fresh_freeswitch"] is True
    step = r["raw_steps"][0]
    assert step["calls"] == 30
    assert step["failed"] == 0
    assert step["clean"] is True
    assert 18 <= step["created_cps"] <= 22  # FreeSWITCH's CHANNEL_CREATE clock
    assert step["freeswitch_us_per_call"] > 0
    assert r["capacity_cps"] == 20
    assert r["engine_calls"] == 40
    assert r["engine_failures"] == 0  # by the records and by FreeSWITCH's events
    assert r["switch_failures"] == {}
    assert r["engine_completed"] is True
    assert 0.8 <= r["ratio"] <= 1.05
    assert 0.8 <= r["switch_ratio"] <= 1.1
    # claim (engine clock) -> CHANNEL_CREATE (FreeSWITCH's): FreeSWITCH's event clock can run
    # some ms behind the system's, so a prompt channel may show a small negative lag
    assert -0.1 <= r["engine_lag_p99_ms"] / 1000 <= 5.0
    # the engine's window grants 20 per 1,040 ms; a channel FreeSWITCH creates late can put
    # one more in some second of its clock (README: the 40-ms margin), never two more
    assert 1 <= r["max_created_per_second"] <= 21
    assert r["overshoot"] == max(0, r["max_created_per_second"] - 20)
    assert out.count("(FreeSWITCH restarted in") == 2  # the raw step and the engine run
    after = localstack.load(faulty_stack.workdir)
    assert after is not None
    assert after.freeswitch_pid != before.freeswitch_pid
    assert not is_alive(before.freeswitch_pid)
    assert localstack.is_ready(after)
    # the restarted FreeSWITCH has the bench's caps (fsctl sps 0 reads the value back)
    body = esl_api(after.esl_port, after.esl_password, "fsctl sps 0")
    assert body is not None
    assert f"sessions per second: {BENCH_SPS}" in body


async def test_cost_on_freeswitch(stack, capsys):
    needs_freeswitch(stack)
    params = cost.Params(duration_s=3.0, events_calls=10)
    await cost.run(stack, params, rate=20.0, quick=True, pbx="freeswitch")
    r = the_result(capsys.readouterr().out, "cost")
    assert r["pbx"] == "freeswitch"
    steady = r["steady_us_per_call"]
    assert r["steady_calls"] > 0
    assert steady["engine"] > 0
    assert steady["freeswitch"] > 0
    assert r["ratio"] == pytest.approx(steady["engine"] / steady["freeswitch"], rel=0.01)
    # what the adapter subscribes to, for each call (no AMD: no CUSTOM event)
    assert r["events_by_name"] == {
        "CHANNEL_CREATE": 10,
        "CHANNEL_ANSWER": 10,
        "BACKGROUND_JOB": 10,
        "CHANNEL_HANGUP_COMPLETE": 10,
    }
    assert r["events_per_call"] == 4
    assert r["engine_failures"] == 0
