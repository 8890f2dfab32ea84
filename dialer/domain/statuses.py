"""Status vocabularies: campaigns, recipient lists, contacts and call attempts.

Values are stable strings: they are stored in Redis, shown in the API and used as metric labels.
"""

from __future__ import annotations

from enum import StrEnum


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"  # start requested, calling window not open yet
    RUNNING = "running"
    PAUSING = "pausing"  # pause requested: no new originate, in-flight calls draining
    PAUSED = "paused"
    CANCELLING = "cancelling"  # stop/cancel requested: draining, then undialed -> Not dialed
    COMPLETED = "completed"  # every contact final
    CANCELLED = "cancelled"  # stopped by a person: irreversible

    @property
    def is_final(self) -> bool:
        return self in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED)

    @property
    def label(self) -> str:
        return _CAMPAIGN_LABELS[self]


_CAMPAIGN_LABELS = {
    CampaignStatus.DRAFT: "Draft",
    CampaignStatus.SCHEDULED: "Scheduled",
    CampaignStatus.RUNNING: "Running",
    CampaignStatus.PAUSING: "Pausing",
    CampaignStatus.PAUSED: "Paused",
    CampaignStatus.CANCELLING: "Cancelling",
    CampaignStatus.COMPLETED: "Completed",
    CampaignStatus.CANCELLED: "Cancelled",
}


class ListStatus(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"  # never restarts; its undialed contacts are Not dialed


class CallStatus(StrEnum):
    """Status of one attempt and, after it, of the contact."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    ANSWERED = "answered"  # a human answered
    ANSWERED_CUT = "answered_cut"  # answered, then cut by a PBX failure (its end never reported)
    COMPLETED = "completed"  # answered, the dialplan reported its goal achieved
    FAILED = "failed"  # answered, the dialplan reported its goal not achieved
    # answering machine detected; as a contact status: its last attempt ended on voicemail
    VOICEMAIL = "voicemail"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"  # declined by the callee or the network (603, 21, ...)
    INVALID_NUMBER = "invalid_number"
    TECHNICAL_ERROR = "technical_error"  # congestion, trunk, network, originate failure
    RETRY_SCHEDULED = "retry_scheduled"  # another attempt scheduled
    COMPLETED_NO_ANSWER = "completed_no_answer"  # attempts exhausted
    RESCHEDULED = "rescheduled"  # callback time set by the dialplan
    DO_NOT_CALL = "do_not_call"
    NOT_DIALED = "not_dialed"  # campaign or list stopped first
    PLAN_LIMIT_EXCEEDED = "plan_limit_exceeded"
    # no engine saw the call end and the switch kept no record of it: never redialed on its own
    OUTCOME_UNKNOWN = "outcome_unknown"
    REMOVED = "removed"  # taken out of a Draft or Paused campaign: never dialed again

    @property
    def label(self) -> str:
        return _CALL_LABELS[self]


_CALL_LABELS = {
    CallStatus.PENDING: "Pending",
    CallStatus.IN_PROGRESS: "In progress",
    CallStatus.ANSWERED: "Answered",
    CallStatus.ANSWERED_CUT: "Answered, cut by a PBX failure",
    CallStatus.COMPLETED: "Completed (goal achieved)",
    CallStatus.FAILED: "Failed (goal not achieved)",
    CallStatus.VOICEMAIL: "Voicemail",
    CallStatus.BUSY: "Busy",
    CallStatus.NO_ANSWER: "No answer",
    CallStatus.REJECTED: "Rejected",
    CallStatus.INVALID_NUMBER: "Invalid number",
    CallStatus.TECHNICAL_ERROR: "Technical error",
    CallStatus.RETRY_SCHEDULED: "Another attempt scheduled",
    CallStatus.COMPLETED_NO_ANSWER: "Completed without answer",
    CallStatus.RESCHEDULED: "Rescheduled",
    CallStatus.DO_NOT_CALL: "Do not call",
    CallStatus.NOT_DIALED: "Not dialed",
    CallStatus.PLAN_LIMIT_EXCEEDED: "Plan limit exceeded",
    CallStatus.OUTCOME_UNKNOWN: "Outcome unknown",
    CallStatus.REMOVED: "Removed",
}
