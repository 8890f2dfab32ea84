"""Campaign analytics: contact counts, attempt statistics and progress, from the store.

:func:`campaign_analytics` reads the contact counts and queue of a campaign and streams its
call records page by page (a million records never sit in memory at once; only the answered
calls' durations are kept, 8 bytes each, for exact percentiles). Everything else here is pure
computation over those inputs (:class:`RecordTally`, :func:`build_analytics`).

Definitions:

- **success rate**: contacts whose status is Answered, divided by the contacts that finished
  after being called: Answered, Voicemail, Busy, No answer, Rejected, Technical error and
  Completed without answer (:data:`DIALED_FINAL`). Contacts never called or not callable
  (Invalid number, Do not call, Not dialed, Plan limit exceeded) and contacts still queued are
  left out. ``None`` while no contact has finished.
- **attempts**: one per call record; per status (the attempt's status, ``status`` field) and per
  UTC day of ``ended_ms`` (records without it are counted in the totals but on no day).
- **talk duration**: ``duration_s`` of attempts whose status is Answered (a person answered);
  mean and nearest-rank p50 / p90 (the value at rank ``ceil(p/100 * n)`` of the sorted list).
- **human / voicemail answers**: attempts with status Answered / Voicemail; ``amd`` counts the
  ``amd_status`` of those attempts (``"none"``: AMD did not run).
- **abandon rate**: as ``dialer_abandon_rate`` in :mod:`dialer.metrics`: answered attempts (a
  person answered) that the dialer hung up before connecting them to anything, divided by
  answered attempts. Records say so with ``abandoned=1``; the engine does not write that field
  yet (with no agents, only a stop with hang-up can abandon a call, and the record does not tell
  it apart from the callee hanging up), so today ``abandoned`` is 0 and the rate 0.0 once
  anything was answered (``None`` before).
- **queue**: Pending and Another-attempt-scheduled contact counts, calls in flight (channel
  leases held), contacts due now and the next due time.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dialer.domain.statuses import CallStatus
from dialer.store.models import QueueStats
from dialer.store.redis_store import RedisStore

__all__ = [
    "DIALED_FINAL",
    "CampaignAnalytics",
    "DayProgress",
    "DurationStats",
    "QueueView",
    "RecordTally",
    "build_analytics",
    "campaign_analytics",
    "nearest_rank",
]

S = CallStatus
#: A person answered: plain Answered, or the dialplan's goal result (Completed / Failed).
ANSWERED = frozenset({S.ANSWERED, S.COMPLETED, S.FAILED})
#: Final contact statuses reached by calling: the success rate's denominator.
DIALED_FINAL = frozenset(
    {
        *ANSWERED,
        S.VOICEMAIL,
        S.BUSY,
        S.NO_ANSWER,
        S.REJECTED,
        S.TECHNICAL_ERROR,
        S.COMPLETED_NO_ANSWER,
    }
)
NO_AMD = "none"
PAGE = 1000


@dataclass(frozen=True, slots=True)
class DayProgress:
    day: str  # YYYY-MM-DD, UTC
    attempts: int
    answered: int


@dataclass(frozen=True, slots=True)
class DurationStats:
    count: int
    mean_s: float | None
    p50_s: float | None
    p90_s: float | None


@dataclass(frozen=True, slots=True)
class QueueView:
    pending: int
    retry_scheduled: int
    in_flight: int
    due_now: int
    next_due_ms: int | None


@dataclass(frozen=True, slots=True)
class CampaignAnalytics:
    campaign_id: int
    contacts: Mapping[CallStatus, int]
    contacts_total: int
    contacts_finished: int  # success rate denominator (DIALED_FINAL)
    contacts_answered: int
    success_rate: float | None
    attempts_total: int
    attempts_by_status: Mapping[str, int]
    per_day: tuple[DayProgress, ...]
    talk: DurationStats
    human_answers: int
    voicemail_answers: int
    amd: Mapping[str, int]
    abandoned: int
    abandon_rate: float | None
    queue: QueueView

    def to_dict(self) -> dict[str, object]:
        """JSON-safe: statuses as their stable string values."""
        return {
            "campaign_id": self.campaign_id,
            "contacts": {s.value: n for s, n in self.contacts.items()},
            "contacts_total": self.contacts_total,
            "contacts_finished": self.contacts_finished,
            "contacts_answered": self.contacts_answered,
            "success_rate": self.success_rate,
            "attempts_total": self.attempts_total,
            "attempts_by_status": dict(self.attempts_by_status),
            "per_day": [
                {"day": d.day, "attempts": d.attempts, "answered": d.answered} for d in self.per_day
            ],
            "talk": {
                "count": self.talk.count,
                "mean_s": self.talk.mean_s,
                "p50_s": self.talk.p50_s,
                "p90_s": self.talk.p90_s,
            },
            "human_answers": self.human_answers,
            "voicemail_answers": self.voicemail_answers,
            "amd": dict(self.amd),
            "abandoned": self.abandoned,
            "abandon_rate": self.abandon_rate,
            "queue": {
                "pending": self.queue.pending,
                "retry_scheduled": self.queue.retry_scheduled,
                "in_flight": self.queue.in_flight,
                "due_now": self.queue.due_now,
                "next_due_ms": self.queue.next_due_ms,
            },
        }


def nearest_rank(ordered: array[float] | list[float], percent: float) -> float | None:
    """The nearest-rank percentile of an already sorted sequence (None when empty)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


@dataclass(slots=True)
class RecordTally:
    """Accumulates call records (flat string dicts, as written by the engine)."""

    attempts: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    day_attempts: Counter[str] = field(default_factory=Counter)
    day_answered: Counter[str] = field(default_factory=Counter)
    amd: Counter[str] = field(default_factory=Counter)
    abandoned: int = 0
    talk: array[float] = field(default_factory=lambda: array("d"))

    def add(self, record: Mapping[str, str]) -> None:
        self.attempts += 1
        status = record.get("status", "")
        self.by_status[status] += 1
        answered = status in ANSWERED
        ended = _float(record.get("ended_ms"))
        if ended is not None:
            day = datetime.fromtimestamp(ended / 1000, UTC).strftime("%Y-%m-%d")
            self.day_attempts[day] += 1
            if answered:
                self.day_answered[day] += 1
        if answered or status == S.VOICEMAIL:
            self.amd[record.get("amd_status") or NO_AMD] += 1
        if answered:
            if record.get("abandoned") == "1":
                self.abandoned += 1
            duration = _float(record.get("duration_s"))
            if duration is not None:
                self.talk.append(duration)

    def durations(self) -> DurationStats:
        ordered = sorted(self.talk)
        if not ordered:
            return DurationStats(0, None, None, None)
        mean = math.fsum(ordered) / len(ordered)
        return DurationStats(
            len(ordered), mean, nearest_rank(ordered, 50), nearest_rank(ordered, 90)
        )


def build_analytics(
    cid: int, counts: Mapping[CallStatus, int], queue: QueueStats, tally: RecordTally
) -> CampaignAnalytics:
    """The analytics of a campaign from its contact counts, queue and tallied records."""
    full = {s: int(counts.get(s, 0)) for s in CallStatus}
    finished = sum(full[s] for s in DIALED_FINAL)
    answered_contacts = sum(full[s] for s in ANSWERED)
    human = sum(tally.by_status[s.value] for s in ANSWERED)
    days = sorted(tally.day_attempts)
    return CampaignAnalytics(
        campaign_id=cid,
        contacts=full,
        contacts_total=sum(full.values()),
        contacts_finished=finished,
        contacts_answered=answered_contacts,
        success_rate=answered_contacts / finished if finished else None,
        attempts_total=tally.attempts,
        attempts_by_status=dict(sorted(tally.by_status.items())),
        per_day=tuple(DayProgress(d, tally.day_attempts[d], tally.day_answered[d]) for d in days),
        talk=tally.durations(),
        human_answers=human,
        voicemail_answers=tally.by_status[S.VOICEMAIL.value],
        amd=dict(sorted(tally.amd.items())),
        abandoned=tally.abandoned,
        abandon_rate=tally.abandoned / human if human else None,
        queue=QueueView(
            pending=full[S.PENDING],
            retry_scheduled=full[S.RETRY_SCHEDULED],
            in_flight=queue.inflight,
            due_now=queue.pending_due_now,
            next_due_ms=queue.next_due_ms,
        ),
    )


async def campaign_analytics(store: RedisStore, cid: int, *, page: int = PAGE) -> CampaignAnalytics:
    """Analytics of campaign ``cid`` (NotFound if it does not exist); records read by pages."""
    counts = await store.counts(cid)
    queue = await store.queue_stats(cid)
    tally = RecordTally()
    after = "-"
    while True:
        records = await store.records(cid, after=after, count=page)
        for _, fields in records:
            tally.add(fields)
        if len(records) < page:
            break
        after = records[-1][0]
    return build_analytics(cid, counts, queue, tally)
