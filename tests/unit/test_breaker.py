"""The trunk breaker's domain: its transition table, the signals of outcomes, the thresholds."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.config import EngineSettings
from dialer.domain.breaker import (
    BREAKER_TRANSITIONS,
    BreakerEvent,
    BreakerLimits,
    BreakerState,
    Signal,
    next_state,
    signal_of,
    silent_run_for,
)
from dialer.domain.calls import AmdStatus, DialplanResult, RawOutcome
from dialer.domain.campaign import CampaignSettings
from dialer.domain.outcome import classify
from dialer.errors import ConfigError, TransitionRefused, ValidationError

S, E = BreakerState, BreakerEvent


@pytest.mark.parametrize(("state", "event"), list(itertools.product(S, E)))
def test_every_pair_is_in_the_table_or_refused(state: BreakerState, event: BreakerEvent) -> None:
    target = BREAKER_TRANSITIONS.get((state, event))
    if target is None:
        with pytest.raises(TransitionRefused) as info:
            next_state(state, event)
        assert (info.value.status, info.value.command) == (state.value, event.value)
        assert f"breaker is {state.value}" in str(info.value)
    else:
        assert next_state(state, event) is target


def test_the_table_is_the_documented_one() -> None:
    assert {k: v for k, v in BREAKER_TRANSITIONS.items() if k[0] is not v} == {
        (S.CLOSED, E.TRIP): S.OPEN,
        (S.OPEN, E.OK): S.CLOSED,
        (S.OPEN, E.PROBE_GRANTED): S.HALF_OPEN,
        (S.HALF_OPEN, E.OK): S.CLOSED,
        (S.HALF_OPEN, E.PROBE_OK): S.CLOSED,
        (S.HALF_OPEN, E.PROBE_FAILED): S.OPEN,
        (S.CLOSED, E.SWITCH_DOWN): S.OPEN,
        (S.HALF_OPEN, E.SWITCH_DOWN): S.OPEN,
    }
    # a trip only from Closed, probes only around HalfOpen, nothing reaches Open but a failure
    # or the switch's word
    assert [k for k in BREAKER_TRANSITIONS if k[1] is E.TRIP] == [(S.CLOSED, E.TRIP)]
    assert {k[0] for k in BREAKER_TRANSITIONS if k[1] in (E.PROBE_OK, E.PROBE_FAILED)} == {
        S.HALF_OPEN
    }
    to_open = {k[1] for k, v in BREAKER_TRANSITIONS.items() if v is S.OPEN and k[0] is not S.OPEN}
    assert to_open == {E.TRIP, E.PROBE_FAILED, E.SWITCH_DOWN}


@given(st.lists(st.sampled_from(E), max_size=40))
def test_any_sequence_of_allowed_events_stays_in_the_states(events: list[BreakerEvent]) -> None:
    state = S.CLOSED
    for event in events:
        if (state, event) in BREAKER_TRANSITIONS:
            state = next_state(state, event)
    assert state in S


def test_gauge_values() -> None:
    assert [s.gauge for s in (S.CLOSED, S.HALF_OPEN, S.OPEN)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("raw", "signal"),
    [
        (RawOutcome(answered=True), Signal.OK),
        (RawOutcome(answered=True, amd_status=AmdStatus.MACHINE), Signal.OK),
        (RawOutcome(answered=False, dialplan_result=DialplanResult.CALLBACK), Signal.OK),
        (RawOutcome(answered=False, q850_cause=17, sip_code=486), Signal.OK),  # busy
        (RawOutcome(answered=False, q850_cause=21, sip_code=603), Signal.OK),  # declined
        (RawOutcome(answered=False, q850_cause=1, sip_code=404), Signal.OK),  # a network's no
        # the dead trunk on Asterisk, and a callee who lets it ring: indistinguishable
        (
            RawOutcome(answered=False, q850_cause=19, sip_code=480, originate_reason=3),
            Signal.SILENT,
        ),
        (RawOutcome(answered=False, q850_cause=16, sip_code=487), Signal.SILENT),
        (RawOutcome(answered=False), Signal.SILENT),  # nothing known: the default row
        (RawOutcome(answered=False, q850_cause=34, sip_code=503), Signal.FAILURE),
        (RawOutcome(answered=False, q850_cause=38, sip_code=500), Signal.FAILURE),
        (RawOutcome(answered=False, q850_cause=102, sip_code=408), Signal.FAILURE),
        (RawOutcome(answered=False, q850_cause=21, sip_code=403), Signal.FAILURE),
        (RawOutcome(answered=False, q850_cause=3), Signal.FAILURE),  # no route, no SIP code
        (RawOutcome(answered=False, originate_failed=True), Signal.FAILURE),
        (RawOutcome(answered=False, invalid_number=True), Signal.NEUTRAL),
        (RawOutcome(answered=False, lost=True), Signal.NEUTRAL),
        (RawOutcome(answered=True, lost=True), Signal.NEUTRAL),
        (RawOutcome(answered=False, outcome_unknown=True), Signal.NEUTRAL),
    ],
)
def test_signal_of(raw: RawOutcome, signal: Signal) -> None:
    assert signal_of(raw, classify(raw)) is signal


@pytest.mark.parametrize(
    ("rate", "risk", "run"),
    [(0.3, 1e-4, 26), (0.27, 1e-4, 30), (0.21, 1e-3, 30), (0.5, 1e-3, 10), (0.1, 1e-4, 88)],
)
def test_silent_run_for(rate: float, risk: float, run: int) -> None:
    assert silent_run_for(rate, risk) == run
    assert (1 - rate) ** run < risk <= (1 - rate) ** (run - 1)


@given(st.floats(0.01, 0.99), st.floats(1e-9, 0.5))
def test_silent_run_is_the_shortest_below_the_risk(rate: float, risk: float) -> None:
    run = silent_run_for(rate, risk)
    assert math.isclose((1 - rate) ** run, risk, rel_tol=1e-9) or (1 - rate) ** run < risk
    assert run == 1 or (1 - rate) ** (run - 1) >= risk * (1 - 1e-9)


def test_default_silent_run_is_beyond_chance_for_usual_answer_rates() -> None:
    limits = BreakerLimits()
    assert limits.silent_run >= silent_run_for(0.27, 1e-4)
    assert limits.silent_run >= silent_run_for(0.21, 1e-3)
    assert silent_run_for(1.0, 1e-4) == 1


@pytest.mark.parametrize(
    "kw",
    [{"failure_run": 0}, {"silent_run": True}, {"cooldown": 0.0}, {"probe_timeout": math.nan}],
)
def test_limits_are_checked(kw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BreakerLimits(**kw)  # type: ignore[arg-type]


def test_limits_from_env() -> None:
    env = {
        "DIALER_BREAKER_FAILURE_RUN": "3",
        "DIALER_BREAKER_SILENT_RUN": "12",
        "DIALER_BREAKER_COOLDOWN_S": "45",
        "DIALER_BREAKER_PROBE_TIMEOUT_S": "90",
        "DIALER_BREAKER_SWITCH_HOLD_S": "20",
    }
    limits = EngineSettings.from_env(env).breaker
    assert limits is not None
    assert (limits.failure_run, limits.silent_run, limits.cooldown_ms) == (3, 12, 45_000)
    assert (limits.probe_timeout_ms, limits.switch_hold_ms) == (90_000, 20_000)
    only_hold = EngineSettings.from_env({"DIALER_BREAKER_SWITCH_HOLD_S": "5"}).breaker
    assert only_hold == BreakerLimits(switch_hold=5)  # any one of them turns it on
    with pytest.raises(ConfigError, match="DIALER_BREAKER_SWITCH_HOLD_S"):
        EngineSettings.from_env({"DIALER_BREAKER_SWITCH_HOLD_S": "0"})
    assert EngineSettings.from_env({}).breaker is None  # off unless asked for
    assert EngineSettings.from_env({"DIALER_BREAKER": "on"}).breaker == BreakerLimits()
    assert EngineSettings.from_env({**env, "DIALER_BREAKER": "off"}).breaker is None
    with pytest.raises(ConfigError, match="DIALER_BREAKER"):
        EngineSettings.from_env({"DIALER_BREAKER": "yes"})


def test_backup_trunk_setting() -> None:
    base = {"name": "c", "trunk": "carrier", "max_channels": 1, "cps": 1.0}
    settings = CampaignSettings.from_dict({**base, "backup_trunk": "backup-1"})
    assert settings.backup_trunk == "backup-1"
    assert CampaignSettings.from_dict(settings.to_dict()) == settings
    assert CampaignSettings.from_dict(base).backup_trunk is None
    assert "backup_trunk" not in CampaignSettings.from_dict(base).to_dict()  # older engines
    with pytest.raises(ValidationError, match="differ"):
        CampaignSettings.from_dict({**base, "backup_trunk": "carrier"})
    with pytest.raises(ValidationError, match="backup_trunk"):
        CampaignSettings.from_dict({**base, "backup_trunk": "bad trunk;"})
