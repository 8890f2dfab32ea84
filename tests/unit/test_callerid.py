"""Caller-ID selection and validation (dialer.domain.callerid); campaign settings with pools."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.domain.callerid import (
    CallerIdPool,
    CallerIdSource,
    PoolMode,
    effective_source,
    local_presence,
    rotation_field,
)
from dialer.domain.campaign import CampaignSettings
from dialer.errors import InvalidSettings, ValidationError

NJ, CHICAGO, SF = "+12015550100", "+13125550100", "+14155550100"
PARIS, LONDON = "+33145550100", "+442079460000"


def test_rotate_is_round_robin() -> None:
    pool = CallerIdPool((NJ, CHICAGO, SF))
    picked = [pool.pick("+12015600001", turn) for turn in range(9)]
    assert picked == [NJ, CHICAGO, SF] * 3
    assert Counter(picked) == {NJ: 3, CHICAGO: 3, SF: 3}


def test_local_presence_matches_the_area_code() -> None:
    pool = CallerIdPool((NJ, CHICAGO, PARIS), PoolMode.LOCAL, fallback=SF)
    assert pool.pick("+12015600001", 0) == NJ  # 201: New Jersey
    assert pool.pick("+13125551234", 0) == CHICAGO
    assert pool.pick("+33612345678", 0) == SF  # France, but 6 (mobile) is not Paris' 1
    assert pool.pick("+33155550199", 0) == PARIS  # Paris: country 33, area 1
    assert pool.pick("+16175550100", 0) == SF  # Boston: country matches, area does not
    assert pool.pick("+442079460001", 0) == SF


def test_local_presence_prefers_the_longest_shared_prefix() -> None:
    numbers = ("+12015000000", "+12015600000", "+12015699999")
    assert local_presence(numbers, "+12015600001") == "+12015600000"
    assert local_presence(numbers, "+12015699990") == "+12015699999"
    assert local_presence(numbers, "+12017000000") == "+12015000000"  # a tie: the first
    assert local_presence(numbers, "+13125550100") is None


def test_local_without_fallback_uses_the_first_number() -> None:
    pool = CallerIdPool((CHICAGO, NJ), PoolMode.LOCAL)
    assert pool.pick(LONDON, 0) == CHICAGO
    assert pool.pick("not a number", 0) == CHICAGO


def test_local_presence_on_unparsable_callees() -> None:
    # no country code phonenumbers knows: country + 3 digits must still be shared
    assert local_presence(("+9991234000",), "+9991234555") == "+9991234000"  # no country 999
    assert local_presence(("+9991234000",), "+9990034555") is None  # 3 digits shared only


@given(
    st.lists(st.from_regex(r"\+1[2-9][0-9]{9}", fullmatch=True), min_size=1, max_size=8),
    st.from_regex(r"\+1[2-9][0-9]{9}", fullmatch=True),
)
def test_local_presence_only_ever_picks_a_same_area_number(numbers: list[str], callee: str) -> None:
    chosen = local_presence(list(dict.fromkeys(numbers)), callee)
    same_area = [n for n in numbers if n[:5] == callee[:5]]
    if same_area:
        assert chosen is not None
        assert chosen[:5] == callee[:5]
    else:
        assert chosen is None


@pytest.mark.parametrize(
    "numbers",
    [
        (),
        ("12",),
        ("+1201555010012345",),  # 16 digits
        ("+1 201 555",),
        ("+12015550100\r\nX-Evil: 1",),
        ("<sip:evil@example.com>",),
        ("+12015550100;user=phone",),
        ("+12015550100", "+12015550100"),
        ("+١٢٣٤٥",),  # Arabic-Indic digits are not ASCII digits
    ],
)
def test_pool_numbers_are_refused(numbers: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError):
        CallerIdPool(numbers)


def test_pool_mode_and_fallback_are_checked() -> None:
    with pytest.raises(ValidationError, match="mode must be one of"):
        CallerIdPool((NJ,), "random")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="fallback"):
        CallerIdPool((NJ,), PoolMode.LOCAL, fallback="+1\n")
    with pytest.raises(ValidationError, match="local mode only"):
        CallerIdPool((NJ,), PoolMode.ROTATE, fallback=SF)
    with pytest.raises(ValidationError, match="1 to 1000"):
        CallerIdPool(tuple(f"+1201555{i:04d}" for i in range(1001)))
    with pytest.raises(ValidationError, match="list of numbers"):
        CallerIdPool(NJ)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "caller_id",
    ['"Evil" <+1>\r\nX: y', '"A"B" <+12015550100>', "<sip:x@y>", "+1 201", "", '"Ca\x00" <+1>'],
)
def test_hostile_fixed_caller_ids_are_refused(caller_id: str) -> None:
    with pytest.raises(ValidationError):
        CallerIdSource(caller_id)


def test_source_precedence() -> None:
    campaign = CallerIdSource("+15005550001", CallerIdPool((NJ, CHICAGO)))
    assert campaign.pick("+12015600001", 1) == CHICAGO  # the pool wins over the fixed id
    assert CallerIdSource("+15005550001").pick("+12015600001", 7) == "+15005550001"
    assert CallerIdSource().pick("+12015600001") is None
    listed = CallerIdSource('"Sales" <+15005550002>')
    assert effective_source(listed, campaign) is listed
    assert effective_source(CallerIdSource(), campaign) is campaign
    assert effective_source(None, campaign) is campaign
    assert rotation_field(None) == "campaign"
    assert rotation_field(3) == "list:3"
    assert campaign.rotates
    assert not listed.rotates


def test_source_round_trips_and_names_bad_fields() -> None:
    source = CallerIdSource(None, CallerIdPool((NJ, SF), PoolMode.LOCAL, fallback=CHICAGO))
    assert CallerIdSource.from_dict(source.to_dict()) == source
    with pytest.raises(ValidationError, match=r"caller_id_pool\.numbers\[1\]"):
        CallerIdSource.from_dict({"caller_id_pool": {"numbers": [NJ, "x"]}})
    with pytest.raises(ValidationError, match="unknown field 'pool'"):
        CallerIdSource.from_dict({"pool": {"numbers": [NJ]}})
    with pytest.raises(ValidationError, match="missing field 'numbers'"):
        CallerIdSource.from_dict({"caller_id_pool": {"mode": "local"}})


def test_campaign_settings_carry_a_pool() -> None:
    data = {
        "name": "c",
        "trunk": "t",
        "max_channels": 1,
        "cps": 1,
        "caller_id": "+15005550001",
        "caller_id_pool": {"numbers": [NJ, CHICAGO], "mode": "rotate"},
    }
    settings = CampaignSettings.from_dict(data)
    assert settings.caller_id_pool == CallerIdPool((NJ, CHICAGO))
    assert settings.caller_id_source.pick("+12015600001", 3) == CHICAGO
    again = CampaignSettings.from_dict(settings.to_dict())
    assert again == settings
    assert CampaignSettings.from_dict({**data, "caller_id_pool": None}).caller_id_pool is None
    bad = {**data, "caller_id_pool": {"numbers": ["+1201\r\nVia: x"]}}
    with pytest.raises(ValidationError, match=r"caller_id_pool\.numbers\[0\]"):
        CampaignSettings.from_dict(bad)
    with pytest.raises(InvalidSettings):
        CampaignSettings.from_json(
            '{"name":"c","trunk":"t","max_channels":1,"cps":1,'
            '"caller_id_pool":{"numbers":"+12015550100"}}'
        )
