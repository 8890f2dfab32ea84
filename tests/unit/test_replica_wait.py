"""WAIT in the engine's round trip (``RedisStore.settle_and_claim`` with ``replicas``), on a
real master and replica: a claim the replica has not acknowledged is not handed out for
dialing, and the writes of that round trip are reported unwritten (to be sent again)."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from dialer.domain.campaign import CampaignSettings
from dialer.engine.control import CampaignControl
from dialer.store.connection import ReplicaShortfall, ReplicaWait
from dialer.store.models import ClaimBatch, ContactInput
from dialer.store.redis_store import RedisStore
from tests.integration.sentinel_fixture import RedisProcess, data_node
from tests.unit.store_helpers import settle

pytestmark = pytest.mark.redis

WAIT_MS = 100


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisProcess, RedisProcess]]:
    master = data_node(tmp_path, "master")
    replica = data_node(tmp_path, "replica", replicaof=master.port)
    try:
        master.start()
        replica.start()
        yield master, replica
    finally:
        replica.stop()
        master.stop()


@pytest.fixture
async def store(
    pair: tuple[RedisProcess, RedisProcess], namespace: str
) -> AsyncIterator[RedisStore]:
    client = aioredis.Redis(port=pair[0].port)
    yield RedisStore(client, namespace, replicas=ReplicaWait(1, WAIT_MS))
    await client.aclose()


async def _claim(store: RedisStore, cid: int, call_id: str) -> ClaimBatch | Exception:
    command = store.claim_command(
        cid, "t", [call_id], "e1", lease_ms=60_000, max_channels=None,
        trunk_max_channels=None, cps=None, trunk_cps=None,
    )  # fmt: skip
    reply = await store.settle_and_claim({}, [], [command], owner="e1")
    return reply.claims[0]


async def test_a_claim_is_handed_out_only_once_a_replica_has_it(
    pair: tuple[RedisProcess, RedisProcess], store: RedisStore
) -> None:
    control = CampaignControl(store)
    cid = await control.create(CampaignSettings(name="w", trunk="t", max_channels=10, cps=100))
    await control.add_list(cid, [ContactInput(phone=f"+3361234567{i}") for i in range(3)])
    await control.start(cid)
    for _ in range(100):  # the replica has caught up with the set-up
        if await store.client.wait(1, WAIT_MS) == 1:
            break
    batch = await _claim(store, cid, "c1")
    assert isinstance(batch, ClaimBatch)
    assert [c.call_id for c in batch.claims] == ["c1"]

    replica = pair[1]
    replica.signal(signal.SIGSTOP)  # the master's writes no longer reach it
    try:
        started = time.monotonic()
        refused = await _claim(store, cid, "c2")
        waited = time.monotonic() - started
        assert isinstance(refused, ReplicaShortfall)  # claimed on the master, not handed out
        assert WAIT_MS / 1000 <= waited < 2
        marked = await store.settle_and_claim({cid: ["c1"]}, [], owner="e1")
        assert isinstance(marked.error, ReplicaShortfall)  # the mark: reported unwritten
        assert (marked.moved, marked.lost) == (0, [])
        with pytest.raises(ReplicaShortfall):
            await settle(store, {cid: ["c1"]}, [])
    finally:
        replica.signal(signal.SIGCONT)
    again = await _claim(store, cid, "c3")  # acknowledged again once the replica is back
    assert isinstance(again, ClaimBatch)
    assert [c.call_id for c in again.claims] == ["c3"]
