"""``dialer campaign ...`` and ``dialer list ...`` against a real Redis (no engine running)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialer.domain.statuses import CallStatus, CampaignStatus, ListStatus
from dialer.store.redis_store import RedisStore
from ops.localstack.redis_server import RedisServer
from tests.unit.cli_helpers import Cli, campaign_file, make_cli, numbers, write

pytestmark = pytest.mark.redis


@pytest.fixture
def cli(
    redis_server: RedisServer,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    return make_cli(redis_server, namespace, capsys, monkeypatch)


def contacts_csv(tmp_path: Path, phones: list[str], name: str = "people.csv") -> Path:
    rows = "\n".join(f"{p},Person {i},r{i}" for i, p in enumerate(phones))
    return write(tmp_path / name, f"phone,name,ref\n{rows}\n")


def create(cli: Cli, path: Path) -> int:
    result = cli.ok("campaign", "create", str(path))
    assert result.lines == [result.out.strip()]  # only the id on stdout
    return int(result.out)


def test_create_with_contacts_prints_the_id_and_the_report(cli: Cli, tmp_path: Path) -> None:
    good = numbers(3)
    contacts_csv(tmp_path, [*good, "12345", good[0]])
    result = cli.ok("campaign", "create", str(campaign_file(tmp_path, "contacts: people.csv\n")))
    cid = int(result.out)
    assert "list 1 of campaign" in result.err
    assert "5 rows read" in result.err
    assert "imported          4" in result.err
    assert "duplicates        1" in result.err
    assert "line 5: invalid number '12345'" in result.err
    assert f"campaign {cid} created (Draft): cli test" in result.err
    counts = cli.store_call(lambda s: s.counts(cid))
    assert (counts[CallStatus.PENDING], counts[CallStatus.INVALID_NUMBER]) == (3, 1)


def test_create_is_all_or_nothing_when_the_csv_is_refused(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path / "bad.csv", 'phone,name\n+12125550100,a\n"open quote,b\n+12125550101,c\n')
    result = cli("campaign", "create", str(campaign_file(tmp_path, "contacts: bad.csv\n")))
    assert result.code == 2
    assert result.out == ""
    assert result.err.splitlines()[0] == "dialer: import refused (1 error), nothing imported:"
    assert "  line 3: " in result.err
    assert cli.ok("campaign", "list").out == ""  # the campaign was removed again


def test_create_toml_and_list_show(cli: Cli, tmp_path: Path) -> None:
    a = create(cli, campaign_file(tmp_path))
    toml = write(
        tmp_path / "b.toml",
        'name = "second"\ntrunk = "other"\nmax_channels = 2\ncps = 1\n',
    )
    b = create(cli, toml)
    listing = cli.ok("campaign", "list").lines
    assert listing[0].split() == ["ID", "STATUS", "NAME", "TRUNK", "CREATED"]
    assert [line.split()[0] for line in listing[1:]] == [str(b), str(a)]  # newest first
    assert "second" in listing[1]
    assert "other" in listing[1]
    as_json = json.loads(cli.ok("campaign", "list", "--json").out)
    assert [(c["id"], c["name"], c["status"]) for c in as_json] == [
        (b, "second", "draft"),
        (a, "cli test", "draft"),
    ]
    cli.ok("campaign", "list", "--limit", "1")
    assert len(cli.ok("campaign", "list", "--limit", "1").lines) == 2

    shown = cli.ok("campaign", "show", str(a)).out
    assert f"campaign {a}: cli test" in shown
    assert "status    Draft" in shown
    assert "lists     none" in shown
    assert "  max_channels: 4" in shown
    assert "  cps: 5.0" in shown
    doc = json.loads(cli.ok("campaign", "show", str(a), "--json").out)
    assert doc["settings"]["retry"]["delays"] == {"busy": 0.5, "no_answer": 0.5}
    assert doc["contacts"]["pending"] == 0
    assert doc["lists"] == {}


def test_lifecycle_commands(cli: Cli, tmp_path: Path) -> None:
    contacts_csv(tmp_path, numbers(3))
    cid = create(cli, campaign_file(tmp_path, "contacts: people.csv\n"))
    c = str(cid)
    assert cli.ok("campaign", "start", c).out == f"campaign {cid}: Running\n"
    assert cli.ok("campaign", "list", "--status", "running").lines[1].startswith(c)
    assert cli.ok("campaign", "list", "--status", "draft").out == ""
    assert cli.ok("campaign", "pause", c).out == f"campaign {cid}: Paused\n"  # nothing in flight
    assert cli.ok("campaign", "resume", c).out == f"campaign {cid}: Running\n"

    refused = cli("campaign", "resume", c)
    assert (refused.code, refused.err) == (
        2,
        f"dialer: campaign {cid}: cannot resume: campaign is Running; "
        "allowed only in Pausing or Paused\n",
    )

    assert cli.ok("campaign", "stop", c, "--hangup").out == f"campaign {cid}: Cancelled\n"
    counts = cli.store_call(lambda s: s.counts(cid))
    assert counts[CallStatus.NOT_DIALED] == 3
    deleted = cli.ok("campaign", "delete", c)
    assert deleted.out == f"campaign {cid} deleted (its call records stay: dialer records {cid})\n"
    gone = cli("campaign", "show", c)
    assert (gone.code, gone.err) == (2, f"dialer: campaign {cid} does not exist\n")


def test_start_outside_the_calling_window_is_scheduled(cli: Cli, tmp_path: Path) -> None:
    # A window of one minute, twelve hours away from now in UTC.
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC) + timedelta(hours=12)
    end = start + timedelta(minutes=1)
    extra = f"window: {{timezone: UTC, start: '{start:%H:%M}', end: '{end:%H:%M}'}}\n"
    contacts_csv(tmp_path, numbers(1))
    cid = create(cli, campaign_file(tmp_path, extra + "contacts: people.csv\n"))
    out = cli.ok("campaign", "start", str(cid)).out
    assert out.startswith(f"campaign {cid}: Scheduled (outside calling hours; opens ")


def test_start_without_contacts_is_refused(cli: Cli, tmp_path: Path) -> None:
    cid = create(cli, campaign_file(tmp_path))
    result = cli("campaign", "start", str(cid))
    assert result.code == 2
    assert result.err.startswith("dialer: ")
    assert "contact" in result.err


def test_edit_replaces_settings_in_draft_or_paused_only(cli: Cli, tmp_path: Path) -> None:
    contacts_csv(tmp_path, numbers(2))
    cid = create(cli, campaign_file(tmp_path, "contacts: people.csv\n"))
    new = write(
        tmp_path / "new.yaml",
        "name: renamed\ntrunk: backup\nmax_channels: 9\ncps: 3\n",
    )
    assert cli.ok("campaign", "edit", str(cid), str(new)).out.startswith(
        f"campaign {cid}: settings replaced from"
    )
    doc = json.loads(cli.ok("campaign", "show", str(cid), "--json").out)
    assert (doc["name"], doc["trunk"], doc["settings"]["max_channels"]) == ("renamed", "backup", 9)
    assert "renamed" in cli.ok("campaign", "list").out

    cli.ok("campaign", "start", str(cid))
    refused = cli("campaign", "edit", str(cid), str(new))
    assert refused.code == 2
    # the same sentence as the API's 409 campaign_not_editable (dialer.commands)
    assert refused.err == (
        f"dialer: campaign {cid} is Running; settings can be edited only in Draft or Paused\n"
    )
    cli.ok("campaign", "pause", str(cid))
    cli.ok("campaign", "edit", str(cid), str(campaign_file(tmp_path)))

    with_contacts = campaign_file(tmp_path, "contacts: people.csv\n", name="wc.yaml")
    refused = cli("campaign", "edit", str(cid), str(with_contacts))
    assert refused.code == 2
    assert "'contacts' is not a setting" in refused.err


def test_bad_campaign_file_names_the_field(cli: Cli, tmp_path: Path) -> None:
    result = cli("campaign", "create", str(campaign_file(tmp_path, "ring_timeout: forever\n")))
    assert result.code == 2
    assert result.out == ""
    assert result.err == (
        f"dialer: {tmp_path / 'campaign.yaml'}: ring_timeout must be a number > 0 and <= 600, "
        "got 'forever'\n"
    )


def test_stop_all_and_delete_live(cli: Cli, tmp_path: Path) -> None:
    contacts_csv(tmp_path, numbers(2))
    path = campaign_file(tmp_path, "contacts: people.csv\n")
    draft_file = campaign_file(tmp_path, name="draft.yaml")
    a, b, draft = create(cli, path), create(cli, path), create(cli, draft_file)
    cli.ok("campaign", "start", str(a))
    cli.ok("campaign", "start", str(b))
    cli.ok("campaign", "pause", str(b))
    out = cli.ok("campaign", "stop-all").lines
    assert sorted(out) == sorted([f"campaign {a}: Cancelled", f"campaign {b}: Cancelled"])
    assert cli.ok("campaign", "show", str(draft), "--json").out.count('"draft"') == 1
    assert cli.ok("campaign", "stop-all").err == "no active campaign to stop\n"

    live = create(cli, path)
    cli.ok("campaign", "start", str(live))
    cli.ok("campaign", "delete", str(live))  # a live campaign is cancelled, then deleted
    assert cli("campaign", "show", str(live)).code == 2


def test_list_upload_report_and_refusal(cli: Cli, tmp_path: Path) -> None:
    cid = create(cli, campaign_file(tmp_path))
    good = numbers(4, start=20)
    cli.ok("dnc", "add", good[3])
    path = write(
        tmp_path / "up.csv",
        "Mobile phone;Full name;tz\n"
        + "\n".join(
            [f"{good[0]};A;UTC", "0612;B;UTC", f"{good[1]};C;UTC", f"{good[0]};D;UTC"]
            + [f"{good[2]};E;UTC", f"{good[3]};F;UTC"]
        )
        + "\n",
    )
    out = cli.ok("list", "upload", str(cid), str(path)).out
    assert out.splitlines()[0] == f"list 1 of campaign {cid}: 6 rows read"
    assert "imported          5" in out
    assert "to dial         3" in out
    assert "invalid numbers 1" in out
    assert "do not call     1" in out
    assert "duplicates        1 (dropped)" in out
    assert "line 3: invalid number '0612'" in out

    fr = write(tmp_path / "fr.csv", "tel,num\n06 12 34 56 78,x\n")
    out = cli.ok("list", "upload", str(cid), str(fr), "--region", "FR", "--phone-column", "tel").out
    assert "to dial         1" in out
    contact = cli.store_call(lambda s: s.get_contact(cid, 6))
    assert contact.phone == "+33612345678"
    assert contact.vars == {"num": "x"}

    bad = write(tmp_path / "bad.csv", "phone,a\n+12125550100,1\n+12125550101,1,extra\n")
    refused = cli("list", "upload", str(cid), str(bad))
    assert refused.code == 2
    assert refused.out == ""
    lines = refused.err.splitlines()
    assert lines[0] == "dialer: import refused (1 error), nothing imported:"
    assert lines[1].startswith("  line 3: ")
    missing = cli("list", "upload", str(cid), str(tmp_path / "nope.csv"))
    assert (missing.code, missing.err) == (2, f"dialer: {tmp_path / 'nope.csv'}: no such file\n")
    region = cli("list", "upload", str(cid), str(fr), "--region", "ZZ")
    assert region.code == 2
    assert "'ZZ' is not a known ISO 3166 region code" in region.err


def test_list_upload_refused_while_running(cli: Cli, tmp_path: Path) -> None:
    contacts_csv(tmp_path, numbers(1))
    cid = create(cli, campaign_file(tmp_path, "contacts: people.csv\n"))
    cli.ok("campaign", "start", str(cid))
    result = cli("list", "upload", str(cid), str(tmp_path / "people.csv"))
    assert result.code == 2
    assert result.err.startswith("dialer: ")
    assert "running" in result.err.lower()


def test_list_stop(cli: Cli, tmp_path: Path) -> None:
    contacts_csv(tmp_path, numbers(3))
    cid = create(cli, campaign_file(tmp_path, "contacts: people.csv\n"))
    out = cli.ok("list", "stop", str(cid), "1").out
    assert out == f"list 1 of campaign {cid} stopped: 3 contacts will not be dialed\n"

    async def lists(store: RedisStore) -> dict[int, ListStatus]:
        return await store.list_status(cid)

    assert cli.store_call(lists) == {1: ListStatus.STOPPED}
    again = cli("list", "stop", str(cid), "1")
    assert again.code == 2
    assert "list 1 is stopped" in again.err
    missing = cli("list", "stop", str(cid), "7")
    assert (missing.code, missing.err) == (2, f"dialer: list 7 of campaign {cid} does not exist\n")
    status = cli.store_call(lambda s: s.get_campaign(cid))
    assert status.status is CampaignStatus.DRAFT


def test_create_and_edit_refuse_an_unconfigured_trunk_as_the_api_does(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rule in dialer.commands: the CLI on the host checks DIALER_TRUNKS too."""
    monkeypatch.setenv("DIALER_TRUNKS", "backup=10/5")
    refused = cli("campaign", "create", str(campaign_file(tmp_path)))  # trunk: carrier
    assert refused.code == 2
    assert refused.err == (
        "dialer: trunk 'carrier' is not configured (DIALER_TRUNKS): use one of backup\n"
    )
    monkeypatch.setenv("DIALER_TRUNKS", "carrier=10/5")
    cid = create(cli, campaign_file(tmp_path))
    other = write(tmp_path / "other.yaml", "name: x\ntrunk: other\nmax_channels: 1\ncps: 1\n")
    assert "trunk 'other' is not configured" in cli("campaign", "edit", str(cid), str(other)).err
