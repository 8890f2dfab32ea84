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
    ],
)
def test_bad_values_are_refused_with_the_variable_named(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        EngineSettings.from_env({name: value})
