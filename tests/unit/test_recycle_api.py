"""Recycling and removal through the API: roles, validation, 409s."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store import RedisStore
from tests.unit.api_helpers import OPERATOR, VIEWER, api_client, error_of
from tests.unit.store_helpers import claim, finish, running_campaign

pytestmark = pytest.mark.redis

C = CallStatus
S = CampaignStatus


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


@pytest.fixture
async def client(store: RedisStore) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(store) as c:
        yield c


async def test_recycle_endpoint(store: RedisStore, client: httpx.AsyncClient) -> None:
    cid, list_id = await running_campaign(store, 3)
    for i, outcome in enumerate([C.BUSY, C.ANSWERED, C.NO_ANSWER]):
        await claim(store, cid, f"k{i}")
        await finish(store, cid, f"k{i}", i + 1, outcome)
    await store.transition(cid, {S.RUNNING}, S.COMPLETED)
    url = f"/campaigns/{cid}/lists/{list_id}/recycle"
    body = {"statuses": ["busy", "no_answer"], "into": "new"}
    assert (await client.post(url, json=body, headers=VIEWER)).status_code == 403
    bad = await client.post(url, json={"statuses": ["pending"]}, headers=OPERATOR)
    assert bad.status_code == 422
    assert "cannot be recycled" in error_of(bad)["message"]
    same = await client.post(url, json={"statuses": ["busy"]}, headers=OPERATOR)
    assert same.status_code == 409
    assert error_of(same)["code"] == "campaign_not_editable"
    done = await client.post(url, json=body, headers=OPERATOR)
    assert done.status_code == 201, done.text
    report = done.json()
    assert report["recycled"] == 2
    assert report["created_campaign"] is True
    page = await client.get(f"/campaigns/{report['campaign']}/contacts", headers=VIEWER)
    assert [c["recycled_from"] for c in page.json()["contacts"]] == [f"{cid}:1", f"{cid}:3"]
    assert [c["attempts"] for c in page.json()["contacts"]] == [0, 0]
    again = await client.post(url, json=body, headers=OPERATOR)
    assert error_of(again)["code"] == "already_recycled"


async def test_remove_endpoints(store: RedisStore, client: httpx.AsyncClient) -> None:
    cid, _ = await running_campaign(store, 3)
    refused = await client.delete(f"/campaigns/{cid}/contacts/1", headers=OPERATOR)
    assert refused.status_code == 409
    error = error_of(refused)
    assert error["code"] == "campaign_not_editable"
    assert "Running" in error["message"]
    await store.transition(cid, {S.RUNNING}, S.PAUSED)
    assert (await client.delete(f"/campaigns/{cid}/contacts/1", headers=VIEWER)).status_code == 403
    one = await client.delete(f"/campaigns/{cid}/contacts/1", headers=OPERATOR)
    assert one.json() == {"id": 1, "status": "removed", "already_removed": False}
    assert (
        await client.delete(f"/campaigns/{cid}/contacts/9", headers=OPERATOR)
    ).status_code == 404
    phone = (await store.get_contact(cid, 3)).phone
    many = await client.post(
        f"/campaigns/{cid}/contacts/remove",
        json={"ids": [2, 1], "phones": [phone]},
        headers=OPERATOR,
    )
    assert many.status_code == 200, many.text
    assert many.json()["removed"] == [2, 3]
    assert many.json()["already_removed"] == [1]
    empty = await client.post(f"/campaigns/{cid}/contacts/remove", json={}, headers=OPERATOR)
    assert empty.status_code == 422
    page = await client.get(f"/campaigns/{cid}/contacts?status=removed", headers=VIEWER)
    assert [c["id"] for c in page.json()["contacts"]] == [1, 2, 3]
