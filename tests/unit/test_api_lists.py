"""Lists and contacts through the API: CSV upload (whole or nothing), list stop, contact pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus
from dialer.store import RedisStore
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
from tests.unit.import_helpers import snapshot
from tests.unit.store_helpers import claim, finish

pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


@pytest.fixture
async def client(store: RedisStore) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(store, max_upload_bytes=64 * 1024) as c:
        yield c


ROWS = [
    "(212) 555-0100,Ann,r1",
    "+1 212 555 0100,Ann again,r2",  # duplicate
    "12345,Short,r3",  # invalid number
    "212.555.0101,Bob,r4",
]


async def test_upload_happy_path(client: httpx.AsyncClient, store: RedisStore) -> None:
    cid = await new_campaign(client)
    response = await upload(client, cid, csv_body(ROWS))
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["list_id"] == 1
    assert (report["rows"], report["imported"], report["duplicates"]) == (4, 3, 1)
    assert (report["invalid_numbers"], report["dnc"], report["pending"]) == (1, 0, 2)
    assert report["errors"] == []
    assert report["error_count"] == 0
    assert [w["line"] for w in report["warnings"]] == [4]
    lists = (await client.get(f"/campaigns/{cid}/lists", headers=VIEWER)).json()
    assert lists == {"lists": [{"id": 1, "status": "active"}]}
    page = (await client.get(f"/campaigns/{cid}/contacts", headers=VIEWER)).json()
    assert [c["phone"] for c in page["contacts"]] == ["+12125550100", "12345", "+12125550101"]
    first = page["contacts"][0]
    assert first["vars"] == {"name": "Ann", "ref": "r1"}
    assert (first["status"], first["list_id"], first["attempts"]) == ("pending", 1, 0)
    assert page["next_after"] is None


async def test_upload_mapping_and_region(client: httpx.AsyncClient) -> None:
    cid = await new_campaign(client)
    data = csv_body(["01 42 68 53 00,Marie"], header="Mobile,Who")
    response = await upload(client, cid, data, default_region="FR", phone_column="Mobile",
                            name_column="Who")  # fmt: skip
    assert response.status_code == 201, response.text
    contacts = (await client.get(f"/campaigns/{cid}/contacts", headers=VIEWER)).json()
    assert contacts["contacts"][0]["phone"] == "+33142685300"
    assert contacts["contacts"][0]["vars"] == {"name": "Marie"}


async def test_malformed_upload_leaves_nothing(
    client: httpx.AsyncClient, store: RedisStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    cid = await new_campaign(client)
    before = await snapshot(redis_client, namespace)
    bad = csv_body(["+12125550100,Ann,r1", "+12125550101,Bob", '"+12125550102,Cy,r3'])
    response = await upload(client, cid, bad)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "import_refused"
    report = error["details"]["report"]
    assert report["list_id"] is None
    assert report["error_count"] >= 1
    assert report["errors"][0]["line"] == 3
    assert "expected 3" in report["errors"][0]["reason"]
    assert await snapshot(redis_client, namespace) == before

    for data, params in (
        (b"", {}),
        (b"name,ref\nAnn,r1\n", {}),
        (csv_body(ROWS), {"phone_column": "nope"}),
    ):
        response = await upload(client, cid, data, **params)
        assert response.status_code == 422, data
        assert error_of(response)["code"] == "import_refused"
    response = await upload(client, cid, csv_body(ROWS), default_region="ZZ")
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_input"
    assert await snapshot(redis_client, namespace) == before


async def test_upload_limits_and_refusals(client: httpx.AsyncClient, store: RedisStore) -> None:
    cid = await new_campaign(client)
    rows = [f"+1212555{i % 10_000:04d},Name {i},ref{i}" for i in range(3000)]
    big = csv_body(rows)
    assert len(big) > 64 * 1024
    response = await upload(client, cid, big)
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    response = await client.post(
        f"/campaigns/{cid}/lists",
        content=chunked(),
        headers={**OPERATOR, "Content-Type": "text/csv"},
    )
    assert response.status_code == 413
    assert await store.list_status(cid) == {}

    response = await client.post(
        f"/campaigns/{cid}/lists",
        content=b'{"phone": 1}',
        headers={**OPERATOR, "Content-Type": "application/json"},
    )
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"

    response = await upload(client, 999_999, csv_body(ROWS))
    assert response.status_code == 404

    assert (await upload(client, cid, csv_body(ROWS))).status_code == 201
    assert (await client.post(f"/campaigns/{cid}/start", headers=OPERATOR)).status_code == 200
    response = await upload(client, cid, csv_body(["+12125550199,Zed,r9"]))
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "campaign_not_editable"
    assert (
        error["message"] == f"campaign {cid} is Running; lists can be added only in Draft or Paused"
    )


async def test_stop_list(client: httpx.AsyncClient, store: RedisStore) -> None:
    cid = await new_campaign(client)
    assert (await upload(client, cid, csv_body(ROWS))).status_code == 201
    response = await client.post(f"/campaigns/{cid}/lists/1/stop", headers=ADMIN)
    assert response.status_code == 200
    assert response.json() == {"id": 1, "status": "stopped", "not_dialed": 2}
    counts = await store.counts(cid)
    assert (counts[CallStatus.NOT_DIALED], counts[CallStatus.PENDING]) == (2, 0)
    response = await client.post(f"/campaigns/{cid}/lists/1/stop", headers=ADMIN)
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "list_not_stoppable"
    assert (
        error["message"] == f"campaign {cid}: list 1 is stopped; re-add the contacts as a new list"
    )
    response = await client.post(f"/campaigns/{cid}/lists/2/stop", headers=ADMIN)
    assert response.status_code == 404
    assert error_of(response)["message"] == f"list 2 of campaign {cid} does not exist"


async def test_contact_pages(client: httpx.AsyncClient, store: RedisStore) -> None:
    cid = await new_campaign(client)
    rows = [f"+1212555{i:04d},N{i},r{i}" for i in range(25)]
    assert (await upload(client, cid, csv_body(rows))).status_code == 201
    await client.post(f"/campaigns/{cid}/start", headers=OPERATOR)
    answered = []
    for n in range(3):  # contacts 1..3 are dialed first and answered
        granted = await claim(store, cid, f"call-{n}", trunk="carrier1")
        assert granted.kind == "ok"
        await finish(store, cid, f"call-{n}", granted.contact_id, trunk="carrier1")
        answered.append(granted.contact_id)

    async def page(**params: Any) -> dict[str, object]:
        response = await client.get(f"/campaigns/{cid}/contacts", params=params, headers=VIEWER)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    def ids(body: dict[str, object]) -> list[int]:
        contacts = body["contacts"]
        assert isinstance(contacts, list)
        return [c["id"] for c in contacts]

    first = await page(limit=10)
    assert ids(first) == list(range(1, 11))
    assert first["next_after"] == 10
    second = await page(limit=10, after=10)
    assert ids(second) == list(range(11, 21))
    last = await page(limit=10, after=20)
    assert ids(last) == list(range(21, 26))
    assert last["next_after"] is None
    assert ids(await page(limit=5, offset=22)) == [23, 24, 25]

    got = await page(status="answered")
    assert ids(got) == answered
    assert got["next_after"] is None
    assert ids(await page(status="answered", offset=1, limit=1)) == answered[1:2]
    pending = await page(status="pending", limit=4)
    assert ids(pending) == [4, 5, 6, 7]
    assert ids(await page(status="pending", after=pending["next_after"], limit=100)) == list(
        range(8, 26)
    )

    for bad in ({"status": "happy"}, {"limit": 0}, {"after": "x"}):
        response = await client.get(f"/campaigns/{cid}/contacts", params=bad, headers=VIEWER)
        assert response.status_code == 422
        assert error_of(response)["code"] == "invalid_input"
    response = await client.get("/campaigns/999999/contacts", headers=VIEWER)
    assert response.status_code == 404


async def test_filtered_scan_is_bounded(client: httpx.AsyncClient, store: RedisStore) -> None:
    from dialer.store.queries import contacts_page

    cid = await new_campaign(client)
    rows = [f"+1212555{i:04d},N{i},r{i}" for i in range(10)] + ["123,Bad,x"]
    assert (await upload(client, cid, csv_body(rows))).status_code == 201
    page = await contacts_page(store, cid, status=CallStatus.INVALID_NUMBER, max_scan=4)
    assert (page.contacts, page.next_after) == ([], 4)
    page = await contacts_page(store, cid, status=CallStatus.INVALID_NUMBER, after=8, max_scan=4)
    assert [c.id for c in page.contacts] == [11]
    assert page.next_after is None
    with pytest.raises(ValueError, match="positive"):
        await contacts_page(store, cid, limit=0)


async def test_upload_alternate_numbers_and_their_view(client: httpx.AsyncClient) -> None:
    cid = await new_campaign(client)
    data = csv_body(["01 42 68 53 00,Marie,06 12 34 56 78,oops"], header="Home,Who,Cell,Work")
    response = await upload(client, cid, data, default_region="FR", phone_column="Home",
                            alt_phone_columns="Work, Cell")  # fmt: skip
    assert response.status_code == 201, response.text
    assert [w["line"] for w in response.json()["warnings"]] == [2]  # the invalid Work number
    (contact,) = (await client.get(f"/campaigns/{cid}/contacts", headers=VIEWER)).json()["contacts"]
    assert contact["vars"] == {"Who": "Marie"}
    assert contact["numbers"] == [
        {
            "number": "+33142685300",
            "label": "Home",
            "tries": 0,
            "last_status": None,
            "current": True,
        },
        {
            "number": "+33612345678",
            "label": "Cell",
            "tries": 0,
            "last_status": None,
            "current": False,
        },
    ]
