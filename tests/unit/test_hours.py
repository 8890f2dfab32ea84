"""Calling hours and campaign dates: open periods, next openings, deadlines (pure domain)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dialer.domain.campaign import CampaignSettings
from dialer.domain.hours import (
    BEFORE_START,
    CLOSE_GUARD_S,
    END_DATE_PASSED,
    NO_HOURS_LEFT,
    OUTSIDE_HOURS,
    CallingWindow,
    availability,
    parse_instant,
)
from dialer.errors import ValidationError

PARIS = ZoneInfo("Europe/Paris")
WORKDAYS = CallingWindow("Europe/Paris", time(9), time(20), frozenset(range(5)))


def paris(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS).timestamp()


def test_no_hours_and_no_dates_is_always_open() -> None:
    hours = availability(1_700_000_000.0, None)
    assert (hours.open, hours.until, hours.opens_at, hours.ended) == (True, None, None, False)
    assert hours.claim_deadline_ms() is None


def test_open_window_closes_at_its_end_and_the_claim_deadline_comes_a_guard_before() -> None:
    hours = availability(paris(2025, 3, 3, 10, 0), WORKDAYS)  # Monday 10:00
    assert hours.open
    assert hours.until == paris(2025, 3, 3, 20, 0)
    assert hours.claim_deadline_ms() == int((paris(2025, 3, 3, 20, 0) - CLOSE_GUARD_S) * 1000)


def test_the_last_guard_of_a_period_counts_as_closed() -> None:
    close = paris(2025, 3, 3, 20, 0)
    assert availability(close - CLOSE_GUARD_S - 0.01, WORKDAYS).open
    hours = availability(close - CLOSE_GUARD_S / 2, WORKDAYS)
    assert (hours.open, hours.reason) == (False, OUTSIDE_HOURS)
    assert hours.opens_at == paris(2025, 3, 4, 9, 0)


@pytest.mark.parametrize(
    ("moment", "opens"),
    [
        ((2025, 3, 3, 8, 59), (2025, 3, 3, 9, 0)),  # Monday, before the opening
        ((2025, 3, 3, 20, 0), (2025, 3, 4, 9, 0)),  # Monday at the close: Tuesday
        ((2025, 3, 7, 21, 0), (2025, 3, 10, 9, 0)),  # Friday night: Monday
        ((2025, 3, 8, 12, 0), (2025, 3, 10, 9, 0)),  # Saturday
    ],
)
def test_closed_window_says_when_it_opens(
    moment: tuple[int, int, int, int, int], opens: tuple[int, int, int, int, int]
) -> None:
    hours = availability(paris(*moment), WORKDAYS)
    assert (hours.open, hours.reason, hours.ended) == (False, OUTSIDE_HOURS, False)
    assert hours.opens_at == paris(*opens)


def test_periods_follow_daylight_saving_time() -> None:
    # Sunday 30 March 2025: Paris goes from UTC+1 to UTC+2. Friday's close is 19:00 UTC,
    # Monday's opening 07:00 UTC.
    friday = availability(paris(2025, 3, 28, 12, 0), WORKDAYS)
    assert friday.until == datetime(2025, 3, 28, 19, 0, tzinfo=UTC).timestamp()
    weekend = availability(paris(2025, 3, 29, 12, 0), WORKDAYS)
    assert weekend.opens_at == datetime(2025, 3, 31, 7, 0, tzinfo=UTC).timestamp()


def test_a_window_across_midnight_closes_the_next_morning() -> None:
    night = CallingWindow("Europe/Paris", time(22), time(6), frozenset({4}))  # Friday night
    hours = availability(paris(2025, 3, 7, 23, 0), night)
    assert hours.until == paris(2025, 3, 8, 6, 0)
    assert availability(paris(2025, 3, 8, 6, 0), night).opens_at == paris(2025, 3, 14, 22, 0)


def test_seconds_in_a_window() -> None:
    window = CallingWindow.from_dict({"timezone": "UTC", "start": "10:00:05", "end": "10:00:09"})
    assert window.to_dict()["start"] == "10:00:05"
    day = datetime(2026, 12, 7, tzinfo=UTC).timestamp()
    assert not window.is_open(day + 36_004.9)
    assert availability(day + 36_005, window).until == day + 36_009
    assert CallingWindow.from_dict(window.to_dict()) == window


def test_before_the_start_date_it_waits_for_the_date_and_then_the_hours() -> None:
    starts = datetime(2025, 3, 8, 12, 0, tzinfo=PARIS)  # Saturday noon
    hours = availability(paris(2025, 3, 3, 10, 0), WORKDAYS, starts_at=starts)
    assert (hours.open, hours.reason) == (False, BEFORE_START)
    assert hours.opens_at == paris(2025, 3, 10, 9, 0)  # the first opening after the date
    no_window = availability(paris(2025, 3, 3, 10, 0), None, starts_at=starts)
    assert no_window.opens_at == starts.timestamp()
    started = availability(starts.timestamp() + 1, None, starts_at=starts)
    assert started.open


def test_the_end_date_cuts_the_period_and_then_ends_the_campaign() -> None:
    ends = datetime(2025, 3, 3, 15, 30, tzinfo=PARIS)
    during = availability(paris(2025, 3, 3, 10, 0), WORKDAYS, ends_at=ends)
    assert during.until == ends.timestamp()
    after = availability(ends.timestamp(), WORKDAYS, ends_at=ends)
    assert (after.open, after.ended, after.reason) == (False, True, END_DATE_PASSED)
    # closed now, and the next opening comes after the end date: nothing is left
    evening = datetime(2025, 3, 3, 23, 0, tzinfo=PARIS)
    left = availability(paris(2025, 3, 3, 21, 0), WORKDAYS, ends_at=evening)
    assert (left.ended, left.reason) == (True, NO_HOURS_LEFT)


def test_a_retry_outside_the_hours_moves_to_the_next_opening() -> None:
    settings = CampaignSettings(name="c", trunk="t", max_channels=1, cps=1.0, window=WORKDAYS)
    assert settings.dial_time(paris(2025, 3, 3, 10, 0)) == paris(2025, 3, 3, 10, 0)
    assert settings.dial_time(paris(2025, 3, 3, 20, 30)) == paris(2025, 3, 4, 9, 0)
    assert settings.dial_time(paris(2025, 3, 8, 9, 30)) == paris(2025, 3, 10, 9, 0)
    always = CampaignSettings(name="c", trunk="t", max_channels=1, cps=1.0)
    assert always.dial_time(123.5) == 123.5


def test_dates_round_trip_and_are_checked() -> None:
    base = {"name": "c", "trunk": "t", "max_channels": 1, "cps": 1}
    s = CampaignSettings.from_dict(
        {**base, "starts_at": "2026-12-24T09:00:00+01:00", "ends_at": "2026-12-31T18:00:00Z"}
    )
    assert CampaignSettings.from_dict(s.to_dict()) == s
    with pytest.raises(ValidationError, match="starts_at needs a UTC offset"):
        CampaignSettings.from_dict({**base, "starts_at": "2026-12-24T09:00:00"})
    with pytest.raises(ValidationError, match="ends_at must be an ISO 8601"):
        CampaignSettings.from_dict({**base, "ends_at": "next tuesday"})
    with pytest.raises(ValidationError, match="ends_at .* must come after starts_at"):
        CampaignSettings.from_dict(
            {**base, "starts_at": "2026-12-24T09:00:00Z", "ends_at": "2026-12-24T08:00:00Z"}
        )
    with pytest.raises(ValidationError, match="starts_at must be an ISO 8601"):
        parse_instant(1700000000, "starts_at")


@given(
    start=st.times().map(lambda t: t.replace(microsecond=0)),
    end=st.times().map(lambda t: t.replace(microsecond=0)),
    days=st.frozensets(st.integers(min_value=0, max_value=6), min_size=1),
    tz=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]),
    now=st.floats(min_value=1.6e9, max_value=1.9e9),
)
def test_availability_agrees_with_is_open_and_the_next_opening_is_open(
    start: time, end: time, days: frozenset[int], tz: str, now: float
) -> None:
    assume(start != end)
    window = CallingWindow(tz, start, end, days)
    hours = availability(now, window)
    assert hours.open is (window.is_open(now) and window.is_open(now + CLOSE_GUARD_S))
    if hours.open:
        assert hours.until is not None
        assert now < hours.until <= now + 86_400
        assert window.is_open(hours.until - 0.001)
    else:
        assert hours.opens_at is not None
        assert now < hours.opens_at <= now + 8 * 86_400
        assert window.is_open(hours.opens_at)
        for k in (0.25, 0.5, 0.75):  # closed (or in a period's last guard) up to the opening
            moment = now + k * (hours.opens_at - now)
            assert not window.is_open(moment) or not window.is_open(moment + CLOSE_GUARD_S)


def test_wall_clock_matches_for_a_utc_window() -> None:
    window = CallingWindow("UTC", time(9), time(17), frozenset({0, 1, 2, 3, 4}))
    monday = datetime(2026, 12, 7, tzinfo=UTC)
    for minutes in range(0, 7 * 24 * 60, 7):
        moment = monday + timedelta(minutes=minutes)
        expected = moment.weekday() < 5 and time(9) <= moment.time() < time(17)
        assert window.is_open(moment.timestamp()) is expected
