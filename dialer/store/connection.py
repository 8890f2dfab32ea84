"""A redis-py asyncio connection that packs commands with hiredis (C) instead of Python.

redis-py's synchronous client packs with ``hiredis.pack_command`` when hiredis is installed
(``HiredisRespSerializer``); its asyncio ``Connection`` always packs in Python, one ``Encoder``
call per argument: about a third of the engine's Redis cost per call was spent there (a finish
carries ~25 arguments). This class mirrors ``HiredisRespSerializer.pack`` for the asyncio client.
Arguments are str, bytes, int or float, as everywhere in this package (hiredis formats floats
with ``repr`` like redis-py's Encoder).
"""

from __future__ import annotations

from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import DataError


class _HiredisPacking:
    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        # a command name with a space ("SCRIPT LOAD") is sent as separate words, as redis-py does
        if isinstance(first, str):
            if " " in first:
                args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:
            raise DataError(str(exc)) from exc


class HiredisPackedConnection(_HiredisPacking, aioredis.Connection):
    """redis://"""


class HiredisPackedSSLConnection(_HiredisPacking, aioredis.SSLConnection):
    """rediss://"""


class HiredisPackedUnixConnection(_HiredisPacking, aioredis.UnixDomainSocketConnection):
    """unix://"""


_BY_SCHEME: dict[str, type[aioredis.connection.AbstractConnection]] = {
    "redis": HiredisPackedConnection,
    "rediss": HiredisPackedSSLConnection,
    "unix": HiredisPackedUnixConnection,
}


def connection_class_for(url: str) -> type[aioredis.connection.AbstractConnection]:
    """The connection class for a Redis URL (its scheme decides TCP, TLS or a Unix socket)."""
    scheme = url.partition("://")[0].lower()
    try:
        return _BY_SCHEME[scheme]
    except KeyError:
        raise ValueError(
            f"Redis URL scheme must be redis://, rediss:// or unix://: {url[:40]!r}"
        ) from None
