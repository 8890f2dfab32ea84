"""``dialer --api URL``: the CLI as a client of a real API server (uvicorn on a free port, in a
thread of its own) on a real Redis, with tokens of each role: the server's roles hold."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialer.api import create_app
from dialer.api.auth import Role
from dialer.api.server import serve_api
from dialer.cli import main
from dialer.domain.breaker import BreakerLimits, Signal
from dialer.domain.statuses import CampaignStatus
from dialer.store.breaker import BreakerStore
from dialer.store.redis_store import RedisStore
from ops.localstack.redis_server import RedisServer
from tests.unit.cli_helpers import Cli, Result, campaign_file, make_cli, numbers, write

pytestmark = pytest.mark.redis

TOKENS = {
    "viewer-token-0123456789": Role.VIEWER,
    "operator-token-0123456789": Role.OPERATOR,
    "admin-token-0123456789ab": Role.ADMINISTRATOR,
}
VIEWER, OPERATOR, ADMIN = TOKENS


@pytest.fixture
def api_url(redis_server: RedisServer, namespace: str) -> Iterator[str]:
    """The API app on the test's Redis and namespace, served over HTTP on a free port."""
    ready, stop = threading.Event(), threading.Event()
    found: dict[str, object] = {}

    async def serve() -> None:
        store = RedisStore.from_url(redis_server.url, namespace=namespace)
        try:
            app = create_app(store, tokens=TOKENS, delete_drain_timeout=5.0)
            async with serve_api(app, "127.0.0.1", 0) as endpoint:
                found["url"] = endpoint.url
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.02)
        finally:
            await store.aclose()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # shown by the assertion below
            found["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="test-api", daemon=True)
    thread.start()
    assert ready.wait(30), "the API did not start"
    assert "error" not in found, found
    yield str(found["url"])
    stop.set()
    thread.join(30)


@pytest.fixture
def cli(
    redis_server: RedisServer,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Cli:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no token file of ours
    return make_cli(redis_server, namespace, capsys, monkeypatch)


class Remote:
    """``dialer --api URL --token T ...``, without the Redis URL (only the API is known)."""

    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self._capsys = capsys

    def __call__(self, token: str | None, *argv: str) -> Result:
        auth = [] if token is None else ["--token", token]
        code = main(["--api", self.url, *auth, *argv])
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)


@pytest.fixture
def remote(api_url: str, cli: Cli, capsys: pytest.CaptureFixture[str]) -> Remote:
    return Remote(api_url, capsys)


def _status(cli: Cli, cid: int) -> CampaignStatus:
    async def read(store: RedisStore) -> CampaignStatus:
        return (await store.get_campaign(cid)).status

    return cli.store_call(read)


def test_each_role_may_do_what_the_server_allows(remote: Remote, cli: Cli, tmp_path: Path) -> None:
    write(tmp_path / "people.csv", "phone\n" + "\n".join(numbers(3)) + "\n")
    spec = campaign_file(tmp_path, "contacts: people.csv\n")
    refused = remote(VIEWER, "campaign", "create", str(spec))
    assert refused.code == 2
    assert refused.err == (
        "dialer: forbidden: to create a campaign you need the operator role or higher; "
        "this token has the viewer role\n"
    )
    made = remote(OPERATOR, "campaign", "create", str(spec))
    assert made.code == 0, made
    cid = int(made.out)
    assert "3 rows read" in made.err  # the contacts went up as the first list

    assert remote(VIEWER, "campaign", "list").lines[1].split()[:2] == [str(cid), "Draft"]
    shown = json.loads(remote(VIEWER, "campaign", "show", str(cid), "--json").out)
    assert (shown["status"], shown["contacts"]["pending"], shown["lists"]) == (
        "draft",
        3,
        {"1": "active"},
    )
    assert remote(OPERATOR, "campaign", "start", str(cid)).out == f"campaign {cid}: Running\n"

    denied = remote(VIEWER, "campaign", "pause", str(cid))
    assert (denied.code, denied.out) == (2, "")
    assert "you need the operator role or higher; this token has the viewer role" in denied.err
    assert _status(cli, cid) is CampaignStatus.RUNNING  # nothing happened

    assert remote(OPERATOR, "campaign", "pause", str(cid)).out == f"campaign {cid}: Paused\n"
    assert _status(cli, cid) is CampaignStatus.PAUSED
    edited = write(tmp_path / "edit.yaml", "name: renamed\ntrunk: b\nmax_channels: 2\ncps: 1\n")
    assert remote(OPERATOR, "campaign", "edit", str(cid), str(edited)).code == 0
    assert "renamed" in cli.ok("campaign", "list").out  # the local mode sees the same

    c = str(cid)
    cid_set = remote(OPERATOR, "list", "caller-id", c, "1", "--caller-id", "+12125550199")
    assert cid_set.out == f"list 1 of campaign {cid}: caller id +12125550199\n"
    assert "caller id +12125550199" in cli.ok("list", "caller-id", c, "1").out
    removed = remote(OPERATOR, "contact", "remove", c, "--phone", numbers(3)[0])
    assert removed.out == f"campaign {cid}: 1 contact removed\n"
    assert "administrator role" in remote(OPERATOR, "list", "stop", c, "1").err
    assert remote(ADMIN, "list", "stop", c, "1").out == (
        f"list 1 of campaign {cid} stopped: 2 contacts will not be dialed\n"
    )

    not_admin = remote(OPERATOR, "campaign", "delete", str(cid))
    assert "you need the administrator role; this token has the operator role" in not_admin.err
    assert remote(ADMIN, "campaign", "delete", str(cid)).code == 0
    assert "does not exist" in cli("campaign", "show", str(cid)).err


def test_refusals_of_the_lifecycle_and_the_token(remote: Remote, cli: Cli, tmp_path: Path) -> None:
    cid = int(cli.ok("campaign", "create", str(campaign_file(tmp_path))).out)
    again = remote(OPERATOR, "campaign", "resume", str(cid))  # a Draft cannot resume
    assert again.code == 2
    assert again.err.startswith(f"dialer: campaign {cid}: cannot resume")  # as --local says
    assert cli("campaign", "resume", str(cid)).err == again.err

    write(tmp_path / "bad.csv", "name\nnobody\n")  # no phone column: refused whole
    bad = campaign_file(tmp_path, "contacts: bad.csv\n", name="bad.yaml")
    refused = remote(OPERATOR, "campaign", "create", str(bad))
    assert refused.code == 2
    assert "dialer: import refused (1 error), nothing imported:" in refused.err
    assert "stays Draft" in refused.err  # an operator may not delete it: it says so
    by_admin = remote(ADMIN, "campaign", "create", str(bad))  # an administrator's is deleted
    assert "stays Draft" not in by_admin.err
    listed = cli.ok("campaign", "list", "--json").out
    assert [c["id"] for c in json.loads(listed)] == [cid + 1, cid]

    unknown = remote("no-such-token-0123456789", "campaign", "list")
    assert unknown.code == 2
    assert "unknown token" in unknown.err


def test_token_from_the_environment_or_a_private_file(
    remote: Remote,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli.ok("campaign", "create", str(campaign_file(tmp_path)))
    monkeypatch.setenv("DIALER_API_TOKEN", VIEWER)
    assert remote(None, "campaign", "list").code == 0
    monkeypatch.delenv("DIALER_API_TOKEN")

    path = tmp_path / "config" / "dialer" / "token"
    path.parent.mkdir(parents=True)
    path.write_text(VIEWER + "\n", encoding="utf-8")
    os.chmod(path, 0o644)
    loose = remote(None, "campaign", "list")
    assert loose.code == 2
    assert f"chmod 600 {path}" in loose.err
    os.chmod(path, 0o600)
    assert remote(None, "campaign", "list").code == 0

    monkeypatch.setenv("DIALER_API_URL", remote.url)  # --local still talks to Redis
    assert "cli test" in cli.ok("--local", "campaign", "list").out


def test_nodes_and_callbacks_through_the_api(remote: Remote, cli: Cli, tmp_path: Path) -> None:
    denied = remote(OPERATOR, "node", "set", "n1", "--max-channels", "300")
    assert "to set a PBX node you need the administrator role" in denied.err
    assert remote(ADMIN, "node", "set", "n1", "--max-channels", "300", "--cps", "50").lines == [
        "created n1: asterisk, down, channels 0/300, cps 50 (0 engine(s) see it)"
    ]
    (line,) = remote(ADMIN, "node", "set", "n1", "--cps", "unlimited", "--disable").lines
    assert line == (  # a change keeps the other options, as in the local mode
        "updated n1: asterisk, down, disabled, channels 0/300, cps unlimited (0 engine(s) see it)"
    )
    grouped = remote(ADMIN, "trunkgroup", "set", "main", "--trunk", "carrier=n1")
    assert grouped.out.startswith("created main: carrier via n1")
    assert remote(ADMIN, "node", "cap", "--cps", "40").out == (
        "global cap: channels unlimited, cps 40\n"
    )
    assert remote(VIEWER, "node", "list").out == cli.ok("node", "list").out
    assert remote(VIEWER, "trunkgroup", "list").out == cli.ok("trunkgroup", "list").out

    write(tmp_path / "people.csv", "phone\n" + "\n".join(numbers(2)) + "\n")
    cid = str(
        int(
            cli.ok("campaign", "create", str(campaign_file(tmp_path, "contacts: people.csv\n"))).out
        )
    )
    no_move = remote(OPERATOR, "callback", "move", cid, "1", "+1h")
    assert no_move.code == 2
    assert "contact 1 of campaign" in no_move.err
    assert "has no callback (it is Pending)" in no_move.err
    assert "operator role" in remote(VIEWER, "callback", "add", cid, "1", "+1h").err
    added = remote(OPERATOR, "callback", "add", cid, "1", "+1h")
    assert added.out.startswith(f"campaign {cid} contact 1: callback set for")
    moved = remote(OPERATOR, "callback", "move", cid, "1", "+2h")
    assert moved.out.startswith(f"campaign {cid} contact 1: callback moved for")
    assert remote(VIEWER, "callback", "list", cid).out == cli.ok("callback", "list", cid).out
    cancelled = remote(OPERATOR, "callback", "cancel", cid, "1")
    assert cancelled.out.startswith(f"campaign {cid} contact 1: callback cancelled; now Pending")


def test_reads_through_the_api_match_the_host(remote: Remote, cli: Cli, tmp_path: Path) -> None:
    write(tmp_path / "people.csv", "phone\n" + "\n".join(numbers(2)) + "\n")
    spec = campaign_file(tmp_path, "contacts: people.csv\n")
    cid = str(int(cli.ok("campaign", "create", str(spec)).out))
    for argv in (
        ("status", cid),
        ("campaign", "why", cid),
        ("campaign", "why", cid, "--json"),
        ("analytics", cid),
        ("analytics", cid, "--json"),
    ):
        through_api = remote(VIEWER, *argv)
        assert through_api.code == 0, (argv, through_api)
        on_host = cli.ok(*argv).out
        if "--json" in argv:  # the same document but for the time it was made
            doc, host_doc = json.loads(through_api.out), json.loads(on_host)
            assert {**doc, "now_ms": 0} == {**host_doc, "now_ms": 0}, argv
        else:
            assert through_api.out == on_host, argv
    exported = remote(VIEWER, "records", cid, "-o", str(tmp_path / "r.csv"))
    assert exported.err == f"0 call records of campaign {cid} written to {tmp_path / 'r.csv'}\n"
    assert (tmp_path / "r.csv").read_text(encoding="utf-8").startswith("record_id,")


def test_upload_through_the_api_keeps_the_alternate_columns(
    remote: Remote, cli: Cli, tmp_path: Path
) -> None:
    """``list upload --alt-phone-columns`` through the API: the named columns become the
    contact's alternates in the order given, as on the host."""
    cid = int(cli.ok("campaign", "create", str(campaign_file(tmp_path))).out)
    main_, home, work = numbers(3)
    people = write(tmp_path / "alts.csv", f"phone,home,work\n{main_},{home},{work}\n")
    sent = remote(
        OPERATOR, "list", "upload", str(cid), str(people), "--alt-phone-columns", "work,home"
    )
    assert sent.code == 0, sent

    async def read(store: RedisStore) -> list[tuple[str, str]]:
        return [(n.number, n.label) for n in (await store.get_contact(cid, 1)).numbers]

    assert cli.store_call(read) == [(main_, "phone"), (work, "work"), (home, "home")]


def test_dnc_and_trunks_through_the_api(remote: Remote, cli: Cli, tmp_path: Path) -> None:
    """``dialer dnc`` and ``dialer trunk`` through the API: the roles hold, and every output
    and refusal is the host's."""
    a, b, c = numbers(3, start=60)
    assert "operator role" in remote(VIEWER, "dnc", "add", a).err
    assert remote(OPERATOR, "dnc", "add", a, b).out == (
        "2 numbers added to the do-not-call global list (0 already listed)\n"
    )
    cid = str(int(cli.ok("campaign", "create", str(campaign_file(tmp_path))).out))
    fr = remote(OPERATOR, "dnc", "add", "06 12 34 56 78", "--region", "fr", "--campaign", cid)
    assert (
        fr.out == f"1 number added to the do-not-call list of campaign {cid} (0 already listed)\n"
    )
    for argv in (
        ("dnc", "check", a, c, "123", "+33612345678"),
        ("dnc", "check", a, c, "123", "+33612345678", "--campaign", cid),
        ("dnc", "add", a, "nope"),  # refused: the same sentence
        ("dnc", "check", a, "--campaign", "999"),
        ("dnc", "add", "1", "--region", "zz"),  # a usage error, before any request
    ):
        through_api, on_host = remote(OPERATOR, *argv), cli(*argv)
        assert (through_api.code, through_api.out, through_api.err) == (
            on_host.code,
            on_host.out,
            on_host.err,
        ), argv
    denied = remote(OPERATOR, "dnc", "remove", a)
    assert "to remove numbers from the global do-not-call list you need the administrator" in (
        denied.err
    )
    assert remote(ADMIN, "dnc", "remove", a, c).out == (
        "1 number removed from the do-not-call global list\n"
    )

    bad = write(tmp_path / "bad.txt", f"{c}\nabc\n+12125550191\n12\n")
    refused = remote(OPERATOR, "dnc", "import", str(bad), "--campaign", cid)
    assert (refused.code, refused.err) == (
        2,
        f"dialer: {bad}: 2 invalid numbers, nothing imported: "
        "line 2: 'abc' (not a phone number); line 4: '12' (too short)\n",
    )
    assert refused.err == cli("dnc", "import", str(bad), "--campaign", cid).err
    good = write(tmp_path / "good.txt", f"# opt-outs\n{a}\n\n  {b}  \n{c}\n")
    assert remote(OPERATOR, "dnc", "import", str(good)).out == (
        f"3 numbers read from {good}: 2 added to the do-not-call global list, 1 already listed\n"
    )
    many = [f"+1212555{i:04d}" for i in range(1001)]  # over one request's 1,000
    assert remote(OPERATOR, "dnc", "add", *many).err == (
        "dialer: through the API one command takes up to 1,000 numbers, got 1,001: put them in "
        "a file for 'dialer dnc import FILE'\n"
    )
    missing = remote(OPERATOR, "dnc", "import", str(tmp_path / "none.txt"))
    assert missing.err == f"dialer: {tmp_path / 'none.txt'}: no such file\n"

    async def trip(store: RedisStore) -> None:
        signals = [(f"c{i}", Signal.FAILURE, False) for i in range(2)]
        await BreakerStore(store).report("carrier", signals, BreakerLimits(failure_run=2))

    cli.store_call(trip)
    shown = remote(VIEWER, "trunk", "show", "carrier", "other")
    assert shown.out == cli.ok("trunk", "show", "carrier", "other").out
    assert shown.lines[0].startswith("carrier: open since ")
    assert "administrator role" in remote(OPERATOR, "trunk", "reset", "carrier").err
    assert remote(ADMIN, "trunk", "reset", "carrier").lines == [
        "carrier: breaker reset to closed (runs and trips cleared)"
    ]
    assert cli.ok("trunk", "show", "carrier").lines[0].startswith("carrier: closed")
