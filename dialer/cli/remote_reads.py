"""What ``dialer status``, ``campaign why``, ``analytics`` and ``records`` read, over the API
(the viewer role): the same values the local mode reads from Redis, built back from the JSON
of ``GET /campaigns/{id}``, ``/why``, ``/analytics`` and ``/records.csv``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from dialer.analytics import CampaignAnalytics, DayProgress, DurationStats, QueueView
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.domain.why import Blocker, BlockerCode, WhyReport
from dialer.store.models import CampaignRecord, QueueStats

if TYPE_CHECKING:
    from .remote import ApiClient

__all__ = ["analytics", "export_csv", "snapshot_parts", "why"]


def _counts(d: Mapping[str, Any]) -> dict[CallStatus, int]:
    return {s: int(d.get(s.value, 0)) for s in CallStatus}


async def why(client: ApiClient, cid: int) -> WhyReport:
    d = await client.call("GET", f"/campaigns/{cid}/why")
    return WhyReport(
        campaign_id=int(d["campaign_id"]),
        status=CampaignStatus(d["status"]),
        dialing=bool(d["dialing"]),
        summary=str(d["summary"]),
        blockers=tuple(
            Blocker(BlockerCode(b["code"]), str(b["message"]), b.get("clears_at_ms"))
            for b in d["blockers"]
        ),
        inflight=int(d["inflight"]),
        max_channels=d.get("max_channels"),
        started_last_s=int(d["started_last_second"]),
        cps=d.get("cps"),
        engines_alive=int(d["engines_alive"]),
        now_ms=int(d["now_ms"]),
    )


async def analytics(client: ApiClient, cid: int) -> CampaignAnalytics:
    d = await client.call("GET", f"/campaigns/{cid}/analytics")
    talk, queue = d["talk"], d["queue"]
    return CampaignAnalytics(
        campaign_id=int(d["campaign_id"]),
        contacts=_counts(d["contacts"]),
        contacts_total=int(d["contacts_total"]),
        contacts_finished=int(d["contacts_finished"]),
        contacts_answered=int(d["contacts_answered"]),
        success_rate=d.get("success_rate"),
        attempts_total=int(d["attempts_total"]),
        attempts_by_status=dict(d["attempts_by_status"]),
        per_day=tuple(DayProgress(x["day"], x["attempts"], x["answered"]) for x in d["per_day"]),
        talk=DurationStats(talk["count"], talk["mean_s"], talk["p50_s"], talk["p90_s"]),
        human_answers=int(d["human_answers"]),
        voicemail_answers=int(d["voicemail_answers"]),
        amd=dict(d["amd"]),
        abandoned=int(d["abandoned"]),
        abandon_rate=d.get("abandon_rate"),
        queue=QueueView(
            queue["pending"],
            queue["retry_scheduled"],
            queue["in_flight"],
            queue["due_now"],
            queue["next_due_ms"],
        ),
    )


async def snapshot_parts(
    client: ApiClient, cid: int
) -> tuple[CampaignRecord, dict[CallStatus, int], QueueStats]:
    """The campaign (with a breaker's reason, as the API shows it), its contacts per status
    and its queue, for ``dialer status`` (the queue from the analytics: no claim count)."""
    from .remote import campaign_record

    view = await client.call("GET", f"/campaigns/{cid}")
    q = (await analytics(client, cid)).queue
    queue = QueueStats(
        pending_due_now=q.due_now,
        pending_total=q.pending + q.retry_scheduled,
        next_due_ms=q.next_due_ms,
        inflight=q.in_flight,
        claimed=0,
    )
    return campaign_record(view), _counts(view.get("contacts", {})), queue


async def export_csv(client: ApiClient, cid: int, sink: TextIO) -> int:
    """The API's CSV export into ``sink``; returns its lines after the header (a record whose
    field holds a line break counts once per line: the number is for the note only)."""
    lines = 0
    async for text in client.stream(f"/campaigns/{cid}/records.csv"):
        sink.write(text)
        lines += text.count("\n")
    return max(lines - 1, 0)
