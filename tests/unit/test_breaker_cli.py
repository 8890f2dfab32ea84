"""``dialer trunk show|reset``: a trunk's breaker seen and overridden from a shell."""

from __future__ import annotations

import pytest

from dialer.domain.breaker import BreakerLimits, Signal
from dialer.store import RedisStore
from dialer.store.breaker import BreakerStore
from ops.localstack.redis_server import RedisServer
from tests.unit.cli_helpers import Cli, make_cli

pytestmark = pytest.mark.redis


@pytest.fixture
def cli(
    redis_server: RedisServer,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    return make_cli(redis_server, namespace, capsys, monkeypatch)


def test_show_and_reset(cli: Cli) -> None:
    assert cli.ok("trunk", "show", "carrier").lines == [
        "carrier: closed (unanswered in a row 0, failures in a row 0; trips so far 0)"
    ]

    async def trip(store: RedisStore) -> None:
        signals = [(f"c{i}", Signal.FAILURE, False) for i in range(2)]
        await BreakerStore(store).report("carrier", signals, BreakerLimits(failure_run=2))

    cli.store_call(trip)
    (line,) = cli.ok("trunk", "show", "carrier").lines
    assert line.startswith("carrier: open since ")
    assert "(2 trunk failures in a row); a probe may go from " in line
    assert line.endswith("(trips so far 1)")
    assert cli.ok("trunk", "reset", "carrier").lines == [
        "carrier: breaker reset to closed (runs and trips cleared)"
    ]
    assert cli.ok("trunk", "show", "carrier").lines[0].startswith("carrier: closed")
    assert cli("trunk", "show", "bad:name").code == 2
