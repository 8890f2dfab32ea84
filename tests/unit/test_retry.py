"""Retry policy: one shared attempt budget, capped technical retries, callbacks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.domain.calls import AmdStatus, DialplanResult, GoalResult, RawOutcome
from dialer.domain.outcome import OUTCOME_RULES, Classification, classify
from dialer.domain.retry import BUDGETED_STATUSES, RetryPolicy, decide
from dialer.domain.statuses import CallStatus
from dialer.errors import ValidationError

S = CallStatus
NOW = 1_700_000_000.0
BUSY = classify(RawOutcome(answered=False, sip_code=486))
NO_ANSWER = classify(RawOutcome(answered=False, sip_code=480))
VOICEMAIL = classify(RawOutcome(answered=True, amd_status=AmdStatus.MACHINE))
TECHNICAL = classify(RawOutcome(answered=False, sip_code=503))
ANSWERED = classify(RawOutcome(answered=True))
CALLBACK = classify(RawOutcome(answered=True, dialplan_result=DialplanResult.CALLBACK))
POLICY = RetryPolicy(
    max_attempts=3,
    delays={S.BUSY: 300, S.NO_ANSWER: 1800, S.VOICEMAIL: 3600, S.TECHNICAL_ERROR: 60},
    technical_retry_limit=3,
)


def test_busy_schedules_a_retry_after_its_delay() -> None:
    d = decide(
        BUSY, attempts_used=0, technical_failures=0, policy=POLICY, now=NOW, callback_at=None
    )
    assert (d.contact_status, d.retry_at, d.attempts_used, d.technical_failures) == (
        S.RETRY_SCHEDULED,
        NOW + 300,
        1,
        0,
    )
    assert not d.final


@pytest.mark.parametrize(
    ("outcome", "last"),
    [(BUSY, S.COMPLETED_NO_ANSWER), (NO_ANSWER, S.COMPLETED_NO_ANSWER), (VOICEMAIL, S.VOICEMAIL)],
)
def test_budget_is_shared_and_exhaustion_completes_without_answer(
    outcome: Classification, last: S
) -> None:
    """The last attempt's outcome names the final status: on voicemail, Voicemail."""
    d = decide(outcome, attempts_used=2, technical_failures=0, policy=POLICY, now=NOW)
    assert (d.contact_status, d.retry_at, d.attempts_used) == (last, None, 3)
    assert d.final


def test_mixed_outcomes_share_one_budget() -> None:
    used = 0
    statuses = []
    for outcome in (BUSY, NO_ANSWER, VOICEMAIL):
        d = decide(outcome, used, 0, POLICY, NOW)
        used = d.attempts_used
        statuses.append(d.contact_status)
    # the last attempt ended on voicemail: the contact's final status says so
    assert statuses == [S.RETRY_SCHEDULED, S.RETRY_SCHEDULED, S.VOICEMAIL]


@pytest.mark.parametrize("goal", list(GoalResult))
def test_a_goal_result_ends_the_contact(goal: GoalResult) -> None:
    c = classify(RawOutcome(answered=True, goal=goal))
    d = decide(c, 0, 0, POLICY, NOW)
    assert (d.contact_status, d.retry_at, d.attempts_used) == (S(goal.value), None, 1)


def test_per_status_cap() -> None:
    policy = RetryPolicy(max_attempts=5, max_attempts_for={S.VOICEMAIL: 2})
    assert decide(VOICEMAIL, 0, 0, policy, NOW).contact_status is S.RETRY_SCHEDULED
    assert decide(VOICEMAIL, 1, 0, policy, NOW).contact_status is S.VOICEMAIL
    assert decide(BUSY, 1, 0, policy, NOW).contact_status is S.RETRY_SCHEDULED


@pytest.mark.parametrize(
    "raw",
    [
        RawOutcome(answered=True),
        RawOutcome(answered=False, sip_code=404),
        RawOutcome(answered=False, sip_code=603),
        RawOutcome(answered=True, dialplan_result=DialplanResult.DO_NOT_CALL),
    ],
)
def test_final_statuses_never_retry(raw: RawOutcome) -> None:
    c = classify(raw)
    d = decide(c, 0, 2, POLICY, NOW)
    assert (d.contact_status, d.retry_at, d.attempts_used, d.technical_failures) == (
        c.status,
        None,
        1,
        0,
    )


def test_technical_errors_back_off_then_end_as_technical_error() -> None:
    used, failures, delays = 1, 0, []
    while True:
        d = decide(TECHNICAL, used, failures, POLICY, NOW)
        assert d.attempts_used == used
        failures = d.technical_failures
        if d.retry_at is None:
            break
        delays.append(d.retry_at - NOW)
    assert delays == [60, 120, 240]
    assert (d.contact_status, failures) == (S.TECHNICAL_ERROR, 4)


def test_technical_limit_zero_ends_at_the_first_failure() -> None:
    policy = RetryPolicy(technical_retry_limit=0)
    assert decide(TECHNICAL, 0, 0, policy, NOW).contact_status is S.TECHNICAL_ERROR


def test_any_other_outcome_resets_the_technical_count() -> None:
    assert decide(NO_ANSWER, 0, 3, POLICY, NOW).technical_failures == 0


def test_callback_at_the_requested_time_without_using_an_attempt() -> None:
    d = decide(CALLBACK, 2, 0, POLICY, NOW, callback_at=NOW + 7200)
    assert (d.contact_status, d.retry_at, d.attempts_used) == (S.RESCHEDULED, NOW + 7200, 2)


def test_callback_in_the_past_is_due_now() -> None:
    assert decide(CALLBACK, 0, 0, POLICY, NOW, callback_at=NOW - 50).retry_at == NOW


def test_callback_without_time_uses_the_rescheduled_delay() -> None:
    assert decide(CALLBACK, 0, 0, POLICY, NOW).retry_at == NOW + POLICY.default_delay
    policy = RetryPolicy(delays={S.RESCHEDULED: 600})
    assert decide(CALLBACK, 0, 0, policy, NOW).retry_at == NOW + 600


def test_lowered_budget_stops_retrying_and_keeps_true_counts() -> None:
    d = decide(BUSY, attempts_used=4, technical_failures=0, policy=POLICY, now=NOW)
    assert (d.contact_status, d.retry_at, d.attempts_used) == (S.COMPLETED_NO_ANSWER, None, 5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"delays": {S.BUSY: -1}}, "delays.busy"),
        ({"delays": {S.BUSY: float("nan")}}, "delays.busy"),
        ({"delays": {S.ANSWERED: 10}}, "delays"),
        ({"delays": {"bogus": 10}}, "delays"),
        ({"delays": [1, 2]}, "delays"),
        ({"max_attempts_for": {S.BUSY: 0}}, "max_attempts_for.busy"),
        ({"max_attempts_for": {S.BUSY: 4}}, "max_attempts_for.busy"),
        ({"max_attempts_for": {S.TECHNICAL_ERROR: 2}}, "max_attempts_for"),
        ({"technical_retry_limit": -1}, "technical_retry_limit"),
        ({"technical_backoff": 0.5}, "technical_backoff"),
        ({"default_delay": float("inf")}, "default_delay"),
    ],
)
def test_policy_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=rf"^{field}\b"):
        RetryPolicy(**{"max_attempts": 3, **kwargs})  # type: ignore[arg-type]


def test_decide_validates_its_inputs() -> None:
    with pytest.raises(ValidationError, match="attempts_used"):
        decide(BUSY, -1, 0, POLICY, NOW)
    with pytest.raises(ValidationError, match="callback_at"):
        decide(CALLBACK, 0, 0, POLICY, NOW, callback_at=float("nan"))


def test_policy_is_immutable_hashable_and_round_trips() -> None:
    source = {S.BUSY: 10.0}
    policy = RetryPolicy(delays=source, max_attempts_for={"busy": 2})  # type: ignore[dict-item]
    source[S.BUSY] = 99.0
    assert policy.delays[S.BUSY] == 10.0
    with pytest.raises(TypeError):
        policy.delays[S.BUSY] = 1.0  # type: ignore[index]
    assert hash(policy) == hash(RetryPolicy(delays={S.BUSY: 10.0}, max_attempts_for={S.BUSY: 2}))
    assert RetryPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"max_attempts": "3"}, "retry.max_attempts must be an integer"),
        ({"delays": {"busy": "soon"}}, "retry.delays.busy must be a number"),
        ({"retries": 3}, "retry: unknown field 'retries'"),
        ([1], "retry must be an object"),
    ],
)
def test_from_dict_errors_name_the_field(data: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RetryPolicy.from_dict(data)


# -- properties ------------------------------------------------------------------------------

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(min_value=1, max_value=8),
    delays=st.dictionaries(
        st.sampled_from(sorted(BUDGETED_STATUSES | {S.TECHNICAL_ERROR, S.RESCHEDULED})),
        st.floats(min_value=0, max_value=86400),
    ),
    technical_retry_limit=st.integers(min_value=0, max_value=6),
    technical_backoff=st.floats(min_value=1, max_value=10),
)
classifications = st.sampled_from(OUTCOME_RULES).map(lambda rule: rule.classify(RawOutcome(True)))
times = st.floats(min_value=0, max_value=4e9)


@st.composite
def situations(draw: st.DrawFn) -> tuple[RetryPolicy, int, int]:
    policy = draw(policies)
    used = draw(st.integers(min_value=0, max_value=policy.max_attempts - 1))
    failures = draw(st.integers(min_value=0, max_value=policy.technical_retry_limit))
    return policy, used, failures


@given(situation=situations(), c=classifications, now=times, callback_at=st.none() | times)
def test_decision_properties(
    situation: tuple[RetryPolicy, int, int],
    c: Classification,
    now: float,
    callback_at: float | None,
) -> None:
    policy, used, failures = situation
    d = decide(c, used, failures, policy, now, callback_at)
    assert d.attempts_used <= policy.max_attempts
    if not c.consumes_attempt:
        assert d.attempts_used == used
    if d.retry_at is not None:
        assert d.retry_at >= now
        assert d.contact_status in (S.RETRY_SCHEDULED, S.RESCHEDULED)
    else:
        assert d.contact_status not in (S.RETRY_SCHEDULED, S.RESCHEDULED)
    if c.final:
        assert d.retry_at is None
        assert d.contact_status is c.status


@given(
    policy=policies,
    outcomes=st.lists(
        classifications.filter(lambda c: c.status is not S.RESCHEDULED), min_size=1, max_size=200
    ),
)
def test_a_contact_always_ends(policy: RetryPolicy, outcomes: list[Classification]) -> None:
    """Without callbacks, the number of dials is bounded by the budget and the technical cap."""
    used = failures = dials = 0
    bound = (policy.max_attempts + 1) * (policy.technical_retry_limit + 1)
    for c in outcomes * bound:
        dials += 1
        d = decide(c, used, failures, policy, NOW)
        used, failures = d.attempts_used, d.technical_failures
        if d.final:
            break
    else:
        pytest.fail("the contact never reached a final status")
    assert dials <= bound


# -- calls a PBX failure cut ------------------------------------------------------------------


def test_an_answered_call_cut_by_a_pbx_failure_is_not_redialed_by_default() -> None:
    cut = classify(RawOutcome(answered=True, lost=True))
    assert (cut.status, cut.final, cut.consumes_attempt) == (
        CallStatus.ANSWERED_CUT,
        True,
        True,
    )
    d = decide(cut, attempts_used=0, technical_failures=0, policy=RetryPolicy(), now=100.0)
    assert (d.contact_status, d.retry_at, d.attempts_used) == (CallStatus.ANSWERED_CUT, None, 1)


def test_redial_answered_cut_retries_within_the_attempt_budget() -> None:
    policy = RetryPolicy(
        max_attempts=2, delays={CallStatus.TECHNICAL_ERROR: 30.0}, redial_answered_cut=True
    )
    cut = classify(RawOutcome(answered=True, lost=True))
    d = decide(cut, attempts_used=0, technical_failures=0, policy=policy, now=100.0)
    assert (d.contact_status, d.retry_at, d.attempts_used) == (CallStatus.RETRY_SCHEDULED, 130.0, 1)
    d = decide(cut, attempts_used=1, technical_failures=0, policy=policy, now=100.0)
    assert (d.contact_status, d.retry_at) == (CallStatus.ANSWERED_CUT, None)
    assert RetryPolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(ValidationError, match="redial_answered_cut must be true or false"):
        RetryPolicy(redial_answered_cut="yes")  # type: ignore[arg-type]


def test_an_unanswered_call_cut_is_a_free_technical_retry_and_unknown_is_final() -> None:
    rang = classify(RawOutcome(answered=False, lost=True))
    assert (rang.status, rang.retryable, rang.consumes_attempt) == (
        CallStatus.TECHNICAL_ERROR,
        True,
        False,
    )
    unknown = classify(RawOutcome(answered=False, outcome_unknown=True))
    d = decide(unknown, attempts_used=0, technical_failures=0, policy=RetryPolicy(), now=1.0)
    assert (d.contact_status, d.retry_at) == (CallStatus.OUTCOME_UNKNOWN, None)
