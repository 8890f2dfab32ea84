"""JSON views of the store's values (their schemas: :mod:`.replies`)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CallStatus, ListStatus
from dialer.errors import InvalidSettings
from dialer.importer import ImportReport, LineError
from dialer.store.models import CampaignRecord, ContactRecord


def campaign_view(
    record: CampaignRecord, counts: Mapping[CallStatus, int] | None = None
) -> dict[str, object]:
    """``settings`` as stored (null when not JSON); ``settings_error`` names what makes them
    invalid (the engine pauses such a campaign with it as the reason), null when they are not."""
    try:
        settings: object = json.loads(record.settings_json)
    except (ValueError, RecursionError):
        settings = None
    try:
        CampaignSettings.from_json(record.settings_json)
    except InvalidSettings as exc:
        settings_error: str | None = str(exc)
    else:
        settings_error = None
    view: dict[str, object] = {
        "id": record.id,
        "name": record.name,
        "trunk": record.trunk,
        "status": record.status.value,
        "status_label": record.status.label,
        "status_reason": record.status_reason,
        "opens_at_ms": record.opens_at_ms,
        "open_until_ms": record.open_until_ms,
        "created_ms": record.created_ms,
        "updated_ms": record.updated_ms,
        "settings": settings,
        "settings_error": settings_error,
    }
    if counts is not None:
        view["contacts"] = {s.value: n for s, n in counts.items()}
    return view


def contact_view(contact: ContactRecord) -> dict[str, object]:
    return {
        "id": contact.id,
        "phone": contact.phone,
        "vars": contact.vars,
        "list_id": contact.list_id,
        "status": contact.status.value,
        "attempts": contact.attempts,
        "tech_failures": contact.tech_failures,
        "last_call": contact.last_call,
        "next_due_ms": contact.next_due_ms,
        "recycled_from": contact.recycled_from or None,
        "numbers": [
            {
                "number": n.number,
                "label": n.label,
                "tries": n.tries,
                "last_status": n.last_status or None,
                "current": n.current,
            }
            for n in contact.numbers
        ],
    }


def list_views(lists: Mapping[int, ListStatus]) -> list[dict[str, object]]:
    return [{"id": lid, "status": status.value} for lid, status in lists.items()]


def _lines(errors: tuple[LineError, ...]) -> list[dict[str, object]]:
    return [{"line": e.line, "reason": e.reason} for e in errors]


def import_report(report: ImportReport) -> dict[str, object]:
    return {
        "list_id": report.list_id,
        "rows": report.rows,
        "imported": report.imported,
        "pending": report.pending,
        "invalid_numbers": report.invalid_numbers,
        "dnc": report.dnc,
        "duplicates": report.duplicates,
        "error_count": report.error_count,
        "errors": _lines(report.errors),
        "warnings": _lines(report.warnings),
    }


def record_view(record_id: str, fields: Mapping[str, str]) -> dict[str, str]:
    return {"record_id": record_id, **fields}
