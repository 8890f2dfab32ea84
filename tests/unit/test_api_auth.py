"""Roles and tokens: parsing, constant-time comparison, and every endpoint's permissions."""

from __future__ import annotations

import hmac
from typing import Any

import pytest
import redis.asyncio as aioredis

from dialer.api import ApiSettings, Role, TokenAuth, endpoints, parse_tokens
from dialer.errors import ConfigError
from dialer.metrics import DialerMetrics
from dialer.store import RedisStore
from tests.unit.api_helpers import (
    ADMIN_TOKEN,
    SETTINGS,
    TOKENS,
    api_client,
    bearer,
    error_of,
)

V, OP, A = Role.VIEWER, Role.OPERATOR, Role.ADMINISTRATOR
GONE = 424242  # a campaign that does not exist: allowed calls reach the handler and get 404
C = f"/campaigns/{GONE}"

# (method, path, least role or None for public, request body, status when allowed).
# Written out by hand: the app's own table must match it exactly (test_table_is_complete).
PERMISSIONS: list[tuple[str, str, Role | None, dict[str, Any], int]] = [
    ("GET", "/health", None, {}, 200),
    ("GET", "/openapi.json", None, {}, 200),
    ("GET", "/metrics", V, {}, 200),
    ("GET", "/campaigns", V, {}, 200),
    ("POST", "/campaigns", OP, {"json": SETTINGS}, 201),
    ("POST", "/campaigns/stop-all", A, {"json": {}}, 200),
    ("GET", C, V, {}, 404),
    ("PATCH", C, OP, {"json": {"cps": 3}}, 404),
    ("DELETE", C, A, {}, 404),
    ("POST", f"{C}/start", OP, {}, 404),
    ("POST", f"{C}/pause", OP, {}, 404),
    ("POST", f"{C}/resume", OP, {}, 404),
    ("POST", f"{C}/stop", A, {"json": {"hangup": True}}, 404),
    ("GET", f"{C}/lists", V, {}, 404),
    ("POST", f"{C}/lists", OP, {"content": b"phone\n+12125550100\n"}, 404),
    ("POST", f"{C}/lists/1/stop", A, {}, 404),
    ("GET", f"{C}/lists/1/caller-id", V, {}, 404),
    ("PUT", f"{C}/lists/1/caller-id", OP, {"json": {"caller_id": "+12015550100"}}, 404),
    ("GET", f"{C}/contacts", V, {}, 404),
    ("POST", f"{C}/lists/1/recycle", OP, {"json": {"statuses": ["busy"]}}, 404),
    ("DELETE", f"{C}/contacts/1", OP, {}, 404),
    ("POST", f"{C}/contacts/remove", OP, {"json": {"ids": [1]}}, 404),
    ("POST", f"{C}/contacts/1/callback", OP, {"json": {"at": "2030-01-01T09:00:00Z"}}, 404),
    ("DELETE", f"{C}/contacts/1/callback", OP, {}, 404),
    ("GET", f"{C}/callbacks", V, {}, 404),
    ("GET", f"{C}/records", V, {}, 404),
    ("GET", f"{C}/records.csv", V, {}, 404),
    ("GET", f"{C}/analytics", V, {}, 404),
    ("GET", f"{C}/why", V, {}, 404),
    ("GET", "/nodes", V, {}, 200),
    ("GET", "/nodes/gone", V, {}, 404),
    ("PUT", "/nodes/gone", A, {"json": {}}, 201),
    ("DELETE", "/nodes/gone", A, {}, 200),
    ("GET", "/trunk-groups", V, {}, 200),
    ("GET", "/trunk-groups/gone", V, {}, 404),
    ("PUT", "/trunk-groups/gone", A, {"json": {"trunks": {"t": ["ghost"]}}}, 422),
    ("DELETE", "/trunk-groups/gone", A, {}, 404),
    ("GET", "/global-cap", V, {}, 200),
    ("PUT", "/global-cap", A, {"json": {}}, 200),
    ("POST", "/dnc", OP, {"json": {"numbers": ["+12125550100"]}}, 200),
    ("POST", "/dnc/remove", A, {"json": {"numbers": ["+12125550100"]}}, 200),
    ("POST", "/dnc/check", V, {"json": {"numbers": ["+12125550100"]}}, 200),
    ("POST", "/dnc/import", OP, {"content": b"+12125550100\n"}, 200),
    ("POST", f"{C}/dnc", OP, {"json": {"numbers": ["+12125550100"]}}, 404),
    ("POST", f"{C}/dnc/remove", A, {"json": {"numbers": ["+12125550100"]}}, 404),
    ("POST", f"{C}/dnc/check", V, {"json": {"numbers": ["+12125550100"]}}, 404),
    ("POST", f"{C}/dnc/import", OP, {"content": b"+12125550100\n"}, 404),
    ("GET", "/trunks/gone/breaker", V, {}, 200),
    ("POST", "/trunks/gone/breaker/reset", A, {}, 200),
]


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


# -- tokens and settings ----------------------------------------------------------------------


def test_parse_tokens_roles_and_aliases() -> None:
    tokens = parse_tokens(
        " admin:aaaaaaaaaaaaaaaa1 , administrator:aaaaaaaaaaaaaaaa2,"
        "operator:bbbbbbbbbbbbbbbb,viewer:cccccccccccccccc,"
    )
    assert tokens == {
        "aaaaaaaaaaaaaaaa1": A,
        "aaaaaaaaaaaaaaaa2": A,
        "bbbbbbbbbbbbbbbb": OP,
        "cccccccccccccccc": V,
    }


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "names no token"),
        ("root:aaaaaaaaaaaaaaaa", "role:token"),
        ("aaaaaaaaaaaaaaaa", "role:token"),
        ("admin:short", "16 to 256"),
        ("admin:has space inside token", "printable ASCII"),
        ("admin:tökentökentökentöken", "printable ASCII"),
        ("admin:aaaaaaaaaaaaaaaa,viewer:aaaaaaaaaaaaaaaa", "already given"),
    ],
)
def test_parse_tokens_refuses(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        parse_tokens(text)
    assert "aaaaaaaaaaaaaaaa" not in str(info.value)  # tokens never shown


def test_settings_from_env() -> None:
    settings = ApiSettings.from_env(
        {
            "DIALER_API_TOKENS": "viewer:cccccccccccccccc",
            "DIALER_API_HOST": "0.0.0.0",
            "DIALER_API_PORT": "9000",
            "DIALER_API_METRICS_PUBLIC": "yes",
            "DIALER_API_MAX_UPLOAD_MB": "5",
        }
    )
    assert settings.tokens == {"cccccccccccccccc": V}
    assert (settings.host, settings.port, settings.metrics_public) == ("0.0.0.0", 9000, True)
    assert settings.max_upload_bytes == 5 * 1024 * 1024
    assert settings.max_body_bytes == 64 * 1024
    assert "cccccccccccccccc" not in repr(settings)
    default = ApiSettings.from_env({"DIALER_API_TOKENS": "admin:aaaaaaaaaaaaaaaa"})
    assert (default.host, default.port, default.metrics_public) == ("127.0.0.1", 8080, False)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"DIALER_API_TOKENS": " "},
        {"DIALER_API_TOKENS": "admin:aaaaaaaaaaaaaaaa", "DIALER_API_PORT": "70000"},
        {"DIALER_API_TOKENS": "admin:aaaaaaaaaaaaaaaa", "DIALER_API_PORT": "-1"},
        {"DIALER_API_TOKENS": "admin:aaaaaaaaaaaaaaaa", "DIALER_API_METRICS_PUBLIC": "maybe"},
    ],
)
def test_settings_refuse_bad_env(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        ApiSettings.from_env(env)


def test_role_order() -> None:
    allowed = {(r, n) for r in Role for n in Role if r.allows(n)}
    assert allowed == {(V, V), (OP, V), (OP, OP), (A, V), (A, OP), (A, A)}


def test_token_auth_resolves_only_exact_tokens() -> None:
    auth = TokenAuth(TOKENS)
    assert auth.role_of(f"Bearer {ADMIN_TOKEN}") is A
    assert auth.role_of(f"bearer {ADMIN_TOKEN}") is A
    same_length = ADMIN_TOKEN[:-1] + ("Y" if ADMIN_TOKEN[-1] != "Y" else "Z")
    assert len(same_length) == len(ADMIN_TOKEN)
    for header in (
        None,
        "",
        f"Bearer {same_length}",
        f"Bearer {ADMIN_TOKEN[:-1]}",
        f"Bearer {ADMIN_TOKEN}x",
        f"Basic {ADMIN_TOKEN}",
        ADMIN_TOKEN,
        "Bearer ",
        "Bearer \u00e9\u00e9",
    ):
        assert auth.role_of(header) is None, header


def test_every_configured_token_is_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    auth = TokenAuth(TOKENS)
    assert auth.role_of(f"Bearer {ADMIN_TOKEN}") is A  # the first token: no early exit
    assert sorted(b for _, b in seen) == sorted(t.encode() for t in TOKENS)
    assert {a for a, _ in seen} == {ADMIN_TOKEN.encode()}
    seen.clear()
    assert auth.role_of("Bearer nope") is None
    assert len(seen) == len(TOKENS)


# -- every endpoint, every role ---------------------------------------------------------------


def test_table_is_complete() -> None:
    """The permission table above covers exactly the app's endpoints, with the same roles."""
    expected = {(m, p.replace(str(GONE), "{campaign_id}"), r) for m, p, r, _, _ in PERMISSIONS}
    expected = {(m, p.replace("/lists/1/", "/lists/{list_id}/"), r) for m, p, r in expected}
    expected = {(m, p.replace("/contacts/1", "/contacts/{contact_id}"), r) for m, p, r in expected}
    expected = {(m, p.replace("/nodes/gone", "/nodes/{node_id}"), r) for m, p, r in expected}
    group = ("/trunk-groups/gone", "/trunk-groups/{name}")
    expected = {(m, p.replace(*group), r) for m, p, r in expected}
    expected = {(m, p.replace("/trunks/gone/", "/trunks/{trunk}/"), r) for m, p, r in expected}
    actual = {(e.method, e.template, e.role) for e in endpoints(metrics=True)}
    assert actual == expected


@pytest.mark.redis
async def test_permissions_of_every_endpoint(store: RedisStore) -> None:
    metrics = DialerMetrics("api-test")
    async with api_client(store, metrics=metrics) as client:
        for method, path, needed, body, allowed_status in PERMISSIONS:
            for role in (None, V, OP, A):
                response = await client.request(method, path, headers=bearer(role), **body)
                what = f"{method} {path} as {role}"
                if needed is None or (role is not None and role.allows(needed)):
                    assert response.status_code == allowed_status, (what, response.text)
                elif role is None:
                    assert response.status_code == 401, what
                    assert error_of(response)["code"] == "unauthenticated"
                    assert response.headers["www-authenticate"].startswith("Bearer")
                else:
                    assert response.status_code == 403, what
                    error = error_of(response)
                    assert error["code"] == "forbidden"
                    assert error["details"] == {"required_role": needed, "role": role}
                    assert f"the {needed} role" in error["message"]
                    assert f"this token has the {role} role" in error["message"]


@pytest.mark.redis
async def test_forbidden_message_names_the_role(store: RedisStore) -> None:
    async with api_client(store) as client:
        response = await client.post(f"{C}/stop", headers=bearer(OP))
        assert error_of(response)["message"] == (
            "to stop a campaign you need the administrator role; this token has the operator role"
        )
        response = await client.post(f"{C}/start", headers=bearer(V))
        assert error_of(response)["message"] == (
            "to start a campaign you need the operator role or higher; "
            "this token has the viewer role"
        )


@pytest.mark.redis
async def test_wrong_tokens_of_equal_length_are_refused(store: RedisStore) -> None:
    async with api_client(store) as client:
        for i in range(len(ADMIN_TOKEN)):
            flipped = ADMIN_TOKEN[:i] + chr(ord(ADMIN_TOKEN[i]) ^ 1) + ADMIN_TOKEN[i + 1 :]
            response = await client.get(
                "/campaigns", headers={"Authorization": f"Bearer {flipped}"}
            )
            assert response.status_code == 401, flipped


@pytest.mark.redis
async def test_metrics_can_be_public(store: RedisStore) -> None:
    metrics = DialerMetrics("api-test")
    async with api_client(store, metrics=metrics, metrics_public=True) as client:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert "dialer_engine_info" in response.text
        assert (await client.get("/campaigns")).status_code == 401
    async with api_client(store) as client:  # no metrics given: no /metrics route
        response = await client.get("/metrics", headers=bearer(V))
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"


@pytest.mark.redis
def test_app_refuses_bad_configuration(store: RedisStore) -> None:
    from dialer.api import create_app

    with pytest.raises(ConfigError):
        create_app(store, tokens={"short": V})
    with pytest.raises(ValueError, match="positive"):
        create_app(store, tokens=TOKENS, max_body_bytes=0)
