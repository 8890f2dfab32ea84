"""JSON views of the store's values, and query-parameter parsing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from starlette.datastructures import QueryParams

from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CallStatus, ListStatus
from dialer.errors import InvalidSettings, ValidationError
from dialer.importer import ImportReport, LineError
from dialer.store.models import CampaignRecord, ContactRecord

E = TypeVar("E", bound=StrEnum)


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


# -- query parameters ---------------------------------------------------------------------------


def int_param(
    query: QueryParams, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
) -> int:
    text = query.get(name)
    if text is None or text == "":
        return default
    bounds = f"from {minimum}" + ("" if maximum is None else f" to {maximum}")
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ValidationError(f"query parameter {name} must be a whole number {bounds}")
    value = int(text)
    if value < minimum or (maximum is not None and value > maximum):
        raise ValidationError(f"query parameter {name} must be a whole number {bounds}")
    return value


def enum_param(query: QueryParams, name: str, kind: type[E]) -> E | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ValidationError(
            f"query parameter {name} must be one of {allowed}; got {text[:40]!r}"
        ) from None


def text_param(query: QueryParams, name: str, *, max_len: int = 100) -> str | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    if len(text) > max_len or any(not ch.isprintable() for ch in text):
        raise ValidationError(f"query parameter {name} must be printable text of 1 to {max_len}")
    return text


def stream_id_param(query: QueryParams, name: str) -> str:
    """A Redis stream id (``1700000000000-0``) or ``-`` for the start."""
    text = query.get(name) or "-"
    if text == "-":
        return text
    ms, _, seq = text.partition("-")
    if not (ms.isascii() and ms.isdigit() and len(ms) <= 20) or (
        seq and not (seq.isascii() and seq.isdigit() and len(seq) <= 20)
    ):
        raise ValidationError(f"query parameter {name} must be a record id such as 1700000000000-0")
    return text
