"""Batched claims (claim.lua), batched ends (finish.lua and originated.lua), pacing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.errors import NotFound, ScriptError
from dialer.store import RedisStore
from dialer.store.connection import HiredisPackedConnection, connection_class_for
from dialer.store.dnc import DncStore
from dialer.store.models import ClaimBatch, ClaimCommand, FinishItem, Pacing, Usage
from ops.localstack.redis_server import RedisServer
from tests.unit.store_helpers import inflight_calls, mark_originated, running_campaign, settle

pytestmark = pytest.mark.redis

C = CallStatus


@pytest.fixture
async def store(redis_server: RedisServer, namespace: str) -> AsyncIterator[RedisStore]:
    """A store built as the engine builds it (hiredis packing, retries)."""
    made = RedisStore.from_url(redis_server.url, namespace)
    yield made
    await made.aclose()


async def claim_batch(
    store: RedisStore,
    cid: int,
    ids: list[str],
    *,
    max_channels: int | None = None,
    cps: float | None = None,
    pace_ms: int = 0,
) -> ClaimBatch:
    """No limit (None) but the ones given; no trunk limit."""
    return await store.claim_batch(
        cid,
        "trunk1",
        ids,
        "e1",
        lease_ms=10_000,
        max_channels=max_channels,
        trunk_max_channels=None,
        cps=cps,
        trunk_cps=None,
        pace_ms=pace_ms,
    )


def ended(cid: int, call_id: str, contact_id: int, talk: float = 0.0) -> FinishItem:
    return FinishItem(
        cid=cid,
        trunk="trunk1",
        call_id=call_id,
        contact_id=contact_id,
        contact_status=C.ANSWERED,
        attempts_used=1,
        tech_failures=0,
        retry_at_ms=None,
        record={"outcome": "answered", "note": 'quotes " and é, ü'},
        usage_attempts=1,
        talk_seconds=talk,
    )


def test_pacing() -> None:
    fast = Pacing.for_cps(340, 20)
    assert fast.interval_ms == pytest.approx(1000 / 340)
    assert fast.catch_up_ms == pytest.approx(6000 / 340 + 20)
    assert fast.burst == 7
    assert Pacing.for_cps(20, 20) == Pacing(50.0, 20.0, 1)  # one at a time, 20 ms late at most
    assert Pacing.for_cps(20, 0) == Pacing(0.0, 0.0, 0)
    assert Pacing.for_cps(None, 20).burst == 0  # no cps limit: no pacing
    for bad in (0, -5, float("nan"), float("inf")):  # never read as "no limit"
        with pytest.raises(ValueError, match="finite number above 0"):
            Pacing.for_cps(bad, 20)


async def test_a_batch_claims_in_queue_order_and_says_why_it_stopped(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 10)
    got = await claim_batch(store, cid, [f"a{i}" for i in range(4)])
    assert [c.contact_id for c in got.claims] == [1, 2, 3, 4]
    assert [c.call_id for c in got.claims] == ["a0", "a1", "a2", "a3"]
    assert got.stop == "max"
    capped = await claim_batch(store, cid, [f"b{i}" for i in range(5)], max_channels=6)
    assert [c.contact_id for c in capped.claims] == [5, 6]
    assert (capped.stop, capped.wait_ms) == ("full", 0)  # call again when a channel frees
    full = await claim_batch(store, cid, ["c0"], max_channels=6)
    assert (full.claims, full.stop) == ([], "full")
    assert full.wait_ms > 9_000  # until the first lease expires
    rest = await claim_batch(store, cid, [f"d{i}" for i in range(8)])
    assert [c.contact_id for c in rest.claims] == [7, 8, 9, 10]
    assert (rest.stop, rest.wait_ms, rest.next_due_ms) == ("empty", -1, None)
    stats = await store.queue_stats(cid)
    assert (stats.inflight, stats.claimed, stats.pending_total) == (10, 10, 0)


async def test_rate_and_pacing_bound_a_batch(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 50)
    ids = [f"x{i}" for i in range(20)]
    got = await claim_batch(store, cid, ids, cps=10)  # no pacing: a whole second at once
    assert len(got.claims) == 10
    assert got.stop == "rate"
    assert 990 <= got.wait_ms <= 1000
    cid2, _ = await running_campaign(store, 50)
    ids = [f"z{i}" for i in range(20)]
    # 100 cps, 20 ms steps: one per 10 ms, 2 at a time, a claim 20 ms late catches up
    paced = await claim_batch(store, cid2, ids, cps=100, pace_ms=20)
    assert len(paced.claims) == 1  # a fresh schedule starts now
    assert paced.stop == "rate"
    assert 18 <= paced.wait_ms <= 20  # until the next step's 2 slots have come
    slot = float(await store.client.get(store.keys.pace(cid2)) or 0)
    assert slot == pytest.approx(paced.server_ms + 10)
    await asyncio.sleep(0.2)  # far behind schedule: catch up by 30 ms at most: 4 grants
    late = await claim_batch(store, cid2, [f"y{i}" for i in range(20)], cps=100, pace_ms=20)
    assert len(late.claims) == 4
    assert late.stop == "rate"


async def test_a_paced_claim_takes_its_lateness_in_the_same_round_trip(store: RedisStore) -> None:
    # 100 cps, 20 ms steps: 2 grants a step; a claim may be 30 ms late, so it asks for 4 ids
    pace = Pacing.for_cps(100, 20)
    assert (pace.burst, pace.most) == (2, 4)
    assert Pacing.for_cps(340, 20).most == 13
    assert Pacing.for_cps(None, 20).most == 0
    cid, _ = await running_campaign(store, 50)
    first = await claim_batch(store, cid, [f"f{i}" for i in range(4)], cps=100, pace_ms=20)
    assert (len(first.claims), first.stop) == (1, "rate")  # a fresh schedule starts now
    assert 18 <= first.wait_ms <= 20  # a whole step, not one slot
    await asyncio.sleep((first.wait_ms + 15) / 1000)  # wake 15 ms late
    late = await claim_batch(store, cid, [f"g{i}" for i in range(4)], cps=100, pace_ms=20)
    assert len(late.claims) in (3, 4)  # the step's 2 and what the lateness added
    assert late.stop == "rate"  # not "max": no second claim is needed to catch up
    assert 1 <= late.wait_ms <= 20


async def test_do_not_call_contacts_are_settled_not_claimed(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 6)
    dnc = DncStore(store)
    await dnc.add(["+33610000001"])  # contact 2, global list
    await dnc.add(["+33610000003"], campaign=cid)  # contact 4, campaign list
    got = await claim_batch(store, cid, [f"k{i}" for i in range(4)])
    # four ids: two went to listed contacts, two to dialable ones
    assert [c.contact_id for c in got.claims] == [1, 3]
    assert (got.blocked, got.stop) == (2, "max")
    assert (await store.get_contact(cid, 2)).status == C.DO_NOT_CALL
    assert (await store.get_contact(cid, 4)).attempts == 0
    records = [r for _, r in await store.records(cid)]
    assert [(r["contact"], r["rule"], r["status"]) for r in records] == [
        ("2", "dnc:blocked", "do_not_call"),
        ("4", "dnc:blocked", "do_not_call"),
    ]
    counts = {k: v for k, v in (await store.counts(cid)).items() if v}
    assert counts == {C.IN_PROGRESS: 2, C.DO_NOT_CALL: 2, C.PENDING: 2}
    stats = await store.queue_stats(cid)
    assert stats.inflight == 2  # a listed contact takes no channel lease


async def test_a_replayed_batch_returns_the_same_claims(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 5)
    ids = ["r0", "r1", "r2"]
    first = await claim_batch(store, cid, ids)
    replay = await claim_batch(store, cid, ids)
    assert replay.claims == first.claims
    assert (await store.queue_stats(cid)).pending_total == 2
    assert await mark_originated(store, "r0", cid)
    with pytest.raises(ScriptError, match="already used"):
        await claim_batch(store, cid, ids)


async def test_settle_marks_and_finishes_in_one_round_trip(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 4)
    got = await claim_batch(store, cid, ["s0", "s1", "s2", "s3"])
    moved, written = await settle(
        store,
        {cid: ["s0", "s1", "s2", "s3", "never-claimed"]},
        [ended(cid, "s0", 1, talk=2.5), ended(cid, "s1", 2, talk=1.0), ended(cid, "s1", 2)],
    )
    assert moved == 4
    # s1 twice in one batch: applied once; usage counted once per applied end
    assert written == [Usage(1, 2.5), Usage(2, 3.5), False]
    assert [r["call_id"] for _, r in await store.records(cid)] == ["s0", "s1"]
    record = (await store.records(cid))[0][1]
    assert record["note"] == 'quotes " and é, ü'
    assert (await store.usage(cid)) == Usage(2, 3.5)
    # a finish for the wrong contact changes nothing and is reported
    (refused,) = await store.finish_batch([ended(cid, "s2", 4)])
    assert refused is None
    assert (await store.get_call("s2")) is not None
    assert (await store.get_contact(cid, 3)).status == C.IN_PROGRESS
    assert got.claims[2].contact_id == 3


async def test_settle_survives_a_server_that_lost_its_scripts(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    cid, _ = await running_campaign(store, 2)
    await claim_batch(store, cid, ["f0", "f1"])
    await redis_client.script_flush()
    moved, written = await settle(store, {cid: ["f0"]}, [ended(cid, "f1", 2)])
    assert (moved, written) == (1, [Usage(1, 0.0)])


async def test_hiredis_packing_is_byte_identical_to_redis_py() -> None:
    args: tuple[str | bytes | int | float, ...] = (
        "EVALSHA",
        "0" * 40,
        3,
        "k:1",
        b"\x00\xff",
        -7,
        1.5,
        1e-05,
        1e20,
        "é\r\n",
    )
    ours = HiredisPackedConnection().pack_command(*args)
    theirs = Connection().pack_command(*args)
    assert b"".join(ours) == b"".join(theirs)
    assert b"".join(HiredisPackedConnection().pack_command("SCRIPT LOAD", "x")) == b"".join(
        Connection().pack_command("SCRIPT LOAD", "x")
    )


def test_connection_class_follows_the_url_scheme() -> None:
    assert connection_class_for("redis://127.0.0.1:6379/0") is HiredisPackedConnection
    assert issubclass(connection_class_for("rediss://h:6380"), aioredis.SSLConnection)
    assert issubclass(
        connection_class_for("unix:///run/redis.sock"), aioredis.UnixDomainSocketConnection
    )
    with pytest.raises(ValueError, match="scheme"):
        connection_class_for("http://127.0.0.1")


async def test_paused_campaign_claims_nothing(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 3)
    await store.transition(cid, {CampaignStatus.RUNNING}, CampaignStatus.PAUSED)
    got = await claim_batch(store, cid, ["p0", "p1"])
    assert (got.claims, got.stop, got.status) == ([], "status", CampaignStatus.PAUSED)


def claim_command(store: RedisStore, cid: int, ids: list[str]) -> ClaimCommand:
    return store.claim_command(
        cid,
        "trunk1",
        ids,
        "e1",
        lease_ms=10_000,
        max_channels=None,
        trunk_max_channels=None,
        cps=None,
        trunk_cps=None,
    )


def test_only_none_becomes_the_scripts_no_limit(store: RedisStore) -> None:
    """claim.lua reads 0 as "no limit": claim_command sends it for None alone."""
    limits = {"max_channels": 5, "trunk_max_channels": 7, "cps": 2.0, "trunk_cps": 4.0}
    command = store.claim_command(1, "trunk1", ["n0"], "e1", lease_ms=10_000, **limits)  # type: ignore[arg-type]
    assert [command.args[i] for i in (4, 5, 6, 10)] == [5, 7, 2, 4]  # ARGV 5-7, 11
    unlimited = claim_command(store, 1, ["n0"])
    assert [unlimited.args[i] for i in (4, 5, 6, 10)] == [0, 0, 0, 0]
    for name in limits:
        for bad in (0, -1, float("nan"), float("inf"), True):
            with pytest.raises(ValueError, match="above 0"):
                store.claim_command(
                    1,
                    "trunk1",
                    ["n0"],
                    "e1",
                    lease_ms=10_000,
                    **{**limits, name: bad},  # type: ignore[arg-type]
                )


async def test_claims_ride_in_the_round_trip_of_marks_and_results(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 4)
    await claim_batch(store, cid, ["r0", "r1"])
    reply = await store.settle_and_claim(
        {cid: ["r0"]}, [ended(cid, "r1", 2)], [claim_command(store, cid, ["r2", "r3", "r4"])]
    )
    assert (reply.moved, reply.written, reply.error) == (1, [Usage(1, 0.0)], None)
    (claimed,) = reply.claims
    assert isinstance(claimed, ClaimBatch)
    assert [c.contact_id for c in claimed.claims] == [3, 4]
    assert claimed.stop == "empty"
    assert (await store.get_call("r2")) is not None  # really claimed: a lease and a call
    assert sorted(await inflight_calls(store, cid)) == ["r0", "r2", "r3"]


async def test_a_failed_claim_fails_alone_and_scripts_come_back(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    cid, _ = await running_campaign(store, 2)
    await claim_batch(store, cid, ["g0"])
    await redis_client.script_flush()  # a restarted Redis: NOSCRIPT, loaded and sent again
    reply = await store.settle_and_claim(
        {cid: ["g0"]}, [], [claim_command(store, 999, ["g1"]), claim_command(store, cid, ["g2"])]
    )
    assert (reply.moved, reply.error) == (1, None)
    missing, claimed = reply.claims
    assert isinstance(missing, NotFound)
    assert isinstance(claimed, ClaimBatch)
    assert [c.call_id for c in claimed.claims] == ["g2"]
    # the claims alone, as the engine's writer sends them when nothing else waits
    (again,) = (await store.settle_and_claim({}, [], [claim_command(store, cid, ["g3"])])).claims
    assert isinstance(again, ClaimBatch)
    assert (again.claims, again.stop) == ([], "empty")


async def test_a_batch_of_two_campaigns_leaves_every_set_and_count_right(
    store: RedisStore,
) -> None:
    """finish.lua gathers the writes a batch repeats (the sets a call leaves, the counts, the
    records index) and makes them once at the end: the state is the same as one by one."""
    a, _ = await running_campaign(store, 3)
    b, _ = await running_campaign(store, 2)
    await claim_batch(store, a, ["a0", "a1", "a2"])
    await claim_batch(store, b, ["b0", "b1"])
    await settle(store, {a: ["a0", "a1"]}, [])  # a2 stays claimed, b's are originated below
    await settle(store, {b: ["b0", "b1"]}, [])
    busy = FinishItem(
        cid=b, trunk="trunk1", call_id="b1", contact_id=2, contact_status=C.RETRY_SCHEDULED,
        attempts_used=1, tech_failures=0, retry_at_ms=1, record={"outcome": "busy"},
    )  # fmt: skip
    written = await store.finish_batch(
        [ended(a, "a0", 1), ended(b, "b0", 1), ended(a, "a2", 3), busy, ended(a, "a0", 1)]
    )
    # the busy end counts no attempt in the usage (usage_attempts 0)
    assert written == [Usage(1, 0.0), Usage(1, 0.0), Usage(2, 0.0), Usage(1, 0.0), False]
    k, r = store.keys, store.client
    assert await r.zrange(k.inflight(a), 0, -1) == [b"a1"]  # a1 is still up
    assert await r.zrange(k.trunk_inflight("trunk1"), 0, -1) == [b"a1"]
    assert await r.zcard(k.inflight(b)) == 0
    for cid in (a, b):
        assert await r.zcard(k.claimed(cid)) == 0  # a2 left it unoriginated
    assert nonzero(await store.counts(a)) == {C.ANSWERED: 2, C.IN_PROGRESS: 1}
    assert nonzero(await store.counts(b)) == {C.ANSWERED: 1, C.RETRY_SCHEDULED: 1}
    assert await r.zscore(k.records_index_of(a), str(a)) is not None
    assert await r.zscore(k.records_index_of(b), str(b)) is not None
    assert [x["call_id"] for _, x in await store.records(a)] == ["a0", "a2"]


async def test_renew_of_a_call_given_twice_renews_it_once(store: RedisStore) -> None:
    cid, _ = await running_campaign(store, 2)
    await claim_batch(store, cid, ["r0", "r1"])
    renewal = await store.renew(cid, "trunk1", ["r0", "r1", "r0"], 60_000, owner="e1")
    assert (renewal.retaken, renewal.lost) == ([], [])
    r, k = store.client, store.keys
    assert await r.zcard(k.inflight(cid)) == 2
    leases = {await r.zscore(key, c) for key in (k.inflight(cid), k.trunk_inflight("trunk1"))
              for c in ("r0", "r1")}  # fmt: skip
    assert len(leases) == 1  # both calls, both sets: the same new expiry


def nonzero(counts: dict[CallStatus, int]) -> dict[CallStatus, int]:
    return {s: n for s, n in counts.items() if n}
