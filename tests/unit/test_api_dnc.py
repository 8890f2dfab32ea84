"""The do-not-call and trunk breaker API: roles, validation errors, all-or-nothing imports,
a campaign's list, and a breaker seen and reset."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from dialer.domain.breaker import BreakerLimits, Signal
from dialer.store import RedisStore
from dialer.store.breaker import BreakerStore
from dialer.store.dnc import DncStore
from tests.unit.api_helpers import ADMIN, OPERATOR, VIEWER, api_client, error_of, new_campaign

pytestmark = pytest.mark.redis

A, B, C = "+12125550170", "+12125550171", "+12125550172"
TEXT = {"Content-Type": "text/plain"}


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def test_each_role_may_do_what_its_row_says(store: RedisStore) -> None:
    async with api_client(store) as client:
        r = await client.post("/dnc", json={"numbers": [A]}, headers=VIEWER)
        assert r.status_code == 403
        assert error_of(r)["message"] == (
            "to add numbers to the global do-not-call list you need the operator role or "
            "higher; this token has the viewer role"
        )
        r = await client.post("/dnc", json={"numbers": [A, "(212) 555-0171"]}, headers=OPERATOR)
        assert (r.status_code, r.json()) == (200, {"added": 2, "already_listed": 0})
        r = await client.post("/dnc", json={"numbers": [A]}, headers=OPERATOR)
        assert r.json() == {"added": 0, "already_listed": 1}
        r = await client.post("/dnc/remove", json={"numbers": [A]}, headers=OPERATOR)
        assert r.status_code == 403
        assert (
            "you need the administrator role; this token has the operator role"
            in (error_of(r)["message"])
        )
        assert await DncStore(store).contains(A)  # nothing happened
        r = await client.post("/dnc/remove", json={"numbers": [A, C]}, headers=ADMIN)
        assert (r.status_code, r.json()) == (200, {"removed": 1})
        r = await client.post("/dnc/check", json={"numbers": [A, B, "123"]}, headers=VIEWER)
        assert r.json()["numbers"] == [
            {"input": A, "number": A, "listed": False, "lists": [], "invalid_reason": None},
            {"input": B, "number": B, "listed": True, "lists": ["global"], "invalid_reason": None},
            {
                "input": "123",
                "number": None,
                "listed": False,
                "lists": [],
                "invalid_reason": "too short",
            },
        ]
        r = await client.post("/dnc/import", content=f"{A}\n".encode(), headers=VIEWER)
        assert r.status_code == 403
        assert (await client.post("/dnc/check", json={"numbers": [A]})).status_code == 401


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"numbers": [A, "nope"]}, "1 invalid phone numbers: 'nope' (not a phone number)"),
        ({"numbers": []}, "numbers must be list should have at least 1 item"),
        ({"numbers": [A] * 1001}, "numbers must be list should have at most 1000 items"),
        (
            {"numbers": [A], "default_region": "ZZ"},
            "default_region must be a known ISO 3166 region code in capitals, such as US or FR",
        ),
        ({"numbers": [A], "colour": "red"}, "unknown field 'colour'"),
    ],
)
async def test_bad_numbers_are_refused_naming_them(
    store: RedisStore, body: object, words: str
) -> None:
    async with api_client(store) as client:
        r = await client.post("/dnc", json=body, headers=OPERATOR)
        assert r.status_code == 422, r.text
        assert (error_of(r)["code"], words in error_of(r)["message"]) == ("invalid_input", True)
    assert await DncStore(store).count() == 0


async def test_an_import_is_all_or_nothing(store: RedisStore) -> None:
    async with api_client(store) as client:
        await client.post("/dnc", json={"numbers": [A]}, headers=OPERATOR)
        bad = f"{B}\nabc\n{C}\n12\n".encode()
        r = await client.post("/dnc/import", content=bad, headers={**OPERATOR, **TEXT})
        assert r.status_code == 422, r.text
        error = error_of(r)
        assert error["message"] == (
            "2 invalid numbers, nothing imported: line 2: 'abc' (not a phone number); "
            "line 4: '12' (too short)"
        )
        assert error["details"] == {
            "invalid": 2,
            "lines": [
                {"line": 2, "text": "abc", "reason": "not a phone number"},
                {"line": 4, "text": "12", "reason": "too short"},
            ],
        }
        assert await DncStore(store).count() == 1  # nothing written
        good = f"\ufeff# opt-outs\n{A}\n\n  {B}  \n06 12 34 56 78\n".encode()
        r = await client.post(
            "/dnc/import?default_region=FR", content=good, headers={**OPERATOR, **TEXT}
        )
        assert r.json() == {"read": 3, "added": 2, "already_listed": 1}
        assert await DncStore(store).contains("+33612345678")
        r = await client.post("/dnc/import", content=b"\xff\n", headers={**OPERATOR, **TEXT})
        assert (r.status_code, error_of(r)["message"]) == (422, "not UTF-8 text (line 1)")
        r = await client.post(
            "/dnc/import", content=b"{}", headers={**OPERATOR, "Content-Type": "application/json"}
        )
        assert r.status_code == 415


async def test_a_campaigns_list(store: RedisStore) -> None:
    async with api_client(store) as client:
        cid = await new_campaign(client)
        r = await client.post(f"/campaigns/{cid}/dnc", json={"numbers": [B]}, headers=OPERATOR)
        assert r.json() == {"added": 1, "already_listed": 0}
        r = await client.post(
            f"/campaigns/{cid}/dnc/import", content=f"{C}\n".encode(), headers=OPERATOR
        )
        assert r.json() == {"read": 1, "added": 1, "already_listed": 0}
        await client.post("/dnc", json={"numbers": [A, B]}, headers=OPERATOR)
        r = await client.post(
            f"/campaigns/{cid}/dnc/check", json={"numbers": [A, B, C]}, headers=VIEWER
        )
        assert [n["lists"] for n in r.json()["numbers"]] == [
            ["global"],
            ["global", f"campaign {cid}"],
            [f"campaign {cid}"],
        ]
        assert await DncStore(store).contains(C, cid)
        assert not await DncStore(store).contains(C)
        r = await client.post(
            f"/campaigns/{cid}/dnc/remove", json={"numbers": [B, C]}, headers=ADMIN
        )
        assert r.json() == {"removed": 2}
        assert await DncStore(store).contains(B)  # the global list keeps it


@pytest.mark.parametrize(
    ("verb", "role"),
    [("", OPERATOR), ("/remove", ADMIN), ("/check", VIEWER), ("/import", OPERATOR)],
)
async def test_a_missing_campaigns_list_is_404(
    store: RedisStore, verb: str, role: dict[str, str]
) -> None:
    async with api_client(store) as client:
        path = f"/campaigns/999/dnc{verb}"
        if verb == "/import":
            r = await client.post(path, content=f"{A}\n".encode(), headers=role)
        else:
            r = await client.post(path, json={"numbers": [A]}, headers=role)
        assert r.status_code == 404, r.text
        assert error_of(r)["message"] == "campaign 999 does not exist"
    assert not await store.client.exists(store.keys.campaign_dnc(999))


async def test_a_breaker_seen_and_reset(store: RedisStore) -> None:
    signals = [(f"c{i}", Signal.FAILURE, False) for i in range(2)]
    await BreakerStore(store).report("carrier", signals, BreakerLimits(failure_run=2))
    async with api_client(store) as client:
        r = await client.get("/trunks/carrier/breaker", headers=VIEWER)
        assert r.status_code == 200, r.text
        view = r.json()
        assert (view["trunk"], view["state"], view["trips"]) == ("carrier", "open", 1)
        assert view["reason"] == "2 trunk failures in a row"
        assert view["retry_ms"] > view["opened_ms"] > 0
        r = await client.post("/trunks/carrier/breaker/reset", headers=OPERATOR)
        assert r.status_code == 403
        assert error_of(r)["message"].startswith(
            "to reset a trunk's circuit breaker you need the administrator role"
        )
        r = await client.post("/trunks/carrier/breaker/reset", headers=ADMIN)
        assert r.json() == {
            "trunk": "carrier",
            "state": "closed",
            "reason": "",
            "opened_ms": 0,
            "retry_ms": 0,
            "probe": "",
            "held": [],
            "trips": 0,
            "silent_run": 0,
            "fail_run": 0,
        }
        assert (await client.get("/trunks/carrier/breaker", headers=VIEWER)).json() == r.json()
        for path in ("/trunks/bad:name/breaker", "/trunks/-x/breaker", "/trunks/a%20b/breaker"):
            assert (await client.get(path, headers=VIEWER)).status_code == 404, path
