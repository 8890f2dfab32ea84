"""Campaign and recipient-list lifecycles as transition tables.

Every allowed (status, command) pair is one row of :data:`CAMPAIGN_TRANSITIONS`; anything else
raises :class:`~dialer.errors.TransitionRefused` with a sentence naming the current status.

::

    Draft ──START──> Running            (calling window open)
    Draft ──START──> Scheduled          (calling window closed)
    Scheduled ──WINDOW_OPENED──> Running ──WINDOW_CLOSED──> Scheduled
    Scheduled/Running ──PAUSE──> Pausing ──DRAINED──> Paused
    Pausing/Paused ──RESUME──> Running  (Scheduled if the window is closed)
    Scheduled/Running/Pausing/Paused ──STOP──> Cancelling ──DRAINED──> Cancelled
    Scheduled/Running ──COMPLETE──> Completed
    Scheduled/Running ──END──> Cancelling ──DRAINED──> Cancelled   (end date passed)
    Draft/Paused ──EDIT──> (same status)

Choices (the product spec left them open):

- START carries the window in :class:`TransitionContext`; one row, two targets.
- WINDOW_CLOSED goes straight from Running to Scheduled, without a draining state: Scheduled
  already means "no new originate", and calls still in flight finish and are recorded whatever
  the campaign status is. For the same reason Scheduled accepts PAUSE (-> Pausing, the engine
  sends DRAINED at once when nothing is in flight), STOP and COMPLETE (the last in-flight calls
  may finish every contact after the window closed).
- RESUME while the window is closed goes to Scheduled, not Running.
- START and RESUME are refused once the campaign can never dial again (its end date passed, or
  no calling hours are left before it): edit ``ends_at`` while Draft or Paused.
- END (engine: the end date passed, or no calling hours are left before it) finishes the
  campaign as a stop without hang-up does: calls in flight finish, the contacts never
  dialed become Not dialed, and it ends Cancelled with the reason "end date passed" (it did
  not complete its contacts; like a stop, it is final).
- A Draft campaign cannot be stopped: it never called anyone; delete or edit it instead.
- DELETE never changes the status. From Draft, Completed and Cancelled (nothing can be in flight)
  the result has ``deletes=True``; from every other status it has ``requires_cancel_first=True``:
  the caller sends STOP (unless already Cancelling), waits for Cancelled, then deletes.
- Repeated commands (PAUSE while Pausing, STOP while Cancelling) are refused, not ignored.
- The engine's own commands (WINDOW_*, DRAINED, COMPLETE) may race with a person's; the engine
  treats a refusal of its own command as "the status moved on" and re-reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from dialer.domain.statuses import CampaignStatus, ListStatus
from dialer.errors import TransitionRefused

__all__ = [
    "CAMPAIGN_TRANSITIONS",
    "LIST_TRANSITIONS",
    "CampaignCommand",
    "ListCommand",
    "Transition",
    "TransitionContext",
    "TransitionResult",
    "allowed_commands",
    "apply",
    "next_list_status",
    "next_status",
]


class CampaignCommand(StrEnum):
    START = "start"
    WINDOW_OPENED = "window_opened"  # engine: the calling window opened
    WINDOW_CLOSED = "window_closed"  # engine: the calling window closed
    PAUSE = "pause"
    RESUME = "resume"
    DRAINED = "drained"  # engine: no call in flight any more
    STOP = "stop"  # cancel by a person: permanent
    COMPLETE = "complete"  # engine: every contact is final
    END = "end"  # engine: the end date passed (no calling hours left)
    DELETE = "delete"
    EDIT = "edit"  # settings or contacts edit


@dataclass(frozen=True, slots=True)
class TransitionContext:
    """Facts a command's outcome depends on (only START and RESUME read them)."""

    window_open: bool = True
    dialable_contacts: int = 0
    ended: bool = False  # the end date passed: the campaign can never dial again


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the table: where a command leads from a status."""

    target: CampaignStatus
    target_window_closed: CampaignStatus | None = None  # target when the window is closed
    requires_dialable: bool = False  # refused unless ctx.dialable_contacts >= 1
    refused_when_ended: bool = False  # refused when ctx.ended
    deletes: bool = False  # DELETE may proceed now
    requires_cancel_first: bool = False  # DELETE: STOP, wait for Cancelled, then delete

    def target_for(self, ctx: TransitionContext) -> CampaignStatus:
        if not ctx.window_open and self.target_window_closed is not None:
            return self.target_window_closed
        return self.target


@dataclass(frozen=True, slots=True)
class TransitionResult:
    status: CampaignStatus
    deletes: bool = False
    requires_cancel_first: bool = False


def _campaign_table() -> Mapping[tuple[CampaignStatus, CampaignCommand], Transition]:
    s, c = CampaignStatus, CampaignCommand
    cancel_first = {
        (status, c.DELETE): Transition(status, requires_cancel_first=True)
        for status in (s.SCHEDULED, s.RUNNING, s.PAUSING, s.PAUSED, s.CANCELLING)
    }
    delete_now = {
        (status, c.DELETE): Transition(status, deletes=True)
        for status in (s.DRAFT, s.COMPLETED, s.CANCELLED)
    }
    rows = {
        (s.DRAFT, c.START): Transition(
            s.RUNNING,
            target_window_closed=s.SCHEDULED,
            requires_dialable=True,
            refused_when_ended=True,
        ),
        (s.DRAFT, c.EDIT): Transition(s.DRAFT),
        (s.SCHEDULED, c.WINDOW_OPENED): Transition(s.RUNNING),
        (s.SCHEDULED, c.PAUSE): Transition(s.PAUSING),
        (s.SCHEDULED, c.STOP): Transition(s.CANCELLING),
        (s.SCHEDULED, c.COMPLETE): Transition(s.COMPLETED),
        (s.SCHEDULED, c.END): Transition(s.CANCELLING),
        (s.RUNNING, c.WINDOW_CLOSED): Transition(s.SCHEDULED),
        (s.RUNNING, c.PAUSE): Transition(s.PAUSING),
        (s.RUNNING, c.STOP): Transition(s.CANCELLING),
        (s.RUNNING, c.COMPLETE): Transition(s.COMPLETED),
        (s.RUNNING, c.END): Transition(s.CANCELLING),
        (s.PAUSING, c.DRAINED): Transition(s.PAUSED),
        (s.PAUSING, c.RESUME): Transition(
            s.RUNNING, target_window_closed=s.SCHEDULED, refused_when_ended=True
        ),
        (s.PAUSING, c.STOP): Transition(s.CANCELLING),
        (s.PAUSED, c.RESUME): Transition(
            s.RUNNING, target_window_closed=s.SCHEDULED, refused_when_ended=True
        ),
        (s.PAUSED, c.STOP): Transition(s.CANCELLING),
        (s.PAUSED, c.EDIT): Transition(s.PAUSED),
        (s.CANCELLING, c.DRAINED): Transition(s.CANCELLED),
    }
    return MappingProxyType(rows | cancel_first | delete_now)


CAMPAIGN_TRANSITIONS: Mapping[tuple[CampaignStatus, CampaignCommand], Transition] = (
    _campaign_table()
)

_NO_CONTEXT = TransitionContext()

_VERBS = {
    CampaignCommand.START: "start",
    CampaignCommand.WINDOW_OPENED: "open the calling window",
    CampaignCommand.WINDOW_CLOSED: "close the calling window",
    CampaignCommand.PAUSE: "pause",
    CampaignCommand.RESUME: "resume",
    CampaignCommand.DRAINED: "finish draining",
    CampaignCommand.STOP: "stop",
    CampaignCommand.COMPLETE: "complete",
    CampaignCommand.END: "end at the end date",
    CampaignCommand.DELETE: "delete",
    CampaignCommand.EDIT: "edit",
}


def allowed_commands(status: CampaignStatus) -> frozenset[CampaignCommand]:
    """Commands with a row for ``status`` (START may still be refused for want of contacts)."""
    return frozenset(cmd for (st, cmd) in CAMPAIGN_TRANSITIONS if st is status)


def _refusal(current: CampaignStatus, command: CampaignCommand) -> TransitionRefused:
    label = current.label
    if command is CampaignCommand.EDIT:
        message = f"campaign is {label}; settings can be edited only in Draft or Paused"
    elif current.is_final:
        message = f"cannot {_VERBS[command]}: campaign is {label}, which is final (delete only)"
    elif current is CampaignStatus.DRAFT and command is CampaignCommand.STOP:
        message = "cannot stop: campaign is Draft and never started; delete it instead"
    else:
        where = sorted(
            (st for (st, cmd) in CAMPAIGN_TRANSITIONS if cmd is command),
            key=list(CampaignStatus).index,
        )
        labels = " or ".join(st.label for st in where)
        message = f"cannot {_VERBS[command]}: campaign is {label}; allowed only in {labels}"
    return TransitionRefused(message, status=current, command=command)


def apply(
    current: CampaignStatus,
    command: CampaignCommand,
    ctx: TransitionContext = _NO_CONTEXT,
) -> TransitionResult:
    """Resolve ``command`` from ``current``; raise TransitionRefused if the table forbids it."""
    row = CAMPAIGN_TRANSITIONS.get((current, command))
    if row is None:
        raise _refusal(current, command)
    if row.requires_dialable and ctx.dialable_contacts < 1:
        raise TransitionRefused(
            f"cannot start: campaign is {current.label} but has no dialable contact; "
            "add contacts first",
            status=current,
            command=command,
        )
    if row.refused_when_ended and ctx.ended:
        raise TransitionRefused(
            f"cannot {_VERBS[command]}: campaign {current.label} can never dial again (its "
            "end date passed, or no calling hours are left before it); edit ends_at first",
            status=current,
            command=command,
        )
    return TransitionResult(
        status=row.target_for(ctx),
        deletes=row.deletes,
        requires_cancel_first=row.requires_cancel_first,
    )


def next_status(
    current: CampaignStatus,
    command: CampaignCommand,
    ctx: TransitionContext = _NO_CONTEXT,
) -> CampaignStatus:
    """The status after ``command``. DELETE leaves it unchanged: read :func:`apply`'s flags."""
    return apply(current, command, ctx).status


class ListCommand(StrEnum):
    STOP = "stop"  # its undialed contacts become Not dialed; never restarts
    RESTART = "restart"  # never allowed: listed so that the refusal is explicit
    ADD_CONTACTS = "add_contacts"


LIST_TRANSITIONS: Mapping[tuple[ListStatus, ListCommand], ListStatus] = MappingProxyType(
    {
        (ListStatus.ACTIVE, ListCommand.STOP): ListStatus.STOPPED,
        (ListStatus.ACTIVE, ListCommand.ADD_CONTACTS): ListStatus.ACTIVE,
    }
)


def next_list_status(list_id: int | str, current: ListStatus, command: ListCommand) -> ListStatus:
    """The list's status after ``command``; a stopped list is final."""
    target = LIST_TRANSITIONS.get((current, command))
    if target is not None:
        return target
    if current is ListStatus.STOPPED:
        message = f"list {list_id} is stopped; re-add the contacts as a new list"
    else:  # only (ACTIVE, RESTART) is left
        message = f"list {list_id} is active; there is nothing to restart"
    raise TransitionRefused(message, status=current, command=command)
