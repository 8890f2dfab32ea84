"""The carrier simulator's number plan: the dialed number chooses what the callee does.

Numbers are E.164 ``+12015BBSSSS``: ``BB`` is the behaviour code and ``SSSS`` a serial, so
every contact of a test can have a number of its own. The SIPp scenario
(``loadtest/sipp/carrier.xml.in``) matches the 6 digits before ``@`` of the Request-URI.
The same table is in ``pbx-config/asterisk/README.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "+12015"
SERIALS = 10_000
HOLD_MIN_S = 1
HOLD_MAX_S = 59
_NUMBER = re.compile(r"^\+?12015(\d{2})(\d{4})$")


class Behaviour(StrEnum):
    """What the simulated callee does (value: a stable name, not the code)."""

    WAIT_FOR_BYE = "wait_for_bye"
    HOLD = "hold"
    HUMAN = "human"
    VOICEMAIL = "voicemail"
    HUMAN_OPT_OUT = "human_opt_out"
    HUMAN_CALLBACK = "human_callback"
    HUMAN_GOAL_COMPLETED = "human_goal_completed"
    HUMAN_GOAL_FAILED = "human_goal_failed"
    VOICEMAIL_BEEP = "voicemail_beep"
    VOICEMAIL_HANGS_UP = "voicemail_hangs_up"
    RING_NO_ANSWER = "ring_no_answer"
    UNAVAILABLE_480 = "unavailable_480"
    NOT_FOUND_404 = "not_found_404"
    BUSY = "busy"
    ADDRESS_INCOMPLETE_484 = "address_incomplete_484"
    DECLINE_603 = "decline_603"
    UNAVAILABLE_503 = "unavailable_503"


@dataclass(frozen=True, slots=True)
class PlanEntry:
    behaviour: Behaviour
    code: str  # BB; "01-59" for HOLD
    sip_response: int | None  # the final response to the INVITE
    description: str

    @property
    def answers(self) -> bool:
        return self.sip_response == 200


PLAN: tuple[PlanEntry, ...] = (
    PlanEntry(Behaviour.WAIT_FOR_BYE, "00", 200, "answer, no audio; wait for our BYE (300 s cap)"),
    PlanEntry(Behaviour.HOLD, "01-59", 200, "answer, no audio; hang up (BYE) after BB seconds"),
    PlanEntry(Behaviour.HUMAN, "60", 200, '"Hello?" then silence: AMD HUMAN; wait for BYE'),
    PlanEntry(Behaviour.VOICEMAIL, "61", 200, "a 7 s voicemail greeting: AMD MACHINE"),
    PlanEntry(Behaviour.HUMAN_OPT_OUT, "62", 200, '"Hello?", DTMF 9 at 3 s: result dnc'),
    PlanEntry(Behaviour.HUMAN_CALLBACK, "63", 200, '"Hello?", DTMF 2 at 3 s: result callback'),
    PlanEntry(Behaviour.HUMAN_GOAL_COMPLETED, "64", 200, '"Hello?", DTMF 1 at 3 s: goal completed'),
    PlanEntry(Behaviour.HUMAN_GOAL_FAILED, "65", 200, '"Hello?", DTMF 3 at 3 s: goal failed'),
    PlanEntry(
        Behaviour.VOICEMAIL_BEEP, "66", 200, "the 61 greeting, a beep, 20 s of silence: recording"
    ),
    PlanEntry(
        Behaviour.VOICEMAIL_HANGS_UP, "67", 200, "as 66, but hangs up (BYE) 11 s after the answer"
    ),
    PlanEntry(Behaviour.RING_NO_ANSWER, "70", None, "180 Ringing until CANCEL (200, 487)"),
    PlanEntry(Behaviour.UNAVAILABLE_480, "80", 480, "480 Temporarily Unavailable"),
    PlanEntry(Behaviour.NOT_FOUND_404, "84", 404, "404 Not Found"),
    PlanEntry(Behaviour.BUSY, "86", 486, "486 Busy Here"),
    PlanEntry(Behaviour.ADDRESS_INCOMPLETE_484, "88", 484, "484 Address Incomplete"),
    PlanEntry(Behaviour.DECLINE_603, "93", 603, "603 Decline"),
    PlanEntry(Behaviour.UNAVAILABLE_503, "95", 503, "503 Service Unavailable"),
)
# Any other BB: 500 Not In Number Plan.
UNKNOWN_CODE_RESPONSE = 500


def entry(behaviour: Behaviour) -> PlanEntry:
    return next(e for e in PLAN if e.behaviour is behaviour)


def number(behaviour: Behaviour, serial: int, hold_s: int | None = None) -> str:
    """The E.164 number that makes the simulator do ``behaviour``.

    ``hold_s`` (1-59 s) is required for :attr:`Behaviour.HOLD` and ignored for the others
    (so one call can build a mix). ``serial`` (0-9999) only makes the number unique.
    """
    if not 0 <= serial < SERIALS:
        raise ValueError(f"serial must be 0..{SERIALS - 1}, got {serial}")
    if behaviour is Behaviour.HOLD:
        if hold_s is None or not HOLD_MIN_S <= hold_s <= HOLD_MAX_S:
            raise ValueError(f"HOLD needs hold_s in {HOLD_MIN_S}..{HOLD_MAX_S}, got {hold_s}")
        code = f"{hold_s:02d}"
    else:
        code = entry(behaviour).code
    return f"{PREFIX}{code}{serial:04d}"


@dataclass(frozen=True, slots=True)
class Parsed:
    behaviour: Behaviour | None  # None: outside the plan (the simulator answers 500)
    serial: int
    hold_s: int | None = None


def parse(dialed: str) -> Parsed | None:
    """The behaviour a number asks for; None if it is not a ``+12015BBSSSS`` number."""
    m = _NUMBER.match(dialed)
    if m is None:
        return None
    code, serial = m.group(1), int(m.group(2))
    value = int(code)
    if HOLD_MIN_S <= value <= HOLD_MAX_S:
        return Parsed(Behaviour.HOLD, serial, value)
    for e in PLAN:
        if e.code == code:
            return Parsed(e.behaviour, serial)
    return Parsed(None, serial)
