"""Retry policy: one shared attempt budget per contact, per-status delays.

After each attempt :func:`decide` turns its :class:`~dialer.domain.outcome.Classification` into
the contact's next status and, when another attempt is due, its time.

- Final attempt statuses (Answered, Completed, Failed, Invalid number, Do not call, Rejected)
  never retry.
- Busy / No answer / Voicemail consume one attempt of the shared ``max_attempts`` budget; when
  the budget (or ``max_attempts_for[status]``, a lower cap applied to the attempts used so far
  when this status is the latest outcome) is spent the contact is Completed without answer, or
  Voicemail when that last attempt ended on voicemail (an answering machine answered it).
- Technical errors do not consume the budget; ``technical_retry_limit`` caps *consecutive*
  ones (any other outcome resets the count), then the contact ends as Technical error. Their
  delay grows by ``technical_backoff`` each time so that a dead trunk does not burn the list.
- A callback (Rescheduled) retries at ``callback_at`` (never before ``now``), or after the
  Rescheduled delay when the dialplan gave no time; it consumes nothing.
- An answered call cut by a PBX failure (Answered, cut) is final unless
  ``redial_answered_cut``: then it retries after the technical-error delay, within the shared
  attempt budget (the cut call used one).

Precondition: the contact was dialed with ``attempts_used < max_attempts``. If a policy edit
lowered the budget below that, nothing retries and the counts stay truthful.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from dialer.domain.outcome import OUTCOME_RULES, Classification
from dialer.domain.statuses import CallStatus
from dialer.errors import ValidationError

__all__ = [
    "BUDGETED_STATUSES",
    "DEFAULT_DELAYS",
    "MAX_DELAY",
    "RETRYABLE_STATUSES",
    "Decision",
    "RetryPolicy",
    "check_fields",
    "check_int",
    "check_number",
    "decide",
]

MAX_DELAY = 30 * 86400.0  # no retry is ever scheduled further than 30 days ahead
RETRYABLE_STATUSES: frozenset[CallStatus] = frozenset(
    r.status for r in OUTCOME_RULES if r.retryable
)
BUDGETED_STATUSES: frozenset[CallStatus] = frozenset(
    r.status for r in OUTCOME_RULES if r.retryable and r.consumes_attempt
)  # Busy, No answer, Voicemail: the statuses that spend the shared attempt budget
DEFAULT_DELAYS: Mapping[CallStatus, float] = MappingProxyType(
    {
        CallStatus.BUSY: 300.0,
        CallStatus.NO_ANSWER: 1800.0,
        CallStatus.VOICEMAIL: 3600.0,
        CallStatus.TECHNICAL_ERROR: 60.0,
    }
)


def check_int(value: object, name: str, *, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int within bounds (bools refused), else ValidationError naming ``name``."""
    bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be an integer {bounds}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValidationError(f"{name} must be an integer {bounds}, got {value!r}")
    return value


def check_number(
    value: object, name: str, *, minimum: float, exclusive: bool = False, maximum: float = math.inf
) -> float:
    """``value`` as a finite float within bounds, else ValidationError naming ``name``."""
    low = f"> {minimum:.15g}" if exclusive else f">= {minimum:.15g}"
    bounds = low if maximum == math.inf else f"{low} and <= {maximum:.15g}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a number {bounds}, got {value!r}")
    number = float(value)
    too_low = number <= minimum if exclusive else number < minimum
    if not math.isfinite(number) or too_low or number > maximum:
        raise ValidationError(f"{name} must be a number {bounds}, got {value!r}")
    return number


def check_fields(
    data: object, name: str, *, required: frozenset[str], optional: frozenset[str]
) -> Mapping[str, object]:
    """A str-keyed mapping holding every required key and no unknown one."""
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise ValidationError(f"{name} must be an object with string keys, got {data!r}")
    missing = sorted(required - data.keys())
    if missing:
        raise ValidationError(f"{name}: missing field {missing[0]!r}")
    unknown = sorted(data.keys() - required - optional)
    if unknown:
        raise ValidationError(f"{name}: unknown field {unknown[0]!r}")
    return data


def _status_map(
    data: object, name: str, allowed: frozenset[CallStatus]
) -> dict[CallStatus, object]:
    if not isinstance(data, Mapping):
        raise ValidationError(f"{name} must be an object keyed by call status, got {data!r}")
    out: dict[CallStatus, object] = {}
    for key, value in data.items():
        if key not in allowed:
            names = ", ".join(sorted(allowed))
            raise ValidationError(f"{name}: {key!r} is not one of {names}")
        out[CallStatus(key)] = value
    return out


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    delays: Mapping[CallStatus, float] = field(default_factory=lambda: DEFAULT_DELAYS, hash=False)
    max_attempts_for: Mapping[CallStatus, int] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    technical_retry_limit: int = 5
    technical_backoff: float = 2.0
    default_delay: float = 1800.0  # for a retryable status absent from ``delays``
    redial_answered_cut: bool = False  # redial a person whose answered call a PBX failure cut

    def __post_init__(self) -> None:
        check_int(self.max_attempts, "max_attempts", minimum=1, maximum=1000)
        delays = {
            status: check_number(value, f"delays.{status}", minimum=0, maximum=MAX_DELAY)
            for status, value in _status_map(self.delays, "delays", RETRYABLE_STATUSES).items()
        }
        caps = {
            status: check_int(value, f"max_attempts_for.{status}", minimum=1)
            for status, value in _status_map(
                self.max_attempts_for, "max_attempts_for", BUDGETED_STATUSES
            ).items()
        }
        for status, cap in caps.items():
            if cap > self.max_attempts:
                raise ValidationError(
                    f"max_attempts_for.{status} ({cap}) exceeds max_attempts ({self.max_attempts})"
                )
        check_int(self.technical_retry_limit, "technical_retry_limit", minimum=0, maximum=100)
        check_number(self.technical_backoff, "technical_backoff", minimum=1, maximum=10)
        check_number(self.default_delay, "default_delay", minimum=0, maximum=MAX_DELAY)
        if not isinstance(self.redial_answered_cut, bool):
            raise ValidationError(
                f"redial_answered_cut must be true or false, got {self.redial_answered_cut!r}"
            )
        object.__setattr__(self, "delays", MappingProxyType(delays))
        object.__setattr__(self, "max_attempts_for", MappingProxyType(caps))

    def delay_for(self, status: CallStatus) -> float:
        return self.delays.get(status, self.default_delay)

    def attempt_cap(self, status: CallStatus) -> int:
        """Attempts after which an outcome of ``status`` no longer retries."""
        return min(self.max_attempts, self.max_attempts_for.get(status, self.max_attempts))

    def to_dict(self) -> dict[str, object]:
        return {
            "max_attempts": self.max_attempts,
            "delays": {str(k): v for k, v in self.delays.items()},
            "max_attempts_for": {str(k): v for k, v in self.max_attempts_for.items()},
            "technical_retry_limit": self.technical_retry_limit,
            "technical_backoff": self.technical_backoff,
            "default_delay": self.default_delay,
            "redial_answered_cut": self.redial_answered_cut,
        }

    @classmethod
    def from_dict(cls, data: object, name: str = "retry") -> RetryPolicy:
        """Build from :meth:`to_dict` output; errors name the field as ``<name>.<field>``."""
        return from_fields(cls, data, name)


@dataclass(frozen=True, slots=True)
class Decision:
    contact_status: CallStatus
    retry_at: float | None  # epoch seconds of the next attempt, None when the contact is final
    attempts_used: int  # after this attempt
    technical_failures: int  # consecutive technical failures, after this attempt

    @property
    def final(self) -> bool:
        return self.retry_at is None


def decide(
    classification: Classification,
    attempts_used: int,
    technical_failures: int,
    policy: RetryPolicy,
    now: float,
    callback_at: float | None = None,
) -> Decision:
    """The contact's status after an attempt classified as ``classification``."""
    check_int(attempts_used, "attempts_used", minimum=0)
    check_int(technical_failures, "technical_failures", minimum=0)
    check_number(now, "now", minimum=0)
    if callback_at is not None:
        check_number(callback_at, "callback_at", minimum=0)
    c = classification
    used = attempts_used + (1 if c.consumes_attempt else 0)
    technical = c.status is CallStatus.TECHNICAL_ERROR and not c.consumes_attempt
    failures = technical_failures + 1 if technical else 0
    if c.status is CallStatus.ANSWERED_CUT and policy.redial_answered_cut:
        if used >= policy.max_attempts:
            return Decision(c.status, None, used, failures)
        delay = policy.delay_for(CallStatus.TECHNICAL_ERROR)
        return Decision(CallStatus.RETRY_SCHEDULED, now + delay, used, failures)
    if c.final or not c.retryable:
        return Decision(c.status, None, used, failures)
    if c.status is CallStatus.RESCHEDULED:
        at = callback_at if callback_at is not None else now + policy.delay_for(c.status)
        return Decision(c.status, min(max(now, at), now + MAX_DELAY), used, failures)
    if technical:
        if failures > policy.technical_retry_limit:
            return Decision(c.status, None, used, failures)
        delay = policy.delay_for(c.status) * policy.technical_backoff ** (failures - 1)
        return Decision(CallStatus.RETRY_SCHEDULED, now + min(delay, MAX_DELAY), used, failures)
    if used >= policy.attempt_cap(c.status):
        voicemail = c.status is CallStatus.VOICEMAIL
        last = CallStatus.VOICEMAIL if voicemail else CallStatus.COMPLETED_NO_ANSWER
        return Decision(last, None, used, failures)
    return Decision(CallStatus.RETRY_SCHEDULED, now + policy.delay_for(c.status), used, failures)


_T = TypeVar("_T")


def from_fields(cls: type[_T], data: object, name: str) -> _T:
    """``cls(**data)`` for a dataclass whose fields are all optional in ``data``; errors name
    the field as ``<name>.<field>`` (``__post_init__`` checks every type)."""
    fields = check_fields(
        data,
        name,
        required=frozenset(),
        optional=frozenset(cls.__dataclass_fields__),  # type: ignore[attr-defined]
    )
    try:
        return cls(**fields)
    except ValidationError as exc:
        raise ValidationError(f"{name}.{exc}") from None
