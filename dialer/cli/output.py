"""Plain-text output: aligned tables, times, contact counts, import reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.importer import ImportReport, LineError

__all__ = [
    "counts_lines",
    "import_lines",
    "plural",
    "refusal_lines",
    "sentence",
    "table",
    "when",
]

SHOWN_LINES = 10  # line-level errors or warnings shown in full


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Left-aligned columns two spaces apart; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [
        all(isinstance(row[i], int) for row in cells[1:]) and len(cells) > 1
        for i in range(len(headers))
    ]
    lines = []
    for row in cells:
        parts = [
            v.rjust(w) if num and row is not cells[0] else v.ljust(w)
            for v, w, num in zip(row, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def when(ms: int | None) -> str:
    """Epoch milliseconds as local time ``2025-11-23 22:05:01``; "-" for none."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def status_text(status: CampaignStatus, reason: str, opens_at_ms: int | None) -> str:
    """``Scheduled (outside calling hours; opens 2026-12-07 09:00:00)``, ``Running``."""
    details = [reason] if reason else []
    if status is CampaignStatus.SCHEDULED and opens_at_ms:
        details.append(f"opens {when(opens_at_ms)}")
    return status.label + (f" ({'; '.join(details)})" if details else "")


def sentence(text: str) -> str:
    """``"start a campaign"`` -> ``"Start a campaign."`` (a help line as a description)."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"


def counts_lines(counts: Mapping[CallStatus, int]) -> list[str]:
    """``  Answered      12`` for every status with contacts, in the vocabulary's order."""
    shown = [(s.label, n) for s, n in counts.items() if n]
    if not shown:
        return ["  (no contacts)"]
    width = max(len(label) for label, _ in shown)
    digits = max(len(str(n)) for _, n in shown)
    return [f"  {label.ljust(width)}  {str(n).rjust(digits)}" for label, n in shown]


def _details(title: str, items: Sequence[LineError], total: int) -> list[str]:
    if not total:
        return []
    lines = [f"{title}:"] + [f"  {e}" for e in items[:SHOWN_LINES]]
    if total > min(len(items), SHOWN_LINES):
        lines.append(f"  ... and {total - min(len(items), SHOWN_LINES)} more")
    return lines


def import_lines(cid: int, report: ImportReport) -> list[str]:
    """What ``dialer list upload`` prints about a successful import."""
    return [
        f"list {report.list_id} of campaign {cid}: {plural(report.rows, 'row')} read",
        f"  imported          {report.imported}",
        f"    to dial         {report.pending}",
        f"    invalid numbers {report.invalid_numbers}",
        f"    do not call     {report.dnc}",
        f"  duplicates        {report.duplicates} (dropped)",
        *_details(
            "invalid numbers (kept as Invalid number)", report.warnings, report.invalid_numbers
        ),
    ]


def refusal_lines(report: ImportReport) -> list[str]:
    """The line-level errors of a refused import, after its one-line message."""
    return [f"  {e}" for e in report.errors[:SHOWN_LINES]] + (
        [f"  ... and {report.error_count - SHOWN_LINES} more"]
        if report.error_count > SHOWN_LINES
        else []
    )
