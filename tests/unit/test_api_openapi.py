"""The generated OpenAPI document matches the app's routes and roles; serve_api runs uvicorn."""

from __future__ import annotations

import re
import socket
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from starlette.routing import Route

from dialer.api import ApiEndpoint, create_app, endpoints, serve_api
from dialer.api.openapi import openapi_document
from dialer.metrics import DialerMetrics
from dialer.store import RedisStore
from tests.unit.api_helpers import TOKENS, VIEWER, api_client

METHODS = {"get", "post", "patch", "delete", "put"}


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


@pytest.mark.redis
@pytest.mark.parametrize(("with_metrics", "public"), [(True, False), (True, True), (False, False)])
def test_document_matches_routes_and_roles(
    store: RedisStore, with_metrics: bool, public: bool
) -> None:
    metrics = DialerMetrics("doc") if with_metrics else None
    app = create_app(store, tokens=TOKENS, metrics=metrics, metrics_public=public)
    document = openapi_document(endpoints(metrics=with_metrics, metrics_public=public))
    ops = operations(document)
    routes = {
        (method, route.path_format)
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert routes == set(ops)  # every route documented, nothing documented that is not served
    for e in endpoints(metrics=with_metrics, metrics_public=public):
        path = e.template
        op = ops[(e.method, path)]
        assert op["x-required-role"] == (e.role.value if e.role else None), (e.method, path)
        assert op["security"] == ([] if e.role is None else [{"bearer": []}])
        declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), (e.method, path)
        assert op["summary"]
        assert op["responses"]


def test_document_refs_resolve() -> None:
    document = openapi_document(endpoints(metrics=True))
    for ref in refs(document):
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict), ref
    assert document["openapi"].startswith("3.1")


@pytest.mark.redis
async def test_served_without_token(store: RedisStore) -> None:
    async with api_client(store, metrics=DialerMetrics("doc")) as client:
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        assert response.json() == openapi_document(endpoints(metrics=True))


@pytest.mark.redis
async def test_serve_api_in_this_loop(store: RedisStore) -> None:
    app = create_app(store, tokens=TOKENS)
    async with serve_api(app, "127.0.0.1", 0) as endpoint:
        assert isinstance(endpoint, ApiEndpoint)
        assert endpoint.port > 0
        async with httpx.AsyncClient(base_url=endpoint.url) as client:
            assert (await client.get("/health")).json() == {"status": "ok", "store": "ok"}
            response = await client.get("/campaigns", headers=VIEWER)
            assert response.status_code == 200
            assert response.json()["campaigns"] == []
            assert (await client.get("/campaigns")).status_code == 401
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", endpoint.port), 1),
    ):
        pass  # the server is gone once the block is left


@pytest.mark.redis
async def test_serve_api_port_in_use(store: RedisStore) -> None:
    app = create_app(store, tokens=TOKENS)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            async with serve_api(app, "127.0.0.1", port):
                pass
