"""redis+sentinel:// URLs: parsing, refusals, settings and redaction (no server needed; the
real Sentinel group is tests/integration/test_sentinel.py)."""

from __future__ import annotations

import pytest

from dialer.cli.common import redacted
from dialer.config import EngineSettings
from dialer.errors import ConfigError
from dialer.store.connection import (
    HiredisPackedSentinelConnection,
    ReplicaWait,
    SentinelRedis,
    is_sentinel_url,
    parse_sentinel_url,
    replica_shortfall,
    sentinel_client,
)


def test_a_full_url() -> None:
    url = (
        "redis+sentinel://dialer:s%40cret@h1:26380,10.0.0.2,[::1]:26381/mymaster/3"
        "?sentinel_password=sp&min_replicas=2&replica_timeout_ms=50"
    )
    parts = parse_sentinel_url(url)
    assert parts.sentinels == (("h1", 26380), ("10.0.0.2", 26379), ("::1", 26381))
    assert parts.service == "mymaster"
    assert parts.db == 3
    assert (parts.username, parts.password) == ("dialer", "s@cret")
    assert (parts.sentinel_username, parts.sentinel_password) == (None, "sp")
    assert parts.wait == ReplicaWait(2, 50)


def test_defaults() -> None:
    parts = parse_sentinel_url("REDIS+SENTINEL://127.0.0.1/mymaster")
    assert parts.sentinels == (("127.0.0.1", 26379),)
    assert (parts.db, parts.username, parts.password) == (0, None, None)
    assert parts.wait == ReplicaWait(1, 200)
    assert parse_sentinel_url("redis+sentinel://:pw@h/m/").password == "pw"
    assert parse_sentinel_url("redis+sentinel://h/m?min_replicas=0").wait.min_replicas == 0


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://h1:26379",  # no service
        "redis+sentinel://h1:26379/",
        "redis+sentinel:///mymaster",  # no host
        "redis+sentinel://h1:26379,/mymaster",
        "redis+sentinel://h1:0/mymaster",
        "redis+sentinel://h1:70000/mymaster",
        "redis+sentinel://h1:x/mymaster",
        "redis+sentinel://[::1/mymaster",
        "redis+sentinel://h1/mymaster/16",
        "redis+sentinel://h1/mymaster/x",
        "redis+sentinel://h1/mymaster?tls=1",
        "redis+sentinel://h1/mymaster?min_replicas=-1",
        "redis+sentinel://h1/mymaster?replica_timeout_ms=0",
        "redis+sentinel://h1/mymaster?replica_timeout_ms=1e3",
        "redis+sentinel://h1/mymaster#frag",
        "redis://h1/0",
    ],
)
def test_refused(url: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case its own message)
        parse_sentinel_url(url)


def test_an_error_never_repeats_the_password() -> None:
    with pytest.raises(ValueError, match="port") as info:
        parse_sentinel_url("redis+sentinel://u:hunter2@h1:bad/m")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError, match="DIALER_REDIS_URL") as cfg:
        EngineSettings.from_env({"DIALER_REDIS_URL": "redis+sentinel://u:hunter2@h1/m?x=1"})
    assert "hunter2" not in str(cfg.value)


def test_settings_take_a_sentinel_url() -> None:
    url = "redis+sentinel://h1:26379,h2:26379/mymaster/0"
    assert EngineSettings.from_env({"DIALER_REDIS_URL": url}).redis_url == url
    assert is_sentinel_url(url)
    assert not is_sentinel_url("redis://h1:6379/0")


def test_redacted_hides_every_password() -> None:
    assert (
        redacted("redis+sentinel://u:pw@h1:26379,h2:26379/m/0?sentinel_password=sp&min_replicas=1")
        == "redis+sentinel://u:***@h1:26379,h2:26379/m/0?sentinel_password=***&min_replicas=1"
    )
    assert redacted("redis+sentinel://h1,h2/m") == "redis+sentinel://h1,h2/m"


async def test_the_client_asks_the_sentinels_and_packs_with_hiredis() -> None:
    client, wait = sentinel_client(
        "redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/m/0?min_replicas=0", socket_timeout=1
    )
    try:
        assert isinstance(client, SentinelRedis)
        assert wait.min_replicas == 0
        pool = client.connection_pool
        assert pool.connection_class is HiredisPackedSentinelConnection
        assert pool.connection_kwargs["password"] == "pw"
        assert client.sentinels is not None
        assert [
            s.connection_pool.connection_kwargs["port"] for s in client.sentinels.sentinels
        ] == [
            1,
            2,
        ]
    finally:
        await client.aclose()


def test_a_short_wait_is_an_error() -> None:
    wait = ReplicaWait(1, 200)
    assert replica_shortfall(wait, 1) is None
    assert replica_shortfall(wait, 2) is None
    assert "0 of 1 replicas" in str(replica_shortfall(wait, 0))
    assert replica_shortfall(wait, RuntimeError("x")) is not None
