"""``dialer records ID``: call records as CSV; ``dialer analytics ID``: the campaign's numbers."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

from dialer.analytics import CampaignAnalytics
from dialer.domain.statuses import CallStatus
from dialer.errors import ConfigError, NotFound
from dialer.records_csv import RECORD_COLUMNS, RecordsCsv
from dialer.store.queries import campaign_known
from dialer.store.redis_store import RedisStore

from .common import Session, campaign_id, note, out, with_store
from .output import counts_lines, plural
from .remote_reads import export_csv

PAGE = 1000
#: Column order of the engine's call records (dialer.engine.calls.call_record); fields not
#: listed here follow, sorted. ``record_id`` is the records stream's entry id.
COLUMNS = tuple(c for c in RECORD_COLUMNS if c != "contact_id")


async def pages(
    store: RedisStore, cid: int, *, until: str | None = None
) -> AsyncIterator[list[tuple[str, dict[str, str]]]]:
    """The records stream page by page (up to entry ``until`` included, if given)."""
    after = "-"
    while True:
        page = await store.records(cid, after=after, count=PAGE)
        if until is not None:
            page = [(i, r) for i, r in page if _id(i) <= _id(until)]
        if page:
            yield page
        if len(page) < PAGE:
            return
        after = page[-1][0]


def _id(entry: str) -> tuple[int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


async def export_records(store: RedisStore, cid: int, sink: TextIO) -> int:
    """Write the campaign's records as CSV; returns how many.

    Two passes over the stream: the first finds the columns and the last entry (records added
    meanwhile are left for the next export), the second writes the rows (formula-like cells
    neutralised: dialer.records_csv).
    """
    seen: set[str] = set()
    last: str | None = None
    async for page in pages(store, cid):
        for _, record in page:
            seen.update(record)
        last = page[-1][0]
    if last is None and not await campaign_known(store, cid):
        raise NotFound(f"campaign {cid} does not exist and left no call records")
    columns = [c for c in COLUMNS if c in seen or c == "record_id" or last is None]
    columns += sorted(seen - set(COLUMNS))
    writer = RecordsCsv(sink, columns)
    writer.header()
    written = 0
    if last is None:
        return 0
    async for page in pages(store, cid, until=last):
        for entry, record in page:
            writer.row(entry, record)
        written += len(page)
    return written


async def _export(s: Session, cid: int, sink: TextIO) -> int:
    """Through the API: its CSV export (its fixed columns); on the host: :func:`export_records`."""
    if s.remote is not None:
        return await export_csv(s.remote.client, cid, sink)
    return await export_records(s.store, cid, sink)


async def _records(args: argparse.Namespace, s: Session) -> int:
    if args.output is None:
        await _export(s, args.id, sys.stdout)
        sys.stdout.flush()
        return 0
    target = Path(args.output)
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as f:
            written = await _export(s, args.id, f)
        os.replace(partial, target)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    note(f"{plural(written, 'call record')} of campaign {args.id} written to {target}")
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} s"


def _label(status: str) -> str:
    try:
        return CallStatus(status).label
    except ValueError:
        return status or "(none)"


def analytics_lines(a: CampaignAnalytics) -> list[str]:
    talk, q = a.talk, a.queue
    by_status = ", ".join(f"{_label(s)} {n}" for s, n in a.attempts_by_status.items())
    amd = ", ".join(f"{k} {v}" for k, v in a.amd.items()) or "-"
    lines = [
        f"campaign {a.campaign_id}",
        f"contacts: {a.contacts_total} ({a.contacts_finished} finished after calling, "
        f"{a.contacts_answered} answered; success rate {_pct(a.success_rate)})",
        *counts_lines(a.contacts),
        f"attempts: {a.attempts_total}" + (f" ({by_status})" if by_status else ""),
        f"talk time of answered calls: {talk.count} calls, mean {_secs(talk.mean_s)}, "
        f"p50 {_secs(talk.p50_s)}, p90 {_secs(talk.p90_s)}",
        f"answers: {a.human_answers} by a person, {a.voicemail_answers} by voicemail (AMD: {amd})",
        f"abandoned: {a.abandoned} (rate {_pct(a.abandon_rate)})",
        f"queue: pending {q.pending}, retry scheduled {q.retry_scheduled}, "
        f"in flight {q.in_flight}, due now {q.due_now}",
    ]
    if a.per_day:
        lines.append("per day (UTC):")
        lines += [f"  {d.day}  {d.attempts} attempts, {d.answered} answered" for d in a.per_day]
    return lines


async def _analytics(args: argparse.Namespace, s: Session) -> int:
    result = await s.commands.analytics(args.id)
    if args.json:
        out(json.dumps(result.to_dict(), indent=2))
    else:
        for line in analytics_lines(result):
            out(line)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "records",
        parents=[common],
        help="export a campaign's call records as CSV (also after it was deleted)",
        description="Export a campaign's call records (one row per call) as CSV, read "
        "page by page; they are kept when the campaign is deleted.",
    )
    p.add_argument("id", type=campaign_id, metavar="ID", help="the campaign id")
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE.csv",
        help="write to this file (replaced only once complete) instead of stdout",
    )
    p.set_defaults(func=with_store(_records))

    p = sub.add_parser(
        "analytics",
        parents=[common],
        help="a campaign's analytics: success rate, attempts, talk time, queue",
        description="A campaign's analytics: contacts per status, success rate, attempts per "
        "status and per day, talk time (mean, p50, p90), answers, abandon rate, queue.",
    )
    p.add_argument("id", type=campaign_id, metavar="ID", help="the campaign id")
    p.add_argument("--json", action="store_true", help="print JSON (as the HTTP API does)")
    p.set_defaults(func=with_store(_analytics))
