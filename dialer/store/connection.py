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
from urllib.parse import unquote

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
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


# ---------------------------------------------------------------------------- Redis Cluster

CLUSTER_SCHEME = "redis+cluster"


#: What the dialer's Redis user needs on a Cluster beyond ops/redis/users.acl: redis-py's
#: cluster client reads the slot map (CLUSTER SLOTS) and the commands' key positions (COMMAND).
CLUSTER_ACL_EXTRA = ("+cluster|slots", "+command")


def is_cluster_url(url: str) -> bool:
    """``redis+cluster://[user:password@]host:port[,host:port...]/``: a Redis Cluster's seeds."""
    return url.partition("://")[0].lower() == CLUSTER_SCHEME


def cluster_nodes(url: str) -> tuple[list[tuple[str, int]], str | None, str | None]:
    """The seed nodes of a ``redis+cluster://`` URL (at least one; the others are found), its
    user name and password (percent-decoded; None when absent)."""
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != CLUSTER_SCHEME or not sep:
        raise ValueError(f"a Redis Cluster URL starts with {CLUSTER_SCHEME}://: {url[:40]!r}")
    netloc = rest.partition("/")[0]
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    if "?" in hosts:
        raise ValueError("redis+cluster:// takes no options")
    nodes: list[tuple[str, int]] = []
    for seed in hosts.split(","):
        host, colon, port = seed.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"Redis Cluster seed must be host:port: {seed[:40]!r}")
        nodes.append((host.strip("[]"), int(port)))
    return nodes, username, password


def cluster_client(url: str, **kwargs: Any) -> RedisCluster:
    """A redis-py ``RedisCluster`` on the seed nodes of a ``redis+cluster://`` URL.

    It routes each command by its keys' slot, splits non-transactional pipelines per node,
    follows MOVED / ASK, and sends SCRIPT LOAD to every master (EVALSHA's NOSCRIPT fallback
    then loads a script where it is missing). Its connections pack commands in Python:
    RedisCluster builds them itself (no ``connection_class``).
    """
    nodes, username, password = cluster_nodes(url)
    seeds = [ClusterNode(host, port) for host, port in nodes]
    return RedisCluster(startup_nodes=seeds, username=username, password=password, **kwargs)
