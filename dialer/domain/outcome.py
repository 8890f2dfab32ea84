"""One versioned table that turns a call attempt's raw PBX facts into an attempt status.

The rules are data (:data:`OUTCOME_RULES`), tried in order; the first row that matches wins.
Order: a number refused before dialing, the dialplan's own result, an originate that never
made a channel, answered calls by AMD status, unanswered calls by SIP code (the most specific
fact), then by Q.850 cause, then one default row. Asterisk's DialStatus is not used: it says
NOANSWER for 404 and 603.

Choices (bump :data:`OUTCOME_TABLE_VERSION` when a row changes meaning):

- A number refused before dialing (``invalid_number``) -> Invalid number, final, and it does
  not count as an attempt (nothing was dialed).
- CALLBACK -> Rescheduled, not final, does not consume an attempt (the person asked for it).
- A goal result (``goal=completed|failed``, reported by the user's dialplan) -> Completed or
  Failed, final: a person was reached and the campaign's question was settled either way. An
  opt-out or a callback reported on the same call wins (their rows come first).
- AMD HANGUP (the callee hung up while AMD listened) -> Answered, final: somebody picked up;
  calling back someone who hung up on us is what a regulator calls harassment.
- SIP 603 / Q.850 21 (declined) -> Rejected, final: a decline is the callee's decision.
- SIP 401/403/407 (the carrier refused *us*: credentials, credit, barred route), 488 (no common
  codec), 5xx, Q.850 34/38/41/42/44/47/58/102 and originate failures -> Technical error,
  retryable and not consuming the contact's attempts (retry.py caps them separately).
- Q.850 20 (subscriber absent) and 27 (destination out of order) -> No answer: the callee's line,
  not our trunk. 16 without an answer (the call was cleared before answer) -> No answer.
- AMD MACHINE -> Voicemail, retryable, consuming; whether a voicemail drop played is recorded
  (``voicemail_drop``), not classified: retry.py ends a contact whose last attempt was
  Voicemail as Voicemail.
- Default (no rule matched: unknown SIP code and Q.850 cause) -> No answer, consuming: the phone
  may well have rung, so the fast, non-consuming technical retry would risk ringing a person
  every minute; a consumed attempt with the no-answer delay is the safe side.
- A dead trunk is indistinguishable from nobody answering on Asterisk (Reason 3, 19/480 after
  the full timeout): it is classified No answer; detecting a dead trunk is the engine's job.
  FreeSWITCH reports the same trunk as a local 503 at once: Technical error (pbx-config/README.md).
- Both switches give one status per callee behaviour because the SIP code is read before the
  Q.850 cause: FreeSWITCH says 18 for a 480 (Asterisk 19) and 41 for a 503/500 (Asterisk
  34/38); its ring timeout has no final SIP response, only the 487 of our CANCEL (Asterisk: 480);
  its own causes (ORIGINATOR_CANCEL 487...) are no Q.850 causes and fall to the SIP code or the
  default row (tests/unit/test_outcome_switches.py).
- A call whose end the switch never reported (``lost``: the PBX crashed or restarted under it)
  is judged by what the switch had said before: answered -> Answered, cut by a PBX failure,
  final (a person spoke with us; ``retry.redial_answered_cut`` may redial it, counted as an
  attempt); not answered -> Technical error, retryable, not consuming (the ring was cut by our
  side's failure, not the callee's choice). A dialplan result reported before (opt-out,
  callback, goal) still decides.
- A call nobody saw end and the switch kept no record of (``outcome_unknown``) -> Outcome
  unknown, final: it may have been answered, so it is never redialed on its own; a person
  decides (the records show it).
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any

from dialer.domain.calls import AmdStatus, DialplanResult, GoalResult, RawOutcome
from dialer.domain.statuses import CallStatus

__all__ = [
    "OUTCOME_RULES",
    "OUTCOME_TABLE_VERSION",
    "Classification",
    "Rule",
    "classify",
    "render_markdown",
]

OUTCOME_TABLE_VERSION = 3


@dataclass(frozen=True, slots=True)
class Classification:
    status: CallStatus  # the attempt's status
    retryable: bool
    consumes_attempt: bool
    final: bool
    reason: str  # machine-readable: "sip:486", "q850:17", "amd:MACHINE", "dialplan:dnc", ...


@dataclass(frozen=True, slots=True)
class Rule:
    """One row. ``None`` / empty conditions match anything; all set conditions must hold.

    ``reason`` is a template formatted with ``sip``, ``q850`` and ``amd`` from the raw outcome.
    """

    status: CallStatus
    retryable: bool
    consumes_attempt: bool
    reason: str
    _: KW_ONLY
    answered: bool | None = None
    invalid_number: bool | None = None
    originate_failed: bool | None = None
    lost: bool | None = None
    outcome_unknown: bool | None = None
    dialplan_result: DialplanResult | None = None
    goal: GoalResult | None = None
    amd_statuses: frozenset[AmdStatus | None] | None = None
    sip_codes: frozenset[int] = frozenset()
    sip_classes: frozenset[int] = frozenset()  # 5 matches 500-599
    q850_causes: frozenset[int] = frozenset()

    @property
    def final(self) -> bool:
        return not self.retryable

    def matches(self, raw: RawOutcome) -> bool:
        if self.answered is not None and raw.answered != self.answered:
            return False
        if self.invalid_number is not None and raw.invalid_number != self.invalid_number:
            return False
        if self.originate_failed is not None and raw.originate_failed != self.originate_failed:
            return False
        if self.lost is not None and raw.lost != self.lost:
            return False
        if self.outcome_unknown is not None and raw.outcome_unknown != self.outcome_unknown:
            return False
        if self.dialplan_result is not None and raw.dialplan_result != self.dialplan_result:
            return False
        if self.goal is not None and raw.goal != self.goal:
            return False
        if self.amd_statuses is not None and raw.amd_status not in self.amd_statuses:
            return False
        if self.sip_codes or self.sip_classes:
            code = raw.sip_code
            if code is None or (code not in self.sip_codes and code // 100 not in self.sip_classes):
                return False
        return not self.q850_causes or raw.q850_cause in self.q850_causes

    def classify(self, raw: RawOutcome) -> Classification:
        amd = raw.amd_status.value if raw.amd_status is not None else None
        return Classification(
            status=self.status,
            retryable=self.retryable,
            consumes_attempt=self.consumes_attempt,
            final=self.final,
            reason=self.reason.format(sip=raw.sip_code, q850=raw.q850_cause, amd=amd),
        )

    def describe(self) -> str:
        """The row's conditions in words, for the documentation table."""
        parts: list[str] = []
        if self.invalid_number:
            parts.append("refused before dialing (not a dialable number)")
        if self.dialplan_result is not None:
            parts.append(f"dialplan result {self.dialplan_result.value}")
        if self.goal is not None:
            parts.append(f"dialplan goal={self.goal.value}")
        if self.outcome_unknown:
            parts.append("end seen by no engine, no switch record")
        if self.lost:
            parts.append("cut by a PBX failure (end never reported)")
        if self.originate_failed:
            parts.append("originate failed (no channel)")
        if self.answered is not None:
            parts.append("answered" if self.answered else "not answered")
        if self.amd_statuses is not None:
            names = sorted(a.value if a is not None else "none" for a in self.amd_statuses)
            parts.append("AMD " + "/".join(names))
        if self.sip_codes or self.sip_classes:
            codes = [str(c) for c in sorted(self.sip_codes)]
            codes += [f"{k}xx" for k in sorted(self.sip_classes)]
            parts.append("SIP " + "/".join(codes))
        if self.q850_causes:
            parts.append("Q.850 " + "/".join(str(c) for c in sorted(self.q850_causes)))
        return ", ".join(parts) or "anything else"


def _final(status: CallStatus, reason: str, **when: Any) -> Rule:
    return Rule(status, retryable=False, consumes_attempt=True, reason=reason, **when)


def _retry(status: CallStatus, reason: str, **when: Any) -> Rule:
    return Rule(status, retryable=True, consumes_attempt=True, reason=reason, **when)


def _free_retry(status: CallStatus, reason: str, **when: Any) -> Rule:
    """Retryable without using up one of the contact's attempts."""
    return Rule(status, retryable=True, consumes_attempt=False, reason=reason, **when)


_S = CallStatus
_AMD = AmdStatus

OUTCOME_RULES: tuple[Rule, ...] = (
    # Refused before dialing (not a dialable number): final, and no attempt was made.
    Rule(
        _S.INVALID_NUMBER,
        retryable=False,
        consumes_attempt=False,
        reason="invalid_number",
        invalid_number=True,
    ),
    _final(_S.DO_NOT_CALL, "dialplan:dnc", dialplan_result=DialplanResult.DO_NOT_CALL),
    _free_retry(_S.RESCHEDULED, "dialplan:callback", dialplan_result=DialplanResult.CALLBACK),
    _final(_S.COMPLETED, "dialplan:goal_completed", goal=GoalResult.COMPLETED),
    _final(_S.FAILED, "dialplan:goal_failed", goal=GoalResult.FAILED),
    _final(_S.OUTCOME_UNKNOWN, "outcome_unknown", outcome_unknown=True),
    _final(_S.ANSWERED_CUT, "lost:answered", lost=True, answered=True),
    _free_retry(_S.TECHNICAL_ERROR, "lost", lost=True, answered=False),
    _free_retry(_S.TECHNICAL_ERROR, "originate_failed", originate_failed=True),
    _retry(_S.VOICEMAIL, "amd:{amd}", answered=True, amd_statuses=frozenset({_AMD.MACHINE})),
    _final(
        _S.ANSWERED,
        "amd:{amd}",
        answered=True,
        amd_statuses=frozenset({_AMD.HUMAN, _AMD.NOTSURE, _AMD.HANGUP}),
    ),
    _final(_S.ANSWERED, "answered", answered=True),
    # Not answered: the SIP final response first ...
    _final(
        _S.INVALID_NUMBER, "sip:{sip}", answered=False, sip_codes=frozenset({404, 410, 484, 604})
    ),
    _retry(_S.BUSY, "sip:{sip}", answered=False, sip_codes=frozenset({486, 600})),
    _retry(_S.NO_ANSWER, "sip:{sip}", answered=False, sip_codes=frozenset({408, 480, 487})),
    _final(_S.REJECTED, "sip:{sip}", answered=False, sip_codes=frozenset({603})),
    _free_retry(
        _S.TECHNICAL_ERROR,
        "sip:{sip}",
        answered=False,
        sip_codes=frozenset({401, 403, 407, 488}),
        sip_classes=frozenset({5}),
    ),
    # ... then the Q.850 cause.
    _final(_S.INVALID_NUMBER, "q850:{q850}", answered=False, q850_causes=frozenset({1, 3, 22, 28})),
    _retry(_S.BUSY, "q850:{q850}", answered=False, q850_causes=frozenset({17})),
    _retry(
        _S.NO_ANSWER, "q850:{q850}", answered=False, q850_causes=frozenset({16, 18, 19, 20, 27})
    ),
    _final(_S.REJECTED, "q850:{q850}", answered=False, q850_causes=frozenset({21})),
    _free_retry(
        _S.TECHNICAL_ERROR,
        "q850:{q850}",
        answered=False,
        q850_causes=frozenset({34, 38, 41, 42, 44, 47, 58, 102}),
    ),
    _retry(_S.NO_ANSWER, "default"),
)


def classify(raw: RawOutcome) -> Classification:
    """The first matching row of :data:`OUTCOME_RULES` (the last row matches anything)."""
    for rule in OUTCOME_RULES:
        if rule.matches(raw):
            return rule.classify(raw)
    raise AssertionError("the default outcome rule matches every raw outcome")  # pragma: no cover


def render_markdown(rules: tuple[Rule, ...] = OUTCOME_RULES) -> str:
    """The table as Markdown, one line per rule in priority order."""
    lines = [
        f"Outcome table version {OUTCOME_TABLE_VERSION} (first matching row wins).",
        "",
        "| # | when | attempt status | retry | uses an attempt | final | reason |",
        "|---|---|---|---|---|---|---|",
    ]
    yes_no = {True: "yes", False: "no"}
    for n, rule in enumerate(rules, start=1):
        reason = rule.reason.replace("{", "<").replace("}", ">")
        lines.append(
            f"| {n} | {rule.describe()} | {rule.status.label} | {yes_no[rule.retryable]} "
            f"| {yes_no[rule.consumes_attempt]} | {yes_no[rule.final]} | `{reason}` |"
        )
    return "\n".join(lines) + "\n"
