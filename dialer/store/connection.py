"""A redis-py asyncio connection that packs commands with hiredis (C) instead of Python.

redis-py's synchronous client packs with ``hiredis.pack_command`` when hiredis is installed
(``HiredisRespSerializer``); its asyncio ``Connection`` always packs in Python, one ``Encoder``
call per argument: about a third of the engine's Redis cost per call was spent there (a finish
carries ~25 arguments). This class mirrors ``HiredisRespSerializer.pack`` for the asyncio client.
Arguments are str, bytes, int or float, as everywhere in this package (hiredis formats floats
with ``repr`` like redis-py's Encoder).

``redis+sentinel://`` URLs (:func:`parse_sentinel_url`) give a client that follows the master
the sentinels name (:func:`sentinel_client`), with the same packing; ``redis+cluster://`` URLs a
Redis Cluster client (:func:`cluster_client`, redis-py's own packing: README "Redis Cluster").
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.exceptions import DataError, RedisError

from dialer.errors import StoreError


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


# -- Redis Sentinel ------------------------------------------------------------------------

SENTINEL_SCHEME = "redis+sentinel"
_SENTINEL_PORT = 26379
#: WAIT's defaults (see :class:`ReplicaWait`): one replica, 200 ms.
_MIN_REPLICAS = 1
_REPLICA_TIMEOUT_MS = 200
_QUERY_KEYS = frozenset(
    {"min_replicas", "replica_timeout_ms", "sentinel_username", "sentinel_password"}
)


@dataclass(frozen=True, slots=True)
class ReplicaWait:
    """``WAIT min_replicas timeout_ms`` after each engine round trip that writes claims,
    "originated" marks or results (``RedisStore.settle_and_claim``): a claim is dialed only once
    that many replicas hold it, so a promotion cannot lose a claim whose call is on the switch
    (README, "Redis Sentinel"). ``min_replicas`` 0 turns it off."""

    min_replicas: int = _MIN_REPLICAS
    timeout_ms: int = _REPLICA_TIMEOUT_MS


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db][?query]``

    The hosts are the sentinels (port 26379 by default; an IPv6 address in brackets), the
    service is the master's name in the sentinels' configuration (``sentinel monitor <name>``),
    the user and password (percent-encoded) are the master's. Query: ``sentinel_username``,
    ``sentinel_password`` (the sentinels' own, when they require one: ``requirepass`` in
    sentinel.conf), ``min_replicas`` and ``replica_timeout_ms`` (:class:`ReplicaWait`).
    """

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    wait: ReplicaWait = ReplicaWait()


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() == SENTINEL_SCHEME


def _sentinel_host(text: str) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad sentinel address {text[:60]!r}")
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
    if not host or any(c in host for c in "/?#@ "):
        raise ValueError(f"bad sentinel address {text[:60]!r}")
    if not port_text:
        return host, _SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad sentinel port in {text[:60]!r}")
    return host, int(port_text)


def _whole(query: dict[str, list[str]], name: str, default: int, maximum: int) -> int:
    values = query.get(name)
    if not values:
        return default
    text = values[-1]
    if not text.isdigit() or int(text) > maximum:
        raise ValueError(f"{name} must be a whole number from 0 to {maximum}, not {text[:20]!r}")
    return int(text)


def _last(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of a ``redis+sentinel://`` URL (ValueError naming what is wrong; the
    message never repeats a password)."""
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != SENTINEL_SCHEME or not sep:
        raise ValueError(f"a Sentinel URL starts with {SENTINEL_SCHEME}://")
    rest, _, fragment = rest.partition("#")
    rest, _, query_text = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        hosts = netloc
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_sentinel_host(h.strip()) for h in hosts.split(","))
    service, _, db_text = path.strip("/").partition("/")
    service = unquote(service)
    if not service or any(c.isspace() for c in service):
        raise ValueError(
            f"a Sentinel URL names the master after the hosts: {SENTINEL_SCHEME}://"
            "host:26379,host2:26379/mymaster/0"
        )
    if db_text and (not db_text.isdigit() or int(db_text) > 15):
        raise ValueError(f"bad database number {db_text[:20]!r} (0 to 15)")
    try:
        query = parse_qs(query_text, keep_blank_values=True, strict_parsing=bool(query_text))
    except ValueError:
        raise ValueError("bad query string in the Sentinel URL") from None
    unknown = sorted(set(query) - _QUERY_KEYS)
    if unknown or fragment:
        raise ValueError(f"unknown Sentinel URL option {(unknown or [fragment])[0][:40]!r}")
    wait = ReplicaWait(
        _whole(query, "min_replicas", _MIN_REPLICAS, 16),
        _whole(query, "replica_timeout_ms", _REPLICA_TIMEOUT_MS, 60_000),
    )
    if wait.min_replicas and not wait.timeout_ms:
        raise ValueError("replica_timeout_ms must be above 0 (WAIT 0 would wait for ever)")
    return SentinelUrl(
        sentinels=sentinels,
        service=service,
        db=int(db_text) if db_text else 0,
        username=username,
        password=password,
        sentinel_username=_last(query, "sentinel_username"),
        sentinel_password=_last(query, "sentinel_password"),
        wait=wait,
    )


class HiredisPackedSentinelConnection(_HiredisPacking, SentinelManagedConnection):
    """redis+sentinel://: a connection to whichever server the sentinels call the master."""


class SentinelRedis(aioredis.Redis):
    """The master's client; closing it closes its connections to the sentinels too."""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            if self.sentinels is not None:
                await self.sentinels.aclose()


def sentinel_client(url: str, **kwargs: Any) -> tuple[SentinelRedis, ReplicaWait]:
    """A client of the master a ``redis+sentinel://`` URL names, and the URL's WAIT.

    redis-py's SentinelConnectionPool asks the sentinels for the master's address on every
    new connection, drops its idle connections when the address changed, and turns a READONLY
    reply (the master it still talks to was demoted) into a ConnectionError: the ``retry`` in
    ``kwargs`` then reconnects to the promoted replica, and the store's callers see a
    StoreError only while no master is known (from the kill until the promotion).
    """
    parts = parse_sentinel_url(url)
    sentinel_kwargs: dict[str, Any] = {
        k: v for k, v in kwargs.items() if k.startswith("socket_") or k == "driver_info"
    }
    if parts.sentinel_password is not None:
        sentinel_kwargs["password"] = parts.sentinel_password
    if parts.sentinel_username is not None:
        sentinel_kwargs["username"] = parts.sentinel_username
    sentinel = Sentinel(list(parts.sentinels), sentinel_kwargs=sentinel_kwargs)
    client = sentinel.master_for(
        parts.service,
        redis_class=SentinelRedis,
        connection_class=HiredisPackedSentinelConnection,
        db=parts.db,
        username=parts.username,
        password=parts.password,
        **kwargs,
    )
    client.sentinels = sentinel
    return client, parts.wait


def replica_shortfall(wait: ReplicaWait, reply: object) -> StoreError | None:
    """WAIT's reply (the replicas that acknowledged) as the error of the writes it followed,
    or None when enough replicas have them."""
    if isinstance(reply, int) and reply >= wait.min_replicas:
        return None
    return ReplicaShortfall(
        f"writes on {reply if isinstance(reply, int) else 0} of {wait.min_replicas} replicas "
        f"after {wait.timeout_ms} ms ({reply if isinstance(reply, Exception) else 'WAIT'}): "
        "not dialed, results kept for a retry"
    )


class ReplicaShortfall(StoreError):
    """The master did not get a write onto ``min_replicas`` replicas in time (WAIT)."""


async def follow_master(client: aioredis.Redis) -> None:
    """Ask the sentinels which server is the master now (after a WAIT that found no replica);
    if they name another one, the pool closes its idle connections to the old one, so the next
    round trip goes to the promoted master. Without this, pooled connections keep writing to a
    master that was replaced but is still alive (a partition, ``SENTINEL FAILOVER``) until the
    sentinels demote it (~11 s in the tests), writes that its demotion then discards."""
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        with contextlib.suppress(RedisError, OSError):
            await pool.get_master_address()  # type: ignore[no-untyped-call]


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
