"""``dialer status``, ``records``, ``analytics`` and ``dnc`` against a real Redis.

Calls are made the way an engine makes them, through the store (claim, then finish with a call
record), so no PBX is needed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store.dnc import DncStore
from dialer.store.redis_store import RedisStore
from ops.localstack.redis_server import RedisServer
from tests.unit.cli_helpers import Cli, campaign_file, make_cli, numbers, write
from tests.unit.store_helpers import claim

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]

S = CallStatus


@pytest.fixture
def cli(
    redis_server: RedisServer,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    return make_cli(redis_server, namespace, capsys, monkeypatch)


def running(cli: Cli, tmp_path: Path, n: int) -> int:
    """A Running campaign (trunk ``carrier``) with ``n`` pending contacts."""
    rows = "\n".join(numbers(n, start=40))
    write(tmp_path / "c.csv", f"phone\n{rows}\n")
    cid = int(cli.ok("campaign", "create", str(campaign_file(tmp_path, "contacts: c.csv\n"))).out)
    cli.ok("campaign", "start", str(cid))
    return cid


async def dial(
    store: RedisStore, cid: int, n: int, status: CallStatus, *, talk: float = 0.0, **extra: str
) -> None:
    """Claim and finish ``n`` contacts with ``status`` and an engine-like call record."""
    for _ in range(n):
        call_id = f"call-{time.monotonic_ns()}"
        res = await claim(store, cid, call_id, trunk="carrier")
        assert res.kind == "ok", res
        ended = int(time.time() * 1000)
        record = {
            "campaign": str(cid),
            "contact": str(res.contact_id),
            "phone": res.phone,
            "trunk": "carrier",
            "attempt": "1",
            "status": status.value,
            "contact_status": status.value,
            "rule": "test",
            "ended_ms": str(ended),
            "answered_ms": str(ended - int(talk * 1000)) if talk else "",
            "duration_s": f"{talk:.3f}",
            "amd_status": "",
            **extra,
        }
        assert await store.finish(
            cid,
            "carrier",
            call_id,
            res.contact_id,
            contact_status=status,
            attempts_used=1,
            tech_failures=0,
            retry_at_ms=None,
            record=record,
        )


def test_status_once(cli: Cli, tmp_path: Path) -> None:
    cid = running(cli, tmp_path, 4)
    cli.store_call(lambda s: dial(s, cid, 1, S.ANSWERED, talk=2.0))
    cli.store_call(lambda s: dial(s, cid, 1, S.BUSY))
    lines = cli.ok("status", str(cid)).lines
    assert lines[0] == f"campaign {cid} (cli test): Running"
    assert lines[1] == "progress: 2/4 contacts done (50%)"
    assert [line.split() for line in lines[2:5]] == [
        ["Pending", "2"],
        ["Answered", "1"],
        ["Busy", "1"],
    ]
    assert lines[5] == "in flight 0, pending 2 (2 due now), retry scheduled 0"


def test_watch_follows_until_completed(cli: Cli, tmp_path: Path) -> None:
    cid = running(cli, tmp_path, 3)

    async def engine_like(store: RedisStore) -> None:
        for status in (S.ANSWERED, S.NO_ANSWER, S.REJECTED):
            time.sleep(0.25)  # noqa: ASYNC251  # paced like calls, in a thread of its own
            await dial(store, cid, 1, status)
        await store.transition(cid, {CampaignStatus.RUNNING}, CampaignStatus.COMPLETED)

    worker = threading.Thread(target=lambda: cli.store_call(engine_like))
    worker.start()
    try:
        result = cli.ok("status", str(cid), "--watch", "--interval", "0.1")
    finally:
        worker.join(10)
    bars = [line for line in result.lines if line.startswith("[")]
    assert len(bars) >= 4  # a line per interval on a pipe, not redrawn
    assert "\r" not in result.out
    assert "\x1b" not in result.out
    assert bars[0].startswith("[------------------------]   0% 0/3 done | Running")
    assert bars[-1].startswith("[########################] 100% 3/3 done | Completed")
    assert result.lines[len(bars)] == f"campaign {cid} (cli test): Completed"


def test_watch_redraws_in_place_on_a_terminal(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = running(cli, tmp_path, 2)
    cli.ok("campaign", "pause", str(cid))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    out = cli.ok("status", str(cid), "--watch").out
    assert out.startswith("\r\x1b[2K[------------------------]   0% 0/2 done | Paused")
    assert f"\ncampaign {cid} (cli test): Paused\n" in out


def test_status_of_a_missing_campaign(cli: Cli) -> None:
    result = cli("status", "404", "--watch")
    assert (result.code, result.out, result.err) == (2, "", "dialer: campaign 404 does not exist\n")


def test_records_csv_to_stdout_and_file_after_delete(cli: Cli, tmp_path: Path) -> None:
    cid = running(cli, tmp_path, 4)
    cli.store_call(lambda s: dial(s, cid, 2, S.ANSWERED, talk=1.5))
    cli.store_call(lambda s: dial(s, cid, 1, S.BUSY, zz_note="late field"))
    rows = list(csv.DictReader(io.StringIO(cli.ok("records", str(cid)).out)))
    assert [r["status"] for r in rows] == ["answered", "answered", "busy"]
    assert list(rows[0])[:3] == ["record_id", "call_id", "campaign"]
    assert list(rows[0])[-1] == "zz_note"  # fields outside the known order come last, sorted
    assert rows[2]["zz_note"] == "late field"
    assert rows[0]["zz_note"] == ""
    assert rows[0]["duration_s"] == "1.500"
    assert rows[0]["call_id"].startswith("call-")
    assert len({r["record_id"] for r in rows}) == 3

    cli.ok("campaign", "stop", str(cid))
    cli.ok("campaign", "delete", str(cid))
    target = tmp_path / "out" / "records.csv"
    target.parent.mkdir()
    result = cli.ok("records", str(cid), "--output", str(target))
    assert result.out == ""
    assert result.err == f"3 call records of campaign {cid} written to {target}\n"
    with target.open(newline="") as f:
        assert list(csv.DictReader(f)) == rows
    assert sorted(p.name for p in target.parent.iterdir()) == ["records.csv"]


def test_records_of_a_campaign_without_calls(cli: Cli, tmp_path: Path) -> None:
    cid = running(cli, tmp_path, 1)
    header = cli.ok("records", str(cid)).lines
    assert len(header) == 1
    assert header[0].startswith("record_id,call_id,campaign,contact,phone")
    missing = cli("records", "999")
    assert missing.code == 2
    assert missing.err == "dialer: campaign 999 does not exist and left no call records\n"
    bad = cli("records", str(cid), "--output", str(tmp_path / "no" / "dir.csv"))
    assert bad.code == 2
    assert "cannot write" in bad.err


def test_analytics_text_and_json(cli: Cli, tmp_path: Path) -> None:
    cid = running(cli, tmp_path, 5)
    cli.store_call(lambda s: dial(s, cid, 2, S.ANSWERED, talk=3.0))
    cli.store_call(lambda s: dial(s, cid, 1, S.BUSY))
    doc = json.loads(cli.ok("analytics", str(cid), "--json").out)
    assert doc["campaign_id"] == cid
    assert (doc["contacts_total"], doc["contacts_answered"], doc["contacts_finished"]) == (5, 2, 3)
    assert doc["attempts_total"] == 3
    assert doc["attempts_by_status"] == {"answered": 2, "busy": 1}
    assert doc["talk"]["count"] == 2
    assert doc["talk"]["p50_s"] == 3.0
    assert doc["queue"]["pending"] == 2
    text = cli.ok("analytics", str(cid)).out
    assert f"campaign {cid}\n" in text
    assert "contacts: 5 (3 finished after calling, 2 answered; success rate 66.7%)" in text
    assert "attempts: 3 (Answered 2, Busy 1)" in text
    assert "talk time of answered calls: 2 calls, mean 3.0 s, p50 3.0 s, p90 3.0 s" in text
    assert "queue: pending 2, retry scheduled 0, in flight 0, due now 2" in text
    missing = cli("analytics", "999")
    assert (missing.code, missing.err) == (2, "dialer: campaign 999 does not exist\n")


def test_dnc_add_check_remove(cli: Cli, tmp_path: Path) -> None:
    a, b = numbers(2, start=70)
    out = cli.ok("dnc", "add", a, "(212) 555-0175").out
    assert out == "2 numbers added to the do-not-call global list (0 already listed)\n"
    assert (
        cli.ok("dnc", "add", a).out
        == "0 numbers added to the do-not-call global list (1 already listed)\n"
    )
    checked = cli.ok("dnc", "check", a, "+12125550199", "123").lines
    assert checked == [
        f"{a}: do not call (global list)",
        "+12125550199: not listed",
        "123: invalid number (too short)",
    ]
    cid = int(cli.ok("campaign", "create", str(campaign_file(tmp_path))).out)
    cli.ok("dnc", "add", "+12125550199", "--campaign", str(cid))
    both = cli.ok("dnc", "check", a, "+12125550199", "--campaign", str(cid)).lines
    assert both == [
        f"{a}: do not call (global list)",
        f"+12125550199: do not call (campaign {cid})",
    ]
    assert (
        cli.ok("dnc", "remove", a, b).out == "1 number removed from the do-not-call global list\n"
    )
    assert cli.ok("dnc", "check", a).out == f"{a}: not listed\n"
    fr = cli.ok("dnc", "add", "06 12 34 56 78", "--region", "FR").out
    assert fr.startswith("1 number added")
    assert cli.store_call(lambda s: DncStore(s).contains("+33612345678"))

    bad = cli("dnc", "add", "+12125550180", "nope")
    assert (bad.code, bad.err) == (
        2,
        "dialer: 1 invalid phone numbers: 'nope' (not a phone number)\n",
    )
    assert cli.ok("dnc", "check", "+12125550180").out == "+12125550180: not listed\n"
    gone = cli("dnc", "add", a, "--campaign", "999")
    assert (gone.code, gone.err) == (2, "dialer: campaign 999 does not exist\n")


def test_dnc_import(cli: Cli, tmp_path: Path) -> None:
    listed = numbers(3, start=80)
    path = write(tmp_path / "dnc.txt", f"# opt-outs\n{listed[0]}\n\n  {listed[1]}  \n{listed[2]}\n")
    cli.ok("dnc", "add", listed[0])
    out = cli.ok("dnc", "import", str(path)).out
    assert out == (
        f"3 numbers read from {path}: 2 added to the do-not-call global list, 1 already listed\n"
    )
    assert cli.store_call(lambda s: DncStore(s).count()) == 3

    bad = write(tmp_path / "bad.txt", "+12125550190\nabc\n+12125550191\n12\n")
    result = cli("dnc", "import", str(bad))
    assert result.code == 2
    assert result.err == (
        f"dialer: {bad}: 2 invalid numbers, nothing imported: "
        "line 2: 'abc' (not a phone number); line 4: '12' (too short)\n"
    )
    assert cli.ok("dnc", "check", "+12125550190").out == "+12125550190: not listed\n"
    missing = cli("dnc", "import", str(tmp_path / "none.txt"))
    assert (missing.code, missing.err) == (2, f"dialer: {tmp_path / 'none.txt'}: no such file\n")


def test_watch_leaves_quietly_on_ctrl_c(cli: Cli, tmp_path: Path) -> None:
    cid = running(cli, tmp_path, 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env.update(DIALER_REDIS_URL=cli.url, DIALER_NAMESPACE=cli.namespace)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dialer", "status", str(cid), "--watch", "--interval", "0.1"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # watching: one line is out
        assert first.startswith("[------------------------]   0% 0/1 done | Running")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert err == ""  # no traceback
    assert all(line.startswith("[") for line in out.splitlines())
