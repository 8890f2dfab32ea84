"""Callbacks set by people (API, CLI): when one may dial, and what cancelling it does.

A callback is a contact in status Rescheduled, queued at its due time like a retry (the
campaign's ``dial_order`` then puts it before fresh contacts: ``retries_first``). The dialplan
sets one when the person asks for it by DTMF (:class:`~dialer.domain.calls.DialplanResult`);
an operator sets, moves or cancels one through the API or ``dialer callback``.

Rules (:func:`plan_callback`):

- the time asked for must carry a UTC offset and must not be in the past (a grace of
  :data:`PAST_GRACE_S` for the clocks of the client and the server);
- it must come before the campaign's end date;
- a time outside the calling hours (or before the start date) is moved to the next opening,
  and the answer says so (``moved``); with no opening left before the end date it is refused.

The claim script never dials a contact before its queue time, nor while the campaign's hours
are closed (its claim deadline), so the contact is dialed at ``due`` at the earliest.

Cancelling is an undo: the contact returns to what it was before the operator set the callback
(a fresh contact is queued again at its first due time, a retry at its retry time, a final
contact keeps its final status). A callback the dialplan set has no
such earlier state (the person answered and asked for it): cancelling ends the contact as
Answered (:data:`CANCELLED_DIALPLAN_STATUS`). To never call a number again use do-not-call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from dialer.domain.campaign import CampaignSettings
from dialer.domain.hours import parse_instant
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.errors import ValidationError

__all__ = [
    "CALLBACK_CAMPAIGN_STATUSES",
    "CANCELLED_DIALPLAN_STATUS",
    "PAST_GRACE_S",
    "CallbackPlan",
    "CallbackSource",
    "plan_callback",
]

PAST_GRACE_S = 1.0

#: Campaign statuses in which callbacks may be set, moved or cancelled (a stopping or
#: finished campaign dials nothing more).
CALLBACK_CAMPAIGN_STATUSES = frozenset(
    {
        CampaignStatus.DRAFT,
        CampaignStatus.SCHEDULED,
        CampaignStatus.RUNNING,
        CampaignStatus.PAUSING,
        CampaignStatus.PAUSED,
    }
)

CANCELLED_DIALPLAN_STATUS = CallStatus.ANSWERED


class CallbackSource(StrEnum):
    OPERATOR = "operator"  # API or CLI
    DIALPLAN = "dialplan"  # the callee asked by DTMF


@dataclass(frozen=True, slots=True)
class CallbackPlan:
    """When a callback asked for at ``requested`` dials: ``due`` (epoch seconds); ``moved``
    when the calling hours moved it (``reason`` says why)."""

    requested: float
    due: float
    reason: str = ""

    @property
    def moved(self) -> bool:
        return bool(self.reason)

    @property
    def requested_ms(self) -> int:
        return round(self.requested * 1000)

    @property
    def due_ms(self) -> int:
        return round(self.due * 1000)


def iso(epoch: float, like: datetime | None = None) -> str:
    """``epoch`` as ISO 8601 with an offset: that of ``like``, else UTC."""
    zone = like.tzinfo if like is not None else UTC
    return datetime.fromtimestamp(epoch, zone).isoformat()


def plan_callback(at: object, *, now: float, settings: CampaignSettings) -> CallbackPlan:
    """Check a callback time (ISO 8601 text with its offset, or an aware datetime) against
    ``now`` (epoch seconds, the store's clock) and the campaign's dates and hours."""
    moment = parse_instant(at, "at")
    requested = moment.timestamp()
    if requested < now - PAST_GRACE_S:
        raise ValidationError(
            f"at ({moment.isoformat()}) is in the past (now is {iso(now, moment)})"
        )
    ends = settings.ends_at
    if ends is not None and requested >= ends.timestamp():
        raise ValidationError(
            f"at ({moment.isoformat()}) is not before the campaign's end date ({ends.isoformat()})"
        )
    due = max(requested, now)
    hours = settings.availability(due)
    if hours.open:
        return CallbackPlan(requested, due)
    if hours.opens_at is None:
        raise ValidationError(
            f"at ({moment.isoformat()}): {hours.reason or 'no calling hours left'}; "
            "no opening is left before the campaign's end date"
        )
    reason = f"{hours.reason}: moved to the next opening" if hours.reason else "moved"
    return CallbackPlan(requested, hours.opens_at, reason)
