"""``dialer status ID [--watch]``: where a campaign is, once or as a live progress bar."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.domain.why import WhyReport
from dialer.store.breaker import BreakerStore
from dialer.store.models import CampaignRecord, QueueStats
from dialer.store.redis_store import RedisStore
from dialer.store.why import explain

from .common import Session, campaign_id, out, positive_float, with_store
from .output import counts_lines, status_text, when
from .remote_reads import snapshot_parts
from .why import why_lines

#: Contact statuses that may still change (every other one is final).
OPEN = frozenset(
    {
        CallStatus.PENDING,
        CallStatus.IN_PROGRESS,
        CallStatus.RETRY_SCHEDULED,
        CallStatus.RESCHEDULED,
    }
)
#: Campaign statuses that end ``--watch``.
WATCH_ENDS = frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.PAUSED})
BAR = 24


@dataclass(frozen=True, slots=True)
class Snapshot:
    campaign: CampaignRecord
    counts: Mapping[CallStatus, int]
    queue: QueueStats
    why: WhyReport | None = None  # what holds it back (dialer campaign why)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return sum(n for s, n in self.counts.items() if s not in OPEN)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def status(self) -> CampaignStatus:
        return CampaignStatus(self.campaign.status)


async def snapshot(store: RedisStore, cid: int, *, why: bool = False) -> Snapshot:
    campaign = await BreakerStore(store).with_reason(await store.get_campaign(cid))
    report = await explain(store, cid) if why else None
    return Snapshot(campaign, await store.counts(cid), await store.queue_stats(cid), report)


async def session_snapshot(s: Session, cid: int, *, why: bool = False) -> Snapshot:
    """:func:`snapshot` on the host, or through the API (GET the campaign, its analytics'
    queue and, with ``why``, its why view)."""
    if s.remote is None:
        return await snapshot(s.store, cid, why=why)
    campaign, counts, queue = await snapshot_parts(s.remote.client, cid)
    report = await s.remote.why(cid) if why else None
    return Snapshot(campaign, counts, queue, report)


def _queue(snap: Snapshot) -> str:
    q, c = snap.queue, snap.counts
    line = (
        f"in flight {q.inflight}, pending {c[CallStatus.PENDING]} "
        f"({q.pending_due_now} due now), retry scheduled {c[CallStatus.RETRY_SCHEDULED]}"
    )
    if c[CallStatus.RESCHEDULED]:
        line += f", rescheduled {c[CallStatus.RESCHEDULED]}"
    if q.next_due_ms is not None and q.pending_total > q.pending_due_now:
        line += f"; next due {when(q.next_due_ms)}"
    return line


def summary_lines(snap: Snapshot) -> list[str]:
    c = snap.campaign
    status = status_text(snap.status, c.status_reason, c.opens_at_ms)
    return [
        f"campaign {c.id} ({c.name}): {status}",
        f"progress: {snap.done}/{snap.total} contacts done ({snap.fraction:.0%})",
        *counts_lines(snap.counts),
        _queue(snap),
        *([] if snap.why is None else why_lines(snap.why)),
    ]


def progress_line(snap: Snapshot, width: int = BAR) -> str:
    filled = round(snap.fraction * width)
    bar = "#" * filled + "-" * (width - filled)
    q = snap.queue
    return (
        f"[{bar}] {snap.fraction:4.0%} {snap.done}/{snap.total} done | {snap.status.label} | "
        f"in flight {q.inflight} | pending {snap.counts[CallStatus.PENDING]} | "
        f"retry {snap.counts[CallStatus.RETRY_SCHEDULED]}"
    )


async def watch(s: Session, cid: int, interval: float) -> Snapshot:
    """Show progress until the campaign is Completed, Cancelled or Paused (or Ctrl-C)."""
    tty = sys.stdout.isatty()
    drawn = False
    try:
        while True:
            snap = await session_snapshot(s, cid)
            line = progress_line(snap)
            if tty:
                columns = shutil.get_terminal_size().columns
                sys.stdout.write("\r\x1b[2K" + line[: max(columns - 1, 20)])
                sys.stdout.flush()
                drawn = True
            else:
                out(line)
                sys.stdout.flush()
            if snap.status in WATCH_ENDS:
                return snap
            await asyncio.sleep(interval)
    finally:
        if drawn:
            sys.stdout.write("\n")
            sys.stdout.flush()


async def _status(args: argparse.Namespace, s: Session) -> int:
    if args.watch:
        snap = await watch(s, args.id, args.interval)
    snap = await session_snapshot(s, args.id, why=True)
    for line in summary_lines(snap):
        out(line)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "status",
        parents=[common],
        help="a campaign's status, contact counts and queue (--watch: live progress)",
        description="A campaign's status, its contacts per status and its queue (calls in "
        "flight, pending contacts, retries scheduled). With --watch, a progress bar until the "
        "campaign is Completed, Cancelled or Paused (Ctrl-C to leave earlier): redrawn in "
        "place on a terminal, one line per interval otherwise.",
    )
    p.add_argument("id", type=campaign_id, metavar="ID", help="the campaign id")
    p.add_argument("--watch", action="store_true", help="follow the progress live")
    p.add_argument(
        "--interval",
        type=positive_float,
        default=1.0,
        metavar="S",
        help="seconds between two refreshes with --watch (default 1)",
    )
    p.set_defaults(func=with_store(_status))
