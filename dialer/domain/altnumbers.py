"""Several numbers per contact: which outcome moves the next attempt to the next number, when.

A contact may carry an ordered list of numbers, each with a label (``phone`` ``mobile``,
``home``...): the first is the main number. Operators know the model from VICIdial's "alt number
dialing": after a *no-contact* outcome the next attempt dials the contact's next number; after
the last one it goes back to the first. One attempt budget per contact: ``retry.max_attempts``
counts the attempts made to all its numbers together (:mod:`dialer.domain.retry` decides as
before; this module only says whether the next attempt moves on, and when it is due).

No-contact outcomes (the next attempt moves to the next number):

- Busy, No answer: the person was not reached on this number.
- Invalid number (SIP 404/410/484/604): this number can never be reached; it is skipped from
  then on (its last result stays ``invalid_number``), and the contact goes on with its other
  numbers. Today such an outcome is final; with another number left it is not. It uses no
  attempt, as before.
- A technical error the callee's side answered (a SIP final response: 5xx, 403...): the far
  end could not take this number's call. A technical error without a SIP response (the
  originate failed on our side, the call was lost with a PBX) redials the same number: the
  number is not to blame.
- Voicemail, only when the campaign says so (``alt_on_voicemail``, default false, as in
  VICIdial whose default alt-dial statuses leave answering machines out): the mailbox shows
  the number is the person's own, so by default it stays.

Anything else (answered, a goal result, a callback, do not call) ends or reschedules the
contact as today, on the same number.

When the next number is dialed (the campaign's ``alt_dial``):

- ``now`` (default, VICIdial's "dial alternates right away"): the next number of the list is
  due at once (within the campaign's hours), as a retry; going back to the first number waits
  for the retry delay. A round of the contact's numbers is thus dialed back to back, and the
  rounds are spaced by the retry rules.
- ``retry_delay``: every next number waits for the retry delay, as a redial of one number does.

The store applies it (``finish.lua``): it skips the numbers that are on a do-not-call list or
known invalid, records the number and label each attempt dialed, and moves the contact's time
zone group to the dialed number's (local calling hours follow the number dialed). A number
listed after the contact moved on to it is skipped the same way when the contact is claimed
(``claim.lua``): the next usable number is dialed instead, no attempt used for the listed one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from dialer.domain.outcome import Classification
from dialer.domain.retry import Decision
from dialer.domain.statuses import CallStatus
from dialer.errors import ValidationError

__all__ = ["MAX_NUMBERS", "AltDial", "ContactNumber", "NextNumber", "next_number", "check_label"]

#: The most numbers one contact may carry (the main number and its alternates).
MAX_NUMBERS = 10
_MAX_LABEL = 64


class AltDial(enum.StrEnum):
    """When the next number of a contact is dialed after a no-contact outcome."""

    NOW = "now"
    RETRY_DELAY = "retry_delay"


@dataclass(frozen=True, slots=True)
class ContactNumber:
    """One of a contact's numbers, as its view shows it: ``tries`` calls made to it, the
    ``last_status`` of the latest (the attempt's outcome status, ``do_not_call`` when it was
    skipped as listed, "" before any), ``current`` for the number the next attempt dials."""

    number: str
    label: str
    tries: int = 0
    last_status: str = ""
    current: bool = False


@dataclass(frozen=True, slots=True)
class NextNumber:
    """The next attempt moves to the contact's next number, if it has one: due at ``at``
    (epoch seconds) as a retry (the store goes back to the first number, and to the decided
    retry time, when the list is done)."""

    at: float


def check_label(label: object, what: str) -> str:
    """A number's label: printable text of at most 64 characters."""
    if not isinstance(label, str) or not label.isprintable() or len(label) > _MAX_LABEL:
        raise ValidationError(f"{what} must be printable text of at most {_MAX_LABEL} characters")
    return label


def next_number(
    outcome: Classification,
    decision: Decision,
    *,
    now: float,
    alt_dial: AltDial,
    on_voicemail: bool,
    sip_code: int | None,
) -> NextNumber | None:
    """Whether the attempt that ended at ``now`` as ``outcome`` (decided as ``decision``) moves
    the contact on to its next number, and when that is due; None: it stays as decided.

    The budget is untouched: a budgeted outcome moves on only when ``decision`` retries. An
    invalid number moves on though ``decision`` is final (it used no attempt)."""
    status = outcome.status
    if status is CallStatus.INVALID_NUMBER:
        return NextNumber(now)
    if decision.retry_at is None or decision.contact_status is not CallStatus.RETRY_SCHEDULED:
        return None
    moves = status in (CallStatus.BUSY, CallStatus.NO_ANSWER) or (
        status is CallStatus.VOICEMAIL and on_voicemail
    )
    if status is CallStatus.TECHNICAL_ERROR and sip_code is not None:
        moves = True  # the callee's side answered with a failure: not our trunk's fault
    if not moves:
        return None
    return NextNumber(now if alt_dial is AltDial.NOW else decision.retry_at)
