"""The project's ESL adapter against a real FreeSWITCH 1.10.12 of the local stack.

The stack runs FreeSWITCH (``up(with_freeswitch=True)``) from the cached build
(``python -m ops.localstack build-freeswitch``); without that build the module is skipped.
Calls go through the project's own adapter (:class:`FreeSwitchAdapter`) to the SIPp carrier
simulator by the gateway named after the trunk; a second, plain ESL connection records the raw
``CHANNEL_HANGUP_COMPLETE`` of each call, printed beside the adapter's outcome.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path

import pytest

from dialer.config import EngineSettings
from dialer.domain.calls import DialplanResult
from dialer.domain.campaign import CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.pbx.base import CallEnded, OriginateRequest
from dialer.pbx.esl.client import EslClient, EslSettings
from dialer.pbx.esl.codec import EslEvent
from dialer.pbx.freeswitch.adapter import FreeSwitchAdapter, FreeSwitchSettings
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

RAW = (
    "Hangup-Cause",
    "variable_hangup_cause_q850",
    "variable_sip_term_status",
    "variable_sip_term_cause",
    "variable_proto_specific_hangup_cause",
    "variable_sip_hangup_disposition",
)
DIALPLAN = ("variable_dialer_result", "variable_dialer_callback_at", "variable_dialer_amd_status")


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


class RawHangups:
    """CHANNEL_HANGUP_COMPLETE events by Unique-ID, from a connection of their own."""

    def __init__(self) -> None:
        self.by_id: dict[str, EslEvent] = {}
        self.arrived = asyncio.Event()

    async def run(self, client: EslClient) -> None:
        async with aclosing(client.events()) as events:
            async for item in events:
                if isinstance(item, EslEvent) and item.name == "CHANNEL_HANGUP_COMPLETE":
                    self.by_id[item.unique_id or ""] = item
                    self.arrived.set()


@pytest.fixture
async def raw_hangups(fs_stack: StackInfo) -> AsyncIterator[RawHangups]:
    settings = EslSettings.from_url(fs_stack.esl_url)
    settings = EslSettings(
        host=settings.host,
        port=settings.port,
        password=settings.password,
        events=("CHANNEL_HANGUP_COMPLETE",),
    )
    raw = RawHangups()
    async with EslClient(settings) as client:
        task = asyncio.create_task(raw.run(client))
        yield raw
        task.cancel()


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


async def _call(
    adapter: FreeSwitchAdapter,
    raw: RawHangups,
    trunk: str,
    dialed: str,
    variables: dict[str, str] | None = None,
) -> tuple[CallEnded, EslEvent]:
    call_id = f"dlr-{secrets.token_hex(16)}"

    async def follow() -> CallEnded:
        async with aclosing(adapter.events()) as events:
            async for event in events:
                if isinstance(event, CallEnded) and event.call_id == call_id:
                    return event
        raise AssertionError("adapter events ended")

    waiter = asyncio.create_task(follow())
    await asyncio.sleep(0)
    await adapter.originate(
        OriginateRequest(
            call_id=call_id,
            trunk=trunk,
            number=dialed,
            context="dialer-outbound",
            ring_timeout=5,
            variables=variables or {},
        )
    )
    ended = await asyncio.wait_for(waiter, timeout=30)
    async with asyncio.timeout(10):
        while call_id not in raw.by_id:
            raw.arrived.clear()
            await raw.arrived.wait()
    hangup = raw.by_id[call_id]
    log.info("%s: %s", dialed, ended.raw)
    log.info("%s raw: %s", dialed, ", ".join(f"{k}={hangup.get(k)}" for k in RAW + DIALPLAN))
    return ended, hangup


async def test_answered_and_busy_calls_through_the_adapter(
    fs_stack: StackInfo, raw_hangups: RawHangups
) -> None:
    settings = FreeSwitchSettings.from_url(fs_stack.esl_url, park=True)
    async with FreeSwitchAdapter(settings) as adapter:
        await adapter.esl.wait_connected()
        # The callee answers and hangs up (BYE) after 2 s.
        answered, hangup = await _call(
            adapter, raw_hangups, fs_stack.trunk, number(Behaviour.HOLD, 1, hold_s=2)
        )
        assert answered.raw.answered
        assert answered.answered_at is not None
        assert answered.raw.q850_cause == 16
        assert answered.raw.sip_code == 200
        assert hangup["Hangup-Cause"] == "NORMAL_CLEARING"
        assert hangup.get("variable_sip_term_status") == "200"

        busy, hangup = await _call(adapter, raw_hangups, fs_stack.trunk, number(Behaviour.BUSY, 2))
        assert not busy.raw.answered
        assert busy.raw.q850_cause == 17
        assert busy.raw.sip_code == 486
        assert hangup["Hangup-Cause"] == "USER_BUSY"
        assert hangup.get("variable_sip_term_status") == "486"


async def test_the_dialplan_reads_a_digit_and_sets_the_callback_time(
    fs_stack: StackInfo, raw_hangups: RawHangups
) -> None:
    """dialer.xml on the real switch: DTMF 2 in the IVR gives ``callback`` and a callback time
    one hour ahead (``${expr()}``, mod_expr)."""
    settings = FreeSwitchSettings.from_url(fs_stack.esl_url)
    async with FreeSwitchAdapter(settings) as adapter:
        await adapter.esl.wait_connected()
        before = time.time()
        ended, hangup = await _call(
            adapter,
            raw_hangups,
            fs_stack.trunk,
            number(Behaviour.HUMAN_CALLBACK, 3),
            {"DIALER_AMD": "0"},
        )
    assert ended.raw.answered
    assert ended.raw.dialplan_result is DialplanResult.CALLBACK
    assert ended.raw.callback_at is not None
    assert before + 3590 < ended.raw.callback_at < time.time() + 3610
    assert hangup["Hangup-Cause"] == "NORMAL_CLEARING"


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
