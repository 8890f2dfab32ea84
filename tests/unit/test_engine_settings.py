"""EngineSettings from DIALER_* variables: the tuning knobs and their checks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest

from dialer.config import EngineSettings, parse_trunks
from dialer.domain.campaign import CampaignSettings, TrunkLimits
from dialer.engine.engine import Engine
from dialer.engine.pacing import stamps_followed
from dialer.engine.runner import CampaignRunner
from dialer.errors import ConfigError
from dialer.store.models import Pacing


def test_defaults_make_one_claim_per_pacing_step() -> None:
    s = EngineSettings.from_env({})
    assert (s.pace_ms, s.write_linger_ms) == (50, 50)
    # a step and what a claim that comes late catches up fit in one claim up to 640 cps
    assert Pacing.for_cps(640, s.pace_ms).most <= s.claim_batch


def test_tuning_knobs_from_the_environment() -> None:
    s = EngineSettings.from_env(
        {
            "DIALER_PACE_MS": "100",
            "DIALER_CLAIM_BATCH": "16",
            "DIALER_RATE_MARGIN_MS": "100",
            "DIALER_RATE_SWITCH_MS": "25",
            "DIALER_WRITE_LINGER_MS": "0",
            "DIALER_TRUNKS": "carrier=100/20, backup=10/2.5",
        }
    )
    assert (s.pace_ms, s.claim_batch, s.write_linger_ms) == (100, 16, 0)
    assert s.rate_margin_ms == 100
    assert s.rate_switch_ms == 25
    assert EngineSettings().rate_margin_ms is None  # adaptive unless fixed
    assert s.rate_stamps is None  # unset: Asterisk's stamps, not FreeSWITCH's
    assert stamps_followed(None, "asterisk")
    assert not stamps_followed(None, "freeswitch")
    assert EngineSettings.from_env({"DIALER_RATE_STAMPS": "off"}).rate_stamps is False
    assert EngineSettings.from_env({"DIALER_RATE_STAMPS": " ON "}).rate_stamps is True
    assert stamps_followed(True, "freeswitch")
    assert not stamps_followed(False, "asterisk")
    assert s.trunk_limit("carrier") == TrunkLimits("carrier", max_channels=100, cps=20.0)
    assert s.trunk_limit("backup") == TrunkLimits("backup", max_channels=10, cps=2.5)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DIALER_PACE_MS", "fast", "whole number"),
        ("DIALER_WRITE_LINGER_MS", "-1", "at least 0"),
        ("DIALER_CLAIM_BATCH", "0", "at least 1"),
        ("DIALER_RATE_MARGIN_MS", "-5", "at least 0"),
        ("DIALER_RATE_SWITCH_MS", "-1", "at least 0"),
        ("DIALER_RATE_STAMPS", "no", "must be on or off"),
        ("DIALER_LEASE_MS", "10", "at least 1000"),
        ("DIALER_TRUNKS", "carrier=100", "name=max_channels/cps"),
        ("DIALER_TRUNKS", "carrier=0/0", "DIALER_TRUNKS: trunk 'carrier': max_channels"),
        ("DIALER_METRICS_PORT", "65536", "at most 65535"),
        ("DIALER_METRICS_PORT", "-1", "at least 0"),
        ("DIALER_METRICS_PORT", "http", "whole number"),
        ("DIALER_METRICS_HOST", "0.0.0.0:9108", "without a scheme, brackets or port"),
        ("DIALER_METRICS_HOST", "http://0.0.0.0", "DIALER_METRICS_HOST must be an IP address"),
        ("DIALER_METRICS_HOST", "[::1]", "DIALER_METRICS_HOST must be an IP address"),
        ("DIALER_METRICS_HOST", "256.0.0.1", "DIALER_METRICS_HOST must be an IP address"),
        ("DIALER_METRICS_HOST", "my host", "DIALER_METRICS_HOST must be an IP address"),
        ("DIALER_METRICS_HOST", "-lo", "DIALER_METRICS_HOST must be an IP address"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        EngineSettings.from_env({name: value})


def test_metrics_port_is_off_and_loopback_unless_set() -> None:
    s = EngineSettings.from_env({})
    assert (s.metrics_host, s.metrics_port) == ("127.0.0.1", None)
    s = EngineSettings.from_env({"DIALER_METRICS_PORT": "9108", "DIALER_METRICS_HOST": ""})
    assert (s.metrics_host, s.metrics_port) == ("127.0.0.1", 9108)


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("0.0.0.0", "0.0.0.0"),
        (" 10.1.2.3 ", "10.1.2.3"),
        ("::", "::"),
        ("0:0::1", "::1"),
        ("localhost", "localhost"),
        ("metrics.example.org", "metrics.example.org"),
    ],
)
def test_metrics_host_from_the_environment(value: str, host: str) -> None:
    s = EngineSettings.from_env({"DIALER_METRICS_HOST": value, "DIALER_METRICS_PORT": "9108"})
    assert (s.metrics_host, s.metrics_port) == (host, 9108)


# -- DIALER_TRUNKS ----------------------------------------------------------------------------


def test_unlimited_is_spelled_out_per_axis_or_whole() -> None:
    assert parse_trunks("a=unlimited/20, b=100/unlimited, c=unlimited, d=Unlimited/UNLIMITED") == {
        "a": TrunkLimits("a", None, 20.0),
        "b": TrunkLimits("b", 100, None),
        "c": TrunkLimits("c", None, None),
        "d": TrunkLimits("d", None, None),
    }
    assert parse_trunks(" ,, ") == {}


def test_a_trunk_not_listed_has_no_trunk_limit() -> None:
    s = EngineSettings.from_env({"DIALER_TRUNKS": "carrier=100/20"})
    assert s.trunk_limit("other") == TrunkLimits.unlimited("other")
    assert EngineSettings().trunk_limit("carrier") == TrunkLimits("carrier", None, None)


@pytest.mark.parametrize(
    ("text", "field", "got"),
    [
        ("carrier=0/20", "max_channels", "got 0"),
        ("carrier=-5/0", "max_channels", "got -5"),
        ("carrier=10/0", "cps", "got 0.0"),
        ("carrier=10/-1", "cps", "got -1.0"),
        ("carrier=10/nan", "cps", "got nan"),
        ("carrier=10/NaN", "cps", "got nan"),
        ("carrier=10/inf", "cps", "got inf"),
        ("carrier=10/-Infinity", "cps", "got -inf"),
        ("carrier=10/", "cps", "got ''"),
        ("carrier=/20", "max_channels", "got ''"),
        ("carrier=abc/20", "max_channels", "got 'abc'"),
        ("carrier=10/abc", "cps", "got 'abc'"),
        ("carrier=10.5/20", "max_channels", "got '10.5'"),
        ("carrier=nan/20", "max_channels", "got 'nan'"),
        ("carrier=1e3/20", "max_channels", "got '1e3'"),
        ("carrier=100001/20", "max_channels", "got 100001"),
        ("carrier=10/10001", "cps", "got 10001.0"),
        ("carrier=10/20/30", "cps", "got '20/30'"),
        ("carrier=unlimted/20", "max_channels", "got 'unlimted'"),
        ("carrier=10/unlimited!", "cps", "got 'unlimited!'"),
    ],
)
def test_every_bad_limit_is_refused_naming_the_trunk_and_the_field(
    text: str, field: str, got: str
) -> None:
    with pytest.raises(ConfigError) as info:
        EngineSettings.from_env({"DIALER_TRUNKS": f"ok=5/1, {text}"})
    message = str(info.value)
    assert message.startswith(f"DIALER_TRUNKS: trunk 'carrier': {field} must be ")
    assert message.endswith(got)
    assert "'unlimited'" in message  # the one way to lift a limit is named


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("carrier", "bad entry 'carrier': expected name=max_channels/cps"),
        ("carrier=", "bad entry 'carrier=': expected"),
        ("carrier=100", "bad entry 'carrier=100': expected"),
        ("carrier:100/20", "bad entry 'carrier:100/20'"),
        ("=100/20", "trunk '': name must be a trunk name"),
        ("bad name=100/20", "trunk 'bad name': name must be a trunk name"),
        ("carrier=1/1, carrier=2/2", "trunk 'carrier' is listed twice"),
    ],
)
def test_bad_entries_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^DIALER_TRUNKS: {message}"):
        parse_trunks(text)


def test_settings_built_in_code_hold_trunk_limits_under_their_names() -> None:
    with pytest.raises(ConfigError, match="TrunkLimits of 'carrier'"):
        EngineSettings(trunks={"carrier": TrunkLimits("backup", 1, 1)})


@pytest.mark.parametrize(
    ("trunks", "cps", "max_channels", "batch"),
    [
        ("", 100, 30, 10),  # no trunk limit: the campaign's 100 cps paces (10 per claim)
        ("carrier=unlimited", 100, 30, 10),
        ("carrier=unlimited/20", 100, 30, 2),  # the trunk's 20 cps paces
        ("carrier=3/unlimited", 1000, 30, 30),  # channels are left to the script's trunk check
        ("carrier=unlimited", 1000, 3, 3),
    ],
)
def test_claim_batch_follows_the_tighter_of_campaign_and_trunk(
    trunks: str, cps: float, max_channels: int, batch: int
) -> None:
    settings = EngineSettings.from_env({"DIALER_TRUNKS": trunks, "DIALER_PACE_MS": "50"})
    engine = cast(Engine, SimpleNamespace(settings=settings))
    campaign = CampaignSettings(name="c", trunk="carrier", max_channels=max_channels, cps=cps)
    assert CampaignRunner(engine, 1, campaign)._batch_size() == batch
