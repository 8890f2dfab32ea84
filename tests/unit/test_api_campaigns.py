"""Campaign endpoints against a real Redis: CRUD, paging, commands, error shapes, body limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CampaignStatus
from dialer.store import ContactInput, RedisStore
from ops.localstack.redis_server import RedisServer
from tests.unit.api_helpers import (
    ADMIN,
    OPERATOR,
    SETTINGS,
    VIEWER,
    api_client,
    error_of,
    new_campaign,
)
from tests.unit.store_helpers import claim, mark_originated

pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


@pytest.fixture
async def client(store: RedisStore) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(store, delete_drain_timeout=0.5) as c:
        yield c


async def add_contacts(store: RedisStore, cid: int, n: int = 3) -> int:
    list_id = await store.add_list(cid)
    await store.add_contacts(cid, list_id, [ContactInput(f"+1212555{i:04d}") for i in range(n)])
    return list_id


async def status_of(client: httpx.AsyncClient, cid: int) -> str:
    response = await client.get(f"/campaigns/{cid}", headers=VIEWER)
    assert response.status_code == 200
    status: str = response.json()["status"]
    return status


# -- create, read, list -----------------------------------------------------------------------


async def test_create_and_read(client: httpx.AsyncClient) -> None:
    response = await client.post("/campaigns", json=SETTINGS, headers=OPERATOR)
    assert response.status_code == 201
    body = response.json()
    cid = body["id"]
    assert response.headers["location"] == f"/campaigns/{cid}"
    assert body["name"] == "Spring sale"
    assert body["trunk"] == "carrier1"
    assert (body["status"], body["status_label"]) == ("draft", "Draft")
    assert body["settings"]["cps"] == 2.0
    assert body["settings"]["max_channels"] == 5
    assert body["settings"]["retry"]["max_attempts"] >= 1
    got = (await client.get(f"/campaigns/{cid}", headers=VIEWER)).json()
    assert got["settings"] == body["settings"]
    assert got["contacts"]["pending"] == 0
    assert set(got["contacts"]) >= {"pending", "answered", "not_dialed"}


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"cps": 0}, "cps"),
        ({"max_channels": "5"}, "max_channels"),
        ({"trunk": "bad trunk"}, "trunk"),
        ({"colour": "red"}, "colour"),
        ({"window": {"timezone": "Mars/Base", "start": "09:00", "end": "17:00"}}, "timezone"),
    ],
)
async def test_create_refuses_bad_settings(
    client: httpx.AsyncClient, changes: dict[str, object], fragment: str
) -> None:
    response = await client.post("/campaigns", json={**SETTINGS, **changes}, headers=OPERATOR)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "bad_json"),
        (b"", 400, "bad_json"),
        (b'{"cps": NaN}', 400, "bad_json"),
        (b"\xff\xfe{}", 400, "bad_json"),
        (b"[" * 10_000 + b"]" * 10_000, 400, "bad_json"),
        (b"[1, 2]", 422, "invalid_input"),
        (b'"text"', 422, "invalid_input"),
    ],
)
async def test_bad_bodies(client: httpx.AsyncClient, body: bytes, status: int, code: str) -> None:
    response = await client.post(
        "/campaigns", content=body, headers={**OPERATOR, "Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert error_of(response)["code"] == code


# every limit a campaign holds, with values that must never be taken (0 would read as "no
# limit" further down; NaN and infinity are not numbers; booleans and texts are not numbers)
_BAD_LIMITS = [
    (field, value)
    for field in ("max_channels", "cps", "ring_timeout")
    for value in (0, -1, 0.0, -0.5, True, "5", "unlimited", None)
] + [
    ("retry", {"max_attempts": 0}),
    ("retry", {"max_attempts": -1}),
    ("retry", {"delays": {"busy": -5}}),
    ("retry", {"technical_backoff": 0}),
    ("limits", {"max_attempts_total": 0}),
    ("limits", {"max_attempts_total": -1}),
    ("limits", {"max_minutes": 0}),
    ("limits", {"max_minutes": -1.5}),
    ("limits", {"max_minutes": "10"}),
]


def _named(field: str, value: object) -> str:
    """The field's path in the error message: ``cps``, ``retry.delays.busy``."""
    while isinstance(value, dict):
        key = next(iter(value))
        field, value = f"{field}.{key}", value[key]
    return field


@pytest.mark.parametrize(("field", "value"), _BAD_LIMITS)
async def test_create_and_edit_refuse_bad_limits_naming_the_field(
    client: httpx.AsyncClient, store: RedisStore, field: str, value: object
) -> None:
    response = await client.post("/campaigns", json={**SETTINGS, field: value}, headers=OPERATOR)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert error["message"].startswith(f"{_named(field, value)} must be "), error["message"]

    cid = await new_campaign(client)
    before = (await store.get_campaign(cid)).settings_json
    response = await client.patch(f"/campaigns/{cid}", json={field: value}, headers=OPERATOR)
    assert response.status_code == 422, response.text
    assert error_of(response)["message"].startswith(f"{_named(field, value)} must be ")
    assert (await store.get_campaign(cid)).settings_json == before


@pytest.mark.parametrize(
    ("body", "field", "constant"),
    [
        (b'{"max_channels": 5, "cps": NaN}', "cps", "NaN"),
        (b'{"name": "x", "trunk": "t", "max_channels": Infinity}', "max_channels", "Infinity"),
        (b'{"cps": 1, "ring_timeout": -Infinity}', "ring_timeout", "-Infinity"),
        (b'{"cps": 1, "limits": {"max_minutes": NaN}}', "limits.max_minutes", "NaN"),
        (b'{"retry": {"delays": {"no_answer": [1, NaN]}}}', "retry.delays.no_answer[1]", "NaN"),
        (b"NaN", "the body", "NaN"),
    ],
)
async def test_nan_and_infinity_are_not_json_and_the_field_is_named(
    client: httpx.AsyncClient, store: RedisStore, body: bytes, field: str, constant: str
) -> None:
    headers = {**OPERATOR, "Content-Type": "application/json"}
    response = await client.post("/campaigns", content=body, headers=headers)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "bad_json"
    assert error["message"] == (
        f"the body is not valid JSON: {field} is {constant}, which JSON does not have"
    )
    assert error["details"] == {"field": field}
    cid = await new_campaign(client)
    response = await client.patch(f"/campaigns/{cid}", content=b'{"cps": NaN}', headers=headers)
    assert (response.status_code, error_of(response)["details"]) == (400, {"field": "cps"})
    assert json.loads((await store.get_campaign(cid)).settings_json)["cps"] == 2.0


async def test_json_body_limit(store: RedisStore) -> None:
    async with api_client(store, max_body_bytes=1024) as client:
        big = {**SETTINGS, "variables": {"NOTE": "x" * 200, "MORE": "y" * 900}}
        response = await client.post("/campaigns", json=big, headers=OPERATOR)
        assert response.status_code == 413
        error = error_of(response)
        assert error["code"] == "body_too_large"
        assert error["details"] == {"limit_bytes": 1024}

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(10):
                yield b" " * 200

        response = await client.post("/campaigns", content=chunked(), headers=OPERATOR)
        assert response.status_code == 413
        assert error_of(response)["code"] == "body_too_large"
        assert (await client.get("/campaigns", headers=VIEWER)).json()["campaigns"] == []


async def test_list_newest_first_with_paging_and_filter(
    client: httpx.AsyncClient, store: RedisStore
) -> None:
    ids = [await new_campaign(client, name=f"c{i}") for i in range(5)]
    await add_contacts(store, ids[1])
    assert (await client.post(f"/campaigns/{ids[1]}/start", headers=OPERATOR)).status_code == 200
    page = (await client.get("/campaigns", params={"limit": 2}, headers=VIEWER)).json()
    assert [c["id"] for c in page["campaigns"]] == [ids[4], ids[3]]
    assert (page["offset"], page["limit"], page["next_offset"]) == (0, 2, 2)
    page = (await client.get("/campaigns?offset=4&limit=2", headers=VIEWER)).json()
    assert [c["id"] for c in page["campaigns"]] == [ids[0]]
    assert page["next_offset"] is None
    page = (await client.get("/campaigns?status=running", headers=VIEWER)).json()
    assert [c["id"] for c in page["campaigns"]] == [ids[1]]
    page = (await client.get("/campaigns?status=draft&offset=1&limit=2", headers=VIEWER)).json()
    assert [c["id"] for c in page["campaigns"]] == [ids[3], ids[2]]


@pytest.mark.parametrize(
    "query", ["status=sleeping", "limit=0", "limit=1001", "offset=-1", "offset=x", "limit=1e3"]
)
async def test_list_refuses_bad_query(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/campaigns?{query}", headers=VIEWER)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert query.split("=")[0] in error["message"]


async def test_unknown_paths_and_methods_answer_json(client: httpx.AsyncClient) -> None:
    for path in ("/nope", "/campaigns/abc", "/campaigns/1/unknown"):
        response = await client.get(path, headers=VIEWER)
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"
    response = await client.put("/campaigns", headers=ADMIN)
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    response = await client.get("/campaigns/999", headers=VIEWER)
    assert response.status_code == 404
    assert error_of(response)["message"] == "campaign 999 does not exist"


# -- edit -------------------------------------------------------------------------------------


async def test_edit_in_draft_and_paused_only(client: httpx.AsyncClient, store: RedisStore) -> None:
    cid = await new_campaign(client)
    response = await client.patch(
        f"/campaigns/{cid}", json={"cps": 7.5, "name": "Renamed", "trunk": "carrier2"},
        headers=OPERATOR,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["settings"]["cps"] == 7.5
    assert body["settings"]["max_channels"] == 5  # untouched fields kept
    assert (body["name"], body["trunk"]) == ("Renamed", "carrier2")  # hash kept in step
    record = await store.get_campaign(cid)
    assert json.loads(record.settings_json)["cps"] == 7.5

    response = await client.patch(f"/campaigns/{cid}", json={"cps": -1}, headers=OPERATOR)
    assert response.status_code == 422
    assert json.loads((await store.get_campaign(cid)).settings_json)["cps"] == 7.5

    await add_contacts(store, cid)
    assert (await client.post(f"/campaigns/{cid}/start", headers=OPERATOR)).status_code == 200
    response = await client.patch(f"/campaigns/{cid}", json={"cps": 1}, headers=OPERATOR)
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "campaign_not_editable"
    assert error["message"] == (
        f"campaign {cid} is Running; settings can be edited only in Draft or Paused"
    )
    assert error["details"] == {"status": "running", "command": "edit"}

    assert (await client.post(f"/campaigns/{cid}/pause", headers=OPERATOR)).status_code == 200
    assert await status_of(client, cid) == "paused"
    response = await client.patch(f"/campaigns/{cid}", json={"cps": 1}, headers=OPERATOR)
    assert response.status_code == 200
    assert response.json()["settings"]["cps"] == 1.0


# -- commands ---------------------------------------------------------------------------------


async def test_lifecycle_commands(client: httpx.AsyncClient, store: RedisStore) -> None:
    cid = await new_campaign(client)
    response = await client.post(f"/campaigns/{cid}/start", headers=OPERATOR)
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "campaign_not_startable"
    assert error["message"].startswith(f"campaign {cid}: cannot start")
    assert "no dialable contact" in error["message"]
    assert error["details"] == {"command": "start", "status": "draft"}

    response = await client.post(f"/campaigns/{cid}/stop", headers=ADMIN)
    assert response.status_code == 409
    assert error_of(response)["code"] == "campaign_not_stoppable"

    await add_contacts(store, cid)
    response = await client.post(f"/campaigns/{cid}/start", headers=OPERATOR)
    assert response.json() == {"id": cid, "status": "running", "status_label": "Running",
                               "draining": 0}  # fmt: skip
    response = await client.post(f"/campaigns/{cid}/start", headers=OPERATOR)
    assert error_of(response)["code"] == "campaign_not_startable"
    response = await client.post(f"/campaigns/{cid}/resume", headers=OPERATOR)
    assert response.status_code == 409
    assert error_of(response)["code"] == "campaign_not_resumable"

    response = await client.post(f"/campaigns/{cid}/pause", headers=OPERATOR)
    assert response.json()["status"] == "paused"
    response = await client.post(f"/campaigns/{cid}/pause", headers=OPERATOR)
    assert error_of(response)["code"] == "campaign_not_pausable"
    response = await client.post(f"/campaigns/{cid}/resume", headers=OPERATOR)
    assert response.json()["status"] == "running"

    for bad in ({"hangup": "yes"}, {"hang": True}, [True]):
        response = await client.post(f"/campaigns/{cid}/stop", json=bad, headers=ADMIN)
        assert response.status_code == 422, bad
        assert await status_of(client, cid) == "running"
    response = await client.post(f"/campaigns/{cid}/stop", json={"hangup": True}, headers=ADMIN)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"  # nothing in flight: drained at once
    assert (await store.get_campaign(cid)).status_reason == "stopped with hang-up"
    counts = (await client.get(f"/campaigns/{cid}", headers=VIEWER)).json()["contacts"]
    assert counts["not_dialed"] == 3


async def test_window_closed_start_schedules(client: httpx.AsyncClient, store: RedisStore) -> None:
    # A window of one minute that is never "now" on both sides of the test.
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) + timedelta(hours=3)).strftime("%H:%M")
    end = (datetime.now(UTC) + timedelta(hours=3, minutes=1)).strftime("%H:%M")
    window = {"timezone": "UTC", "start": start, "end": end}
    cid = await new_campaign(client, window=window)
    await add_contacts(store, cid)
    response = await client.post(f"/campaigns/{cid}/start", headers=OPERATOR)
    assert response.json()["status"] == "scheduled"


async def test_stop_all(client: httpx.AsyncClient, store: RedisStore) -> None:
    running = []
    for _ in range(2):
        cid = await new_campaign(client)
        await add_contacts(store, cid)
        await client.post(f"/campaigns/{cid}/start", headers=OPERATOR)
        running.append(cid)
    draft = await new_campaign(client)
    response = await client.post("/campaigns/stop-all", headers=ADMIN)  # no body: hangup false
    assert response.status_code == 200
    stopped = response.json()["stopped"]
    assert sorted(s["id"] for s in stopped) == running
    assert {s["status"] for s in stopped} == {"cancelled"}
    assert await status_of(client, draft) == "draft"


async def test_delete(client: httpx.AsyncClient, store: RedisStore) -> None:
    draft = await new_campaign(client)
    assert (await client.delete(f"/campaigns/{draft}", headers=ADMIN)).status_code == 204
    assert (await client.get(f"/campaigns/{draft}", headers=VIEWER)).status_code == 404
    assert (await client.delete(f"/campaigns/{draft}", headers=ADMIN)).status_code == 404

    live = await new_campaign(client)
    await add_contacts(store, live)
    await client.post(f"/campaigns/{live}/start", headers=OPERATOR)
    response = await client.delete(f"/campaigns/{live}", headers=ADMIN)  # cancelled first
    assert response.status_code == 204
    assert response.content == b""
    listed = (await client.get("/campaigns", headers=VIEWER)).json()["campaigns"]
    assert live not in [c["id"] for c in listed]


async def test_delete_waits_for_draining_calls(
    client: httpx.AsyncClient, store: RedisStore
) -> None:
    cid = await new_campaign(client)
    await add_contacts(store, cid)
    await client.post(f"/campaigns/{cid}/start", headers=OPERATOR)
    granted = await claim(store, cid, "call-1", trunk="carrier1")
    assert granted.kind == "ok"
    assert await mark_originated(store, "call-1", cid)
    response = await client.delete(f"/campaigns/{cid}", headers=ADMIN)  # timeout 0.5 s
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "campaign_draining"
    assert error["message"].startswith(f"campaign {cid} is Cancelling")
    assert await status_of(client, cid) == CampaignStatus.CANCELLING


# -- failures ---------------------------------------------------------------------------------


async def test_store_unavailable(fresh_redis_server: RedisServer, namespace: str) -> None:
    store = RedisStore.from_url(fresh_redis_server.url, namespace)
    try:
        async with api_client(store) as client:
            assert (await client.get("/health")).json() == {"status": "ok", "store": "ok"}
            fresh_redis_server.kill()
            response = await client.get("/campaigns", headers=VIEWER)
            assert response.status_code == 503
            assert error_of(response)["code"] == "store_unavailable"
            response = await client.get("/health")
            assert response.status_code == 503
    finally:
        await store.aclose()


async def test_unexpected_error_is_500_json(
    client: httpx.AsyncClient,
    store: RedisStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(store, "list_campaigns", broken)
    response = await client.get("/campaigns", headers=VIEWER)
    assert response.status_code == 500
    error = error_of(response)
    assert error == {"code": "internal_error", "message": "internal error", "details": {}}
    assert "GET /campaigns failed" in caplog.text
    assert "boom" in caplog.text
