"""Margin: the CPS window's adaptive margins against the fixed 40 ms, beside the raw loop.

At one rate (``--rate``, else the throughput benchmark's capacity, else 300 CPS on Asterisk and
80 on FreeSWITCH), ``rounds`` times: the raw loop (AMI or ESL), one engine with the fixed
margin (``DIALER_RATE_MARGIN_MS=40``, the former default), one with the engine-side adaptive
margin alone (``DIALER_RATE_STAMPS=off``: grant -> originate written, plus
``DIALER_RATE_SWITCH_MS``) and one with the margin from the switch's own channel stamps
(``DIALER_RATE_STAMPS=on``, the default on Asterisk, ``dialer.engine.pacing``), each on a
freshly started switch; the engines' order rotates from round to round so that a drift of
the machine does not favour one. Each engine run is watched by the switch's own events:
channels created per second and the most created in any second, on the switch's clock
(Asterisk: Newchannel Timestamp; FreeSWITCH: CHANNEL_CREATE Event-Date-Timestamp).

Targets: the stamps' engine CPS / raw CPS >= 0.98 (by the engine's claims against the raw loop's
sends) and 0 overshoot (never more than ``ceil(cps)`` channels in one second by the switch's
clock); no failed call.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

from dialer.engine.pacing import GrantDelay
from dialer.pbx.ami.codec import AmiCodec, Message
from dialer.pbx.asterisk.correlate import CallCorrelator
from dialer.pbx.base import ChannelCreated
from loadtest.bench import throughput
from loadtest.bench.common import Figures, emit, ms, table, verdict
from loadtest.bench.enginerun import EngineRun, engine_run
from loadtest.bench.rawami import StepResult
from ops.localstack.stack import StackInfo

TARGET_RATIO = 0.98
FIXED = "fixed 40"
ENGINE_SIDE = "engine-side"
ADAPTIVE = "stamps"
# each engine's environment; "" removes a variable the benchmark's own environment passes on
KINDS: dict[str, dict[str, str]] = {
    FIXED: {"DIALER_RATE_MARGIN_MS": "40", "DIALER_RATE_STAMPS": ""},
    ENGINE_SIDE: {"DIALER_RATE_MARGIN_MS": "", "DIALER_RATE_STAMPS": "off"},
    # on: FreeSWITCH's stamps too (unset follows Asterisk's only: pacing.stamps_followed)
    ADAPTIVE: {"DIALER_RATE_MARGIN_MS": "", "DIALER_RATE_STAMPS": "on"},
}


@dataclass(frozen=True, slots=True)
class Params:
    rounds: int = 3
    duration_s: float = 15.0
    hold_s: int = 1
    fixed_margin_ms: int = 40

    @classmethod
    def quick(cls) -> Params:
        return cls(rounds=1, duration_s=6.0)


@dataclass(frozen=True, slots=True)
class Round:
    raw: StepResult
    engines: dict[str, EngineRun]


def default_rate(pbx: str) -> float:
    return 80.0 if pbx == "freeswitch" else 300.0


async def run(
    info: StackInfo, params: Params, *, rate: float, quick: bool = False, pbx: str = "asterisk"
) -> Figures:
    print(
        f"margin on {throughput.SWITCH[pbx]} at {rate:g} CPS: raw loop, engines with a fixed "
        f"{params.fixed_margin_ms}-ms margin, the engine-side margin, the switch stamps' margin; "
        f"{params.rounds} rounds of {params.duration_s:g} s",
        flush=True,
    )
    tp = throughput.Params(step_s=params.duration_s, hold_s=params.hold_s)
    stack = throughput.Stack(info, fresh=True, pbx=pbx)
    rounds: list[Round] = []
    for i in range(params.rounds):
        raw = await throughput.measure_step(await stack.ready(), rate, tp, pbx)
        kinds = {
            **KINDS,
            FIXED: {**KINDS[FIXED], "DIALER_RATE_MARGIN_MS": str(params.fixed_margin_ms)},
        }
        names = list(kinds)
        order = names[i % len(names) :] + names[: i % len(names)]
        engines: dict[str, EngineRun] = {}
        for kind in order:
            env = kinds[kind]
            r = await engine_run(
                await stack.ready(), rate, params.duration_s, hold_s=params.hold_s, pbx=pbx,
                watch=True, env=env,
            )  # fmt: skip
            engines[kind] = r
            print(
                f"  round {i + 1} {kind}: {r.cps:.1f} CPS, created {r.switch_cps or 0:.1f}/s, "
                f"most in 1 s {r.switch_max_per_second}, failed {r.failed + r.switch_failed}, "
                f"claim->channel p99 {ms(r.switch_lag_p99)} ms, max {ms(r.switch_lag_max)} ms, "
                f"engine {r.steady_us('engine'):.0f} µs CPU/call"
                + (f"; {busiest(r)}" if (r.switch_max_per_second or 0) > math.ceil(rate) else ""),
                flush=True,
            )
        rounds.append(Round(raw, engines))
    return _report(rounds, rate, params, quick, pbx)


# A Newchannel as Asterisk 22 sends it to the dialer's user (timestampevents on), {id}: the call
NEWCHANNEL = (
    "Event: Newchannel\r\nPrivilege: call,all\r\nTimestamp: 1765000000.{us:06d}\r\n"
    "Channel: PJSIP/carrier-{n:08x}\r\nChannelState: 0\r\nChannelStateDesc: Down\r\n"
    "CallerIDNum: <unknown>\r\nCallerIDName: <unknown>\r\nConnectedLineNum: <unknown>\r\n"
    "ConnectedLineName: <unknown>\r\nLanguage: en\r\nAccountCode: \r\nContext: dialer\r\n"
    "Exten: s\r\nPriority: 1\r\nUniqueid: {id}\r\nLinkedid: {id}\r\n\r\n"
)


def stamp_cost_us(calls: int = 20_000) -> float:
    """The engine's CPU per call for the switch's stamp, in process: one Newchannel frame
    decoded (AmiCodec), correlated (a followed call's ChannelCreated) and fed to the estimator
    (GrantDelay.observe_switch), as the engine's event path does; microseconds per call."""
    ids = [f"dlr-bench-{i:x}" for i in range(calls)]
    frames = [
        NEWCHANNEL.format(us=i % 1_000_000, n=i, id=cid).encode() for i, cid in enumerate(ids)
    ]
    codec, correlator, estimator = AmiCodec(expect_banner=False), CallCorrelator(), GrantDelay()
    for cid in ids:
        correlator.follow(cid, 0.0)
    started = time.process_time()
    for i, frame in enumerate(frames):
        for msg in codec.receive_data(frame):
            assert isinstance(msg, Message)
            for event in correlator.feed(msg, 0.0):
                if isinstance(event, ChannelCreated):
                    estimator.observe_switch(1_765_000_000_000 + i * 5, event.at * 1000)
    spent = time.process_time() - started
    if estimator.statistics().switch_samples != calls:
        raise RuntimeError("the stamps did not all reach the estimator")
    return spent / calls * 1e6


def busiest(run: EngineRun) -> str:
    """Where the most channels in one second were, for a run over the limit: seconds after
    the first channel, and the claim -> channel lags in that second (ms, min / max)."""
    created = sorted((t, c) for c, t in run.switch_created.items())
    best, lo, at = 0, 0, (0, 0)
    for hi, (t, _) in enumerate(created):
        while t - created[lo][0] >= 1.0:
            lo += 1
        if hi - lo + 1 > best:
            best, at = hi - lo + 1, (lo, hi)
    if not created:
        return ""
    inside = created[at[0] : at[1] + 1]
    lags = [(t - run.claimed[c]) * 1000 for t, c in inside if c in run.claimed]
    start = inside[0][0] - created[0][0]
    return (
        f"busiest second at +{start:.1f} s, lags {min(lags, default=0):.1f}-"
        f"{max(lags, default=0):.1f} ms"
    )


def _ratio(run: EngineRun, raw: StepResult) -> float | None:
    return run.cps / raw.sent_cps if raw.sent_cps else None


def _switch_ratio(run: EngineRun, raw: StepResult) -> float | None:
    if run.switch_cps is None or not raw.created_cps:
        return None
    return run.switch_cps / raw.created_cps


def _report(rounds: list[Round], rate: float, params: Params, quick: bool, pbx: str) -> Figures:
    limit = math.ceil(rate)
    rows: list[list[object]] = []
    for i, rd in enumerate(rounds, 1):
        raw = rd.raw
        rows.append([i, "raw", raw.sent_cps, raw.created_cps, None, None, raw.max_per_second,
                     raw.failed, ms(raw.lag_p99), None, None])  # fmt: skip
        for kind, r in rd.engines.items():
            rows.append([
                i, kind, r.cps, r.switch_cps, _ratio(r, rd.raw), _switch_ratio(r, rd.raw),
                r.switch_max_per_second, r.failed + r.switch_failed, ms(r.switch_lag_p99),
                ms(r.switch_lag_max), round(r.steady_us("engine")),
            ])  # fmt: skip
    table(
        f"raw loop vs engines at {rate:g} CPS (most in 1 s: by the switch's clock, limit {limit})",
        ["round", "run", "CPS", "created/s", "/raw", "/raw (switch)", "most in 1 s", "failed",
         "lag p99 ms", "lag max ms", "engine µs/call"],
        rows,
    )  # fmt: skip
    summary: Figures = {}
    for kind in (FIXED, ENGINE_SIDE, ADAPTIVE):
        runs = [(rd.engines[kind], rd.raw) for rd in rounds]
        ratios = [x for r, raw in runs if (x := _ratio(r, raw)) is not None]
        sratios = [x for r, raw in runs if (x := _switch_ratio(r, raw)) is not None]
        overshoot = max((r.switch_max_per_second or 0) - limit for r, _ in runs)
        summary[kind] = {
            "ratios": [round(x, 3) for x in ratios],
            "switch_ratios": [round(x, 3) for x in sratios],
            "median_ratio": round(statistics.median(ratios), 3) if ratios else None,
            "overshoot": max(0, overshoot),
            "failures": sum(r.failed + r.switch_failed for r, _ in runs),
            "lag_max_ms": max((ms(r.switch_lag_max) or 0 for r, _ in runs), default=None),
            "engine_us_per_call": [round(r.steady_us("engine")) for r, _ in runs],
        }
    adaptive = summary[ADAPTIVE]
    assert isinstance(adaptive, dict)
    worst = min(adaptive["ratios"], default=None)
    table(
        "stamps' margin: targets",
        ["", "value", "target", "verdict"],
        [
            ["worst engine/raw", worst, f">= {TARGET_RATIO}",
             verdict(worst, TARGET_RATIO, at_most=False)],
            ["overshoot", adaptive["overshoot"], "0",
             verdict(adaptive["overshoot"], 0, at_most=True)],
            ["failures", adaptive["failures"], "0",
             verdict(adaptive["failures"], 0, at_most=True)],
        ],
    )  # fmt: skip
    stamp_us = stamp_cost_us()
    print(f"the stamp's engine CPU per call (in process: decode, correlate, estimate): "
          f"{stamp_us:.1f} µs", flush=True)  # fmt: skip
    return emit(
        "margin",
        quick,
        {
            "pbx": pbx,
            "cps": rate,
            "rounds": len(rounds),
            "duration_s": params.duration_s,
            "raw_cps": [round(rd.raw.sent_cps, 1) for rd in rounds],
            "raw_created_cps": [round(rd.raw.created_cps, 1) for rd in rounds],
            "raw_max_per_second": [rd.raw.max_per_second for rd in rounds],
            "fixed": summary[FIXED],
            "engine_side": summary[ENGINE_SIDE],
            "adaptive": adaptive,
            "stamp_engine_us_per_call": round(stamp_us, 1),
            "target_ratio": TARGET_RATIO,
            "ratio_met": worst is not None and worst >= TARGET_RATIO,
            "overshoot_met": adaptive["overshoot"] == 0,
            "failures_met": adaptive["failures"] == 0,
        },
    )
