"""Redis Sentinel on real processes (one master, one replica, three sentinels on loopback) with
an engine dialing a campaign on the real switch: the master is SIGKILLed mid-campaign, the
sentinels promote the replica, the engine follows by itself. Measured from Asterisk's side:
channels per number (0 double dials), every contact final, the time to recover.

README "Redis Sentinel" has the reasoning these tests check: a claim is dialed only once a
replica holds it (WAIT), so a promotion loses no claim whose call is on the switch; marks and
results lost with the old master are written again or found by the reconciliation."""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.sentinel import SentinelConnectionPool

from dialer.domain.campaign import CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.engine.control import CampaignControl
from dialer.errors import StoreError
from dialer.store.models import ClaimBatch, ContactInput
from dialer.store.redis_store import RedisStore
from ops.localstack.numberplan import Behaviour, number
from tests.integration.conftest import ami_settings
from tests.integration.engine_helpers import (
    engine_settings,
    new_campaign,
    nonzero,
    running_engine,
    wait_status,
)
from tests.integration.monitor import Observed, watch_asterisk
from tests.integration.sentinel_fixture import (
    SERVICE,
    RedisProcess,
    SentinelGroup,
    sentinel_group_fixture,  # noqa: F401 (the fixture sentinel_group)
)

pytestmark = [pytest.mark.integration, pytest.mark.redis]
log = logging.getLogger(__name__)
S = CallStatus

CAP = 10
LEASE_MS = 3000  # claims WAIT refused are given back by the reconciliation after this
PHONES = 40


def plan(stack: Any) -> CampaignSettings:
    return CampaignSettings(
        name="sentinel",
        trunk=stack.trunk,
        max_channels=CAP,
        cps=20.0,
        ring_timeout=5.0,
        retry=RetryPolicy(max_attempts=2, delays={S.TECHNICAL_ERROR: 0.5}),
    )


@pytest.fixture
async def store(sentinel_group: SentinelGroup, namespace: str) -> AsyncIterator[RedisStore]:
    s = RedisStore.from_url(sentinel_group.url, namespace=namespace)
    yield s
    await s.aclose()


@asynccontextmanager
async def first_script_call(node: RedisProcess) -> AsyncIterator[list[float]]:
    """Polls ``node`` (a replica now) for its first EVALSHA: a replica applies a script's
    writes, not the script, so the first EVALSHA it counts is a client's, once promoted.
    Yields a list that gets the time (monotonic) it was first seen."""
    seen: list[float] = []
    client = aioredis.Redis(port=node.port, socket_timeout=1)

    async def poll() -> None:
        while True:
            try:
                stats = await client.info("commandstats")
            except aioredis.RedisError:
                stats = {}
            if stats.get("cmdstat_evalsha", {}).get("calls", 0):
                seen.append(time.monotonic())
                return
            await asyncio.sleep(0.02)

    task = asyncio.create_task(poll())
    try:
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()


def rejoin(group: SentinelGroup, old: RedisProcess) -> None:
    """Start the killed master again as a replica of the promoted one, as its supervisor would
    (the sentinels alone convert a returning master only ~8 s after they see it)."""
    old.argv = [*old.argv, "--replicaof", "127.0.0.1", str(group.master_port())]
    old.start()
    group.wait_replicating(old)


async def wait_live(seen: Observed, live: int, answered: int, within: float = 20) -> None:
    async with asyncio.timeout(within):
        while (
            len(seen.created_at) - len(seen.ended_at) < live
            or len(seen.answered - set(seen.ended_at)) < answered
        ):
            await asyncio.sleep(0.02)


def dialed_per_number(seen: Observed, records: list[dict[str, str]]) -> Counter[str]:
    """Channels Asterisk created per number (a channel without a record counts under ?)."""
    phone_of = {r["call_id"]: r["phone"] for r in records}
    return Counter(phone_of.get(uid, "?") for uid in seen.created_at)


def check_nobody_lost_or_dialed_twice(
    seen: Observed, records: list[dict[str, str]], counts: dict[CallStatus, int], phones: list[str]
) -> None:
    per_number = dialed_per_number(seen, records)
    assert "?" not in per_number, "a channel on the switch without a record"
    assert max(per_number.values()) == 1, per_number.most_common(3)  # 0 double dials
    assert set(per_number) == set(phones)
    assert counts == {S.ANSWERED: len(phones)}  # every contact ends with a status
    assert len(records) == len(seen.created_at)
    assert seen.max_live <= CAP


async def test_master_killed_mid_campaign_engine_follows_the_promotion(
    stack: Any, sentinel_group: SentinelGroup, store: RedisStore, namespace: str
) -> None:
    group = sentinel_group
    phones = [number(Behaviour.HOLD, i, hold_s=1) for i in range(PHONES)]
    control, cid = await new_campaign(store, plan(stack), phones)
    settings = replace(engine_settings(stack, namespace, lease_ms=LEASE_MS), redis_url=group.url)
    old, new = group.master, group.replica
    async with (
        watch_asterisk(ami_settings(stack)) as seen,
        running_engine(settings),
        first_script_call(new) as on_new_master,
    ):
        await control.start(cid)
        await wait_live(seen, CAP, CAP // 2)
        killed, killed_epoch = time.monotonic(), time.time()
        old.kill()  # SIGKILL mid-campaign
        live_at_kill = len(seen.created_at) - len(seen.ended_at)
        promoted = await asyncio.to_thread(group.wait_promoted, new.port)
        await asyncio.to_thread(rejoin, group, old)
        rejoined = time.monotonic()
        await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
        completed = time.monotonic()
    records = [r for _, r in await store.records(cid, count=10_000)]
    counts = nonzero(await store.counts(cid))
    first_claim = on_new_master[0] - killed if on_new_master else None
    new_channels = seen.created_after(killed_epoch)
    first_dial = (
        min(seen.created_at[c] for c in new_channels) - killed_epoch if new_channels else None
    )
    log.warning(
        "Sentinel failover: %d calls live at the kill; promoted %.2f s after it, first engine "
        "round trip (claim) on the new master %s s, old master back as a replica %.2f s, first "
        "new channel %s s after the kill (switch clock); completed %.1f s after the kill; "
        "records %d, channels %d, ends %s",
        live_at_kill, promoted - killed,
        "none" if first_claim is None else f"{first_claim:.2f}", rejoined - killed,
        "none" if first_dial is None else f"{first_dial:.2f}", completed - killed,
        len(records), len(seen.created_at), dict(Counter(r["end_source"] for r in records)),
    )  # fmt: skip
    check_nobody_lost_or_dialed_twice(seen, records, counts, phones)
    # the CLI on the same URL reads the campaign from the promoted master
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dialer", "status", str(cid),
        "--redis-url", group.url, "--namespace", namespace,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out = (await cli.communicate())[0].decode()
    assert cli.returncode == 0, out
    assert "completed" in out.lower(), out
    assert first_claim is not None
    assert first_claim < 10
    assert first_dial is not None


STALL_S = 1.0  # the replica stopped this long before the master is killed
SLACK_S = 0.25  # a claim WAITed just before the stop still reaches the switch after it


async def test_writes_lost_at_the_promotion_dial_nobody_twice(
    stack: Any, sentinel_group: SentinelGroup, store: RedisStore, namespace: str
) -> None:
    """The replica is stopped (SIGSTOP) mid-campaign, so the master's writes stop reaching it:
    claims, marks and results of that second are acknowledged by the master alone. Then the
    master is SIGKILLed and the replica resumed and promoted: those writes are lost for good.
    WAIT kept every claim of that second from being dialed, the results are written again,
    and the calls whose marks were lost are still followed: no number gets a second channel,
    every contact ends with a status."""
    group = sentinel_group
    phones = [number(Behaviour.HOLD, i, hold_s=1) for i in range(PHONES)]
    control, cid = await new_campaign(store, plan(stack), phones)
    settings = replace(engine_settings(stack, namespace, lease_ms=LEASE_MS), redis_url=group.url)
    old, new = group.master, group.replica
    async with watch_asterisk(ami_settings(stack)) as seen, running_engine(settings):
        await control.start(cid)
        await wait_live(seen, CAP, CAP // 2)
        stopped_epoch = time.time()
        new.signal(signal.SIGSTOP)
        await asyncio.sleep(STALL_S)
        dialed_in_stall = seen.created_after(stopped_epoch + SLACK_S)
        ended_in_stall = [c for c, t in seen.ended_at.items() if t > stopped_epoch]
        with old.client() as admin:
            info = await asyncio.to_thread(admin.info, "replication")
        acked = int(str(info["slave0"]["offset"])) if "slave0" in info else 0
        unreplicated = int(info["master_repl_offset"]) - acked
        killed, killed_epoch = time.monotonic(), time.time()
        old.kill()
        new.signal(signal.SIGCONT)
        promoted = await asyncio.to_thread(group.wait_promoted, new.port)
        await asyncio.to_thread(rejoin, group, old)
        await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
        completed = time.monotonic()
    records = [r for _, r in await store.records(cid, count=10_000)]
    counts = nonzero(await store.counts(cid))
    after_kill = seen.created_after(killed_epoch)
    log.warning(
        "Sentinel, writes lost at the promotion: replica stopped %.1f s, %d bytes of writes "
        "acknowledged by the master alone (lost with it), %d calls ended in the stall (their "
        "results among them), %d channels created in the stall (after %.2f s of slack); "
        "promoted %.2f s after the kill, completed %.1f s after it; records %d, channels %d "
        "(%d after the kill), ends %s",
        STALL_S, unreplicated, len(ended_in_stall), len(dialed_in_stall), SLACK_S,
        promoted - killed, completed - killed, len(records), len(seen.created_at),
        len(after_kill), dict(Counter(r["end_source"] for r in records)),
    )  # fmt: skip
    assert unreplicated > 0  # writes were lost: the case happened
    assert ended_in_stall  # results written in the stall (to the master alone)
    assert dialed_in_stall == []  # no claim dialed that only the master held
    check_nobody_lost_or_dialed_twice(seen, records, counts, phones)


async def test_a_demoted_master_is_left_for_the_promoted_one(
    sentinel_group: SentinelGroup, store: RedisStore
) -> None:
    """A coordinated failover (SENTINEL FAILOVER), the case of a partitioned master: the old
    master lives on, and accepts writes, until the sentinels turn it into a replica (about 8 s
    later), then answers READONLY; redis-py's Sentinel pool takes that as a lost connection and
    asks the sentinels again. Meanwhile the store's pooled connections may still write to it,
    and those writes are lost at its demotion: WAIT refuses every claim made there (its replica
    was promoted away), so every claim handed out for dialing is on the promoted master."""
    group = sentinel_group
    old, new = group.master, group.replica
    control = CampaignControl(store)
    cid = await control.create(
        CampaignSettings(name="demoted", trunk="t", max_channels=10_000, cps=1000.0)
    )
    await control.add_list(cid, [ContactInput(phone=f"+3361{i:07d}") for i in range(1000)])
    await control.start(cid)
    with group.sentinels[0].client() as sentinel:
        await asyncio.to_thread(sentinel.execute_command, "SENTINEL", "FAILOVER", SERVICE)
    started = time.monotonic()
    handed_out: list[str] = []
    errors: Counter[str] = Counter()
    demoted: float | None = None
    switched: float | None = None  # the store's connections to the promoted master
    pool = store.client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    after = 0
    async with asyncio.timeout(40):
        for n in itertools.count():
            command = store.claim_command(
                cid, "t", [f"d{n}"], "e1", lease_ms=60_000, max_channels=None,
                trunk_max_channels=None, cps=None, trunk_cps=None,
            )  # fmt: skip
            try:
                reply = await store.settle_and_claim({}, [], [command], owner="e1")
                batch = reply.claims[0]
            except StoreError as exc:
                batch = exc
            if isinstance(batch, ClaimBatch):
                handed_out += [c.call_id for c in batch.claims]
                after += demoted is not None
            else:
                errors[type(batch).__name__] += 1
            if switched is None and pool.master_address == ("127.0.0.1", new.port):
                switched = time.monotonic()
            if demoted is None and await asyncio.to_thread(_role, old) == b"slave":
                demoted = time.monotonic()
            if after >= 10:
                break
            await asyncio.sleep(0.05)
    assert demoted is not None
    assert switched is not None
    assert pool.master_address == ("127.0.0.1", new.port)
    lost = [c for c in handed_out if await store.get_call(c) is None]
    log.warning(
        "SENTINEL FAILOVER: the store on the promoted master %.2f s after it, the old master "
        "demoted %.2f s after it; %d claims handed out, %d of them lost (must be 0); refused "
        "meanwhile: %s",
        switched - started, demoted - started, len(handed_out), len(lost), dict(errors),
    )  # fmt: skip
    assert lost == []  # every claim handed out for dialing is on the promoted master
    assert switched < demoted  # it left the old master on its own (WAIT, follow_master)


def _role(node: RedisProcess) -> bytes:
    with node.client() as c:
        role: bytes = c.execute_command("ROLE")[0]
        return role
