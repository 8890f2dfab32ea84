"""``dialer node ...`` and ``dialer trunkgroup ...`` against the session's real Redis."""

from __future__ import annotations

import json

import pytest

from dialer.store import RedisStore
from dialer.store.nodes import NodeStore
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


def test_node_and_group_round_trip(cli: Cli) -> None:
    assert cli.ok("node", "set", "n1", "--max-channels", "300", "--cps", "50").lines == [
        "created n1: asterisk, down, channels 0/300, cps 50 (0 engine(s) see it)"
    ]
    cli.ok("node", "set", "n2", "--kind", "freeswitch")
    # a change keeps the other options; unlimited lifts a cap
    (line,) = cli.ok("node", "set", "n1", "--cps", "unlimited", "--disable").lines
    assert line == (
        "updated n1: asterisk, down, disabled, channels 0/300, cps unlimited (0 engine(s) see it)"
    )

    async def up(store: RedisStore) -> None:
        await NodeStore(store.client, store.keys).mark_up("n2", "engine-a")

    cli.store_call(up)
    assert cli.ok("node", "list").lines == [
        "n1: asterisk, down, disabled, channels 0/300, cps unlimited (0 engine(s) see it)",
        "n2: freeswitch, up, channels 0/unlimited, cps unlimited (1 engine(s) see it)",
        "global cap: channels unlimited, cps unlimited",
    ]
    r = cli.ok(
        "trunkgroup",
        "set",
        "main",
        "--trunk",
        "carrier-a=n1,n2",
        "--trunk",
        "spare=n2",
        "--backup",
        "spare",
        "--max-channels",
        "40",
    )
    assert r.lines == [
        "created main: carrier-a via n1, n2; spare via n2, backup spare; channels 40, cps unlimited"
    ]
    cli.ok("trunkgroup", "set", "main", "--cps", "12.5")
    data = json.loads(cli.ok("trunkgroup", "list", "--json").out)
    assert data["trunk_groups"] == [
        {
            "name": "main",
            "trunks": {"carrier-a": ["n1", "n2"], "spare": ["n2"]},
            "backup": "spare",
            "max_channels": 40,
            "cps": 12.5,
        }
    ]
    assert cli.ok("node", "cap", "--max-channels", "5000").lines == [
        "global cap: channels 5000, cps unlimited"
    ]
    assert json.loads(cli.ok("node", "list", "--json").out)["global_cap"]["max_channels"] == 5000
    # a node in use cannot go
    r = cli("node", "remove", "n2")
    assert r.code == 2
    assert "n2 is used by trunk group(s) main" in r.err
    assert cli.ok("trunkgroup", "remove", "main").lines == ["main: removed"]
    assert cli.ok("node", "remove", "n2").lines == ["n2: removed"]
    r = cli("node", "remove", "n2")
    assert (r.code, r.err.strip()) == (2, "dialer: node n2 does not exist")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("node", "set", "N1"), "node id must be"),
        (("node", "set", "n1", "--max-channels", "0"), "max_channels must be"),
        (("node", "set", "n1", "--cps", "20000"), "cps must be"),
        (("node", "set", "n1", "--cps", "fast"), "a number or 'unlimited' expected"),
        (("trunkgroup", "set", "g", "--trunk", "t=ghost"), "unknown node 'ghost'"),
        (("trunkgroup", "set", "g"), "give its trunks"),
        (("trunkgroup", "set", "g", "--trunk", "t"), "TRUNK=NODE"),
        (("trunkgroup", "set", "g", "--trunk", "t=n0", "--backup", "x"), "backup 'x'"),
        (("node", "cap", "--cps", "-1"), "cps must be"),
    ],
)
def test_validation_errors(cli: Cli, argv: tuple[str, ...], words: str) -> None:
    cli.ok("node", "set", "n0")
    r = cli(*argv)
    assert r.code == 2, r
    assert words in r.err
