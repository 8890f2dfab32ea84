"""Contacts' local calling hours: each contact's time zones, its zone group, and when a group
may be called.

A contact's zones come from an explicit IANA name (the CSV's ``timezone`` column) or from its
number (``phonenumbers.timezone.time_zones_for_number``). A number whose region spans several
zones (a US toll-free number, a Russian or Australian mobile) may be called only when the
campaign's window is open in *all* of them: the intersection of the local windows, computed
day by day (each zone's daylight saving time moves its periods on its own dates).

Contacts with the same region and zones follow the same rules: they form a :class:`ZoneGroup`.
A campaign holds few distinct groups (a handful per country), so the engine computes which
groups are open now (:func:`group_hours`) and the claim script pops only from the open groups'
queues: a contact outside its hours waits without holding up the others.

Holidays (:class:`Holiday`) are local dates on which a group is closed all day, for every
contact or only for the contacts of some regions (ISO 3166 country codes of their numbers).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

from dialer.domain.hours import CLOSE_GUARD_S, CallingWindow
from dialer.errors import ValidationError

__all__ = [
    "GroupHours",
    "Holiday",
    "ZoneGroup",
    "ZonesNow",
    "check_holidays",
    "check_zone",
    "group_for",
    "group_hours",
    "zone_key",
    "zones_for_number",
    "zones_now",
]

UNKNOWN_ZONE = "Etc/Unknown"  # phonenumbers' answer for a number it cannot place
HORIZON_DAYS = 8  # an opening further away than this is reported as none (re-checked later)
MAX_HOLIDAYS = 1000
_REGION = re.compile(r"[A-Z]{2}")
_DAY_S = 86_400.0

Interval = tuple[float, float]


def check_zone(value: object, name: str = "timezone") -> str:
    """``value`` as a known IANA zone name; ValidationError naming ``name`` otherwise."""
    if not isinstance(value, str) or not value or value != value.strip():
        raise ValidationError(f"{name} must be an IANA zone such as Europe/Paris, got {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{name} {value!r} is not a known IANA zone") from None
    return value


def zones_for_number(e164: str) -> tuple[str, tuple[str, ...]]:
    """The region (ISO country code, "" when unknown) and the sorted zones of a number (empty
    when phonenumbers cannot place it)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "", ()
    region = phonenumbers.region_code_for_number(number) or ""
    if region == "001":  # non-geographic (satellite, international services)
        region = ""
    zones = tuple(sorted(z for z in pn_timezone.time_zones_for_number(number) if z != UNKNOWN_ZONE))
    return region, zones


@dataclass(frozen=True, slots=True)
class ZoneGroup:
    """Contacts with the same region and time zones. ``zones`` empty: unknown, the campaign
    window's own zone applies."""

    region: str = ""
    zones: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The group's stored name: ``US|America/Chicago America/New_York``."""
        return f"{self.region}|{' '.join(self.zones)}"

    @classmethod
    def from_key(cls, key: str) -> ZoneGroup:
        region, _, zones = key.partition("|")
        return cls(region, tuple(zones.split()) if zones else ())

    def label(self) -> str:
        zones = ", ".join(self.zones) if self.zones else "the campaign's zone"
        return f"{self.region or '??'} ({zones})"


def group_for(phone: str, timezone: str | None = None) -> ZoneGroup:
    """A contact's group: an explicit zone (already checked) wins over the number's zones."""
    region, zones = zones_for_number(phone)
    if timezone:
        zones = (timezone,)
    return ZoneGroup(region, zones)


@functools.lru_cache(maxsize=4096)
def zone_key(phone: str, timezone: str | None = None) -> str:
    """:func:`group_for`'s key, remembered for the last few thousand numbers."""
    return group_for(phone, timezone).key


@dataclass(frozen=True, slots=True)
class Holiday:
    """A local date with no call; ``regions`` empty: for every contact."""

    day: date
    regions: frozenset[str] = field(default_factory=frozenset)

    def applies(self, region: str) -> bool:
        return not self.regions or region in self.regions

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"date": self.day.isoformat()}
        if self.regions:
            data["regions"] = sorted(self.regions)
        return data

    @classmethod
    def from_dict(cls, data: object, name: str = "holidays[]") -> Holiday:
        if isinstance(data, str):
            data = {"date": data}
        if not isinstance(data, dict) or not set(data) <= {"date", "regions"} or "date" not in data:
            raise ValidationError(
                f'{name} must be a date "YYYY-MM-DD" or {{"date": ..., "regions": [...]}}, '
                f"got {data!r}"
            )
        raw_day, raw_regions = data["date"], data.get("regions", [])
        try:
            day = date.fromisoformat(raw_day) if isinstance(raw_day, str) else None
        except ValueError:
            day = None
        if day is None or len(raw_day) != 10:
            raise ValidationError(f"{name}.date must be a date YYYY-MM-DD, got {raw_day!r}")
        if not isinstance(raw_regions, list) or not all(
            isinstance(r, str) and _REGION.fullmatch(r) for r in raw_regions
        ):
            raise ValidationError(
                f"{name}.regions must be a list of country codes such as US, got {raw_regions!r}"
            )
        return cls(day, frozenset(raw_regions))


def check_holidays(value: object) -> tuple[Holiday, ...]:
    """A campaign's ``holidays`` setting: a list of dates or {date, regions} objects."""
    if not isinstance(value, list | tuple) or len(value) > MAX_HOLIDAYS:
        raise ValidationError(f"holidays must be a list of at most {MAX_HOLIDAYS} dates")
    items = [
        h if isinstance(h, Holiday) else Holiday.from_dict(h, f"holidays[{i}]")
        for i, h in enumerate(value)
    ]
    return tuple(sorted(items, key=lambda h: h.day))


@dataclass(frozen=True, slots=True)
class GroupHours:
    """Whether a zone group may be called at one moment: open ``until`` (the close, by the
    intersection of its zones' windows), or closed until ``opens_at`` (None: not within
    :data:`HORIZON_DAYS`)."""

    open: bool
    until: float | None = None
    opens_at: float | None = None

    def claim_deadline_ms(self) -> int:
        """The Redis-clock ms from which the claim takes none of the group (close less guard)."""
        assert self.until is not None
        return int((self.until - CLOSE_GUARD_S) * 1000)


def _zone_periods(
    window: CallingWindow | None, zone: str, region: str, holidays: Iterable[Holiday], now: float
) -> list[Interval]:
    """Open periods of one zone from two days before ``now`` to the horizon, less holidays."""
    start, stop = now - 2 * _DAY_S, now + (HORIZON_DAYS + 1) * _DAY_S
    if window is None:
        periods = [(start, stop)]
    else:
        periods = replace(window, timezone=zone).periods(now)
    tz = ZoneInfo(zone)
    for holiday in holidays:
        if not holiday.applies(region):
            continue
        begin = datetime.combine(holiday.day, datetime.min.time(), tzinfo=tz).timestamp()
        end = datetime.combine(
            holiday.day + timedelta(days=1), datetime.min.time(), tzinfo=tz
        ).timestamp()
        periods = _subtract(periods, begin, end)
    return periods


def _subtract(periods: list[Interval], begin: float, end: float) -> list[Interval]:
    out: list[Interval] = []
    for a, b in periods:
        if b <= begin or a >= end:
            out.append((a, b))
            continue
        if a < begin:
            out.append((a, begin))
        if b > end:
            out.append((end, b))
    return out


def _intersect(left: list[Interval], right: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        a, b = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if a < b:
            out.append((a, b))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


def group_periods(
    now: float, window: CallingWindow | None, group: ZoneGroup, holidays: Iterable[Holiday] = ()
) -> list[Interval]:
    """The periods (epoch seconds) in which every zone of ``group`` is open, around ``now``."""
    holidays = tuple(holidays)
    default = window.timezone if window is not None else "UTC"
    periods: list[Interval] | None = None
    for zone in group.zones or (default,):
        mine = _zone_periods(window, zone, group.region, holidays, now)
        periods = mine if periods is None else _intersect(periods, mine)
    return periods or []


def group_hours(
    now: float, window: CallingWindow | None, group: ZoneGroup, holidays: Iterable[Holiday] = ()
) -> GroupHours:
    """May the contacts of ``group`` be called at ``now``: the campaign's ``window`` in each of
    the group's zones (all of them open), no holiday on their local date. The last
    :data:`CLOSE_GUARD_S` of a period count as closed."""
    for opens, closes in group_periods(now, window, group, holidays):
        if closes - CLOSE_GUARD_S <= now:
            continue
        if opens <= now:
            return GroupHours(True, until=closes)
        return GroupHours(False, opens_at=opens)
    return GroupHours(False)


@dataclass(frozen=True, slots=True)
class ZonesNow:
    """Which zone groups of a campaign may be called now: ``open`` (gid, claim deadline ms),
    ``next_opening`` of a closed group (epoch s; None: none within the horizon), and
    ``valid_until``: the first instant at which one of them changes (recompute then)."""

    open: tuple[tuple[int, int], ...]
    next_opening: float | None
    valid_until: float


def zones_now(
    now: float,
    window: CallingWindow | None,
    groups: Mapping[int, ZoneGroup],
    holidays: Iterable[Holiday] = (),
    *,
    recheck_s: float = 60.0,
) -> ZonesNow:
    """:func:`group_hours` of every group (gid 0, the contacts with no zone known, always
    included), gathered for the claim script."""
    holidays = tuple(holidays)
    every = {0: ZoneGroup(), **groups}
    opened: list[tuple[int, int]] = []
    next_opening: float | None = None
    valid_until = now + recheck_s
    for gid in sorted(every):
        hours = group_hours(now, window, every[gid], holidays)
        if hours.open:
            deadline = hours.claim_deadline_ms()
            opened.append((gid, deadline))
            valid_until = min(valid_until, deadline / 1000)
        elif hours.opens_at is not None:
            next_opening = (
                hours.opens_at if next_opening is None else min(next_opening, hours.opens_at)
            )
            valid_until = min(valid_until, hours.opens_at)
    return ZonesNow(tuple(opened), next_opening, valid_until)
