"""The local stack itself: idempotent up, CLI, side-by-side stacks, clean and checked down,
Redis with credentials, dead parts restarted in place."""

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
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.pbx.ami.client import AmiClient
from dialer.store.redis_store import RedisStore
from ops.localstack import freeswitch, fsbuild
from ops.localstack import stack as localstack
from ops.localstack.numberplan import Behaviour, number
from ops.localstack.procs import (
    LeftoverProcess,
    bound_ports,
    cmdline,
    find_processes,
    is_alive,
    spawn,
    terminate,
)
from ops.localstack.redis_server import ping
from ops.localstack.stack import StackInfo
from tests.integration.conftest import ami_settings, freeswitch_missing
from tests.integration.engine_helpers import (
    engine_settings,
    new_campaign,
    nonzero,
    running_engine,
    wait_status,
)
from tests.integration.test_carrier_sim import AmiWatcher, watching

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
    client = aioredis.Redis.from_url(stack.redis_admin_url, decode_responses=True)
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


@pytest.mark.alone  # up in under 15 s: no other worker's stack going up or down meanwhile
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
            watching(AmiWatcher(ami_a, stack)) as calls_a,
            watching(AmiWatcher(ami_b, other)) as calls_b,
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


# -- Redis with credentials -------------------------------------------------------------------


async def test_redis_wants_the_dialer_credentials(stack: StackInfo) -> None:
    assert stack.redis_url == (
        f"redis://dialer:{stack.redis_secret}@127.0.0.1:{stack.redis_port}/0"
    )
    assert stack.redis_secret
    assert stack.redis_admin_secret != stack.redis_secret
    assert (stack.workdir / "redis" / "users.acl").stat().st_mode & 0o077 == 0
    assert stack.redis_secret not in (stack.workdir / "redis" / "users.acl").read_text()
    assert not ping(stack.redis_port)  # NOAUTH: the default user is off
    anonymous = aioredis.Redis.from_url(f"redis://127.0.0.1:{stack.redis_port}/0")
    dialer = aioredis.Redis.from_url(stack.redis_url, driver_info=None)
    try:
        with pytest.raises(redis_errors.AuthenticationError):
            await anonymous.ping()
        assert await dialer.ping()
        for command in (("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("SHUTDOWN",)):
            with pytest.raises(redis_errors.NoPermissionError):
                await dialer.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        await anonymous.aclose()
        await dialer.aclose()


# -- restart in place -------------------------------------------------------------------------


async def test_up_restarts_what_died_in_place_and_a_connected_engine_carries_on(
    stack: StackInfo, tmp_path: Path, namespace: str
) -> None:
    """SIGKILL Asterisk, `up`: same ports and secrets, Redis untouched; SIGKILL Redis, `up`:
    same port, data kept (AOF), credentials still good. The engine connected before both
    kills reconnects by itself and completes a campaign started after them."""
    name = f"inplace-{uuid.uuid4().hex[:6]}"
    workdir = tmp_path / "inplace"
    first = await asyncio.to_thread(localstack.up, name, workdir)
    store = RedisStore.from_url(first.redis_url, namespace=namespace)
    try:
        before = await store.create_campaign("kept", first.trunk, "{}")
        async with running_engine(engine_settings(first, namespace)) as engine:
            await asyncio.to_thread(localstack.kill_asterisk, first, hard=True)  # SIGKILL
            second = await asyncio.to_thread(localstack.up, name, workdir)
            assert second.asterisk_pid != first.asterisk_pid
            assert second == replace(first, asterisk_pid=second.asterisk_pid)
            assert localstack.load(workdir) == second
            assert localstack.is_ready(second)

            await asyncio.to_thread(localstack.kill_redis, second, hard=True)  # SIGKILL
            third = await asyncio.to_thread(localstack.up, name, workdir)
            assert third.redis_pid != second.redis_pid
            assert third == replace(second, redis_pid=third.redis_pid)
            assert (await store.get_campaign(before)).name == "kept"  # the AOF, replayed

            async with asyncio.timeout(30):
                while not engine.pbx.connected:
                    await asyncio.sleep(0.1)
            phones = [number(Behaviour.HOLD, i, hold_s=1) for i in range(3)]
            control, cid = await new_campaign(
                store,
                CampaignSettings(name="after", trunk=third.trunk, max_channels=3, cps=10.0),
                phones,
            )
            await control.start(cid)
            await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
        assert nonzero(await store.counts(cid)) == {CallStatus.ANSWERED: 3}
    finally:
        await store.aclose()
        await asyncio.to_thread(localstack.down, name, workdir)


def test_up_leaves_a_ready_stack_alone_and_restarts_a_dead_sipp(tmp_path: Path) -> None:
    name = f"sipp-{uuid.uuid4().hex[:6]}"
    workdir = tmp_path / "sipp"
    first = localstack.up(name, workdir)
    try:
        localstack.terminate_now(first.sipp_pid)
        again = localstack.up(name, workdir)
        assert again == replace(first, sipp_pid=again.sipp_pid)
        assert localstack.is_ready(again)
    finally:
        localstack.down(name, workdir)


# -- the switches: Asterisk, FreeSWITCH or both -----------------------------------------------


def _needs_freeswitch() -> None:
    reason = freeswitch_missing()
    if reason:
        pytest.skip(reason)


def _gone(info: StackInfo) -> None:
    """Nothing of the stack is left: no pid, no process of its work dir, no port bound."""
    assert not [pid for pid in info.pids.values() if is_alive(pid)]
    assert not find_processes([f"{info.workdir}/"])
    bound = bound_ports()
    assert not [(kind, port) for kind, port in localstack._ports_of(info) if port in bound[kind]]
    assert localstack.load(info.workdir) is None


def test_a_freeswitch_only_stack_runs_no_asterisk_dials_the_simulator_and_stops_cleanly(
    stack: StackInfo, tmp_path: Path
) -> None:
    """``up --pbx freeswitch``: Redis, SIPp and FreeSWITCH only, beside the session's stack;
    FreeSWITCH's own ``originate`` through the trunk's gateway is answered by the simulator;
    ``status``/``env`` speak of FreeSWITCH; ``down`` refuses to report success while a process
    of the stack is left, and leaves nothing once it is gone."""
    _needs_freeswitch()
    name = f"fsonly-{uuid.uuid4().hex[:6]}"
    where = ["--name", name, "--workdir", str(tmp_path / "fs")]
    up = cli("up", "--pbx", "freeswitch", *where)
    assert up.returncode == 0, up.stderr
    info = StackInfo.from_json(up.stdout)
    stray = 0
    try:
        assert info.pbx == "freeswitch"
        assert (info.asterisk_pid, info.ami_port, info.sip_port, info.conf_dir) == (0, 0, 0, "")
        assert set(info.pids) == {"redis", "sipp", "freeswitch"}
        assert not find_processes([f"/etc/dialer-{name}/"])  # no Asterisk of this stack
        for proc in find_processes([f"{info.workdir}/"]):
            assert "asterisk" not in proc.cmdline[0]
        mine = set(range(*localstack._block(stack)))
        assert not mine & set(range(*localstack._block(info)))
        assert {info.esl_port} <= bound_ports(info.freeswitch_pid)["tcp"]
        assert info.freeswitch_sip_port in bound_ports(info.freeswitch_pid)["udp"]

        listing = freeswitch.esl_api(info.esl_port, info.esl_password, "sofia status")
        assert listing is not None
        assert freeswitch.profile_running(listing)
        assert freeswitch.gateways_listed(listing, [info.trunk, info.dead_trunk])
        call = uuid.uuid4().hex
        dialed = number(Behaviour.HOLD, 1, hold_s=1)
        answer = freeswitch.esl_api(
            info.esl_port,
            info.esl_password,
            f"originate {{origination_uuid={call},originate_timeout=5}}"
            f"sofia/gateway/{info.trunk}/{dialed} &park()",
            timeout=10,
        )
        assert answer is not None
        assert answer.strip() == f"+OK {call}"  # the simulator answered FreeSWITCH's INVITE

        status = cli("status", *where)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["pbx"] == "freeswitch"
        env = cli("env", *where)
        assert env.returncode == 0, env.stderr
        assert f"export DIALER_ESL_URL={info.esl_url}\n" in env.stdout
        assert "DIALER_AMI_URL" not in env.stdout
        assert "runs no Asterisk" in cli("env", "--pbx", "asterisk", *where).stderr

        with pytest.raises(localstack.StackError, match="in use"):  # no Asterisk marks the name
            localstack.up(name, tmp_path / "same-name", pbx="freeswitch")

        # FreeSWITCH dies: ``up`` (no switch named) restarts it alone, same ports and secret
        localstack.terminate_now(info.freeswitch_pid)
        again = localstack.up(name, info.workdir)
        assert again == replace(info, freeswitch_pid=again.freeswitch_pid)
        assert again.freeswitch_pid != info.freeswitch_pid
        assert localstack.is_ready(again)
        info = again

        argv = [sys.executable, "-c", "import time; time.sleep(60)", f"{info.workdir}/stray"]
        stray = spawn(argv, log_file=tmp_path / "stray.log")
        down = cli("down", *where)
        assert down.returncode == 2
        assert f"pid {stray}" in down.stderr
    finally:
        terminate(stray)
        localstack.down(name, info.workdir)
    _gone(info)


def test_up_switches_a_stack_between_both_switches_and_freeswitch_alone(tmp_path: Path) -> None:
    """``pbx="both"``, then ``up`` without a choice keeps it as it is, then
    ``pbx="freeswitch"`` starts it anew without Asterisk; every teardown leaves nothing."""
    _needs_freeswitch()
    name = f"both-{uuid.uuid4().hex[:6]}"
    workdir = tmp_path / "both"
    both = localstack.up(name, workdir, pbx="both")
    fs_only = None
    try:
        assert both.pbx == "both"
        assert set(both.pids) == {"redis", "sipp", "asterisk", "freeswitch"}
        assert localstack.up(name, workdir) == both
        assert localstack.up(name, workdir, with_freeswitch=True) == both
        assert both.asterisk_cli("core show version").startswith("Asterisk 22")

        fs_only = localstack.up(name, workdir, pbx="freeswitch")
        assert fs_only.pbx == "freeswitch"
        assert not [pid for pid in both.pids.values() if is_alive(pid)]
        assert not find_processes([f"/etc/dialer-{name}/"])  # no Asterisk of this stack
        assert not both.host_conf_dir.exists()
        assert localstack.is_ready(fs_only)
    finally:
        localstack.down(name, workdir)
    assert fs_only is not None
    _gone(fs_only)


def test_run_freeswitch_renders_the_stack_config_and_becomes_freeswitch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker-compose's entry point: the config rendered as the stack's (gateways named after
    the trunks, ESL with the password from the environment), then FreeSWITCH in its place."""
    _needs_freeswitch()
    build = fsbuild.ready_build()
    assert build is not None
    # The ports are chosen under the machine-wide lock of ups and downs and kept under it until
    # FreeSWITCH is down: they are no stack's, so nothing else would keep another worker's `up`
    # from choosing them before FreeSWITCH binds them.
    with localstack._global_lock():
        base = localstack._allocate(16 + 40)
        password = uuid.uuid4().hex
        layout = freeswitch.FreeSwitchLayout(
            build=build,
            dir=tmp_path / "fs",
            sip_port=base,
            esl_port=base + 1,
            esl_password=password,
            rtp_start=base + 16,
            rtp_end=base + 16 + 39,
            gateways=(("carrier", base + 2), ("backup", base + 3)),
        )
        argv = [sys.executable, "-m", "ops.localstack", "run-freeswitch", "--dir", str(layout.dir)]
        argv += ["--sip-port", str(layout.sip_port), "--esl-port", str(layout.esl_port)]
        argv += ["--rtp-start", str(layout.rtp_start), "--rtp-end", str(layout.rtp_end)]
        argv += ["--gateway", f"carrier={base + 2}", "--gateway", f"backup={base + 3}"]
        monkeypatch.delenv("DIALER_ESL_PASSWORD", raising=False)
        refused = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        assert refused.returncode == 2
        assert "DIALER_ESL_PASSWORD" in refused.stderr
        monkeypatch.setenv("DIALER_ESL_PASSWORD", password)
        monkeypatch.chdir(ROOT)
        pid = spawn(argv, log_file=tmp_path / "run-freeswitch.log")
        try:
            freeswitch.wait_ready(layout, pid)  # ESL auth, profile RUNNING, both gateways listed
            assert freeswitch.owns(layout, " ".join(cmdline(pid)))  # exec'd: the same pid
            assert freeswitch.esl_api(layout.esl_port, "wrong" + password, "status") is None
            assert (layout.dir / "conf").stat().st_mode & 0o077 == 0
        finally:
            freeswitch.shutdown_now(layout, pid)
        assert not is_alive(pid)
        assert not find_processes([f"{layout.dir}/"])
