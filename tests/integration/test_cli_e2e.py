"""The ``dialer`` command as an operator runs it, against the real stack (Asterisk 22 + SIPp).

Every step is a subprocess (``python -m dialer ...``) configured only through DIALER_*
environment variables, with a namespace of the test's own.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ops.localstack.numberplan import Behaviour, number
from ops.localstack.ports import free_port
from tests.integration.engine_helpers import ami_url

pytestmark = [pytest.mark.integration, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
VIEWER = "viewer-token-0123456789"


def environment(stack: Any, namespace: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env.update(
        DIALER_REDIS_URL=stack.redis_url,
        DIALER_NAMESPACE=namespace,
        DIALER_AMI_URL=ami_url(stack),
        **extra,
    )
    return env


def dialer(
    env: dict[str, str], *args: str, timeout: float = 30, code: int = 0
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "dialer", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == code, f"dialer {' '.join(args)}: {proc.returncode}\n{proc.stderr}"
    return proc


def start(env: dict[str, str], command: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "dialer", command],
            env=env,
            cwd=ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def terminate(proc: subprocess.Popen[bytes], log: Path) -> int:
    """SIGTERM, then the exit code (killed and failed if it does not stop within 15 s)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise AssertionError(f"did not stop on SIGTERM:\n{log.read_text()[-2000:]}") from None


def test_campaign_from_yaml_to_records_and_analytics(
    stack: Any, namespace: str, tmp_path: Path
) -> None:
    hold = [number(Behaviour.HOLD, i, hold_s=1) for i in range(3)]
    busy = [number(Behaviour.BUSY, 10 + i) for i in range(2)]
    missing = [number(Behaviour.NOT_FOUND_404, 20 + i) for i in range(2)]
    rows = [*hold, *busy, *missing, "12345"]
    (tmp_path / "first.csv").write_text(
        "phone,name\n" + "".join(f"{p},Contact {i}\n" for i, p in enumerate(rows))
    )
    (tmp_path / "campaign.yaml").write_text(
        f"""
name: cli e2e
trunk: {stack.trunk}
context: {stack.originate_context}
extension: "{stack.originate_exten}"
max_channels: 5
cps: 20
ring_timeout: 3
retry:
  max_attempts: 2
  delays: {{busy: 0.3, no_answer: 0.3, technical_error: 0.3}}
contacts: first.csv
"""
    )
    extra_hold = number(Behaviour.HOLD, 30, hold_s=1)
    (tmp_path / "second.csv").write_text(f"number\n{extra_hold}\n{hold[0]}\n")
    metrics_port = free_port()
    env = environment(
        stack, namespace, DIALER_ENGINE_ID="cli-e2e", DIALER_METRICS_PORT=str(metrics_port)
    )

    created = dialer(env, "campaign", "create", str(tmp_path / "campaign.yaml"))
    cid = created.stdout.strip()
    assert cid.isdigit(), created.stdout
    assert "line 9: invalid number '12345'" in created.stderr
    upload = dialer(env, "list", "upload", cid, str(tmp_path / "second.csv"))
    assert f"list 2 of campaign {cid}: 2 rows read" in upload.stdout
    assert "duplicates        1 (dropped)" in upload.stdout

    log = tmp_path / "engine.log"
    engine = start(env, "engine", log)
    try:
        assert dialer(env, "campaign", "start", cid).stdout == f"campaign {cid}: Running\n"
        watched = dialer(env, "status", cid, "--watch", "--interval", "0.5", timeout=45)
        bars = [line for line in watched.stdout.splitlines() if line.startswith("[")]
        assert bars[-1].startswith("[########################] 100% 9/9 done | Completed")
        assert f"campaign {cid} (cli e2e): Completed" in watched.stdout
        # the engine's own /metrics port: no token, on 127.0.0.1 only (DIALER_METRICS_HOST unset)
        status, text = get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        assert f'dialer_originates_total{{campaign="{cid}",trunk="{stack.trunk}"}}' in text
        assert not connects("127.0.0.2", metrics_port)
    finally:
        code = terminate(engine, log)
    assert code == 0, log.read_text()[-2000:]

    out = tmp_path / "records.csv"
    dialer(env, "records", cid, "--output", str(out))
    with out.open(newline="") as f:
        records = list(csv.DictReader(f))
    by_phone = Counter(r["phone"] for r in records)
    assert by_phone == Counter(
        {**dict.fromkeys([*hold, extra_hold, *missing], 1), **dict.fromkeys(busy, 2)}
    )
    statuses = Counter(r["status"] for r in records)
    assert statuses == Counter({"answered": 4, "busy": 4, "invalid_number": 2})
    assert {r["engine"] for r in records} == {"cli-e2e"}
    assert all(float(r["duration_s"]) >= 0.5 for r in records if r["status"] == "answered")

    analytics = json.loads(dialer(env, "analytics", cid, "--json").stdout)
    assert analytics["contacts_total"] == 9
    assert {k: v for k, v in analytics["contacts"].items() if v} == {
        "answered": 4,
        "completed_no_answer": 2,
        "invalid_number": 3,
    }
    assert analytics["attempts_total"] == 10
    assert analytics["attempts_by_status"] == {"answered": 4, "busy": 4, "invalid_number": 2}
    assert analytics["success_rate"] == pytest.approx(4 / 6)
    assert analytics["queue"]["in_flight"] == 0

    dialer(env, "campaign", "delete", cid)
    again = tmp_path / "after-delete.csv"
    dialer(env, "records", cid, "--output", str(again))
    assert again.read_text() == out.read_text()


def connects(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), 2).close()
    except OSError:
        return False
    return True


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_run_serves_the_api_and_metrics_and_stops_on_sigterm(
    stack: Any, namespace: str, tmp_path: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    env = environment(
        stack,
        namespace,
        DIALER_API_PORT=str(port),
        DIALER_API_TOKENS=f"viewer:{VIEWER}",
        DIALER_METRICS_PORT=str(metrics_port),
        DIALER_METRICS_HOST="127.0.0.2",  # loopback too (all of 127/8 is), but not 127.0.0.1
    )
    created = dialer(env, "campaign", "create", str(ROOT / "examples" / "campaign.yaml"))
    cid = created.stdout.strip()
    log = tmp_path / "run.log"
    service = start(env, "run", log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, _ = get(f"{base}/health")
                if status == 200:
                    break
            except OSError:
                pass
            assert service.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the API never answered /health"
            time.sleep(0.1)
        assert get(f"{base}/campaigns/{cid}")[0] == 401
        status, body = get(f"{base}/campaigns/{cid}", VIEWER)
        assert status == 200
        assert json.loads(body)["name"] == "Spring reminders"
        status, metrics = get(f"{base}/metrics", VIEWER)
        assert status == 200
        assert 'dialer_engine_info{engine_id="' in metrics
        # also on DIALER_METRICS_HOST:DIALER_METRICS_PORT, with no token
        status, metrics = get(f"http://127.0.0.2:{metrics_port}/metrics")
        assert status == 200
        assert 'dialer_engine_info{engine_id="' in metrics
        assert not connects("127.0.0.1", metrics_port)
        # the CLI through this API with the viewer's token: it reads, and pausing is refused
        # by the server's role check (dialer/cli/remote.py)
        remote = {**env, "DIALER_API_URL": base, "DIALER_API_TOKEN": VIEWER}
        shown = json.loads(dialer(remote, "campaign", "show", cid, "--json").stdout)
        assert (shown["id"], shown["status"]) == (int(cid), "draft")
        refused = dialer(remote, "campaign", "pause", cid, code=2)
        assert "you need the operator role or higher; this token has the viewer" in refused.stderr
    finally:
        code = terminate(service, log)
    assert code == 0, log.read_text()[-2000:]
    assert "API on http://127.0.0.1:" in log.read_text()
    assert f"metrics on http://127.0.0.2:{metrics_port}/metrics" in log.read_text()
