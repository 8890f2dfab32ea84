"""Campaign settings: validated, immutable, JSON-safe.

Every string that reaches the PBX (trunk, caller id, context, extension) must match a strict
pattern, so no CR, LF or NUL can ever break AMI/ESL framing; the free-text name refuses every
control character. Channel variables are only the dialplan's knobs, each value in its own
grammar (:mod:`dialer.domain.dialplan`), so none is ever parsed as dialplan. ``from_dict``
errors name the field (``max_channels``, ``retry.delays.busy``, ``window.start``). Settings
read back from the store go through :meth:`CampaignSettings.from_json`, whose only error is
:class:`~dialer.errors.InvalidSettings` ("invalid settings: ...").
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from dialer.domain.altnumbers import AltDial
from dialer.domain.callerid import CALLER_ID, CallerIdPool, CallerIdSource
from dialer.domain.dialorder import (
    NEW_EVERY_DEFAULT,
    DialOrder,
    check_dial_order,
    check_new_every,
)
from dialer.domain.dialplan import CONTEXT_NAME, check_variables
from dialer.domain.hours import (
    WEEKDAYS,
    Availability,
    CallingWindow,
    availability,
    parse_instant,
)
from dialer.domain.retry import (
    RetryPolicy,
    check_fields,
    check_int,
    check_number,
    from_fields,
)
from dialer.domain.zones import Holiday, check_holidays
from dialer.errors import InvalidSettings, ValidationError

__all__ = [
    "UNLIMITED",
    "WEEKDAYS",
    "CallingWindow",
    "CampaignSettings",
    "DialOrder",
    "PlanLimits",
    "TrunkLimits",
]

_TRUNK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_EXTENSION = re.compile(r"[A-Za-z0-9*#+][A-Za-z0-9*#+_\-]{0,78}")
_REASON_CHARS = 300  # an invalid-settings reason is cut to this (it quotes the bad value)


def _text(value: object, name: str, *, max_len: int = 200) -> str:
    """A non-empty, trimmed str without any control or format character."""
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise ValidationError(f"{name} must be a text of 1 to {max_len} characters, got {value!r}")
    if value != value.strip() or any(unicodedata.category(ch)[0] == "C" for ch in value):
        raise ValidationError(f"{name} has a control character or surrounding spaces: {value!r}")
    return value


def _pattern(value: object, name: str, pattern: re.Pattern[str], hint: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise ValidationError(f"{name} must be {hint}, got {value!r}")
    return _text(value, name)


def _bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """Ceilings of the customer's plan for one campaign; None means no ceiling."""

    max_attempts_total: int | None = None
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts_total is not None:
            check_int(self.max_attempts_total, "max_attempts_total", minimum=1)
        if self.max_minutes is not None:
            minutes = check_number(self.max_minutes, "max_minutes", minimum=0, exclusive=True)
            object.__setattr__(self, "max_minutes", minutes)

    def to_dict(self) -> dict[str, object]:
        return {"max_attempts_total": self.max_attempts_total, "max_minutes": self.max_minutes}

    @classmethod
    def from_dict(cls, data: object, name: str = "limits") -> PlanLimits:
        return from_fields(cls, data, name)


UNLIMITED = "unlimited"  # DIALER_TRUNKS' word for "no trunk limit on this axis"
_MAX_CHANNELS, _MAX_CPS = 100_000, 10_000  # a campaign's ceilings, and a trunk's
_CHANNELS = f"a whole number of channels from 1 to {_MAX_CHANNELS}, or {UNLIMITED!r}"
_CPS = f"a number of calls per second above 0 and up to {_MAX_CPS}, or {UNLIMITED!r}"
_DIGITS = re.compile(r"-?[0-9]+")


@dataclass(frozen=True, slots=True)
class TrunkLimits:
    """What one trunk (PBX endpoint or gateway) accepts, shared by every campaign and every
    engine using it.

    ``None`` is *unlimited* on that axis: only the campaigns' own limits apply. It comes only
    from the word ``unlimited`` (:meth:`from_text`, DIALER_TRUNKS) or from a trunk that is not
    listed at all (:meth:`unlimited`); no number means it: 0, negative, NaN and infinite
    limits are refused, so a typo can never lift a trunk's limit.
    """

    name: str
    max_channels: int | None
    cps: float | None

    def __post_init__(self) -> None:
        _pattern(self.name, "name", _TRUNK, "a trunk name of letters, digits, '_', '.', '-'")
        if self.max_channels is not None:
            try:
                check_int(self.max_channels, "max_channels", minimum=1, maximum=_MAX_CHANNELS)
            except ValidationError:
                raise ValidationError(
                    f"max_channels must be {_CHANNELS}, got {self.max_channels!r}"
                ) from None
        if self.cps is not None:
            try:
                cps = check_number(self.cps, "cps", minimum=0, exclusive=True, maximum=_MAX_CPS)
            except ValidationError:
                raise ValidationError(f"cps must be {_CPS}, got {self.cps!r}") from None
            object.__setattr__(self, "cps", cps)

    @classmethod
    def unlimited(cls, name: str) -> TrunkLimits:
        """A trunk without limits of its own (one that DIALER_TRUNKS does not list)."""
        return cls(name, None, None)

    @classmethod
    def from_text(cls, name: str, max_channels: str, cps: str) -> TrunkLimits:
        """From words: a number each, or ``unlimited`` (any case); ValidationError naming the
        field otherwise (``'10'`` and ``'2.5'`` pass; ``''``, ``'abc'``, ``'0'``, ``'-5'``,
        ``'nan'``, ``'inf'`` and ``'10.5'`` channels do not)."""
        channels: object = _word(max_channels)
        if isinstance(channels, str) and _DIGITS.fullmatch(channels):
            channels = int(channels)
        rate: object = _word(cps)
        if isinstance(rate, str):
            try:
                rate = float(rate)
            except ValueError:
                pass  # refused, as text, by __post_init__
        return cls(name, channels, rate)  # type: ignore[arg-type]  # checked in __post_init__

    def to_text(self) -> str:
        """``100/20``, ``100/unlimited``: the DIALER_TRUNKS form, without the name."""
        channels = UNLIMITED if self.max_channels is None else str(self.max_channels)
        if self.cps is None:
            return f"{channels}/{UNLIMITED}"
        return f"{channels}/{int(self.cps) if self.cps.is_integer() else self.cps!r}"


def _word(text: str) -> str | None:
    """None for ``unlimited``, else the trimmed text."""
    word = text.strip()
    return None if word.lower() == UNLIMITED else word


_OPTIONAL = frozenset(
    {
        "ring_timeout",
        "caller_id",
        "caller_id_pool",
        "context",
        "extension",
        "amd",
        "retry",
        "window",
        "starts_at",
        "ends_at",
        "limits",
        "variables",
        "dial_order",
        "new_every",
        "backup_trunk",
        "local_hours",
        "holidays",
        "alt_dial",
        "alt_on_voicemail",
    }
)


@dataclass(frozen=True, slots=True)
class CampaignSettings:
    name: str
    trunk: str  # PBX endpoint / gateway name
    max_channels: int
    cps: float  # new calls per second
    ring_timeout: float = 30.0  # seconds
    caller_id: str | None = None  # "+33123456789" or '"Name" <+33123456789>'
    caller_id_pool: CallerIdPool | None = None  # wins over caller_id (dialer.domain.callerid)
    context: str = "dialer-outbound"  # dialplan entry of an answered call
    extension: str = "s"
    amd: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    window: CallingWindow | None = None  # None: calls at any hour
    starts_at: datetime | None = None  # no call before (Scheduled until then)
    ends_at: datetime | None = None  # no call from then on; the campaign then ends
    limits: PlanLimits | None = None
    # Channel variables set on every call of the campaign: only the dialplan's knobs
    # (dialer.domain.dialplan.KNOBS, e.g. DIALER_MAX_TALK), each value in its own grammar.
    variables: Mapping[str, str] = field(default_factory=dict)
    # which due contact goes first, a retry or a fresh one (dialer.domain.dialorder)
    dial_order: DialOrder = DialOrder.RETRIES_FIRST
    new_every: int = NEW_EVERY_DEFAULT  # interleave: one claim in new_every is a fresh contact
    # Dialed instead of ``trunk`` while ``trunk``'s circuit breaker is open (dialer.domain.
    # breaker): one backup per campaign, on the same PBX (trunk groups are issue 17 item 1).
    backup_trunk: str | None = None
    # Local calling hours (dialer.domain.zones): the window applies in each contact's own
    # zones, and no contact is called on a holiday of its local date (holidays need it).
    local_hours: bool = False
    holidays: tuple[Holiday, ...] = ()
    # Several numbers per contact (dialer.domain.altnumbers): when the next number is dialed
    # after a no-contact outcome, and whether voicemail counts as no contact.
    alt_dial: AltDial = AltDial.NOW
    alt_on_voicemail: bool = False

    def __post_init__(self) -> None:
        _text(self.name, "name")
        _bool(self.alt_on_voicemail, "alt_on_voicemail")
        try:
            object.__setattr__(self, "alt_dial", AltDial(self.alt_dial))
        except ValueError:
            choices = ", ".join(a.value for a in AltDial)
            raise ValidationError(
                f"alt_dial must be one of {choices}, got {self.alt_dial!r}"
            ) from None
        _bool(self.local_hours, "local_hours")
        object.__setattr__(self, "holidays", check_holidays(self.holidays))
        if self.holidays and not self.local_hours:
            raise ValidationError("holidays need local_hours: true (they apply in local dates)")
        object.__setattr__(self, "dial_order", check_dial_order(self.dial_order))
        check_new_every(self.new_every)
        object.__setattr__(self, "variables", check_variables(self.variables))
        _pattern(self.trunk, "trunk", _TRUNK, "a trunk name of letters, digits, '_', '.', '-'")
        check_int(self.max_channels, "max_channels", minimum=1, maximum=_MAX_CHANNELS)
        cps = check_number(self.cps, "cps", minimum=0, exclusive=True, maximum=_MAX_CPS)
        ring = check_number(
            self.ring_timeout, "ring_timeout", minimum=0, exclusive=True, maximum=600
        )
        object.__setattr__(self, "cps", cps)
        object.__setattr__(self, "ring_timeout", ring)
        if self.caller_id is not None:
            _pattern(self.caller_id, "caller_id", CALLER_ID, 'a number or "Name" <number>')
        if self.backup_trunk is not None:
            _pattern(
                self.backup_trunk,
                "backup_trunk",
                _TRUNK,
                "a trunk name of letters, digits, '_', '.', '-'",
            )
            if self.backup_trunk == self.trunk:
                raise ValidationError("backup_trunk must differ from trunk")
        _pattern(
            self.context, "context", CONTEXT_NAME, "a dialplan context of letters, digits, '_', '-'"
        )
        _pattern(self.extension, "extension", _EXTENSION, "a dialplan extension such as 's'")
        _bool(self.amd, "amd")
        for name, kind, optional in (
            ("retry", RetryPolicy, False),
            ("window", CallingWindow, True),
            ("limits", PlanLimits, True),
            ("caller_id_pool", CallerIdPool, True),
        ):
            value = getattr(self, name)
            if not isinstance(value, kind) and not (optional and value is None):
                raise ValidationError(f"{name} must be a {kind.__name__}, got {value!r}")
        for name in ("starts_at", "ends_at"):
            if getattr(self, name) is not None:
                parse_instant(getattr(self, name), name)
        if self.starts_at is not None and self.ends_at is not None:
            if self.ends_at <= self.starts_at:
                raise ValidationError(
                    f"ends_at ({self.ends_at.isoformat()}) must come after starts_at "
                    f"({self.starts_at.isoformat()})"
                )

    @property
    def caller_id_source(self) -> CallerIdSource:
        return CallerIdSource(self.caller_id, self.caller_id_pool)

    def availability(self, now: float) -> Availability:
        """May the campaign start calls at ``now`` (epoch seconds), until or from when. With
        local hours only the dates count here: each contact's window is the claim's to apply."""
        window = None if self.local_hours else self.window
        return availability(now, window, self.starts_at, self.ends_at)

    def dial_time(self, due: float) -> float:
        """When a call due at ``due`` (a retry, a callback) may be dialed: ``due`` itself, or
        the next opening when the hours are closed then (``due`` when no opening is left:
        the end date settles the contact)."""
        if (
            self.starts_at is None
            and self.ends_at is None
            and (self.window is None or self.local_hours)
        ):
            return due
        hours = self.availability(due)
        return due if hours.open or hours.opens_at is None else hours.opens_at

    def to_dict(self) -> dict[str, object]:
        """JSON-safe: str, int, float, bool, None, lists and dicts only. ``backup_trunk`` only
        when set (an engine of an earlier version refuses a field it does not know)."""
        data: dict[str, object] = {
            "name": self.name,
            "trunk": self.trunk,
            "max_channels": self.max_channels,
            "cps": self.cps,
            "ring_timeout": self.ring_timeout,
            "caller_id": self.caller_id,
            "caller_id_pool": None
            if self.caller_id_pool is None
            else self.caller_id_pool.to_dict(),
            "context": self.context,
            "extension": self.extension,
            "amd": self.amd,
            "retry": self.retry.to_dict(),
            "window": None if self.window is None else self.window.to_dict(),
            "starts_at": None if self.starts_at is None else self.starts_at.isoformat(),
            "ends_at": None if self.ends_at is None else self.ends_at.isoformat(),
            "limits": None if self.limits is None else self.limits.to_dict(),
            "variables": dict(self.variables),
            "dial_order": self.dial_order.value,
            "new_every": self.new_every,
        }
        if self.backup_trunk is not None:
            data["backup_trunk"] = self.backup_trunk
        if self.local_hours:
            data["local_hours"] = True
        if self.holidays:
            data["holidays"] = [h.to_dict() for h in self.holidays]
        if self.alt_dial is not AltDial.NOW:
            data["alt_dial"] = self.alt_dial.value
        if self.alt_on_voicemail:
            data["alt_on_voicemail"] = True
        return data

    @classmethod
    def from_dict(cls, data: object) -> CampaignSettings:
        fields = dict(
            check_fields(
                data,
                "campaign settings",
                required=frozenset({"name", "trunk", "max_channels", "cps"}),
                optional=_OPTIONAL,
            )
        )
        if "retry" in fields:
            fields["retry"] = RetryPolicy.from_dict(fields["retry"], "retry")
        for name, kind in (("window", CallingWindow), ("limits", PlanLimits)):
            if fields.get(name) is not None:
                fields[name] = kind.from_dict(fields[name], name)
        if fields.get("caller_id_pool") is not None:
            fields["caller_id_pool"] = CallerIdPool.from_dict(fields["caller_id_pool"])
        for name in ("starts_at", "ends_at"):
            if fields.get(name) is not None:
                fields[name] = parse_instant(fields[name], name)
        if "holidays" in fields:
            fields["holidays"] = check_holidays(fields["holidays"])
        return cls(**fields)  # type: ignore[arg-type]  # __post_init__ checks every type

    @classmethod
    def from_json(cls, text: str) -> CampaignSettings:
        """Settings as stored (JSON text). Whatever the text, the only error is InvalidSettings,
        its message ``invalid settings: <the problem>`` (at most 300 characters)."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            raise _invalid(f"not JSON ({exc})") from None
        try:
            return cls.from_dict(data)
        except ValidationError as exc:
            raise _invalid(str(exc)) from None
        except (TypeError, ValueError, RecursionError) as exc:  # a check the types slipped
            raise _invalid(f"{type(exc).__name__}: {exc}") from None


def _invalid(problem: str) -> InvalidSettings:
    reason = f"invalid settings: {problem}"
    if len(reason) > _REASON_CHARS:
        reason = reason[: _REASON_CHARS - 3] + "..."
    return InvalidSettings(reason)
