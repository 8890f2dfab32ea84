"""Recycling a finished or stopped list, and removing contacts: the rules, no I/O.

A stopped list never restarts, and a Completed or Cancelled campaign is final, so recycling
copies the chosen contacts into a NEW list (of the same campaign while it is Draft or Paused,
or of another Draft or Paused campaign, or of a new Draft campaign). Each copy is a new contact
(new id, attempts from zero) that names the one it came from (``recycled_from``
``"{campaign}:{contact}"``); the old contact, its status and its call records stay as they
were, so its history reads on. Removal marks a contact Removed: it leaves the dial queue, keeps
its records, and is never dialed again.
"""

from __future__ import annotations

from collections.abc import Iterable

from dialer.domain.statuses import CallStatus
from dialer.errors import ValidationError

#: Contact statuses a recycle may take: final, and dialable again. Never taken: queued or live
#: contacts (pending, in progress, retry scheduled, rescheduled), do-not-call, invalid numbers
#: and removed contacts.
RECYCLABLE = frozenset(
    {
        CallStatus.ANSWERED,
        CallStatus.ANSWERED_CUT,
        CallStatus.VOICEMAIL,
        CallStatus.BUSY,
        CallStatus.NO_ANSWER,
        CallStatus.REJECTED,
        CallStatus.TECHNICAL_ERROR,
        CallStatus.COMPLETED_NO_ANSWER,
        CallStatus.NOT_DIALED,
        CallStatus.PLAN_LIMIT_EXCEEDED,
        CallStatus.OUTCOME_UNKNOWN,
    }
)
#: Statuses of a contact still queued or in a call: a list holding one is not finished.
NOT_FINISHED = frozenset(
    {
        CallStatus.PENDING,
        CallStatus.IN_PROGRESS,
        CallStatus.RETRY_SCHEDULED,
        CallStatus.RESCHEDULED,
    }
)
#: Attempt outcomes a contact whose attempts ran out ("Completed without answer") is matched
#: by: its last attempt's outcome (busy, no answer...) is what an operator recycles by.
LAST_OUTCOME = frozenset(
    {
        CallStatus.VOICEMAIL,
        CallStatus.BUSY,
        CallStatus.NO_ANSWER,
        CallStatus.REJECTED,
        CallStatus.TECHNICAL_ERROR,
    }
)
MAX_REMOVE = 10_000  # contact ids or phones one bulk removal may name


def recyclable_statuses(values: Iterable[str]) -> frozenset[CallStatus]:
    """The statuses named (CallStatus values), checked: ValidationError names a bad one."""
    chosen: set[CallStatus] = set()
    for value in values:
        try:
            status = CallStatus(value)
        except ValueError:
            raise ValidationError(
                f"statuses: {str(value)[:40]!r} is not a contact status"
            ) from None
        if status not in RECYCLABLE:
            allowed = ", ".join(sorted(s.value for s in RECYCLABLE))
            raise ValidationError(
                f"statuses: {status.value} contacts cannot be recycled; choose among {allowed}"
            )
        chosen.add(status)
    if not chosen:
        raise ValidationError("statuses: name at least one contact status to recycle")
    return frozenset(chosen)


def matches(
    status: CallStatus, last_outcome: CallStatus | None, chosen: frozenset[CallStatus]
) -> bool:
    """Whether a contact in ``status`` (its last attempt ended ``last_outcome``) is taken."""
    if status in chosen:
        return True
    return (
        status is CallStatus.COMPLETED_NO_ANSWER
        and last_outcome is not None
        and last_outcome in chosen
        and last_outcome in LAST_OUTCOME
    )
