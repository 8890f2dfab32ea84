"""The local stack itself: idempotent up, CLI, side-by-side stacks, clean and checked down."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from dialer.pbx.ami.client import AmiClient
from ops.localstack import stack as localstack
from ops.localstack.numberplan import Behaviour, number
from ops.localstack.procs import LeftoverProcess, bound_ports, is_alive, spawn, terminate
from ops.localstack.stack import StackInfo
from tests.integration.conftest import ami_settings
from tests.integration.test_carrier_sim import watching

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.localstack", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_up_again_returns_the_running_stack_at_once(stack: StackInfo) -> None:
    started = time.monotonic()
    again = localstack.up(stack.name, stack.workdir)
    assert time.monotonic() - started < 2.0
    assert again == stack
    assert localstack.load(stack.workdir) == stack


def test_asterisk_is_22_with_the_trunks_and_dialplan(stack: StackInfo) -> None:
    assert stack.asterisk_version.startswith("Asterisk 22")
    assert stack.asterisk_cli("core show version").startswith("Asterisk 22")
    by_hand = subprocess.run(
        shlex.split(stack.cli_command("core show version")),
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert by_hand.stdout.startswith("Asterisk 22")
    for trunk, port in ((stack.trunk, stack.sipp_port), (stack.dead_trunk, stack.dead_port)):
        shown = stack.asterisk_cli(f"pjsip show endpoint {trunk}")
        assert f"sip:127.0.0.1:{port}" in shown
    assert "AMD()" in stack.asterisk_cli(f"dialplan show {stack.originate_context}")
    modules = stack.asterisk_cli("module show like pjsip")
    assert "chan_pjsip.so" in modules
    assert "res_resolver_unbound" not in stack.asterisk_cli("module show like resolver")


def test_each_service_listens_on_its_own_ports(stack: StackInfo) -> None:
    asterisk = bound_ports(stack.asterisk_pid)
    assert {stack.ami_port, stack.http_port} <= asterisk["tcp"]
    assert stack.sip_port in asterisk["udp"]
    assert {stack.sipp_port, stack.sipp_media_port} <= bound_ports(stack.sipp_pid)["udp"]
    assert stack.redis_port in bound_ports(stack.redis_pid)["tcp"]
    everything = bound_ports()
    assert stack.dead_port not in everything["udp"]
    assert stack.rtp_end - stack.rtp_start + 1 == localstack.DEFAULT_RTP_PORTS


async def test_redis_runs_with_aof(stack: StackInfo) -> None:
    client = aioredis.Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        assert await client.config_get("appendonly") == {"appendonly": "yes"}
        assert Path(str((await client.config_get("dir"))["dir"])).is_relative_to(stack.workdir)
    finally:
        await client.aclose()


def test_asterisk_metrics_are_served(stack: StackInfo) -> None:
    with urllib.request.urlopen(stack.metrics_url, timeout=5) as response:
        body = response.read().decode()
    assert "asterisk_channels_count" in body


def test_status_and_env_commands(stack: StackInfo) -> None:
    where = ["--name", stack.name, "--workdir", str(stack.workdir)]
    status = cli("status", *where)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["ready"] is True
    assert data["ami_port"] == stack.ami_port
    env = cli("env", *where)
    assert env.returncode == 0, env.stderr
    assert f"export DIALER_AMI_URL={stack.ami_url}\n" in env.stdout
    assert f"export DIALER_REDIS_URL={stack.redis_url}\n" in env.stdout
    missing = cli("status", "--name", "nothing-here", "--workdir", str(stack.workdir / "none"))
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["ready"] is False


async def test_a_second_stack_runs_beside_the_first_and_stops_cleanly(
    stack: StackInfo, tmp_path: Path
) -> None:
    name = f"side-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    other = await asyncio.to_thread(localstack.up, name, tmp_path / "other")
    up_s = time.monotonic() - started
    try:
        assert up_s < 15
        mine = set(range(stack.rtp_start, stack.rtp_end + 17))
        theirs = set(range(other.rtp_start, other.rtp_end + 17))
        assert not mine & theirs
        assert other.ami_secret != stack.ami_secret
        dialed = number(Behaviour.HOLD, 1, hold_s=1)
        async with (
            AmiClient(ami_settings(stack)) as ami_a,
            AmiClient(ami_settings(other)) as ami_b,
            watching(ami_a, stack) as calls_a,
            watching(ami_b, other) as calls_b,
        ):
            a, b = await asyncio.gather(
                calls_a.call(dialed, variables={"DIALER_AMD": "0"}),
                calls_b.call(dialed, variables={"DIALER_AMD": "0"}),
            )
        for trace in (a, b):
            assert trace.one("OriginateResponse").get("Reason") == "4"
            assert trace.one("Hangup").get("Cause") == "0"
    finally:
        await asyncio.to_thread(localstack.down, name, tmp_path / "other")
    for pid in other.pids.values():
        assert not is_alive(pid)
    assert not other.host_conf_dir.exists()
    assert (tmp_path / "other" / "asterisk" / "messages.log").is_file()
    assert localstack.load(tmp_path / "other") is None
    assert localstack.is_ready(stack)
    assert localstack.down(name, tmp_path / "other") is False


def test_a_stack_name_cannot_be_taken_twice(stack: StackInfo, tmp_path: Path) -> None:
    with pytest.raises(localstack.StackError, match="in use"):
        localstack.up(stack.name, tmp_path / "same-name")
    assert localstack.is_ready(stack)


def test_down_refuses_to_report_success_while_a_process_is_left(tmp_path: Path) -> None:
    name = f"left-{uuid.uuid4().hex[:6]}"
    workdir = tmp_path / "left"
    localstack.up(name, workdir)
    # A stray process started from the stack's work dir (as a crashed helper would leave).
    argv = [sys.executable, "-c", "import time; time.sleep(60)", f"{workdir}/stray"]
    stray = spawn(argv, log_file=tmp_path / "stray.log")
    try:
        with pytest.raises(LeftoverProcess, match=f"pid {stray}"):
            localstack.down(name, workdir)
    finally:
        terminate(stray)
    assert localstack.down(name, workdir) is False  # nothing left now
    assert not os.path.exists(workdir / "stack.json")
