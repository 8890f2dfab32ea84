"""Local calling hours, the pure part (dialer.domain.zones): a contact's zones from its number
or an explicit zone, the window that is legal in all of a group's zones day by day (daylight
saving time moves each zone on its own dates), holidays in the local date."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from dialer.domain.campaign import CampaignSettings
from dialer.domain.hours import CallingWindow
from dialer.domain.zones import (
    Holiday,
    ZoneGroup,
    check_holidays,
    check_zone,
    group_for,
    group_hours,
    group_periods,
    zones_now,
)
from dialer.errors import ValidationError


def at(text: str) -> float:
    """An instant written in UTC: ``2026-07-01 15:00``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def window(start: str = "09:00", end: str = "20:00", tz: str = "Europe/Paris") -> CallingWindow:
    return CallingWindow.from_dict({"timezone": tz, "start": start, "end": end})


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("phone", "region", "zones"),
    [
        ("+14155550100", "US", ("America/Los_Angeles",)),  # San Francisco: one zone
        ("+12125550100", "US", ("America/New_York",)),
        ("+15145550100", "CA", ("America/Toronto",)),
        ("+61291234567", "AU", ("Australia/Sydney",)),  # a Sydney landline
        ("+33612345678", "FR", ("Europe/Paris",)),
    ],
)
def test_a_number_in_one_zone(phone: str, region: str, zones: tuple[str, ...]) -> None:
    assert group_for(phone) == ZoneGroup(region, zones)


@pytest.mark.parametrize(
    ("phone", "region", "some"),
    [
        ("+18005550100", "US", {"America/New_York", "America/Los_Angeles", "Pacific/Honolulu"}),
        ("+61412345678", "AU", {"Australia/Perth", "Australia/Sydney"}),  # a mobile
        ("+79161234567", "RU", {"Europe/Moscow", "Asia/Vladivostok", "Asia/Kamchatka"}),
    ],
)
def test_a_number_whose_region_spans_several_zones(phone: str, region: str, some: set[str]) -> None:
    group = group_for(phone)
    assert group.region == region
    assert some <= set(group.zones)
    assert list(group.zones) == sorted(group.zones)


def test_an_explicit_zone_beats_the_number() -> None:
    assert group_for("+18005550100", "America/Chicago") == ZoneGroup("US", ("America/Chicago",))
    assert group_for("+33612345678", "Asia/Tokyo") == ZoneGroup("FR", ("Asia/Tokyo",))


def test_an_unplaceable_number_has_no_zone() -> None:
    assert group_for("not a number") == ZoneGroup("", ())
    assert group_for("+88213123456").zones == ()  # non-geographic (satellite)


@pytest.mark.parametrize("bad", ["", "Mars/Base", "europe/paris ", " Europe/Paris", None, 3])
def test_check_zone_refuses_unknown_names(bad: object) -> None:
    with pytest.raises(ValidationError, match="timezone"):
        check_zone(bad)


def test_group_keys_round_trip() -> None:
    group = ZoneGroup("US", ("America/Chicago", "America/New_York"))
    assert group.key == "US|America/Chicago America/New_York"
    assert ZoneGroup.from_key(group.key) == group
    assert ZoneGroup.from_key(ZoneGroup().key) == ZoneGroup()


def test_the_window_applies_in_the_contacts_zone() -> None:
    """09:00-20:00 local: New York (UTC-4 in July) opens at 13:00 UTC, closes at 00:00 UTC."""
    ny = ZoneGroup("US", ("America/New_York",))
    w = window()
    assert not group_hours(at("2026-07-01 12:59"), w, ny).open
    hours = group_hours(at("2026-07-01 13:00"), w, ny)
    assert hours.open
    assert hours.until == at("2026-07-02 00:00")
    closed = group_hours(at("2026-07-02 00:30"), w, ny)
    assert not closed.open
    assert closed.opens_at == at("2026-07-02 13:00")


def test_the_last_second_before_the_close_counts_as_closed() -> None:
    ny = ZoneGroup("US", ("America/New_York",))
    assert group_hours(at("2026-07-01 23:59:58"), window(), ny).open
    assert not group_hours(at("2026-07-01 23:59:59.5"), window(), ny).open


def test_several_zones_get_the_intersection() -> None:
    """New York and Los Angeles at 09:00-20:00 local: open from LA's 09:00 (16:00 UTC) to
    New York's 20:00 (00:00 UTC)."""
    both = ZoneGroup("US", ("America/Los_Angeles", "America/New_York"))
    periods = group_periods(at("2026-07-01 12:00"), window(), both)
    assert (at("2026-07-01 16:00"), at("2026-07-02 00:00")) in periods
    assert not group_hours(at("2026-07-01 15:00"), window(), both).open
    assert group_hours(at("2026-07-01 17:00"), window(), both).open


def test_zones_without_a_common_hour_never_open() -> None:
    far = ZoneGroup("", ("Pacific/Honolulu", "Asia/Tokyo"))  # 19 h apart, 4 h window
    hours = group_hours(at("2026-07-01 12:00"), window("09:00", "13:00"), far)
    assert hours == type(hours)(False)


def test_dst_moves_each_zone_on_its_own_date() -> None:
    """Between the US change (8 March 2026) and the EU one (29 March 2026) New York is 4 h
    behind Paris instead of 6: the common window of 09:00-20:00 grows by one hour."""
    both = ZoneGroup("", ("America/New_York", "Europe/Paris"))
    w = window()
    before = group_periods(at("2026-03-02 12:00"), w, both)  # both on winter time
    between = group_periods(at("2026-03-16 12:00"), w, both)  # US summer, EU winter
    assert (at("2026-03-02 14:00"), at("2026-03-02 19:00")) in before
    assert (at("2026-03-16 13:00"), at("2026-03-16 19:00")) in between


def test_the_day_of_the_change_is_computed_on_its_own() -> None:
    """On 8 March 2026 New York springs forward at 02:00: its 09:00 is 13:00 UTC that day,
    14:00 UTC the day before."""
    ny = ZoneGroup("US", ("America/New_York",))
    periods = group_periods(at("2026-03-08 06:00"), window(), ny)
    assert (at("2026-03-07 14:00"), at("2026-03-08 01:00")) in periods
    assert (at("2026-03-08 13:00"), at("2026-03-09 00:00")) in periods


def test_a_holiday_closes_the_local_date() -> None:
    ny = ZoneGroup("US", ("America/New_York",))
    july4 = (Holiday(date(2026, 7, 4)),)
    hours = group_hours(at("2026-07-04 15:00"), window(), ny, july4)
    assert not hours.open
    assert hours.opens_at == at("2026-07-05 13:00")


def test_a_holiday_of_some_regions_only() -> None:
    w = window(tz="UTC")
    ny, paris = ZoneGroup("US", ("America/New_York",)), ZoneGroup("FR", ("Europe/Paris",))
    july4 = (Holiday(date(2026, 7, 4), frozenset({"US"})),)
    assert not group_hours(at("2026-07-04 15:00"), w, ny, july4).open
    assert group_hours(at("2026-07-04 15:00"), w, paris, july4).open


def test_a_holiday_follows_the_contacts_local_date_not_utc() -> None:
    """At 02:00 UTC on 5 July it is still 4 July in Los Angeles, 5 July in Paris."""
    la = ZoneGroup("US", ("America/Los_Angeles",))
    paris = ZoneGroup("FR", ("Europe/Paris",))
    w = CallingWindow("UTC", time(0), time(23, 59))
    july4 = (Holiday(date(2026, 7, 4)),)
    assert not group_hours(at("2026-07-05 02:00"), w, la, july4).open
    assert group_hours(at("2026-07-05 02:00"), w, paris, july4).open


def test_no_window_means_any_hour_except_holidays() -> None:
    paris = ZoneGroup("FR", ("Europe/Paris",))
    assert group_hours(at("2026-07-01 03:00"), None, paris).open
    xmas = (Holiday(date(2026, 12, 25)),)
    hours = group_hours(at("2026-12-25 10:00"), None, paris, xmas)
    assert not hours.open
    assert hours.opens_at == at("2026-12-25 23:00")


def test_no_zone_known_uses_the_windows_zone() -> None:
    assert group_hours(at("2026-07-01 08:00"), window(), ZoneGroup()).open  # 10:00 in Paris
    assert not group_hours(at("2026-07-01 06:00"), window(), ZoneGroup()).open


def test_zones_now_gathers_the_open_groups_and_the_next_change() -> None:
    groups = {1: ZoneGroup("US", ("America/New_York",)), 2: ZoneGroup("FR", ("Europe/Paris",))}
    state = zones_now(at("2026-07-01 12:00"), window(), groups, recheck_s=7200)
    # Paris open (and gid 0, the window's own zone); New York opens at 13:00 UTC
    assert [gid for gid, _ in state.open] == [0, 2]
    assert dict(state.open)[2] == int(at("2026-07-01 18:00") * 1000) - 1000
    assert state.next_opening == at("2026-07-01 13:00")
    assert state.valid_until == at("2026-07-01 13:00")
    assert zones_now(at("2026-07-01 12:00"), window(), groups).valid_until == at("2026-07-01 12:01")


def test_holiday_settings_are_validated() -> None:
    assert check_holidays(["2026-12-25", {"date": "2026-07-04", "regions": ["US"]}]) == (
        Holiday(date(2026, 7, 4), frozenset({"US"})),
        Holiday(date(2026, 12, 25)),
    )
    for bad, match in [
        ("2026-12-25", "list"),
        (["2026-13-01"], r"holidays\[0\].date"),
        (["25/12/2026"], r"holidays\[0\].date"),
        ([{"date": "2026-12-25", "regions": ["usa"]}], "regions"),
        ([{"date": "2026-12-25", "zone": "x"}], "holidays"),
    ]:
        with pytest.raises(ValidationError, match=match):
            check_holidays(bad)


def test_campaign_settings_carry_local_hours_and_holidays() -> None:
    data = {
        "name": "n",
        "trunk": "t",
        "max_channels": 2,
        "cps": 1,
        "window": {"timezone": "Europe/Paris", "start": "09:00", "end": "20:00"},
        "local_hours": True,
        "holidays": ["2026-12-25", {"date": "2026-07-04", "regions": ["US"]}],
    }
    settings = CampaignSettings.from_dict(data)
    assert settings.local_hours
    assert len(settings.holidays) == 2
    assert CampaignSettings.from_dict(settings.to_dict()) == settings
    # the campaign itself stays open outside the window's own hours: each contact's count
    assert settings.availability(at("2026-07-01 02:00")).open
    plain = CampaignSettings.from_dict({**data, "local_hours": False, "holidays": []})
    assert not plain.availability(at("2026-07-01 02:00")).open
    assert "local_hours" not in plain.to_dict()
    assert "holidays" not in plain.to_dict()
    with pytest.raises(ValidationError, match="holidays need local_hours"):
        CampaignSettings.from_dict({**data, "local_hours": False})
    with pytest.raises(ValidationError, match="local_hours"):
        CampaignSettings.from_dict({**data, "local_hours": "yes"})
