"""Roles and bearer tokens.

Three roles, each allowed everything the one below it is:

- ``viewer``: read only (campaigns, contacts, records, analytics, metrics);
- ``operator``: also create and edit campaigns, upload lists, start, pause and resume;
- ``administrator``: also stop, cancel (stop a list, stop every campaign) and delete: the only
  role that can end calling for good.

Tokens come from ``DIALER_API_TOKENS="admin:TOKEN1,operator:TOKEN2,viewer:TOKEN3"`` (several
tokens per role allowed; ``admin`` and ``administrator`` both name the top role). A presented
token is compared with *every* configured token by :func:`hmac.compare_digest`, so the time
taken tells nothing about which token, or which prefix of one, came close.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from enum import StrEnum

from dialer.errors import ConfigError

MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 256


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMINISTRATOR = "administrator"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMINISTRATOR: 2}
_ROLE_NAMES = {
    "viewer": Role.VIEWER,
    "operator": Role.OPERATOR,
    "admin": Role.ADMINISTRATOR,
    "administrator": Role.ADMINISTRATOR,
}


def _check_token(token: str, where: str) -> None:
    if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH:
        raise ConfigError(
            f"{where}: a token must have {MIN_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH} characters"
        )
    if not token.isascii() or not all(ch.isprintable() and not ch.isspace() for ch in token):
        raise ConfigError(f"{where}: a token must be printable ASCII without spaces or commas")


def parse_tokens(text: str) -> dict[str, Role]:
    """``"admin:T1,operator:T2,viewer:T3"`` -> {token: role}; ConfigError on bad input.

    Tokens never appear in error messages.
    """
    tokens: dict[str, Role] = {}
    for n, part in enumerate((p.strip() for p in text.split(",")), start=1):
        if not part:
            continue
        where = f"DIALER_API_TOKENS entry {n}"
        name, sep, token = part.partition(":")
        role = _ROLE_NAMES.get(name.strip().lower())
        if not sep or role is None:
            raise ConfigError(f"{where}: expected role:token with role admin, operator or viewer")
        _check_token(token, where)
        if token in tokens:
            raise ConfigError(f"{where}: this token is already given (each token has one role)")
        tokens[token] = role
    if not tokens:
        raise ConfigError("DIALER_API_TOKENS names no token: the API would refuse everyone")
    return tokens


class TokenAuth:
    """Resolves an ``Authorization`` header to a role, in constant time per configured token."""

    def __init__(self, tokens: Mapping[str, Role]) -> None:
        for token, role in tokens.items():
            _check_token(token, "API token")
            if not isinstance(role, Role):
                raise ConfigError(f"API token role must be a Role, got {role!r}")
        self._tokens = [(token.encode("ascii"), role) for token, role in tokens.items()]

    def role_of(self, authorization: str | None) -> Role | None:
        """The role of a ``Bearer <token>`` header value; None when missing or unknown."""
        if not authorization:
            return None
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        candidate = presented.strip().encode("latin-1", "replace")
        found: Role | None = None
        for token, role in self._tokens:  # no early exit: every token is compared
            if hmac.compare_digest(candidate, token):
                found = role
        return found
