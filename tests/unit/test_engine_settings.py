"""EngineSettings from DIALER_* variables: the tuning knobs and their checks."""

from __future__ import annotations

import pytest

from dialer.config import EngineSettings, TrunkLimit
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
            "DIALER_WRITE_LINGER_MS": "0",
            "DIALER_TRUNKS": "carrier=100/20, backup=10/2.5",
        }
    )
    assert (s.pace_ms, s.claim_batch, s.write_linger_ms) == (100, 16, 0)
    assert s.rate_margin_ms == 100
    assert s.trunk_limit("carrier") == TrunkLimit(max_channels=100, cps=20.0)
    assert s.trunk_limit("backup") == TrunkLimit(max_channels=10, cps=2.5)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DIALER_PACE_MS", "fast", "whole number"),
        ("DIALER_WRITE_LINGER_MS", "-1", "at least 0"),
        ("DIALER_CLAIM_BATCH", "0", "at least 1"),
        ("DIALER_RATE_MARGIN_MS", "-5", "at least 0"),
        ("DIALER_LEASE_MS", "10", "at least 1000"),
        ("DIALER_TRUNKS", "carrier=100", "name=max_channels/cps"),
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
