"""Callbacks through the HTTP API (roles, validation, 409 in a call, hours) and the CLI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis.asyncio as aioredis

from dialer.cli.callbacks import callback_time
from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store import RedisStore
from ops.localstack.redis_server import RedisServer
from tests.unit.api_helpers import (
    OPERATOR,
    VIEWER,
    api_client,
    csv_body,
    error_of,
    new_campaign,
    upload,
)
from tests.unit.cli_helpers import Cli, make_cli
from tests.unit.store_helpers import claim, contacts

pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


@pytest.fixture
async def client(store: RedisStore) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(store) as c:
        yield c


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


async def campaign_with(client: httpx.AsyncClient, n: int, **settings: object) -> int:
    cid = await new_campaign(client, **settings)
    rows = [f"+1212{5550100 + i:07d},P{i},r{i}" for i in range(n)]
    response = await upload(client, cid, csv_body(rows))
    assert response.status_code == 201, response.text
    return cid


async def test_api_set_move_list_cancel(client: httpx.AsyncClient) -> None:
    cid = await campaign_with(client, 3)
    url = f"/campaigns/{cid}/contacts/2/callback"
    at = iso(timedelta(hours=1))
    response = await client.post(url, json={"at": at}, headers=OPERATOR)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "rescheduled"
    assert body["previous_status"] == "pending"
    assert body["moved_by_hours"] is False
    assert body["replaced"] is None
    assert body["due_ms"] == round(datetime.fromisoformat(at).timestamp() * 1000)
    later = iso(timedelta(hours=2))
    moved = (await client.post(url, json={"at": later}, headers=OPERATOR)).json()
    assert moved["replaced"] == "operator"
    listed = (await client.get(f"/campaigns/{cid}/callbacks", headers=VIEWER)).json()
    assert [c["contact_id"] for c in listed["callbacks"]] == [2]
    assert listed["callbacks"][0]["due_ms"] == moved["due_ms"]
    assert listed["callbacks"][0]["source"] == "operator"
    assert listed["next_after"] is None
    contact = (await client.get(f"/campaigns/{cid}/contacts", headers=VIEWER)).json()
    assert [c["status"] for c in contact["contacts"]] == ["pending", "rescheduled", "pending"]
    cancelled = await client.delete(url, headers=OPERATOR)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "pending"
    assert cancelled.json()["cancelled"] == "operator"
    again = await client.delete(url, headers=OPERATOR)
    assert again.status_code == 409
    assert error_of(again)["code"] == "callback_refused"
    empty = (await client.get(f"/campaigns/{cid}/callbacks", headers=VIEWER)).json()
    assert empty["callbacks"] == []


async def test_api_roles(client: httpx.AsyncClient) -> None:
    cid = await campaign_with(client, 1)
    url = f"/campaigns/{cid}/contacts/1/callback"
    denied = await client.post(url, json={"at": iso(timedelta(hours=1))}, headers=VIEWER)
    assert denied.status_code == 403
    assert error_of(denied)["details"]["required_role"] == "operator"
    assert (await client.delete(url, headers=VIEWER)).status_code == 403
    assert (await client.get(f"/campaigns/{cid}/callbacks")).status_code == 401
    assert (await client.get(f"/campaigns/{cid}/callbacks", headers=VIEWER)).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"at": "2020-01-01T09:00:00Z"}, 422, "invalid_input"),  # the past
        ({"at": "2030-01-01T09:00:00"}, 422, "invalid_input"),  # no offset
        ({"at": "2031-01-01T09:00:00Z"}, 422, "invalid_input"),  # after the end date
        ({"when": "2030-01-01T09:00:00Z"}, 422, "invalid_input"),
        ({}, 422, "invalid_input"),
    ],
)
async def test_api_validation(
    client: httpx.AsyncClient, body: dict[str, str], status: int, code: str
) -> None:
    cid = await campaign_with(client, 1, ends_at="2030-06-01T00:00:00+00:00")
    response = await client.post(
        f"/campaigns/{cid}/contacts/1/callback", json=body, headers=OPERATOR
    )
    assert response.status_code == status, response.text
    assert error_of(response)["code"] == code


async def test_api_outside_hours_moves_to_the_opening(client: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    start, end = now + timedelta(hours=3), now + timedelta(hours=4)
    window = {"timezone": "UTC", "start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}
    cid = await campaign_with(client, 1, window=window)
    at = iso(timedelta(minutes=30))
    body = (
        await client.post(
            f"/campaigns/{cid}/contacts/1/callback", json={"at": at}, headers=OPERATOR
        )
    ).json()
    assert body["moved_by_hours"] is True
    assert "outside calling hours" in body["reason"]
    opening = start.replace(second=0, microsecond=0)
    assert body["due_ms"] == int(opening.timestamp() * 1000)
    assert datetime.fromisoformat(body["due_at"]) == opening


async def test_api_in_call_and_unknown(client: httpx.AsyncClient, store: RedisStore) -> None:
    cid = await campaign_with(client, 2)
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    r = await claim(store, cid, "busy1", trunk="carrier1")
    assert r.kind == "ok"
    url = f"/campaigns/{cid}/contacts/{r.contact_id}/callback"
    busy = await client.post(url, json={"at": iso(timedelta(hours=1))}, headers=OPERATOR)
    assert busy.status_code == 409
    error = error_of(busy)
    assert error["code"] == "contact_in_call"
    assert error["details"]["status"] == "in_progress"
    assert (await client.delete(url, headers=OPERATOR)).status_code == 409
    gone = await client.post(
        f"/campaigns/{cid}/contacts/77/callback",
        json={"at": iso(timedelta(hours=1))},
        headers=OPERATOR,
    )
    assert gone.status_code == 404
    nothing = await client.get("/campaigns/4242/callbacks", headers=VIEWER)
    assert nothing.status_code == 404


# -- CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def cli(
    redis_server: RedisServer,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    return make_cli(redis_server, namespace, capsys, monkeypatch)


def test_callback_time_delays() -> None:
    assert callback_time("+90s", now=1000.0) == datetime.fromtimestamp(1090, UTC).isoformat()
    assert callback_time("+2h", now=0.0) == "1970-01-01T02:00:00+00:00"
    assert callback_time("2030-01-01T09:00:00+01:00") == "2030-01-01T09:00:00+01:00"


def test_cli_add_move_list_cancel(cli: Cli) -> None:
    async def setup(store: RedisStore) -> int:
        s = CampaignSettings(name="cli", trunk="trunk1", max_channels=2, cps=1.0)
        cid = await store.create_campaign("cli", "trunk1", json.dumps(s.to_dict()))
        await store.add_contacts(cid, await store.add_list(cid), contacts(2))
        return cid

    cid = cli.store_call(setup)
    moved = cli("callback", "move", str(cid), "1", "+1h")
    assert moved.code == 2
    assert "has no callback" in moved.err
    added = cli.ok("callback", "add", str(cid), "1", "+1h")
    assert f"campaign {cid} contact 1: callback set for" in added.out
    cli.ok("callback", "move", str(cid), "1", "+2h")
    listed = cli.ok("callback", "list", str(cid))
    assert listed.lines[0].split() == [
        "CONTACT",
        "PHONE",
        "DUE",
        "ASKED",
        "FOR",
        "SET",
        "BY",
        "ATTEMPTS",
    ]
    assert listed.lines[1].split()[:2] == ["1", contacts(2)[0].phone]
    past = cli("callback", "add", str(cid), "2", "2020-01-01T00:00:00Z")
    assert past.code == 2
    assert "in the past" in past.err
    cancelled = cli.ok("callback", "cancel", str(cid), "1")
    assert "callback cancelled; now Pending" in cancelled.out
    assert "no upcoming callback" in cli.ok("callback", "list", str(cid)).out

    async def status(store: RedisStore) -> CallStatus:
        return (await store.get_contact(cid, 1)).status

    assert cli.store_call(status) is CallStatus.PENDING
