"""The real local stack for integration tests: Redis, Asterisk 22 (chroot), SIPp carrier
simulator, and FreeSWITCH 1.10.12 when its build is cached (``scripts/bootstrap`` builds it).

``stack`` is brought up once per session under a unique name and brought down at the end;
``down`` raises if any process of the stack is left, which fails the session's teardown.

``pbx`` parametrizes a test over both switches (``"asterisk"``, ``"freeswitch"``); the
FreeSWITCH case is skipped, with the reason, when the stack runs none.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dialer.pbx.ami.client import AmiClient, AmiSettings
from ops.localstack import fsbuild
from ops.localstack import stack as localstack
from ops.localstack.redis_cluster import RedisClusterProcs
from ops.localstack.stack import StackInfo


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "the local stack needs root (chroot into the Asterisk root)"
    for tool, package in (
        ("sipp", "sip-tester"),
        ("redis-server", "redis-server"),
        ("debootstrap", "debootstrap"),
    ):
        if shutil.which(tool) is None:
            return f"{tool} not found: run scripts/bootstrap (apt-get install {package})"
    return None


SWITCHES = ("asterisk", "freeswitch")


def freeswitch_missing() -> str | None:
    """Why the stacks run no FreeSWITCH (no cached build), or None."""
    if fsbuild.ready_build() is None:
        return (
            f"no FreeSWITCH build at {fsbuild.prefix_path()}: run scripts/bootstrap with the "
            "source archives in ../shared/freeswitch or $DIALER_FREESWITCH_SOURCES "
            "(python -m ops.localstack build-freeswitch)"
        )
    return None


def _own_stack(tmp_path_factory: pytest.TempPathFactory, prefix: str) -> Iterator[StackInfo]:
    reason = _missing_prerequisite()
    if reason:
        pytest.skip(reason)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    workdir = Path(tmp_path_factory.mktemp(prefix))
    info = localstack.up(name, workdir, with_freeswitch=freeswitch_missing() is None)
    yield info
    localstack.down(name, workdir)  # raises LeftoverProcess if anything survived
    assert localstack.load(workdir) is None


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """One stack for the whole session (the Asterisk root is built first if not cached)."""
    yield from _own_stack(tmp_path_factory, "test")


@pytest.fixture(scope="module")
def faulty_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """A stack of the module's own, for tests that kill and restart its parts."""
    yield from _own_stack(tmp_path_factory, "fault")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcs]:
    """A real 3-master Redis Cluster on loopback, shared by the session's cluster tests (each
    works in a namespace of its own)."""
    procs = RedisClusterProcs(Path(tmp_path_factory.mktemp("cluster")))
    try:
        procs.start()
        yield procs
    finally:
        procs.stop()


@pytest.fixture(params=SWITCHES)
def pbx(request: pytest.FixtureRequest) -> str:
    """The switch a test runs on: each test that takes it runs on Asterisk and on FreeSWITCH."""
    name: str = request.param
    if name == "freeswitch":
        reason = freeswitch_missing()
        if reason:
            pytest.skip(reason)
    return name


def ami_settings(info: StackInfo, *, events: str = "on", watch: bool = True) -> AmiSettings:
    """manager.conf's watching user (``watch``: it also receives Newchannel and Newstate Up),
    or the dialer's own user (3 events per call)."""
    return AmiSettings(
        host=info.ami_host,
        port=info.ami_port,
        username=info.ami_watch_username if watch else info.ami_username,
        secret=info.ami_secret,
        events=events,
    )


@pytest.fixture
async def ami(stack: StackInfo) -> AsyncIterator[AmiClient]:
    """A connected AMI client (the watching user: the dialer's privileges, and channels'
    creation and answer events besides the dialer's)."""
    async with AmiClient(ami_settings(stack)) as client:
        yield client
