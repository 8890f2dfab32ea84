"""Shared set-up for the API tests (test_api_*.py): tokens, an in-process client, bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from dialer.api import Role, create_app
from dialer.metrics import DialerMetrics
from dialer.store import RedisStore

# Equal lengths on purpose: a wrong token of the right length must fail too.
ADMIN_TOKEN = "adm-0123456789abcdefXYZ"
OPERATOR_TOKEN = "opr-0123456789abcdefXYZ"
VIEWER_TOKEN = "vwr-0123456789abcdefXYZ"
TOKENS = {ADMIN_TOKEN: Role.ADMINISTRATOR, OPERATOR_TOKEN: Role.OPERATOR, VIEWER_TOKEN: Role.VIEWER}
TOKEN_OF = {role: token for token, role in TOKENS.items()}

SETTINGS: dict[str, Any] = {"name": "Spring sale", "trunk": "carrier1", "max_channels": 5, "cps": 2}


def bearer(role: Role | None) -> dict[str, str]:
    return {} if role is None else {"Authorization": f"Bearer {TOKEN_OF[role]}"}


ADMIN = bearer(Role.ADMINISTRATOR)
OPERATOR = bearer(Role.OPERATOR)
VIEWER = bearer(Role.VIEWER)


@asynccontextmanager
async def api_client(
    store: RedisStore, *, metrics: DialerMetrics | None = None, **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(store, tokens=TOKENS, metrics=metrics, **options)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of an error response (asserting the shape on the way)."""
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


async def new_campaign(client: httpx.AsyncClient, **changes: Any) -> int:
    response = await client.post("/campaigns", json={**SETTINGS, **changes}, headers=OPERATOR)
    assert response.status_code == 201, response.text
    cid: int = response.json()["id"]
    return cid


def csv_body(rows: list[str], header: str = "phone,name,ref") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


async def upload(client: httpx.AsyncClient, cid: int, data: bytes, **params: str) -> httpx.Response:
    return await client.post(
        f"/campaigns/{cid}/lists",
        content=data,
        params=params,
        headers={**OPERATOR, "Content-Type": "text/csv"},
    )
