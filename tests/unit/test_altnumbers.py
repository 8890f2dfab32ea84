"""dialer.domain.altnumbers: which outcome moves a contact on to its next number, and when;
the campaign settings that choose it."""

from __future__ import annotations

import json

import pytest

from dialer.domain.altnumbers import AltDial, next_number
from dialer.domain.calls import AmdStatus, RawOutcome
from dialer.domain.campaign import CampaignSettings
from dialer.domain.outcome import classify
from dialer.domain.retry import RetryPolicy, decide
from dialer.errors import InvalidSettings

NOW = 1_000_000.0
POLICY = RetryPolicy(max_attempts=3)


def moves(
    raw: RawOutcome,
    *,
    used: int = 0,
    alt_dial: AltDial = AltDial.NOW,
    on_voicemail: bool = False,
) -> float | None:
    outcome = classify(raw)
    decision = decide(outcome, used, 0, POLICY, NOW)
    step = next_number(
        outcome,
        decision,
        now=NOW,
        alt_dial=alt_dial,
        on_voicemail=on_voicemail,
        sip_code=raw.sip_code,
    )
    return None if step is None else step.at - NOW


@pytest.mark.parametrize("code", [486, 480, 408])
def test_busy_and_no_answer_move_on_at_once(code: int) -> None:
    assert moves(RawOutcome(answered=False, sip_code=code)) == 0


def test_retry_delay_setting_waits_for_the_retry() -> None:
    busy = RawOutcome(answered=False, sip_code=486)
    assert moves(busy, alt_dial=AltDial.RETRY_DELAY) == POLICY.delay_for(classify(busy).status)


def test_the_budget_holds() -> None:
    assert moves(RawOutcome(answered=False, sip_code=486), used=2) is None  # the last attempt


def test_invalid_number_moves_on_though_final() -> None:
    assert moves(RawOutcome(answered=False, sip_code=404)) == 0


def test_callee_side_failure_moves_on_ours_does_not() -> None:
    assert moves(RawOutcome(answered=False, sip_code=503)) == 0
    assert moves(RawOutcome(answered=False, originate_failed=True)) is None


def test_answered_and_voicemail() -> None:
    assert moves(RawOutcome(answered=True)) is None
    machine = RawOutcome(answered=True, amd_status=AmdStatus.MACHINE)
    assert moves(machine) is None
    assert moves(machine, on_voicemail=True) == 0


def test_settings_round_trip_and_refusal() -> None:
    base = {"name": "x", "trunk": "t", "max_channels": 1, "cps": 1.0}
    assert "alt_dial" not in CampaignSettings.from_dict(base).to_dict()  # the default: left out
    s = CampaignSettings.from_dict({**base, "alt_dial": "retry_delay", "alt_on_voicemail": True})
    assert (s.alt_dial, s.alt_on_voicemail) == (AltDial.RETRY_DELAY, True)
    assert CampaignSettings.from_dict(s.to_dict()) == s
    with pytest.raises(InvalidSettings, match="alt_dial must be one of now, retry_delay"):
        CampaignSettings.from_json(json.dumps({**base, "alt_dial": "later"}))
