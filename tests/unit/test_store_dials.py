"""Records tell a contact's calls apart: ``dial`` counts every call, ``attempt`` only the
attempts counted against ``max_attempts`` (claim.lua, release.lua, the engine's record)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from dialer.domain.calls import RawOutcome
from dialer.domain.statuses import CallStatus
from dialer.store import RedisStore
from dialer.store.dnc import DncStore
from ops.localstack.redis_server import RedisServer
from tests.unit.analytics_helpers import BUSY, HUMAN, record_attempt
from tests.unit.store_helpers import claim, running_campaign

pytestmark = pytest.mark.redis

NO_CHANNEL = RawOutcome(answered=False, originate_failed=True, originate_reason=0)
LONG_AGO = 1_700_000_000.0  # retries computed from here are due at once


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


def dial_attempt(records: list[tuple[str, dict[str, str]]]) -> list[tuple[str, str, str]]:
    return [(r["dial"], r["attempt"], r["status"]) for _, r in records]


async def test_technical_error_redials_get_their_own_dial_while_attempt_stays(
    store: RedisStore,
) -> None:
    cid, _ = await running_campaign(store, 1)
    outcomes = [NO_CHANNEL, NO_CHANNEL, NO_CHANNEL, BUSY, HUMAN]
    for n, raw in enumerate(outcomes):
        await record_attempt(store, cid, f"call-{n}", raw, LONG_AGO + n, None)
    assert dial_attempt(await store.records(cid)) == [
        ("1", "1", "technical_error"),
        ("2", "1", "technical_error"),
        ("3", "1", "technical_error"),
        ("4", "1", "busy"),
        ("5", "2", "answered"),
    ]
    contact = await store.get_contact(cid, 1)
    assert (contact.dials, contact.attempts) == (5, 2)


async def test_a_replayed_claim_does_not_count_a_dial_twice(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 2)
    first = await claim(store, cid, "call-1")
    again = await claim(store, cid, "call-1")
    assert (first.kind, first.dial, again.kind, again.dial) == ("ok", 1, "ok", 1)
    limits: dict[str, Any] = {"max_channels": None, "trunk_max_channels": None, "cps": None}
    batch = await store.claim_batch(
        cid, "trunk1", ["call-2"], "e1", lease_ms=10_000, trunk_cps=None, **limits
    )
    both = ["call-1", "call-2"]
    replay = await store.claim_batch(
        cid, "trunk1", both, "e1", lease_ms=10_000, trunk_cps=None, **limits
    )
    assert [(c.call_id, c.contact_id, c.dial) for c in batch.claims] == [("call-2", 2, 1)]
    assert [(c.call_id, c.dial) for c in replay.claims] == [("call-1", 1), ("call-2", 1)]
    assert [(await store.get_contact(cid, k)).dials for k in (1, 2)] == [1, 1]
    ref = await store.get_call("call-1")
    assert ref is not None
    assert ref.dial == 1


async def test_a_released_claim_gives_its_dial_back(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 1)
    granted = await claim(store, cid, "call-1")
    assert await store.release(cid, "trunk1", "call-1", granted.contact_id)
    assert (await store.get_contact(cid, 1)).dials == 0
    assert (await claim(store, cid, "call-2")).dial == 1


async def test_a_do_not_call_contact_gets_a_record_with_dial_0(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 1)
    await DncStore(store).add(["+33610000000"])
    assert (await claim(store, cid, "call-1")).kind == "empty"
    [(_, record)] = await store.records(cid)
    assert (record["rule"], record["attempt"], record["dial"]) == ("dnc:blocked", "0", "0")
    assert (await store.get_contact(cid, 1)).dials == 0


async def take_turns(store: RedisStore, cid: int, engine: str, dials: list[int]) -> None:
    """One engine: claim the contact whenever it is due, end the call as a technical error."""
    n = 0
    while len(dials) < 30:
        call_id = f"{engine}-{n}"
        got = await claim(store, cid, call_id, owner=engine)
        if got.kind != "ok":
            await asyncio.sleep(0.001)
            continue
        n += 1
        dials.append(got.dial)
        assert await store.finish(
            cid,
            "trunk1",
            call_id,
            got.contact_id,
            contact_status=CallStatus.RETRY_SCHEDULED,
            attempts_used=0,
            tech_failures=0,
            retry_at_ms=got.server_ms,
            record={"dial": str(got.dial)},
        )


@pytest.fixture
async def engines(redis_server: RedisServer, namespace: str) -> AsyncIterator[list[RedisStore]]:
    made = [RedisStore.from_url(redis_server.url, namespace) for _ in range(4)]
    yield made
    for s in made:
        await s.aclose()


async def test_engines_taking_turns_on_one_contact_never_share_a_dial(
    engines: list[RedisStore],
) -> None:
    cid, _ = await running_campaign(engines[0], 1)
    dials: list[int] = []
    async with asyncio.timeout(20):
        await asyncio.gather(*(take_turns(s, cid, f"e{i}", dials) for i, s in enumerate(engines)))
    assert sorted(dials) == list(range(1, len(dials) + 1))
    records = [int(r["dial"]) for _, r in await engines[0].records(cid)]
    assert records == sorted(dials)
