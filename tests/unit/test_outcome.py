"""Outcome mapping: every raw outcome seen on Asterisk 22 + SIPp, then each code family."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.domain.calls import AmdStatus, DialplanResult, GoalResult, RawOutcome, VoicemailDrop
from dialer.domain.outcome import (
    OUTCOME_RULES,
    OUTCOME_TABLE_VERSION,
    Classification,
    classify,
    render_markdown,
)
from dialer.domain.statuses import CallStatus

S = CallStatus


def _final(status: CallStatus, reason: str) -> Classification:
    return Classification(status, retryable=False, consumes_attempt=True, final=True, reason=reason)


def _retry(status: CallStatus, reason: str) -> Classification:
    return Classification(status, retryable=True, consumes_attempt=True, final=False, reason=reason)


def _technical(reason: str) -> Classification:
    return Classification(
        S.TECHNICAL_ERROR, retryable=True, consumes_attempt=False, final=False, reason=reason
    )


# TESTBED.md "Raw outcomes observed on Asterisk 22 (PJSIP) with SIPp callees", field for field.
TESTBED_ROWS = [
    pytest.param(
        RawOutcome(answered=True, q850_cause=16, originate_reason=4, dial_status="ANSWER"),
        _final(S.ANSWERED, "answered"),
        id="answers",
    ),
    pytest.param(
        RawOutcome(
            answered=False, q850_cause=17, sip_code=486, originate_reason=0, dial_status="BUSY"
        ),
        _retry(S.BUSY, "sip:486"),
        id="486-busy",
    ),
    pytest.param(
        RawOutcome(
            answered=False, q850_cause=19, sip_code=480, originate_reason=0, dial_status="NOANSWER"
        ),
        _retry(S.NO_ANSWER, "sip:480"),
        id="480",
    ),
    pytest.param(
        RawOutcome(
            answered=False, q850_cause=1, sip_code=404, originate_reason=0, dial_status="NOANSWER"
        ),
        _final(S.INVALID_NUMBER, "sip:404"),
        id="404-dialstatus-says-noanswer",
    ),
    pytest.param(
        RawOutcome(
            answered=False,
            q850_cause=34,
            sip_code=503,
            originate_reason=0,
            dial_status="CONGESTION",
        ),
        _technical("sip:503"),
        id="503",
    ),
    pytest.param(
        RawOutcome(
            answered=False, q850_cause=21, sip_code=603, originate_reason=0, dial_status="NOANSWER"
        ),
        _final(S.REJECTED, "sip:603"),
        id="603-dialstatus-says-noanswer",
    ),
    pytest.param(
        RawOutcome(answered=False, q850_cause=19, sip_code=480, originate_reason=3),
        _retry(S.NO_ANSWER, "sip:480"),
        id="rings-until-originate-timeout",
    ),
    pytest.param(
        RawOutcome(answered=False, q850_cause=19, sip_code=480, originate_reason=3),
        _retry(S.NO_ANSWER, "sip:480"),
        id="nothing-listening-looks-like-no-answer",
    ),
    pytest.param(
        RawOutcome(answered=False, originate_failed=True, originate_reason=0),
        _technical("originate_failed"),
        id="endpoint-does-not-exist",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), TESTBED_ROWS)
def test_testbed_rows(raw: RawOutcome, expected: Classification) -> None:
    assert classify(raw) == expected


@pytest.mark.parametrize("code", [404, 410, 484, 604])
def test_invalid_number_sip(code: int) -> None:
    assert classify(RawOutcome(answered=False, sip_code=code)) == _final(
        S.INVALID_NUMBER, f"sip:{code}"
    )


@pytest.mark.parametrize("cause", [1, 3, 22, 28])
def test_invalid_number_q850(cause: int) -> None:
    assert classify(RawOutcome(answered=False, q850_cause=cause)) == _final(
        S.INVALID_NUMBER, f"q850:{cause}"
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (RawOutcome(answered=False, sip_code=486), "sip:486"),
        (RawOutcome(answered=False, sip_code=600), "sip:600"),
        (RawOutcome(answered=False, q850_cause=17), "q850:17"),
    ],
)
def test_busy(raw: RawOutcome, reason: str) -> None:
    assert classify(raw) == _retry(S.BUSY, reason)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(RawOutcome(answered=False, sip_code=c), f"sip:{c}") for c in (408, 480, 487)]
    + [(RawOutcome(answered=False, q850_cause=c), f"q850:{c}") for c in (16, 18, 19, 20, 27)],
)
def test_no_answer(raw: RawOutcome, reason: str) -> None:
    assert classify(raw) == _retry(S.NO_ANSWER, reason)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (RawOutcome(answered=False, sip_code=603), "sip:603"),
        (RawOutcome(answered=False, q850_cause=21), "q850:21"),
    ],
)
def test_rejected_is_final(raw: RawOutcome, reason: str) -> None:
    assert classify(raw) == _final(S.REJECTED, reason)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (RawOutcome(answered=False, sip_code=c), f"sip:{c}")
        for c in (500, 502, 503, 504, 580, 401, 403, 407, 488)
    ]
    + [
        (RawOutcome(answered=False, q850_cause=c), f"q850:{c}")
        for c in (34, 38, 41, 42, 44, 47, 58, 102)
    ],
)
def test_technical_errors_do_not_consume_attempts(raw: RawOutcome, reason: str) -> None:
    assert classify(raw) == _technical(reason)


def test_sip_code_wins_over_q850() -> None:
    raw = RawOutcome(answered=False, sip_code=486, q850_cause=34)
    assert classify(raw).reason == "sip:486"


def test_unknown_sip_code_falls_back_to_q850() -> None:
    assert classify(RawOutcome(answered=False, sip_code=415, q850_cause=17)) == _retry(
        S.BUSY, "q850:17"
    )


@pytest.mark.parametrize(
    "raw",
    [
        RawOutcome(answered=False),
        RawOutcome(answered=False, q850_cause=127),
        RawOutcome(answered=False, sip_code=415),
        RawOutcome(answered=False, sip_code=302, q850_cause=31),
    ],
)
def test_unknown_combination_is_a_consumed_no_answer(raw: RawOutcome) -> None:
    assert classify(raw) == _retry(S.NO_ANSWER, "default")


def test_number_refused_before_dialing_is_final_without_using_an_attempt() -> None:
    assert classify(RawOutcome(answered=False, invalid_number=True)) == Classification(
        S.INVALID_NUMBER,
        retryable=False,
        consumes_attempt=False,
        final=True,
        reason="invalid_number",
    )


def test_originate_failure_wins_over_codes() -> None:
    raw = RawOutcome(answered=False, originate_failed=True, sip_code=404, q850_cause=1)
    assert classify(raw) == _technical("originate_failed")


def test_machine_is_voicemail() -> None:
    raw = RawOutcome(answered=True, q850_cause=16, amd_status=AmdStatus.MACHINE)
    assert classify(raw) == _retry(S.VOICEMAIL, "amd:MACHINE")


@pytest.mark.parametrize("amd", [AmdStatus.HUMAN, AmdStatus.NOTSURE, AmdStatus.HANGUP])
def test_human_notsure_and_hangup_are_answered(amd: AmdStatus) -> None:
    raw = RawOutcome(answered=True, q850_cause=16, amd_status=amd, amd_cause="X")
    assert classify(raw) == _final(S.ANSWERED, f"amd:{amd.value}")


def test_dialplan_do_not_call_wins() -> None:
    raw = RawOutcome(
        answered=True, amd_status=AmdStatus.MACHINE, dialplan_result=DialplanResult.DO_NOT_CALL
    )
    assert classify(raw) == _final(S.DO_NOT_CALL, "dialplan:dnc")


def test_dialplan_callback_is_rescheduled_without_using_an_attempt() -> None:
    raw = RawOutcome(answered=True, dialplan_result=DialplanResult.CALLBACK, callback_at=1e9)
    assert classify(raw) == Classification(
        S.RESCHEDULED,
        retryable=True,
        consumes_attempt=False,
        final=False,
        reason="dialplan:callback",
    )


@pytest.mark.parametrize(
    ("goal", "status"), [(GoalResult.COMPLETED, S.COMPLETED), (GoalResult.FAILED, S.FAILED)]
)
def test_a_goal_result_is_final(goal: GoalResult, status: S) -> None:
    for raw in (
        RawOutcome(answered=True, amd_status=AmdStatus.HUMAN, goal=goal),
        RawOutcome(answered=True, goal=goal, lost=True),  # reported before the PBX died
    ):
        assert classify(raw) == Classification(
            status,
            retryable=False,
            consumes_attempt=True,
            final=True,
            reason=f"dialplan:goal_{goal}",
        )


def test_an_opt_out_or_a_callback_wins_over_a_goal() -> None:
    dnc = RawOutcome(
        answered=True, goal=GoalResult.COMPLETED, dialplan_result=DialplanResult.DO_NOT_CALL
    )
    assert classify(dnc).status is S.DO_NOT_CALL
    cb = RawOutcome(answered=True, goal=GoalResult.FAILED, dialplan_result=DialplanResult.CALLBACK)
    assert classify(cb).status is S.RESCHEDULED


@pytest.mark.parametrize("drop", [None, *VoicemailDrop])
def test_a_voicemail_drop_is_recorded_not_classified(drop: VoicemailDrop | None) -> None:
    raw = RawOutcome(answered=True, amd_status=AmdStatus.MACHINE, voicemail_drop=drop)
    assert classify(raw) == Classification(
        S.VOICEMAIL, retryable=True, consumes_attempt=True, final=False, reason="amd:MACHINE"
    )


def test_table_invariants() -> None:
    assert OUTCOME_TABLE_VERSION == 3
    for rule in OUTCOME_RULES:
        assert rule.final is not rule.retryable
        if rule.status is S.TECHNICAL_ERROR:
            assert rule.retryable
            assert not rule.consumes_attempt
        if rule.status in (
            S.ANSWERED,
            S.ANSWERED_CUT,
            S.COMPLETED,
            S.FAILED,
            S.OUTCOME_UNKNOWN,
            S.INVALID_NUMBER,
            S.DO_NOT_CALL,
            S.REJECTED,
        ):
            assert rule.final
    assert OUTCOME_RULES[-1].describe() == "anything else"


raw_outcomes = st.builds(
    RawOutcome,
    answered=st.booleans(),
    q850_cause=st.none() | st.integers(min_value=0, max_value=127),
    sip_code=st.none() | st.integers(min_value=100, max_value=699),
    amd_status=st.none() | st.sampled_from(AmdStatus),
    dialplan_result=st.none() | st.sampled_from(DialplanResult),
    goal=st.none() | st.sampled_from(GoalResult),
    voicemail_drop=st.none() | st.sampled_from(VoicemailDrop),
    originate_failed=st.booleans(),
    invalid_number=st.booleans(),
    lost=st.booleans(),
    outcome_unknown=st.booleans(),
)


@given(raw=raw_outcomes)
def test_any_raw_outcome_gets_a_consistent_classification(raw: RawOutcome) -> None:
    c = classify(raw)
    assert c.final is not c.retryable
    assert c.reason
    assert "{" not in c.reason
    assert "None" not in c.reason
    if raw.invalid_number:
        assert (c.status, c.final, c.consumes_attempt) == (S.INVALID_NUMBER, True, False)
    elif raw.dialplan_result is not None:
        assert c.status in (S.DO_NOT_CALL, S.RESCHEDULED)
    elif raw.goal is not None:  # reported by the dialplan: it decides, even if the PBX died
        assert (c.status, c.final) == (S(raw.goal.value), True)
    elif raw.outcome_unknown:  # never redialed on its own
        assert (c.status, c.final) == (S.OUTCOME_UNKNOWN, True)
    elif raw.lost:  # an answered call cut by a PBX failure is never a technical error
        expected = S.ANSWERED_CUT if raw.answered else S.TECHNICAL_ERROR
        assert (c.status, c.consumes_attempt) == (expected, raw.answered)
    elif raw.answered and not raw.originate_failed:
        assert c.status in (S.ANSWERED, S.VOICEMAIL)
    if not raw.answered:
        assert c.status not in (S.ANSWERED, S.VOICEMAIL, S.ANSWERED_CUT)


def test_markdown_table() -> None:
    text = render_markdown()
    lines = text.splitlines()
    assert lines[0] == f"Outcome table version {OUTCOME_TABLE_VERSION} (first matching row wins)."
    rows = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == len(OUTCOME_RULES)
    assert any(
        r.endswith("| not answered, SIP 486/600 | Busy | yes | yes | no | `sip:<sip>` |")
        for r in rows
    )
    assert (
        rows[-1]
        == f"| {len(OUTCOME_RULES)} | anything else | No answer | yes | yes | no | `default` |"
    )


def test_the_readme_table_is_the_rendered_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert render_markdown().split("\n", 2)[2] in readme, "README: paste render_markdown()"
