"""The project's ESL adapter against a real FreeSWITCH 1.10.12 of the local stack.

The stack runs FreeSWITCH (``up(with_freeswitch=True)``) from the cached build
(``python -m ops.localstack build-freeswitch``); without that build the module is skipped.
A campaign goes through the engine and the project's own adapter to the SIPp carrier simulator
by the gateway named after the trunk. Each behaviour of the simulator, with its raw values, is
tested on both switches by test_carrier_sim.py (the answered, busy and callback calls that
were checked here moved there).
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialer.config import EngineSettings
from dialer.domain.campaign import CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store.redis_store import RedisStore
from ops.localstack import freeswitch, fsbuild
from ops.localstack import stack as localstack
from ops.localstack.numberplan import Behaviour, number
from ops.localstack.procs import find_processes, is_alive
from ops.localstack.stack import StackInfo

from .conftest import _missing_prerequisite
from .engine_helpers import new_campaign, nonzero, running_engine, wait_status

pytestmark = [pytest.mark.integration, pytest.mark.redis]
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def fs_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    reason = _missing_prerequisite()
    if reason:
        pytest.skip(reason)
    if fsbuild.ready_build() is None:
        pytest.skip(
            f"no FreeSWITCH build at {fsbuild.prefix_path()}: run scripts/bootstrap with the "
            "source archives in ../shared/freeswitch or $DIALER_FREESWITCH_SOURCES "
            "(python -m ops.localstack build-freeswitch)"
        )
    name = f"fs-{secrets.token_hex(4)}"
    workdir = Path(tmp_path_factory.mktemp("fs"))
    info = localstack.up(name, workdir, with_freeswitch=True)
    yield info
    localstack.down(name, workdir)  # raises LeftoverProcess if anything survived
    assert not is_alive(info.freeswitch_pid)
    assert not find_processes([f"{workdir}/"])


def test_stack_runs_freeswitch_with_its_own_esl_secret(fs_stack: StackInfo) -> None:
    layout = fs_stack.freeswitch_layout()
    assert len(fs_stack.esl_password) == 32  # generated per stack, not a placeholder
    status = freeswitch.esl_api(fs_stack.esl_port, fs_stack.esl_password, "status")
    assert status is not None
    assert "1.10.12" in status
    assert freeswitch.esl_api(fs_stack.esl_port, "wrong", "status") is None
    sofia = freeswitch.esl_api(fs_stack.esl_port, fs_stack.esl_password, "sofia status")
    log.info("sofia status:\n%s", sofia)
    assert sofia is not None
    assert freeswitch.profile_running(sofia)
    env = fs_stack.env("freeswitch")
    assert env["DIALER_ESL_URL"] == fs_stack.esl_url
    assert "DIALER_AMI_URL" not in env  # an engine takes one switch
    assert layout.path("conf").stat().st_mode & 0o077 == 0  # it holds the ESL password


async def test_a_small_campaign_runs_on_freeswitch(fs_stack: StackInfo, namespace: str) -> None:
    """The engine with ``esl_url`` (no AMI): answered, busy (retried once) and 404 contacts."""
    S = CallStatus
    plan = [(Behaviour.HOLD, 3, S.ANSWERED), (Behaviour.BUSY, 2, S.COMPLETED_NO_ANSWER)]
    plan.append((Behaviour.NOT_FOUND_404, 2, S.INVALID_NUMBER))
    phones: list[str] = []
    expected = Counter[CallStatus]()
    for behaviour, n, status in plan:
        for _ in range(n):
            phones.append(number(behaviour, len(phones), hold_s=1))
            expected[status] += 1
    campaign = CampaignSettings(
        name="fs",
        trunk=fs_stack.trunk,
        max_channels=5,
        cps=10.0,
        ring_timeout=3.0,
        amd=False,
        retry=RetryPolicy(max_attempts=2, delays={S.BUSY: 0.3}, technical_retry_limit=1),
    )
    store = RedisStore.from_url(fs_stack.redis_url, namespace=namespace)
    try:
        control, cid = await new_campaign(store, campaign, phones)
        engine = EngineSettings(
            redis_url=fs_stack.redis_url, namespace=namespace, esl_url=fs_stack.esl_url
        )
        async with running_engine(engine):
            await control.start(cid)
            await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=90)
        counts = nonzero(await store.counts(cid))
        records = [rec for _, rec in await store.records(cid, count=1000)]
    finally:
        await store.aclose()
    log.info("campaign on FreeSWITCH: %s", counts)
    for rec in records:
        log.info("record: %s", rec)
    assert counts == dict(expected)
    assert len(records) == 3 + 2 * 2 + 2


def test_a_second_freeswitch_stack_runs_beside_and_a_dead_freeswitch_restarts_in_place(
    fs_stack: StackInfo, tmp_path: Path
) -> None:
    name = f"fs2-{secrets.token_hex(4)}"
    other = localstack.up(name, tmp_path, with_freeswitch=True)
    try:
        assert other.esl_password != fs_stack.esl_password
        ports = {fs_stack.esl_port, fs_stack.freeswitch_sip_port}
        assert not ports & {other.esl_port, other.freeswitch_sip_port}
        assert (
            other.freeswitch_rtp_start > fs_stack.freeswitch_rtp_end
            or other.freeswitch_rtp_end < fs_stack.freeswitch_rtp_start
        )
        assert localstack.is_ready(fs_stack)
        # FreeSWITCH dies: ``up`` starts it again on the same ports and secret, alone.
        localstack.terminate_now(other.freeswitch_pid)
        assert not localstack.is_ready(other)
        again = localstack.up(name, tmp_path, with_freeswitch=True)
        assert again.freeswitch_pid != other.freeswitch_pid
        assert again.asterisk_pid == other.asterisk_pid
        assert (again.esl_port, again.esl_password) == (other.esl_port, other.esl_password)
        assert localstack.is_ready(again)
    finally:
        localstack.down(name, tmp_path)
    assert localstack.is_ready(fs_stack)
