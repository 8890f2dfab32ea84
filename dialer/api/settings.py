"""Typed API settings, built from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from dialer.errors import ConfigError

from .auth import Role, parse_tokens

JSON_BODY_LIMIT = 64 * 1024
UPLOAD_LIMIT = 200 * 1024 * 1024

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Where the API listens, who may use it, and its body limits.

    ``metrics_public``: serve ``GET /metrics`` without a token, for a Prometheus scraper that
    cannot send one (keep the port off the internet then); otherwise it needs the viewer role.
    """

    tokens: Mapping[str, Role] = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    metrics_public: bool = False
    max_body_bytes: int = JSON_BODY_LIMIT
    max_upload_bytes: int = UPLOAD_LIMIT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        """DIALER_API_TOKENS (required: ``admin:T1,operator:T2,viewer:T3``), DIALER_API_HOST,
        DIALER_API_PORT, DIALER_API_METRICS_PUBLIC (true/false), DIALER_API_MAX_UPLOAD_MB."""
        env = os.environ if env is None else env
        text = env.get("DIALER_API_TOKENS", "")
        if not text.strip():
            raise ConfigError("DIALER_API_TOKENS is not set: e.g. admin:<token>,viewer:<token>")
        kwargs: dict[str, object] = {"tokens": parse_tokens(text)}
        if env.get("DIALER_API_HOST"):
            kwargs["host"] = env["DIALER_API_HOST"]
        if env.get("DIALER_API_PORT"):
            kwargs["port"] = _int(env, "DIALER_API_PORT", 0, 65535)
        if "DIALER_API_METRICS_PUBLIC" in env:
            kwargs["metrics_public"] = _bool(env, "DIALER_API_METRICS_PUBLIC")
        if env.get("DIALER_API_MAX_UPLOAD_MB"):
            mb = _int(env, "DIALER_API_MAX_UPLOAD_MB", 1, 100_000)
            kwargs["max_upload_bytes"] = mb * 1024 * 1024
        return cls(**kwargs)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, minimum: int, maximum: int) -> int:
    text = env[name].strip()
    if not text.isascii() or not text.isdigit() or not minimum <= int(text) <= maximum:
        raise ConfigError(f"{name} must be a whole number from {minimum} to {maximum}")
    return int(text)


def _bool(env: Mapping[str, str], name: str) -> bool:
    text = env[name].strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, not {env[name][:20]!r}")
