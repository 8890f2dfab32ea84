"""What the API accepts, as pydantic models: each route's query parameters and JSON body.

One source: :mod:`.spec` validates every request against these models before the handler runs,
and :mod:`.openapi` derives the document's parameters and request bodies from them. The domain
(:class:`dialer.domain.campaign.CampaignSettings` and friends) still checks what JSON Schema
cannot say (a time zone exists, ``ends_at`` after ``starts_at``, a variable's grammar); the
models state every bound the schema can carry, so a request the document calls valid is refused
only for such a rule.

Query strings are parsed strictly: an integer is ASCII digits only, an empty value (``limit=``)
is refused like any other bad value, never read as "not given".
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

from dialer.domain.altnumbers import AltDial
from dialer.domain.callerid import CALLER_ID
from dialer.domain.dialorder import NEW_EVERY_MAX, NEW_EVERY_MIN, DialOrder
from dialer.domain.dialplan import CONTEXT_NAME
from dialer.domain.recycle import MAX_REMOVE
from dialer.domain.statuses import CallStatus, CampaignStatus

MAX_PAGE = 1000
MAX_OFFSET = 1_000_000  # a deeper page is read with ``after``, never by skipping this many
MAX_CHANNELS, MAX_CPS = 100_000, 10_000  # dialer.domain.campaign's ceilings
MAX_ID = 2**63 - 1  # Redis integers

# Python patterns that JSON Schema (ECMA 262) reads the same way; anchored, since JSON Schema
# patterns match anywhere.
TRUNK = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
EXTENSION = r"^[A-Za-z0-9*#+][A-Za-z0-9*#+_\-]{0,78}$"
NAME = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]+$"
POOL_NUMBER = r"^\+?[0-9]{3,15}$"
RECORD_ID = r"^(?:-|[0-9]{1,20}(?:-[0-9]{1,20})?)$"
INSTANT = (  # ISO 8601 with an offset; the domain checks that the day exists
    r"^[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[T ](?:[01][0-9]|2[0-3])"
    r":[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)


def _anchored(pattern: str) -> str:
    return f"^(?:{pattern})$"


def _digits(value: object) -> object:
    """A query integer: ASCII digits only (no sign, space, ``_`` or exponent), at most 19."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= 19):
            raise ValueError("a whole number written in digits")
        return int(value)
    return value


QueryInt = Annotated[int, BeforeValidator(_digits)]


def _integral(value: object) -> object:
    """A JSON number with no fraction (``306.0``) as the int JSON Schema's "integer" says it is;
    anything else goes on to the strict check as it came."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: A JSON body's integer: an int, or a number with no fraction part (JSON Schema's "integer").
#: Bounds nested in an Annotated go BEFORE the validator (``Annotated[int, Field(ge=1),
#: BeforeValidator(_integral)]``): after it, pydantic writes them as "ge"/"le", not JSON Schema.
Whole = Annotated[int, BeforeValidator(_integral)]


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# -- query parameters ---------------------------------------------------------------------------


def _limit(default: int) -> Any:
    return Field(default, ge=1, le=MAX_PAGE, description=f"page size (default {default})")


class CampaignsQuery(_Query):
    status: CampaignStatus | None = Field(None, description="only campaigns in this status")
    offset: QueryInt = Field(0, ge=0, le=MAX_OFFSET, description="matching campaigns to skip")
    limit: QueryInt = _limit(50)


class ContactsQuery(_Query):
    status: CallStatus | None = Field(None, description="only contacts in this status")
    after: QueryInt = Field(0, ge=0, le=MAX_ID, description="contact id to continue after")
    offset: QueryInt = Field(0, ge=0, le=MAX_OFFSET, description="matching contacts to skip")
    limit: QueryInt = _limit(50)


class CallbacksQuery(_Query):
    after: QueryInt = Field(0, ge=0, le=MAX_ID, description="due_ms of the last callback seen")
    limit: QueryInt = _limit(100)


class RecordsQuery(_Query):
    after: str = Field(
        "-", pattern=RECORD_ID, description="record_id to continue after (- : from the start)"
    )
    limit: QueryInt = _limit(100)


def _text(max_len: int, description: str) -> Any:
    return Field(None, min_length=1, max_length=max_len, pattern=PRINTABLE, description=description)


class UploadQuery(_Query):
    default_region: str | None = Field(
        None, pattern=r"^[A-Za-z]{2}$", description="ISO country for numbers without + (US)"
    )
    phone_column: str | None = _text(100, "header of the phone column (default: guessed)")
    name_column: str | None = _text(100, "header of the name column")
    timezone_column: str | None = _text(100, "header of the time zone column")
    alt_phone_columns: str | None = _text(
        1000,
        "headers of the alternate number columns, comma-separated, in dialing order "
        "(default: phone2, phone3, alt_phone... as found)",
    )
    caller_id: str | None = Field(
        None,
        pattern=_anchored(CALLER_ID.pattern),
        description="the list's fixed caller id (overrides the campaign's)",
    )
    caller_id_pool: str | None = Field(
        None,
        max_length=20_000,
        pattern=r"^\+?[0-9]{3,15}(?:,\+?[0-9]{3,15})*$",
        description="the list's caller-ID pool: comma-separated numbers",
    )
    caller_id_mode: Literal["rotate", "local"] | None = Field(
        None, description="the pool's mode (default rotate)"
    )
    caller_id_fallback: str | None = Field(
        None, pattern=POOL_NUMBER, description="local mode: the number when none is local"
    )


# -- JSON bodies --------------------------------------------------------------------------------


class CallerIdPoolBody(_Body):
    numbers: list[Annotated[str, Field(pattern=POOL_NUMBER)]] = Field(
        min_length=1, max_length=1000, json_schema_extra={"uniqueItems": True}
    )
    mode: Literal["rotate", "local"] = "rotate"
    fallback: Annotated[str, Field(pattern=POOL_NUMBER)] | None = None


_CALLER_ID = Field(
    None, pattern=_anchored(CALLER_ID.pattern), description='+number or "Name" <+number>'
)


_DATE = r"^\d{4}-\d{2}-\d{2}$"  # a calendar date (the domain checks that it exists)


class HolidayBody(_Body):
    date: str = Field(pattern=_DATE)
    regions: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] = Field(
        default_factory=list,
        description="ISO 3166 regions it applies to (empty or absent: every contact)",
    )


class _Settings(_Body):
    """The campaign settings every field of which the schema can state (the rest: the domain)."""

    ring_timeout: float = Field(30.0, gt=0, le=600, description="seconds")
    caller_id: str | None = _CALLER_ID
    caller_id_pool: CallerIdPoolBody | None = None
    context: str = Field("dialer-outbound", pattern=_anchored(CONTEXT_NAME.pattern))
    extension: str = Field("s", pattern=EXTENSION)
    amd: bool = False
    retry: dict[str, Any] = Field(
        default_factory=dict,
        description="max_attempts, delays, max_attempts_for, technical_retry_limit, "
        "technical_backoff, default_delay (dialer.domain.retry.RetryPolicy)",
    )
    window: dict[str, Any] | None = Field(
        None, description="calling hours: timezone, start, end, days (dialer.domain.hours)"
    )
    starts_at: str | None = Field(
        None, pattern=INSTANT, description="ISO 8601 with offset: Scheduled until then"
    )
    ends_at: str | None = Field(
        None,
        pattern=INSTANT,
        description="ISO 8601 with offset: no call from then on; the campaign then ends "
        "Cancelled (reason: end date passed), undialed contacts Not dialed",
    )
    limits: dict[str, Any] | None = Field(
        None, description="plan limits: max_attempts_total, max_minutes"
    )
    variables: dict[str, str] = Field(
        default_factory=dict, description="channel variables set on every call"
    )
    dial_order: DialOrder = Field(
        DialOrder.RETRIES_FIRST,
        strict=False,  # its value as a JSON string
        description="which due contact goes first: retries_first (a due retry before fresh "
        "contacts), due_time (oldest due first), interleave (one fresh contact in every "
        "new_every claims)",
    )
    new_every: Whole = Field(5, ge=NEW_EVERY_MIN, le=NEW_EVERY_MAX)
    backup_trunk: str | None = Field(
        None,
        pattern=TRUNK,
        description="dialed instead of trunk while trunk's circuit breaker is open",
    )
    local_hours: bool = Field(
        False,
        description="the window applies in each contact's own time zone (README: Local "
        "calling hours)",
    )
    alt_dial: AltDial = Field(
        AltDial.NOW,
        strict=False,  # its value as a JSON string
        description="several numbers per contact: after a no-contact outcome the contact's "
        "next number is dialed now (a round of its numbers back to back, then the retry "
        "delay) or after the retry_delay (README: Several numbers per contact)",
    )
    alt_on_voicemail: bool = Field(
        False, description="voicemail counts as no contact: the next attempt dials the next number"
    )
    holidays: list[Annotated[str, Field(pattern=_DATE)] | HolidayBody] = Field(
        default_factory=list,
        max_length=1000,
        description='local dates with no call (need local_hours): "YYYY-MM-DD", or '
        '{"date": ..., "regions": ["US", ...]}',
    )


_NAME = Field(min_length=1, max_length=200, pattern=NAME)
_TRUNK = Field(pattern=TRUNK, description="one of the configured trunks (DIALER_TRUNKS)")
_CHANNELS = Field(ge=1, le=MAX_CHANNELS)
_CPS = Field(gt=0, le=MAX_CPS, description="calls per second")


class CampaignSettingsBody(_Settings):
    name: str = _NAME
    trunk: str = _TRUNK
    max_channels: Whole = _CHANNELS
    cps: float = _CPS


class CampaignEditBody(_Settings):
    """Fields given replace the stored ones; the result is validated whole."""

    name: str = Field(None, min_length=1, max_length=200, pattern=NAME)  # type: ignore[assignment]
    trunk: str = Field(None, pattern=TRUNK)  # type: ignore[assignment]
    max_channels: Whole = Field(None, ge=1, le=MAX_CHANNELS)  # type: ignore[assignment]
    cps: float = Field(None, gt=0, le=MAX_CPS)  # type: ignore[assignment]


class HangupBody(_Body):
    hangup: bool = Field(False, description="hang up the calls in flight instead of draining")


class CallerIdBody(_Body):
    caller_id: str | None = _CALLER_ID
    caller_id_pool: CallerIdPoolBody | None = None


class RecycleBody(_Body):
    statuses: list[Annotated[CallStatus, Strict(False)]] = Field(
        min_length=1, max_length=len(CallStatus)
    )
    into: (
        Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_integral)] | Literal["new"] | None
    ) = Field(
        None, description='null: this campaign; a campaign id; or "new" (a new Draft campaign)'
    )


class RemoveBody(_Body):
    ids: list[Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_integral)]] = Field(
        default_factory=list, max_length=MAX_REMOVE
    )
    phones: list[str] = Field(default_factory=list, max_length=MAX_REMOVE)
    default_region: str = Field("US", pattern=r"^[A-Za-z]{2}$")


class CallbackBody(_Body):
    at: str = Field(pattern=INSTANT, description="ISO 8601 with offset")
