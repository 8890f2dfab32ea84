"""The store on a real 3-master Redis Cluster on loopback (README: Redis Cluster).

Every script call touches the keys of one slot (a CROSSSLOT error would fail it), campaigns on
two trunks land on two shards, the caps hold across concurrent claimers, and the operations the
engine, the API and the CLI use all work on the cluster.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from dialer.domain.campaign import CampaignSettings, TrunkLimits
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.errors import ValidationError
from dialer.store import RedisStore
from dialer.store.connection import CLUSTER_ACL_EXTRA
from dialer.store.dnc import DncStore
from dialer.store.keys import Keys
from dialer.store.models import FinishItem
from dialer.store.queries import set_identity
from dialer.store.recycle import RecycleRefused, recycle_list
from ops.localstack.numberplan import Behaviour, number
from ops.localstack.redis_cluster import RedisClusterProcs
from ops.localstack.redis_server import DIALER_USER, RedisUsers
from tests.integration.engine_helpers import (
    engine_settings,
    new_campaign,
    running_engine,
    wait_status,
)
from tests.integration.monitor import watch_switch
from tests.unit.api_helpers import ADMIN, OPERATOR, VIEWER, api_client, csv_body, upload
from tests.unit.api_helpers import new_campaign as api_campaign
from tests.unit.cli_helpers import Cli, campaign_file, numbers, write
from tests.unit.store_helpers import (
    claim,
    contacts,
    finish,
    inflight_calls,
    mark_originated,
    running_campaign,
)

pytestmark = pytest.mark.redis

C = CallStatus


@pytest.fixture
async def store(cluster: RedisClusterProcs, namespace: str) -> AsyncIterator[RedisStore]:
    made = RedisStore.from_url(cluster.url, namespace)
    yield made
    await made.aclose()


def two_shard_trunks(cluster: RedisClusterProcs, keys: Keys) -> tuple[str, str]:
    """Two trunk names whose keys live on two different masters."""
    first = "carrier-0"
    home = cluster.node_of_key(keys.trunk_inflight(first))
    for i in range(1, 64):
        other = f"carrier-{i}"
        if cluster.node_of_key(keys.trunk_inflight(other)) != home:
            return first, other
    raise AssertionError("every trunk name hashed to one master")


def campaign_keys(keys: Keys, cid: int, trunk: str, call_id: str) -> list[str]:
    return [
        *keys.campaign_fixed(cid),
        keys.contact(cid, 1),
        keys.list_members(cid, 1),
        keys.records(cid),
        keys.phones(cid),
        keys.campaign_dnc(cid),
        keys.call(call_id, cid),
        keys.active_of(cid),
        keys.records_index_of(cid),
        keys.global_dnc_of(cid),
        keys.trunk_inflight(trunk),
        keys.trunk_rate(trunk),
        keys.trunk_pace(trunk),
        keys.trunk_breaker(trunk),
    ]


async def test_two_trunks_two_shards_one_slot_each(
    store: RedisStore, cluster: RedisClusterProcs
) -> None:
    k = store.keys
    assert k.cluster
    a, b = two_shard_trunks(cluster, k)
    cid_a, _ = await running_campaign(store, 3, trunk=a)
    cid_b, _ = await running_campaign(store, 3, trunk=b)
    for cid, trunk in ((cid_a, a), (cid_b, b)):
        slots = {key_slot(key.encode()) for key in campaign_keys(k, cid, trunk, "x1")}
        assert len(slots) == 1, (cid, trunk, slots)
        assert all(key.startswith(f"{k.ns}:{{g") for key in campaign_keys(k, cid, trunk, "x"))
    shard_a = cluster.node_of_key(k.campaign(cid_a))
    shard_b = cluster.node_of_key(k.campaign(cid_b))
    assert shard_a != shard_b
    assert cluster.node_of_key(k.trunk_inflight(a)) == shard_a
    # both dial: a claim, the originate mark and a finish on each shard
    for cid, trunk, call_id in ((cid_a, a, "ca-1"), (cid_b, b, "cb-1")):
        r = await claim(store, cid, call_id, trunk=trunk)
        assert (r.kind, r.contact_id) == ("ok", 1)
        assert await mark_originated(store, call_id, cid, owner="e1")
        assert await finish(store, cid, call_id, 1, trunk=trunk, owner="e1")
        assert (await store.counts(cid))[C.ANSWERED] == 1
        records = await store.records(cid)
        assert [f["call_id"] for _, f in records] == [call_id]


async def test_caps_hold_on_the_cluster(store: RedisStore, cluster: RedisClusterProcs) -> None:
    """Campaign cap 3 each, trunk cap 5 for two campaigns sharing the trunk: 20 concurrent
    claimers on their own clients get exactly 5 leases, never more than 3 per campaign."""
    trunk = "carrier-cap"
    c1, _ = await running_campaign(store, 10, trunk=trunk)
    c2, _ = await running_campaign(store, 10, trunk=trunk)
    assert store.keys.group_of(c1) == store.keys.group_of(c2)
    clients = [RedisStore.from_url(cluster.url, store.keys.ns) for _ in range(4)]
    try:

        async def one(i: int) -> tuple[int, str]:
            cid = (c1, c2)[i % 2]
            s = clients[i % len(clients)]
            r = await claim(s, cid, f"cap-{i}", trunk=trunk, max_channels=3, trunk_max_channels=5)
            return cid, r.kind

        results = await asyncio.gather(*(one(i) for i in range(20)))
    finally:
        for s in clients:
            await s.aclose()
    won = [cid for cid, kind in results if kind == "ok"]
    assert len(won) == 5
    assert won.count(c1) <= 3
    assert won.count(c2) <= 3
    assert {kind for _, kind in results} <= {"ok", "full", "trunk"}
    assert len(await inflight_calls(store, c1)) + len(await inflight_calls(store, c2)) == 5


async def test_store_operations_on_the_cluster(
    store: RedisStore, cluster: RedisClusterProcs
) -> None:
    """create, list, upload, claim, settle, renew, release, stats, records, DNC, delete."""
    k = store.keys
    a, b = two_shard_trunks(cluster, k)
    cid = await store.create_campaign("alpha", a, '{"cps": 5}')
    other = await store.create_campaign("beta", b, "{}")
    assert [c.id for c in await store.list_campaigns()] == [other, cid]
    list_id = await store.add_list(cid)
    assert await store.add_contacts(cid, list_id, contacts(4)) == 4
    await store.add_contacts(other, await store.add_list(other), contacts(2))
    assert (await store.get_contact(cid, 2)).phone == "+33610000001"
    # the global do-not-call list reaches the claim on every shard (its per-group copies)
    dnc = DncStore(store)
    assert await dnc.add(["+33610000000"]) == 1
    assert await dnc.contains("+33610000000")
    assert await dnc.add(["+33610000003"], campaign=cid) == 1
    for c in (cid, other):
        await store.transition(c, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    found = await store.campaigns_in({CampaignStatus.RUNNING})
    assert [c.id for c in found[CampaignStatus.RUNNING]] == [other, cid]
    batch = await store.claim_batch(
        cid, a, ["k1", "k2", "k3"], "e1", lease_ms=10_000, max_channels=None,
        trunk_max_channels=None, cps=None, trunk_cps=None,
    )  # fmt: skip
    # contact 1 is on the global list: it took call id k1, and no lease
    assert [(c.call_id, c.contact_id) for c in batch.claims] == [("k2", 2), ("k3", 3)]
    counts = await store.counts(cid)
    assert (counts[C.DO_NOT_CALL], counts[C.IN_PROGRESS]) == (1, 2)
    skipped = await claim(store, other, "o0", trunk=b)  # its contact 1: on the global list
    assert skipped.kind == "empty"
    assert (await store.counts(other))[C.DO_NOT_CALL] == 1
    ob = await claim(store, other, "o1", trunk=b)
    assert (ob.kind, ob.contact_id) == ("ok", 2)
    renewal = await store.renew(cid, a, ["k2", "k3"], 20_000, owner="e1")
    assert (renewal.retaken, renewal.lost) == ([], [])
    ref = await store.get_call("k2")
    assert ref is not None
    assert (ref.cid, ref.trunk, ref.state) == (cid, a, "claimed")
    assert await store.release(cid, a, "k3", 3, owner="e1")
    # one round trip: marks and finishes of two campaigns on two shards, and a new claim
    claim_next = store.claim_command(
        cid, a, ["k4"], "e1", lease_ms=10_000, max_channels=None,
        trunk_max_channels=None, cps=None, trunk_cps=None,
    )  # fmt: skip
    reply = await store.settle_and_claim(
        {cid: ["k2"], other: ["o1"]},
        [ended(cid, a, "k2", 2), ended(other, b, "o1", 2)],
        [claim_next],
        owner="e1",
    )
    assert reply.error is None
    assert reply.moved == 2
    assert reply.lost == []
    assert [type(w).__name__ for w in reply.written] == ["Usage", "Usage"]
    got = reply.claims[0]
    assert not isinstance(got, Exception)
    assert [c.contact_id for c in got.claims] == [3]
    _, stats, counts = await store.campaign_stats(cid)
    assert (stats.inflight, counts[C.ANSWERED], counts[C.IN_PROGRESS]) == (1, 1, 1)
    records = [f["call_id"] for _, f in await store.records(cid)]
    assert records[-1] == "k2"
    assert len(records) == 2
    assert [f["call_id"] for _, f in await store.records(other)] == ["o0", "o1"]
    assert await store.orphaned_calls(cid) == []
    await store.delete_campaign(cid)
    assert [c.id for c in await store.list_campaigns()] == [other]
    assert await dnc.remove(["+33610000000"]) == 1
    assert not await dnc.contains("+33610000000")


def ended(cid: int, trunk: str, call_id: str, contact_id: int) -> FinishItem:
    return FinishItem(
        cid=cid,
        trunk=trunk,
        call_id=call_id,
        contact_id=contact_id,
        contact_status=C.ANSWERED,
        attempts_used=1,
        tech_failures=0,
        retry_at_ms=None,
        record={"outcome": "answered"},
        usage_attempts=1,
        owner="e1",
    )


async def test_a_trunk_of_another_slot_group_is_refused(
    store: RedisStore, cluster: RedisClusterProcs
) -> None:
    """A claim's keys are one slot: the campaign's trunk and backup trunk are in its group."""
    k = store.keys
    a = "carrier-0"
    other = next(
        f"carrier-{i}"
        for i in range(1, 64)
        if k.group_of_trunk(f"carrier-{i}") != k.group_of_trunk(a)
    )
    with pytest.raises(ValidationError, match="backup_trunk"):
        await store.create_campaign("x", a, json.dumps({"trunk": a, "backup_trunk": other}))
    cid = await store.create_campaign("x", a, json.dumps({"trunk": a}))
    with pytest.raises(ValidationError, match="slot group"):
        await store.update_settings(
            cid, json.dumps({"trunk": other}), allowed={CampaignStatus.DRAFT}
        )
    with pytest.raises(ValidationError, match="slot group"):
        await set_identity(store, cid, name="x", trunk=other)
    assert (await store.get_campaign(cid)).trunk == a


def most_live(spans: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end before a start at the same time)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    live = best = 0
    for _, step in edges:
        live += step
        best = max(best, live)
    return best


@pytest.mark.integration
async def test_engine_dials_campaigns_on_two_shards_within_their_caps(
    stack: Any, cluster: RedisClusterProcs, store: RedisStore, namespace: str
) -> None:
    """One engine on the cluster, two campaigns on trunks of two shards (carrier and
    carrier-b: two Asterisk endpoints to the same carrier simulator). Both complete; by the
    switch's own channel times the trunk cap (carrier: 2) and the campaign cap (3) hold."""
    k = store.keys
    a, b = "carrier", "carrier-b"
    assert cluster.node_of_key(k.trunk_inflight(a)) != cluster.node_of_key(k.trunk_inflight(b))
    n = 10
    phones_a = [number(Behaviour.HOLD, i, hold_s=1) for i in range(n)]
    phones_b = [number(Behaviour.HOLD, 100 + i, hold_s=1) for i in range(n)]

    def campaign(trunk: str) -> CampaignSettings:
        return CampaignSettings(
            name=f"cluster-{trunk}", trunk=trunk, max_channels=3, cps=20.0, ring_timeout=3.0,
            amd=False, retry=RetryPolicy(max_attempts=1),
        )  # fmt: skip

    control, cid_a = await new_campaign(store, campaign(a), phones_a)
    _, cid_b = await new_campaign(store, campaign(b), phones_b)
    assert cluster.node_of_key(k.campaign(cid_a)) != cluster.node_of_key(k.campaign(cid_b))
    engine = replace(
        engine_settings(stack, namespace, trunks={a: TrunkLimits(a, 2, None)}),
        redis_url=cluster.url,
    )
    async with running_engine(engine), watch_switch(stack, "asterisk") as seen:
        await control.start(cid_a)
        await control.start(cid_b)
        for cid in (cid_a, cid_b):
            await wait_status(store, cid, {CampaignStatus.COMPLETED}, within=60)
        await seen.wait_until(lambda o: len(o.ended_at) >= 2 * n, within=10)
    calls: dict[int, set[str]] = {}
    for cid in (cid_a, cid_b):
        records = [r for _, r in await store.records(cid)]
        assert len({r["contact"] for r in records}) == n  # each contact dialed once
        assert {r["status"] for r in records} == {C.ANSWERED.value}
        calls[cid] = {r["call_id"] for r in records}
        assert (await store.counts(cid))[C.ANSWERED] == n
    assert set(seen.created_at) == calls[cid_a] | calls[cid_b]  # the switch saw every call
    spans = {
        cid: [(seen.created_at[c], seen.ended_at[c]) for c in ids] for cid, ids in calls.items()
    }
    assert 1 <= most_live(spans[cid_a]) <= 2  # carrier's trunk cap
    assert 2 <= most_live(spans[cid_b]) <= 3  # the campaign's cap (carrier-b: no trunk cap)


async def test_the_api_on_the_cluster(store: RedisStore) -> None:
    """create, upload (the CSV importer, screened by the global do-not-call list), list,
    contacts, start, why, records (JSON and CSV) and delete through the API."""
    await DncStore(store).add(["+12125550199"])
    async with api_client(store) as client:
        cid = await api_campaign(client, trunk="carrier1")
        assert store.keys.group_of(cid) == store.keys.group_of_trunk("carrier1")
        rows = ["+12125550100,Ann,r1", "+12125550101,Bob,r2", "+12125550199,Cy,r3"]
        response = await upload(client, cid, csv_body(rows))
        assert response.status_code == 201, response.text
        report = response.json()
        assert (report["imported"], report["dnc"], report["pending"]) == (3, 1, 2)
        listed = (await client.get("/campaigns", headers=VIEWER)).json()
        assert cid in [c["id"] for c in listed["campaigns"]]
        page = (await client.get(f"/campaigns/{cid}/contacts", headers=VIEWER)).json()
        assert [c["phone"] for c in page["contacts"]][:2] == ["+12125550100", "+12125550101"]
        started = await client.post(f"/campaigns/{cid}/start", headers=OPERATOR)
        assert started.status_code == 200, started.text
        why = await client.get(f"/campaigns/{cid}/why", headers=VIEWER)
        assert why.status_code == 200, why.text
        r = await claim(store, cid, "api-1", trunk="carrier1")
        assert r.kind == "ok"
        assert await finish(store, cid, "api-1", r.contact_id, trunk="carrier1")
        records = (await client.get(f"/campaigns/{cid}/records", headers=VIEWER)).json()
        assert [rec["call_id"] for rec in records["records"]] == ["api-1"]
        exported = await client.get(f"/campaigns/{cid}/records.csv", headers=VIEWER)
        assert exported.status_code == 200
        assert "api-1" in exported.text
        stop = await client.post(f"/campaigns/{cid}/stop", headers=ADMIN)
        assert stop.status_code == 200, stop.text
        deleted = await client.delete(f"/campaigns/{cid}", headers=ADMIN)
        assert deleted.status_code in (200, 204), deleted.text
        gone = await client.get(f"/campaigns/{cid}", headers=VIEWER)
        assert gone.status_code == 404


async def test_recycling_into_a_campaign_of_another_slot_group_is_refused(
    store: RedisStore,
) -> None:
    k = store.keys
    a = "carrier-0"
    other = next(
        f"carrier-{i}"
        for i in range(1, 64)
        if k.group_of_trunk(f"carrier-{i}") != k.group_of_trunk(a)
    )
    source, list_id = await running_campaign(store, 2, trunk=a)
    await store.stop_list(source, list_id)
    target = await store.create_campaign("target", other, "{}")
    with pytest.raises(RecycleRefused) as refused:
        await recycle_list(store, source, list_id, frozenset({C.NOT_DIALED}), into=target)
    assert refused.value.code == "other_slot_group"
    report = await recycle_list(store, source, list_id, frozenset({C.NOT_DIALED}), into="new")
    assert report.recycled == 2  # into a new campaign: on the same trunk, in the same group
    assert report.created_campaign
    assert k.group_of(report.campaign) == k.group_of(source)
    assert (await store.counts(report.campaign))[C.PENDING] == 2


async def test_the_dialer_acl_on_the_cluster(cluster: RedisClusterProcs, namespace: str) -> None:
    """The least-privilege user of ops/redis/users.acl, plus CLUSTER_ACL_EXTRA, dials."""
    users = RedisUsers.generate()
    line = next(x for x in users.acl().splitlines() if x.startswith(f"user {DIALER_USER} "))
    rules = line.split()[2:]
    for port in cluster.ports:
        admin = aioredis.Redis(host="127.0.0.1", port=port)
        try:
            setuser = ("ACL", "SETUSER", DIALER_USER, *rules, *CLUSTER_ACL_EXTRA)
            await admin.execute_command(*setuser)  # type: ignore[no-untyped-call]
        finally:
            await admin.aclose()
    auth = f"{DIALER_USER}:{users.dialer_secret}@"
    store = RedisStore.from_url(cluster.url.replace("://", f"://{auth}"), namespace)
    try:
        cid, _ = await running_campaign(store, 2, trunk="carrier")
        r = await claim(store, cid, "acl-1", trunk="carrier")
        assert r.kind == "ok"
        assert await finish(store, cid, "acl-1", r.contact_id, trunk="carrier")
        assert (await store.counts(cid))[C.ANSWERED] == 1
        assert await DncStore(store).add(["+33610000009"]) == 1
    finally:
        await store.aclose()


def test_the_cli_on_the_cluster(
    cluster: RedisClusterProcs,
    namespace: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """create, dnc, list upload, list, start, a call, status, records, stop, delete."""
    for name in ("DIALER_REDIS_URL", "DIALER_NAMESPACE", "DIALER_AMI_URL"):
        monkeypatch.delenv(name, raising=False)
    cli = Cli(cluster.url, namespace, capsys)
    cid = int(cli.ok("campaign", "create", str(campaign_file(tmp_path))).out)
    good = numbers(3, start=40)
    cli.ok("dnc", "add", good[2])
    rows = "\n".join(f"{p},P{i},r{i}" for i, p in enumerate(good))
    upload_csv = write(tmp_path / "up.csv", f"phone,name,ref\n{rows}\n")
    out = cli.ok("list", "upload", str(cid), str(upload_csv)).out
    assert "to dial         2" in out
    assert str(cid) in cli.ok("campaign", "list").out
    cli.ok("campaign", "start", str(cid))

    async def one_call(store: RedisStore) -> None:
        r = await claim(store, cid, "cli-1", trunk="carrier")
        assert r.kind == "ok"
        assert await finish(store, cid, "cli-1", r.contact_id, trunk="carrier")

    cli.store_call(one_call)
    assert "answered" in cli.ok("status", str(cid)).out.lower()
    assert cli.ok("campaign", "why", str(cid)).out
    exported = cli.ok("records", str(cid)).out
    assert "cli-1" in exported
    cli.ok("campaign", "stop", str(cid))
    cli.ok("campaign", "delete", str(cid))
    assert cli("campaign", "show", str(cid)).code != 0
