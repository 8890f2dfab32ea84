"""The findings of issue 18 item 10 stay fixed: what the document states is what the API does."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from dialer.api import create_app, endpoints
from dialer.api.openapi import openapi_document, with_trunks
from dialer.metrics import DialerMetrics
from dialer.store import RedisStore
from tests.unit.api_helpers import ADMIN, OPERATOR, SETTINGS, VIEWER, api_client, error_of

pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = openapi_document(endpoints(metrics=True))["components"]["schemas"]
    return schemas


def _param(path: str, name: str) -> dict[str, Any]:
    op = openapi_document(endpoints(metrics=True))["paths"][path]["get"]
    [param] = [p for p in op["parameters"] if p["name"] == name]
    schema: dict[str, Any] = param["schema"]
    return schema


def test_document_states_the_limits() -> None:
    settings = _schemas()["CampaignSettingsBody"]["properties"]
    assert (settings["name"]["minLength"], settings["name"]["maxLength"]) == (1, 200)
    assert settings["max_channels"]["maximum"] == 100_000
    assert settings["cps"]["maximum"] == 10_000
    assert settings["cps"]["exclusiveMinimum"] == 0
    assert _param("/campaigns", "offset")["maximum"] == 1_000_000
    assert _param("/campaigns/{campaign_id}/contacts", "offset")["maximum"] == 1_000_000
    assert "pattern" in _param("/campaigns/{campaign_id}/records", "after")
    assert _param("/campaigns", "limit") == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "default": 50,
    }


def test_every_operation_documents_the_errors_it_can_answer() -> None:
    document = openapi_document(endpoints(metrics=True))
    stop = document["paths"]["/campaigns/{campaign_id}/stop"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "415", "422", "503"} <= set(stop)
    for path, item in document["paths"].items():
        for method, op in item.items():
            params = [p for p in op["parameters"] if p["in"] == "query"]
            if params or "requestBody" in op:
                assert "422" in op["responses"], (method, path)


def test_configured_trunks_are_the_schemas_only_trunks() -> None:
    document = with_trunks(openapi_document(endpoints(metrics=False)), ["b", "a"])
    for model in ("CampaignSettingsBody", "CampaignEditBody"):
        props = document["components"]["schemas"][model]["properties"]
        assert props["trunk"]["enum"] == ["a", "b"]
        assert props["backup_trunk"]["anyOf"][0]["enum"] == ["a", "b"]


@pytest.mark.parametrize(
    "query",
    ["status=", "limit=", "offset=", "limit=0", "limit=1001", "offset=1000001", "limit=%205"],
)
async def test_bad_or_empty_query_values_are_refused(store: RedisStore, query: str) -> None:
    async with api_client(store) as client:
        response = await client.get(f"/campaigns?{query}", headers=VIEWER)
        assert response.status_code == 422, (query, response.text)
        error = error_of(response)
        assert error["code"] == "invalid_input"
        assert error["message"].startswith(f"query parameter {query.split('=')[0]} must be ")


@pytest.mark.parametrize("after", ["", "x", "1700000000000-", "-1", "1-2-3"])
async def test_record_ids_are_checked(store: RedisStore, after: str) -> None:
    async with api_client(store) as client:
        cid = (await client.post("/campaigns", json=SETTINGS, headers=OPERATOR)).json()["id"]
        response = await client.get(
            f"/campaigns/{cid}/records", params={"after": after}, headers=VIEWER
        )
        assert response.status_code == 422, (after, response.text)
        ok = await client.get(f"/campaigns/{cid}/records?after=1700000000000-0", headers=VIEWER)
        assert ok.status_code == 200, ok.text


async def test_json_under_another_media_type_is_refused(store: RedisStore) -> None:
    async with api_client(store) as client:
        headers = {**OPERATOR, "Content-Type": "text/plain"}
        response = await client.post("/campaigns", content=b'{"name": "x"}', headers=headers)
        assert response.status_code == 415
        assert error_of(response)["code"] == "unsupported_media_type"
        assert (await client.get("/campaigns", headers=VIEWER)).json()["campaigns"] == []
        stop = await client.post(
            "/campaigns/stop-all",
            content=b'{"hangup": true}',
            headers={**ADMIN, "Content-Type": "text/plain"},
        )
        assert stop.status_code == 415
        for media in ("application/json", "application/json; charset=utf-8"):
            response = await client.post(
                "/campaigns", json=SETTINGS, headers={**OPERATOR, "Content-Type": media}
            )
            assert response.status_code == 201, (media, response.text)


async def test_405_lists_every_method_of_the_path(store: RedisStore) -> None:
    async with api_client(store) as client:
        response = await client.put("/campaigns/1", headers=ADMIN)
        assert response.status_code == 405
        assert error_of(response)["code"] == "method_not_allowed"
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed >= {"GET", "PATCH", "DELETE"}
        response = await client.delete("/campaigns", headers=ADMIN)
        assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "POST"}


async def test_stop_documents_and_answers_422(store: RedisStore) -> None:
    async with api_client(store) as client:
        cid = (await client.post("/campaigns", json=SETTINGS, headers=OPERATOR)).json()["id"]
        response = await client.post(f"/campaigns/{cid}/stop", json={"hangup": 1}, headers=ADMIN)
        assert response.status_code == 422
        assert error_of(response)["message"].startswith("hangup must be ")


async def test_campaigns_only_on_configured_trunks(store: RedisStore) -> None:
    async with api_client(store, trunks=["carrier1", "backup1"]) as client:
        response = await client.post(
            "/campaigns", json={**SETTINGS, "trunk": "nowhere"}, headers=OPERATOR
        )
        assert response.status_code == 422
        assert "'nowhere' is not configured" in error_of(response)["message"]
        response = await client.post(
            "/campaigns", json={**SETTINGS, "backup_trunk": "nowhere"}, headers=OPERATOR
        )
        assert response.status_code == 422
        cid = (await client.post("/campaigns", json=SETTINGS, headers=OPERATOR)).json()["id"]
        edit = await client.patch(f"/campaigns/{cid}", json={"trunk": "gone"}, headers=OPERATOR)
        assert edit.status_code == 422
        edit = await client.patch(f"/campaigns/{cid}", json={"trunk": "backup1"}, headers=OPERATOR)
        assert (edit.status_code, edit.json()["trunk"]) == (200, "backup1")
        document = (await client.get("/openapi.json")).json()
        trunk = document["components"]["schemas"]["CampaignSettingsBody"]["properties"]["trunk"]
        assert trunk["enum"] == ["backup1", "carrier1"]
    async with api_client(store) as client:  # no DIALER_TRUNKS: any trunk name
        response = await client.post(
            "/campaigns", json={**SETTINGS, "trunk": "nowhere"}, headers=OPERATOR
        )
        assert response.status_code == 201


def test_app_serves_the_generated_document(store: RedisStore) -> None:
    app = create_app(store, tokens={}, metrics=DialerMetrics("d"), trunks=None)
    assert app.state.openapi == openapi_document(endpoints(metrics=True))
