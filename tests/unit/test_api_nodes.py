"""The nodes, trunk groups and global cap API: round trips, roles, validation errors."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from dialer.store import RedisStore
from dialer.store.nodes import NodeStore
from tests.unit.api_helpers import (
    ADMIN,
    OPERATOR,
    VIEWER,
    api_client,
    csv_body,
    error_of,
    new_campaign,
    upload,
)

pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def test_nodes_and_groups_round_trip(store: RedisStore) -> None:
    async with api_client(store) as client:
        r = await client.put("/nodes/n1", json={"max_channels": 300, "cps": 50}, headers=ADMIN)
        assert r.status_code == 201, r.text
        assert r.json() == {
            "id": "n1",
            "kind": "asterisk",
            "max_channels": 300,
            "cps": 50.0,
            "enabled": True,
        }
        r = await client.put("/nodes/n2", json={"kind": "freeswitch"}, headers=ADMIN)
        assert r.status_code == 201
        r = await client.put("/nodes/n2", json={"kind": "freeswitch", "cps": 5}, headers=ADMIN)
        assert r.status_code == 200  # replaced
        body = {"trunks": {"carrier-a": ["n1", "n2"], "spare": ["n2"]}, "backup": "spare"}
        r = await client.put("/trunk-groups/main", json={**body, "max_channels": 40}, headers=ADMIN)
        assert r.status_code == 201, r.text
        r = await client.get("/trunk-groups/main", headers=VIEWER)
        assert r.json() == {**body, "name": "main", "max_channels": 40, "cps": None}
        r = await client.get("/trunk-groups", headers=VIEWER)
        assert [g["name"] for g in r.json()["trunk_groups"]] == ["main"]
        await NodeStore(store.client, store.keys).mark_up("n1", "engine-a")
        r = await client.get("/nodes", headers=VIEWER)
        listed = {n["id"]: n for n in r.json()["nodes"]}
        assert (listed["n1"]["up"], listed["n1"]["engines"]) == (True, 1)
        assert (listed["n2"]["up"], listed["n2"]["kind"], listed["n2"]["cps"]) == (
            False,
            "freeswitch",
            5.0,
        )
        r = await client.put("/global-cap", json={"max_channels": 1000}, headers=ADMIN)
        assert r.json() == {"max_channels": 1000, "cps": None}
        assert (await client.get("/global-cap", headers=VIEWER)).json()["max_channels"] == 1000
        # a node a group names cannot go; the group first, then the node
        r = await client.delete("/nodes/n2", headers=ADMIN)
        assert (r.status_code, error_of(r)["code"]) == (422, "invalid_input")
        assert "main" in error_of(r)["message"]
        assert (await client.delete("/trunk-groups/main", headers=ADMIN)).status_code == 200
        assert (await client.delete("/nodes/n2", headers=ADMIN)).status_code == 200
        r = await client.get("/nodes/n2", headers=VIEWER)
        assert (r.status_code, error_of(r)["code"]) == (404, "not_found")
        r = await client.delete("/trunk-groups/main", headers=ADMIN)
        assert r.status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/nodes/n1", {"max_channels": 0}, "max_channels"),
        ("/nodes/n1", {"max_channels": 100_001}, "max_channels"),
        ("/nodes/n1", {"cps": 10_001}, "cps"),
        ("/nodes/n1", {"cps": "fast"}, "cps"),
        ("/nodes/n1", {"kind": "yate"}, "kind"),
        ("/nodes/n1", {"id": "n2"}, "id"),  # the path names it
        ("/nodes/n1", {"colour": "red"}, "unknown field"),
        ("/trunk-groups/g", {"trunks": {"t": ["ghost"]}}, "unknown node 'ghost'"),
        ("/trunk-groups/g", {"trunks": {}}, "trunks must be dictionary should have at least 1"),
        ("/trunk-groups/g", {"trunks": {"t": []}}, "trunks.t must be list should have at least 1"),
        ("/trunk-groups/g", {"trunks": {"t": ["n0"]}, "backup": "x"}, "backup"),
        ("/trunk-groups/g", {"trunks": {"t": ["n0"]}, "cps": 0}, "cps"),
        ("/trunk-groups/g", {"trunks": {"t": ["n0", "n0"]}}, "twice"),
        ("/trunk-groups/g", {"trunks": {"taken": ["n0"]}}, "already in trunk group other"),
        ("/global-cap", {"max_channels": -1}, "max_channels"),
    ],
)
async def test_validation_errors(store: RedisStore, path: str, body: object, words: str) -> None:
    async with api_client(store) as client:
        await client.put("/nodes/n0", json={}, headers=ADMIN)
        other = {"trunks": {"taken": ["n0"]}}
        assert (await client.put("/trunk-groups/other", json=other, headers=ADMIN)).is_success
        r = await client.put(path, json=body, headers=ADMIN)
        assert r.status_code == 422, r.text
        error = error_of(r)
        assert error["code"] == "invalid_input"
        assert words in error["message"]


async def test_roles(store: RedisStore) -> None:
    async with api_client(store) as client:
        r = await client.put("/nodes/n1", json={}, headers=OPERATOR)
        assert r.status_code == 403
        assert "administrator" in error_of(r)["message"]
        assert (await client.get("/nodes", headers=VIEWER)).status_code == 200
        assert (await client.get("/nodes")).status_code == 401
        r = await client.put("/global-cap", json={}, headers=VIEWER)
        assert r.status_code == 403


async def test_why_shows_a_trunk_with_no_node_up(store: RedisStore) -> None:
    nodes = NodeStore(store.client, store.keys)
    async with api_client(store) as client:
        cid = await new_campaign(client)  # on trunk carrier1
        r = await upload(client, cid, csv_body(["+12125550100,Ann,1"]))
        assert r.is_success, r.text
        r = await client.post(f"/campaigns/{cid}/start", headers=OPERATOR)
        assert r.status_code == 200, r.text

        async def codes() -> list[str]:
            r = await client.get(f"/campaigns/{cid}/why", headers=VIEWER)
            return [b["code"] for b in r.json()["blockers"]]

        assert "pbx_unavailable" not in await codes()  # a DIALER_TRUNKS trunk: no nodes
        await client.put("/nodes/n1", json={}, headers=ADMIN)
        await client.put("/nodes/n2", json={"enabled": False}, headers=ADMIN)
        group = {"trunks": {"carrier1": ["n1", "n2"]}}
        await client.put("/trunk-groups/g", json=group, headers=ADMIN)
        r = await client.get(f"/campaigns/{cid}/why", headers=VIEWER)
        (blocker,) = [b for b in r.json()["blockers"] if b["code"] == "pbx_unavailable"]
        assert blocker["message"].startswith(
            "no PBX node of trunk carrier1 (trunk group g) is up (n1 down, n2 disabled)"
        )
        assert not r.json()["dialing"]
        await nodes.mark_up("n1", "engine-a")
        assert "pbx_unavailable" not in await codes()


async def test_an_id_that_cannot_exist_is_no_route(store: RedisStore) -> None:
    """A node id or group name outside its pattern (the OpenAPI document states it) is 404."""
    async with api_client(store) as client:
        for path in ("/nodes/N1", "/nodes/a%20b", "/trunk-groups/Spring%20sale"):
            for method in ("GET", "PUT", "DELETE"):
                r = await client.request(method, path, json={}, headers=ADMIN)
                assert r.status_code == 404, (method, path, r.text)
