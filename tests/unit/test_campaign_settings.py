"""Campaign settings: validation, JSON round trip, calling window in a real time zone."""

from __future__ import annotations

import json
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dialer.domain.campaign import CallingWindow, CampaignSettings, PlanLimits, TrunkLimits
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus
from dialer.errors import ValidationError

PARIS = ZoneInfo("Europe/Paris")
WORKDAYS = CallingWindow("Europe/Paris", time(9), time(20), frozenset(range(5)))


def paris(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS).timestamp()


def full_settings() -> CampaignSettings:
    return CampaignSettings(
        name="Relance été 2025",
        trunk="carrier-1.fr",
        max_channels=30,
        cps=2.5,
        ring_timeout=25,
        caller_id='"Acme Énergie" <+33123456789>',
        context="dialer-outbound",
        extension="start",
        amd=True,
        retry=RetryPolicy(max_attempts=4, max_attempts_for={CallStatus.VOICEMAIL: 2}),
        window=WORKDAYS,
        limits=PlanLimits(max_attempts_total=10_000, max_minutes=500),
    )


def test_defaults() -> None:
    s = CampaignSettings(name="x", trunk="t", max_channels=1, cps=1)
    assert (s.ring_timeout, s.caller_id, s.context, s.extension, s.amd) == (
        30.0,
        None,
        "dialer-outbound",
        "s",
        False,
    )
    assert s.retry == RetryPolicy()
    assert s.window is None
    assert s.limits is None
    assert s.availability(0.0).open
    assert isinstance(s.cps, float)


def test_json_round_trip() -> None:
    s = full_settings()
    text = json.dumps(s.to_dict())
    assert CampaignSettings.from_dict(json.loads(text)) == s
    minimal = CampaignSettings(name="x", trunk="t", max_channels=1, cps=1)
    assert CampaignSettings.from_dict(json.loads(json.dumps(minimal.to_dict()))) == minimal


def test_from_dict_fills_defaults() -> None:
    s = CampaignSettings.from_dict({"name": "x", "trunk": "t", "max_channels": 2, "cps": 1})
    assert s == CampaignSettings(name="x", trunk="t", max_channels=2, cps=1.0)


BAD_FIELDS = [
    ("name", ""),
    ("name", " padded"),
    ("name", "a\nb"),
    ("name", "a\x00b"),
    ("name", "a\u200eb"),
    ("name", 3),
    ("trunk", "a\r\nAction: Hangup"),
    ("trunk", "PJSIP/carrier"),
    ("trunk", "-dash"),
    ("trunk", "carrier\n"),
    ("max_channels", 0),
    ("max_channels", 1.5),
    ("max_channels", True),
    ("cps", 0),
    ("cps", -1),
    ("cps", float("nan")),
    ("cps", "5"),
    ("ring_timeout", 0),
    ("ring_timeout", 601),
    ("caller_id", "+33 1 23"),
    ("caller_id", "123\n"),
    ("caller_id", '"Bob\r\n" <123>'),
    ("caller_id", '"Bob"" <123>'),
    ("caller_id", ""),
    ("context", "dialer outbound"),
    ("context", "ctx\x00"),
    ("context", ""),
    ("extension", "s\r"),
    ("extension", "_X."),
    ("amd", 1),
    ("amd", "yes"),
    ("retry", {"max_attempts": 3}),
    ("window", "09:00-20:00"),
    ("limits", 5),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_bad_values_are_refused_naming_the_field(field: str, value: object) -> None:
    data = full_settings().to_dict()
    with pytest.raises(ValidationError, match=rf"^{field}\b"):
        CampaignSettings(**{**_objects(), field: value})  # type: ignore[arg-type]
    if field not in ("retry", "window", "limits"):
        data[field] = value
        with pytest.raises(ValidationError, match=rf"^{field}\b"):
            CampaignSettings.from_dict(data)


def _objects() -> dict[str, object]:
    s = full_settings()
    return {name: getattr(s, name) for name in CampaignSettings.__dataclass_fields__}


@given(
    field=st.sampled_from(["name", "trunk", "caller_id", "context", "extension"]),
    bad=st.sampled_from(["\r", "\n", "\x00", "\r\n"]),
    where=st.integers(min_value=0, max_value=40),
)
def test_no_cr_lf_nul_anywhere(field: str, bad: str, where: int) -> None:
    good = str(getattr(full_settings(), field))
    value = good[:where] + bad + good[where:]
    with pytest.raises(ValidationError, match=field):
        CampaignSettings(**{**_objects(), field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("caller_id"), ["+33123456789", "0123456789", "<+33123456789>", '"Acme" <0123>', '"" <1>']
)
def test_good_caller_ids(caller_id: str) -> None:
    assert CampaignSettings(**{**_objects(), "caller_id": caller_id}).caller_id == caller_id  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"trunk": None}, "trunk must be"),
        ({"extra": 1}, "campaign settings: unknown field 'extra'"),
        ({"retry": {"max_attempts": 0}}, "retry.max_attempts must be"),
        ({"retry": {"delays": {"busy": -5}}}, "retry.delays.busy must be"),
        (
            {"window": {"timezone": "Mars/Olympus", "start": "09:00", "end": "20:00"}},
            "window.timezone",
        ),
        (
            {"window": {"timezone": "../../etc/passwd", "start": "09:00", "end": "20:00"}},
            "window.timezone",
        ),
        ({"window": {"timezone": "UTC", "start": "9h", "end": "20:00"}}, "window.start must be"),
        ({"window": {"timezone": "UTC", "start": "09:00", "end": "24:00"}}, "window.end must be"),
        ({"window": {"timezone": "UTC", "start": "09:00", "end": "09:00"}}, "window.start and end"),
        ({"window": {"timezone": "UTC", "start": "09:00"}}, "window: missing field 'end'"),
        (
            {"window": {"timezone": "UTC", "start": "09:00", "end": "10:00", "days": ["lun"]}},
            "window.days",
        ),
        (
            {"window": {"timezone": "UTC", "start": "09:00", "end": "10:00", "days": []}},
            "window.days",
        ),
        ({"limits": {"max_minutes": 0}}, "limits.max_minutes must be"),
        ({"limits": {"max_attempts_total": "10"}}, "limits.max_attempts_total must be"),
        ({"limits": {"minutes": 10}}, "limits: unknown field 'minutes'"),
    ],
)
def test_from_dict_errors_name_the_field(patch: dict[str, object], message: str) -> None:
    data = {**full_settings().to_dict(), **patch}
    with pytest.raises(ValidationError, match=message.replace(".", r"\.")):
        CampaignSettings.from_dict(data)


@pytest.mark.parametrize("missing", ["name", "trunk", "max_channels", "cps"])
def test_required_fields(missing: str) -> None:
    data = full_settings().to_dict()
    del data[missing]
    with pytest.raises(ValidationError, match=f"missing field '{missing}'"):
        CampaignSettings.from_dict(data)


def test_from_dict_refuses_a_non_object() -> None:
    with pytest.raises(ValidationError, match="campaign settings must be an object"):
        CampaignSettings.from_dict(["name"])


# -- calling window --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        ((2025, 3, 3, 8, 59), False),  # Monday
        ((2025, 3, 3, 9, 0), True),
        ((2025, 3, 3, 19, 59), True),
        ((2025, 3, 3, 20, 0), False),
        ((2025, 3, 8, 12, 0), False),  # Saturday
        ((2025, 3, 31, 9, 30), True),  # Monday after the switch to summer time
    ],
)
def test_window_in_paris_local_time(moment: tuple[int, int, int, int, int], is_open: bool) -> None:
    assert WORKDAYS.is_open(paris(*moment)) is is_open


def test_window_follows_daylight_saving_time() -> None:
    # 07:30 UTC is 08:30 in winter (closed) and 09:30 in summer (open) in Paris.
    winter = datetime(2025, 3, 28, 7, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    summer = datetime(2025, 3, 31, 7, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    assert not WORKDAYS.is_open(winter)
    assert WORKDAYS.is_open(summer)


def test_window_across_midnight_belongs_to_the_day_it_opens() -> None:
    night = CallingWindow("Europe/Paris", time(22), time(6), frozenset({4}))  # Friday night
    assert night.is_open(paris(2025, 3, 7, 23, 0))  # Friday 23:00
    assert night.is_open(paris(2025, 3, 8, 5, 59))  # Saturday 05:59
    assert not night.is_open(paris(2025, 3, 8, 6, 0))
    assert not night.is_open(paris(2025, 3, 8, 23, 0))  # Saturday night is not in days
    assert not night.is_open(paris(2025, 3, 7, 3, 0))  # Thursday night is not in days


def test_settings_availability_delegates() -> None:
    s = full_settings()
    assert s.availability(paris(2025, 3, 3, 10, 0)).open
    assert not s.availability(paris(2025, 3, 3, 21, 0)).open


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Nowhere/City"}, "timezone"),
        ({"timezone": 1}, "timezone"),
        ({"start": time(9, 0, 30, 5)}, "start must be a whole second"),
        ({"end": "20:00"}, "end must be a local time"),
        ({"start": time(9, tzinfo=PARIS)}, "start must be a local time"),
        ({"days": frozenset({7})}, "days"),
        ({"days": frozenset()}, "days"),
    ],
)
def test_window_validation(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"timezone": "UTC", "start": time(9), "end": time(17)}
    with pytest.raises(ValidationError, match=message):
        CallingWindow(**{**base, **kwargs})  # type: ignore[arg-type]


@given(
    start=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    end=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    days=st.frozensets(st.integers(min_value=0, max_value=6), min_size=1),
    tz=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]),
)
def test_window_round_trip(start: time, end: time, days: frozenset[int], tz: str) -> None:
    assume(start != end)
    window = CallingWindow(tz, start, end, days)
    assert CallingWindow.from_dict(json.loads(json.dumps(window.to_dict()))) == window


# -- trunk and plan limits -------------------------------------------------------------------


def test_trunk_limits() -> None:
    trunk = TrunkLimits("carrier-1", 100, 10)
    assert (trunk.name, trunk.max_channels, trunk.cps) == ("carrier-1", 100, 10.0)
    assert trunk.to_text() == "100/10"
    assert TrunkLimits.unlimited("t") == TrunkLimits("t", None, None)
    assert TrunkLimits.unlimited("t").to_text() == "unlimited/unlimited"
    with pytest.raises(ValidationError, match="^name"):
        TrunkLimits("bad name", 1, 1)
    for channels in (0, -1, 1.0, 1.5, True, "10", float("nan"), 100_001):
        with pytest.raises(ValidationError, match="^max_channels must be .* or 'unlimited'"):
            TrunkLimits("t", channels, 1)  # type: ignore[arg-type]
    for cps in (0, -1, float("nan"), float("inf"), True, "5", 10_001):
        with pytest.raises(ValidationError, match="^cps must be .* or 'unlimited'"):
            TrunkLimits("t", 1, cps)  # type: ignore[arg-type]


_TRUNK_NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}", fullmatch=True)


@given(
    name=_TRUNK_NAMES,
    channels=st.none() | st.integers(min_value=1, max_value=100_000),
    cps=st.none()
    | st.floats(min_value=0, max_value=10_000, exclude_min=True, allow_subnormal=False),
)
def test_trunk_limits_text_round_trip(name: str, channels: int | None, cps: float | None) -> None:
    limits = TrunkLimits(name, channels, cps)
    channels_text, cps_text = limits.to_text().split("/")
    assert TrunkLimits.from_text(name, channels_text, cps_text) == limits


@given(number=st.floats() | st.integers(min_value=-(10**6), max_value=10**6))
def test_no_number_lifts_a_trunk_limit(number: float) -> None:
    """Every number either is the limit or is refused naming the field; none is 'no limit'."""
    text = repr(number)
    if 0 < number <= 10_000:
        assert TrunkLimits.from_text("t", "1", text).cps == float(number)
    else:
        with pytest.raises(ValidationError, match="^cps must be "):
            TrunkLimits.from_text("t", "1", text)
    if isinstance(number, int) and 1 <= number <= 100_000:
        assert TrunkLimits.from_text("t", text, "1").max_channels == number
    else:
        with pytest.raises(ValidationError, match="^max_channels must be "):
            TrunkLimits.from_text("t", text, "1")


# every numeric setting a campaign file or the API may hold: (path, 0 is refused too, int only)
_NUMBERS = [
    ("max_channels", True, True),
    ("cps", True, False),
    ("ring_timeout", True, False),
    ("retry.max_attempts", True, True),
    ("retry.delays.busy", False, False),  # 0: retry at once
    ("retry.max_attempts_for.no_answer", True, True),
    ("retry.technical_retry_limit", False, True),  # 0: no technical retry
    ("retry.technical_backoff", True, False),
    ("retry.default_delay", False, False),
    ("limits.max_attempts_total", True, True),
    ("limits.max_minutes", True, False),
]
_NEVER_A_NUMBER = st.sampled_from(
    [float("nan"), float("inf"), float("-inf"), True, False, "5", "", "unlimited", [1], {}]
)


def _with(path: str, value: object) -> dict[str, object]:
    data: dict[str, object] = full_settings().to_dict()
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node[key] = dict(node.get(key) or {})  # type: ignore[call-overload]
        node = node[key]  # type: ignore[assignment]
    node[leaf] = value
    return data


@given(
    setting=st.sampled_from(_NUMBERS),
    value=_NEVER_A_NUMBER
    | st.integers(max_value=-1)
    | st.floats(max_value=0, exclude_max=True)
    | st.sampled_from([0, 0.0, 1.5]),
)
def test_numeric_settings_refuse_what_is_not_a_valid_number(
    setting: tuple[str, bool, bool], value: object
) -> None:
    path, zero_refused, int_only = setting
    if value == 0 and not isinstance(value, bool) and not zero_refused:
        assume(False)
    if value == 1.5 and not int_only:
        assume(False)
    with pytest.raises(ValidationError) as info:
        CampaignSettings.from_dict(_with(path, value))
    assert str(info.value).startswith(f"{path} must be ")


def test_plan_limits() -> None:
    assert PlanLimits().to_dict() == {"max_attempts_total": None, "max_minutes": None}
    assert PlanLimits(max_minutes=10).max_minutes == 10.0
    with pytest.raises(ValidationError, match="^max_attempts_total"):
        PlanLimits(max_attempts_total=0)


def test_campaign_variables_are_validated_and_round_trip():
    from dialer.domain.campaign import CampaignSettings
    from dialer.errors import ValidationError

    s = CampaignSettings(
        name="v", trunk="carrier", max_channels=1, cps=1.0, variables={"DIALER_MAX_TALK": "20"}
    )
    assert CampaignSettings.from_dict(s.to_dict()).variables == {"DIALER_MAX_TALK": "20"}
    for bad in ({"x\r\nAction": "1"}, {"OK": "a\r\nAction: Command"}):
        with pytest.raises(ValidationError, match="variables"):
            CampaignSettings(name="v", trunk="carrier", max_channels=1, cps=1.0, variables=bad)
