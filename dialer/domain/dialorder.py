"""Dial order: which due contact a claim takes first, a due retry or a fresh contact.

Every contact waits in one queue ordered by due time: a fresh contact is due from its upload,
a retry (or a callback) from its retry time. Strictly by due time, a retry due now waits behind
every fresh contact uploaded before it: with the rate as the bottleneck it is dialed minutes
late. The campaign's ``dial_order`` says what goes first (VICIdial's "List Order" and its
"2nd NEW" / "3rd NEW" variants are the operators' reference):

``retries_first`` (default)
    a due retry goes before every due fresh contact (VICIdial's recycled leads and callbacks
    enter the hopper ahead of new leads): retries are dialed at their time whenever the
    campaign has capacity.
``due_time``
    strictly by due time, oldest first (VICIdial "DOWN"): the order before this setting;
    a retry waits behind fresh contacts that were due before it.
``interleave``
    while retries and fresh contacts are both due, one claim in every ``new_every`` takes the
    head of the queue (in practice a fresh contact) and the others take due retries (VICIdial
    "DOWN COUNT 2nd NEW" with ``new_every`` = 2, "3rd NEW" with 3, ...).

The setting is read by claim.lua from the campaign's stored settings (one atomic step).
"""

from __future__ import annotations

from enum import StrEnum

from dialer.errors import ValidationError

NEW_EVERY_MIN, NEW_EVERY_MAX = 2, 100
NEW_EVERY_DEFAULT = 3


class DialOrder(StrEnum):
    RETRIES_FIRST = "retries_first"
    DUE_TIME = "due_time"
    INTERLEAVE = "interleave"


def check_dial_order(value: object) -> DialOrder:
    """``value`` as a :class:`DialOrder`; ValidationError naming ``dial_order`` otherwise."""
    if isinstance(value, str):
        try:
            return DialOrder(value)
        except ValueError:
            pass
    choices = ", ".join(o.value for o in DialOrder)
    raise ValidationError(f"dial_order must be one of {choices}, got {value!r}")


def check_new_every(value: object) -> int:
    """A whole number from 2 to 100 (one claim in ``value`` is a fresh contact)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not NEW_EVERY_MIN <= value <= NEW_EVERY_MAX
    ):
        raise ValidationError(
            f"new_every must be a whole number from {NEW_EVERY_MIN} to {NEW_EVERY_MAX}, "
            f"got {value!r}"
        )
    return value
