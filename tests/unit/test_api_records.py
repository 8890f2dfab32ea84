"""Call records (JSON pages, CSV export, also after delete) and analytics through the API."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from dialer.api.routes_records import _csv_rows
from dialer.records_csv import RECORD_COLUMNS
from dialer.store import RedisStore
from tests.unit.analytics_helpers import scenario
from tests.unit.api_helpers import ADMIN, VIEWER, api_client, error_of
from tests.unit.store_helpers import running_campaign

pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


@pytest.fixture
async def client(store: RedisStore) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(store) as c:
        yield c


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def test_record_columns_match_the_engine(store: RedisStore) -> None:
    _, written = await scenario(store)
    fields = set(written[0].record)
    # contact_id: added by finish; phone_label, next_phone: by finish.lua, several numbers
    added = {"record_id", "contact_id", "phone_label", "next_phone"}
    assert set(RECORD_COLUMNS) == fields | added


async def test_record_pages(client: httpx.AsyncClient, store: RedisStore) -> None:
    cid, written = await scenario(store)
    response = await client.get(f"/campaigns/{cid}/records", params={"limit": 4}, headers=VIEWER)
    assert response.status_code == 200
    first = response.json()
    assert [r["call_id"] for r in first["records"]] == [w.call_id for w in written[:4]]
    assert first["next_after"] == first["records"][-1]["record_id"]
    rest = (
        await client.get(
            f"/campaigns/{cid}/records",
            params={"after": first["next_after"], "limit": 4},
            headers=VIEWER,
        )
    ).json()
    assert [r["call_id"] for r in rest["records"]] == [w.call_id for w in written[4:]]
    assert rest["next_after"] is None
    record = first["records"][0]
    assert {k: record[k] for k in written[0].record} == written[0].record
    assert record["contact_id"] == written[0].record["contact"]

    for bad in ({"after": "yesterday"}, {"after": "1-2-3"}, {"limit": 0}, {"limit": 5000}):
        response = await client.get(f"/campaigns/{cid}/records", params=bad, headers=VIEWER)
        assert response.status_code == 422, bad
        assert error_of(response)["code"] == "invalid_input"
    response = await client.get("/campaigns/999999/records", headers=VIEWER)
    assert response.status_code == 404


async def test_csv_export_survives_delete(client: httpx.AsyncClient, store: RedisStore) -> None:
    cid, written = await scenario(store)
    response = await client.get(f"/campaigns/{cid}/records.csv", headers=VIEWER)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert f"campaign-{cid}-records.csv" in response.headers["content-disposition"]
    assert response.text.splitlines()[0] == ",".join(RECORD_COLUMNS)
    rows = parse_csv(response.text)
    assert [r["call_id"] for r in rows] == [w.call_id for w in written]
    assert rows[0]["status"] == "answered"
    assert rows[0]["duration_s"] == "12.500"
    assert rows[2]["amd_status"] == "MACHINE"
    assert all(r["record_id"] for r in rows)

    assert (await client.post(f"/campaigns/{cid}/stop", headers=ADMIN)).status_code == 200
    assert (await client.delete(f"/campaigns/{cid}", headers=ADMIN)).status_code == 204
    assert (await client.get(f"/campaigns/{cid}", headers=VIEWER)).status_code == 404
    after = await client.get(f"/campaigns/{cid}/records.csv", headers=VIEWER)
    assert after.status_code == 200
    assert after.text == response.text
    pages = await client.get(f"/campaigns/{cid}/records", headers=VIEWER)
    assert len(pages.json()["records"]) == 6
    response = await client.get(f"/campaigns/{cid}/analytics", headers=VIEWER)
    assert response.status_code == 404  # contact counts went with the campaign


async def test_csv_export_streams_many_pages(
    client: httpx.AsyncClient, store: RedisStore, redis_client: aioredis.Redis
) -> None:
    cid, _ = await running_campaign(store, 1)
    async with redis_client.pipeline(transaction=False) as pipe:
        for i in range(2345):
            pipe.xadd(store.keys.records(cid), {"call_id": f"c{i}", "phone": '+1,"2"\n3'})
        await pipe.execute()
    chunks = [chunk async for chunk in _csv_rows(store, cid)]
    assert len(chunks) == 3  # one per page of 1000 records, never the whole export at once
    response = await client.get(f"/campaigns/{cid}/records.csv", headers=VIEWER)
    assert response.content == b"".join(chunks)
    rows = parse_csv(response.text)
    assert [r["call_id"] for r in rows] == [f"c{i}" for i in range(2345)]
    assert {r["phone"] for r in rows} == {'\'+1,"2"\n3'}  # quoted, round-trips (as text)
    assert {r["status"] for r in rows} == {""}  # absent fields are empty


async def test_deleted_campaign_without_records_is_gone(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/campaigns",
        json={"name": "x", "trunk": "t1", "max_channels": 1, "cps": 1},
        headers={"Authorization": ADMIN["Authorization"]},
    )
    cid = response.json()["id"]
    assert (await client.get(f"/campaigns/{cid}/records.csv", headers=VIEWER)).status_code == 200
    assert (await client.delete(f"/campaigns/{cid}", headers=ADMIN)).status_code == 204
    response = await client.get(f"/campaigns/{cid}/records.csv", headers=VIEWER)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


async def test_analytics_endpoint(client: httpx.AsyncClient, store: RedisStore) -> None:
    cid, _ = await scenario(store)
    response = await client.get(f"/campaigns/{cid}/analytics", headers=VIEWER)
    assert response.status_code == 200
    body = response.json()
    assert body["campaign_id"] == cid
    assert (body["attempts_total"], body["success_rate"]) == (6, 0.75)
    assert body["attempts_by_status"] == {"answered": 3, "busy": 1, "rejected": 1, "voicemail": 1}
    assert (body["human_answers"], body["voicemail_answers"]) == (3, 1)
    assert body["talk"]["p50_s"] == 30.0
    assert body["contacts"]["pending"] == 1
    assert body["queue"]["pending"] == 1
    assert body["abandon_rate"] == 0.0
