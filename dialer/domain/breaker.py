"""Trunk health: one circuit breaker per trunk, as a transition table.

A dead trunk looks like a callee who never answers (Asterisk: Reason 3, cause 19/480 after the
full ring timeout), so without a breaker it would use up every contact's attempts. Each
finished call gives its trunk a :class:`Signal` (:func:`signal_of`); the breaker's state lives
in Redis, shared by every engine, and is moved only by two scripts that follow
:data:`BREAKER_TRANSITIONS` (a unit test pins their literals and moves to this table):

::

    Closed ──TRIP──> Open                 (a run of failures or silent calls reached its limit)
    Open ──PROBE_GRANTED──> HalfOpen      (claim.lua: the cool-down is over; one call only)
    HalfOpen ──PROBE_OK──> Closed         (the probe reached a callee)
    HalfOpen ──PROBE_FAILED──> Open       (a new cool-down)
    Open/HalfOpen ──OK──> Closed          (a call still in flight reached a callee)
    HalfOpen ──PROBE_GRANTED──> HalfOpen  (the probe's result never came: another probe)
    any ──SWITCH_DOWN──> Open             (the switch says the trunk is unreachable: held open)
    Open ──SWITCH_UP──> Open              (the switch says it is back: the cool-down ends now,
                                           the next claim is the probe)

``breaker_report.lua`` applies OK, FAILURE, SILENT, TRIP, PROBE_OK and PROBE_FAILED;
``claim.lua`` applies PROBE_GRANTED; ``breaker_switch.lua`` applies SWITCH_DOWN and SWITCH_UP.
Open refuses every claim on the trunk (stop ``trunk``, no contact touched, no attempt used)
until its cool-down ends; HalfOpen refuses them while its one probe call is out. Pairs absent
from the table are refused (:func:`next_state`): e.g. a TRIP is only counted while Closed, a
probe result only exists while HalfOpen.

Thresholds (engine settings, :class:`BreakerLimits`):

- ``failure_run`` (default 5): calls in a row that failed in a way only a trunk fails (SIP 408,
  5xx, 401/403/407, Q.850 no route / congestion / network out of order, originate refused).
- ``silent_run`` (default 30): calls in a row that reached nobody (no answer, or failures).
  On a healthy trunk whose callees answer with probability ``p``, ``n`` calls in a row go
  unanswered with probability ``(1 - p) ** n``: :func:`silent_run_for` gives the smallest run
  whose chance is below a risk. 30 keeps a false trip below 1e-4 per call for ``p >= 0.27``
  and below 1e-3 for ``p >= 0.21``; a campaign with a lower answer rate needs a longer run.
- ``cooldown`` (default 30 s): how long an open breaker refuses claims before one probe call.
- ``probe_timeout`` (default 120 s): a probe neither answered nor ended by then (its engine
  died) lets another probe go.

The switch's own view (PJSIP qualify on Asterisk, gateway pings on FreeSWITCH:
:mod:`dialer.engine.switchview`) feeds the same table before any call is wasted: SWITCH_DOWN
opens the breaker at once (reason ``switch: ...``) and holds it open, no probe, while any node
says the trunk is unreachable (``hold``, re-asserted while it lasts, so that a hold nobody
renews lapses into the ordinary cool-down and probe); SWITCH_UP from the last such node ends
the cool-down, so the next claim is the half-open probe, whose answer closes the breaker.

A probe reports OK as soon as it is answered (not at its end), so a long answered call does not
hold the breaker half-open.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from dialer.domain.calls import RawOutcome
from dialer.domain.outcome import Classification
from dialer.domain.retry import check_int, check_number
from dialer.domain.statuses import CallStatus
from dialer.errors import TransitionRefused

__all__ = [
    "BREAKER_TRANSITIONS",
    "BreakerEvent",
    "BreakerLimits",
    "BreakerState",
    "Signal",
    "next_state",
    "signal_of",
    "silent_run_for",
]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def gauge(self) -> int:
        """The metric's value: 0 closed, 1 half-open, 2 open."""
        return {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}[self]


class Signal(StrEnum):
    """What one finished call says about its trunk."""

    OK = "ok"  # a callee (or its network) answered: the trunk works
    FAILURE = "failure"  # a failure only a trunk gives
    SILENT = "silent"  # nobody answered, no response: a dead trunk, or a callee away
    NEUTRAL = "neutral"  # says nothing about the trunk (never dialed, cut by a PBX failure)


class BreakerEvent(StrEnum):
    OK = "ok"
    FAILURE = "failure"  # below its run's limit: counted
    SILENT = "silent"  # below its run's limit: counted
    TRIP = "trip"  # a run reached its limit
    PROBE_GRANTED = "probe_granted"  # claim.lua
    PROBE_OK = "probe_ok"
    PROBE_FAILED = "probe_failed"
    SWITCH_DOWN = "switch_down"  # breaker_switch.lua: the switch says unreachable
    SWITCH_UP = "switch_up"  # breaker_switch.lua: the switch says reachable again


def _table() -> Mapping[tuple[BreakerState, BreakerEvent], BreakerState]:
    s, e = BreakerState, BreakerEvent
    return MappingProxyType(
        {
            (s.CLOSED, e.OK): s.CLOSED,
            (s.CLOSED, e.FAILURE): s.CLOSED,
            (s.CLOSED, e.SILENT): s.CLOSED,
            (s.CLOSED, e.TRIP): s.OPEN,
            (s.OPEN, e.OK): s.CLOSED,
            (s.OPEN, e.FAILURE): s.OPEN,
            (s.OPEN, e.SILENT): s.OPEN,
            (s.OPEN, e.PROBE_GRANTED): s.HALF_OPEN,
            (s.HALF_OPEN, e.OK): s.CLOSED,
            (s.HALF_OPEN, e.FAILURE): s.HALF_OPEN,
            (s.HALF_OPEN, e.SILENT): s.HALF_OPEN,
            (s.HALF_OPEN, e.PROBE_GRANTED): s.HALF_OPEN,
            (s.HALF_OPEN, e.PROBE_OK): s.CLOSED,
            (s.HALF_OPEN, e.PROBE_FAILED): s.OPEN,
            (s.CLOSED, e.SWITCH_DOWN): s.OPEN,
            (s.OPEN, e.SWITCH_DOWN): s.OPEN,
            (s.HALF_OPEN, e.SWITCH_DOWN): s.OPEN,
            (s.CLOSED, e.SWITCH_UP): s.CLOSED,
            (s.OPEN, e.SWITCH_UP): s.OPEN,
            (s.HALF_OPEN, e.SWITCH_UP): s.HALF_OPEN,
        }
    )


BREAKER_TRANSITIONS: Mapping[tuple[BreakerState, BreakerEvent], BreakerState] = _table()


def next_state(state: BreakerState, event: BreakerEvent) -> BreakerState:
    """The state after ``event``; TransitionRefused for a pair the table does not hold."""
    target = BREAKER_TRANSITIONS.get((state, event))
    if target is None:
        raise TransitionRefused(
            f"trunk breaker is {state.value}: {event.value} cannot happen then",
            status=state.value,
            command=event.value,
        )
    return target


_FAILURE_Q850 = frozenset({2, 3, 34, 38, 41, 42, 44, 47, 58, 102})
_FAILURE_SIP = frozenset({401, 403, 407, 408})


def signal_of(raw: RawOutcome, outcome: Classification) -> Signal:
    """What a finished call says about its trunk."""
    if raw.invalid_number or raw.lost or raw.outcome_unknown:
        return Signal.NEUTRAL  # never reached the trunk, or the PBX failed under it
    if raw.answered or raw.dialplan_result is not None:
        return Signal.OK
    if raw.originate_failed:
        return Signal.FAILURE
    code = raw.sip_code
    if code is not None and (code in _FAILURE_SIP or code // 100 == 5):
        return Signal.FAILURE
    if code is None and raw.q850_cause in _FAILURE_Q850:
        return Signal.FAILURE
    if outcome.status is CallStatus.NO_ANSWER:
        return Signal.SILENT  # a dead trunk on Asterisk: Reason 3, 19/480 after the timeout
    return Signal.OK  # busy, rejected, invalid number: somebody's network answered


def silent_run_for(answer_rate: float, risk: float) -> int:
    """The shortest run of unanswered calls whose chance on a healthy trunk (callees answering
    independently with probability ``answer_rate``) is below ``risk``."""
    p = check_number(answer_rate, "answer_rate", minimum=0, exclusive=True, maximum=1)
    r = check_number(risk, "risk", minimum=0, exclusive=True, maximum=1)
    if p == 1:
        return 1
    return max(1, math.ceil(math.log(r) / math.log(1 - p)))


@dataclass(frozen=True, slots=True)
class BreakerLimits:
    """The breaker's thresholds (engine settings DIALER_BREAKER_*); see the module docstring."""

    failure_run: int = 5
    silent_run: int = 30
    cooldown: float = 30.0  # seconds an open breaker refuses claims before a probe
    # a probe whose answer or end has not come after this long (its engine died) lets another
    # probe go
    probe_timeout: float = 120.0
    # how long the switch's "unreachable" holds the breaker open without being said again (the
    # engine says it again every few seconds while it lasts)
    switch_hold: float = 60.0

    def __post_init__(self) -> None:
        check_int(self.failure_run, "failure_run", minimum=1, maximum=10_000)
        check_int(self.silent_run, "silent_run", minimum=1, maximum=10_000)
        check_number(self.cooldown, "cooldown", minimum=0.1, maximum=86_400)
        check_number(self.probe_timeout, "probe_timeout", minimum=1, maximum=86_400)
        check_number(self.switch_hold, "switch_hold", minimum=1, maximum=86_400)

    @property
    def cooldown_ms(self) -> int:
        return round(self.cooldown * 1000)

    @property
    def probe_timeout_ms(self) -> int:
        return round(self.probe_timeout * 1000)

    @property
    def switch_hold_ms(self) -> int:
        return round(self.switch_hold * 1000)
