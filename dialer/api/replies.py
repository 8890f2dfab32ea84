"""What the API answers, as pydantic models: the document's response schemas come from here.

The handlers build plain dicts (:mod:`.schemas`, the route modules); these models describe
them, and the Schemathesis test (tests/unit/test_api_schemathesis.py) checks every response it
provokes against the document, so a view and its model cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dialer.domain.why import BlockerCode


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(BaseModel):
    code: str = Field(description="stable: clients switch on it (dialer.api.errors)")
    message: str
    details: dict[str, Any]


class Error(BaseModel):
    error: ErrorDetail


class Health(_Reply):
    status: Literal["ok", "unavailable"]
    store: Literal["ok", "unreachable"]


class Campaign(_Reply):
    id: int
    name: str
    trunk: str
    status: str
    status_label: str
    status_reason: str
    opens_at_ms: int | None = Field(
        description="Scheduled: when its calling hours next open (epoch ms)"
    )
    open_until_ms: int | None = Field(
        description="Running: from when no call starts (the hours' close less a 1-s guard, "
        "or the end date; epoch ms, the Redis server's clock)"
    )
    created_ms: int
    updated_ms: int
    settings: dict[str, Any] | None = Field(description="as stored; null when not JSON")
    settings_error: str | None = Field(
        description="what makes the stored settings invalid (the engine pauses the campaign "
        "with it as the status_reason; edit the settings to fix), null when they are valid"
    )
    contacts: dict[str, int] | None = Field(
        None, description="counts by contact status (GET one campaign only)"
    )


class CampaignPage(_Reply):
    campaigns: list[Campaign]
    offset: int
    limit: int
    next_offset: int | None


class CommandResult(_Reply):
    id: int
    status: str
    status_label: str
    draining: int = Field(description="calls still in flight that will end naturally")


class Stopped(_Reply):
    stopped: list[CommandResult]


class ListView(_Reply):
    id: int
    status: str


class Lists(_Reply):
    lists: list[ListView]


class LineError(BaseModel):
    line: int
    reason: str


class ImportReport(_Reply):
    list_id: int | None
    rows: int
    imported: int
    pending: int
    invalid_numbers: int
    dnc: int
    duplicates: int
    error_count: int
    errors: list[LineError]
    warnings: list[LineError]


class ListStopped(_Reply):
    id: int
    status: str
    not_dialed: int


class CallerIdPool(_Reply):
    numbers: list[str]
    mode: str
    fallback: str | None = None


class ListCallerId(_Reply):
    id: int
    caller_id: str | None = None
    caller_id_pool: CallerIdPool | None = None


class Contact(_Reply):
    id: int
    phone: str
    vars: dict[str, Any]
    list_id: int
    status: str
    attempts: int
    tech_failures: int
    last_call: Any = None
    next_due_ms: int | None
    recycled_from: Any = None
    numbers: list[ContactNumber] = Field(
        default_factory=list,
        description="several numbers per contact: each with its label, calls made to it, "
        "its last result and whether the next attempt dials it (empty: one number)",
    )


class ContactNumber(_Reply):
    number: str
    label: str
    tries: int
    last_status: str | None = None
    current: bool


class ContactPage(_Reply):
    contacts: list[Contact]
    next_after: int | None = Field(description="follow it until it is null")


class RecycleReport(_Reply):
    pass


class RemoveReport(_Reply):
    pass


class ContactRemoved(_Reply):
    id: int
    status: Literal["removed"]
    already_removed: bool


class CallbackSet(_Reply):
    contact_id: int
    status: str
    requested_at: str | None
    due_at: str | None
    due_ms: int
    moved_by_hours: bool
    reason: str | None
    previous_status: str
    replaced: Literal["operator", "dialplan"] | None


class CallbackCancelled(_Reply):
    contact_id: int
    status: str
    next_due_at: str | None
    next_due_ms: int | None
    cancelled: str | None


class Callback(_Reply):
    contact_id: int
    phone: str
    list_id: int
    attempts: int
    due_at: str | None
    due_ms: int
    requested_at: str | None
    source: str


class CallbackPage(_Reply):
    callbacks: list[Callback]
    next_after: int | None


class RecordPage(_Reply):
    records: list[dict[str, str]]
    next_after: str | None


class Blocker(_Reply):
    code: BlockerCode
    message: str
    clears_at_ms: int | None = Field(
        None, description="when it is expected to clear (epoch ms), null when unknown"
    )
    clears_at: str | None = None


class Why(_Reply):
    campaign_id: int
    status: str
    dialing: bool = Field(description="true: nothing holds it back")
    summary: str
    blockers: list[Blocker]


class Analytics(_Reply):
    """Contact counts, success rate, attempts per status and day, durations
    (dialer.analytics)."""


class Document(_Reply):
    """The OpenAPI document."""
