"""RedisStore: campaigns, contacts, leases and call records in Redis, behind async methods.

Every method raises :class:`~dialer.errors.StoreError` when Redis fails (connection refused or
lost, timeout, script error) and :class:`~dialer.errors.NotFound` for a missing campaign, list
or contact; lifecycle refusals raise :class:`~dialer.errors.TransitionRefused`. Key names and
the schema are in :mod:`dialer.store.keys`; the scripts' contracts in their ``.lua`` headers.

Design: one object, one module per aggregate. :class:`RedisStore` is composed of one mixin per
aggregate: :class:`~.campaigns.CampaignsMixin`, :class:`~.contacts.ContactsMixin` (lists and
contacts), :class:`~.claims.ClaimsMixin`, :class:`~.results.ResultsMixin` (results, records,
figures) and :class:`~.leases.LeasesMixin`; each holds its aggregate's methods, constants and
reply decoders in its own module, over :class:`~.core.StoreCore` (the client, the keys and the
registered scripts, which this class sets up). Callers keep one ``store`` with the same methods
as before the split, and no method is written twice: a facade of aggregates as attributes
would have needed a forwarding method per call site (~40), where mixins need none. Cross-
aggregate needs go through plain functions (``core.lane_keys``, ``results.finish_args``,
``campaigns.campaign_record``), never through another mixin's methods. Shared reply helpers
are in :mod:`.common`; companion stores (do-not-call lists, breakers, callbacks, recycling,
caller ids, engines) wrap a ``RedisStore`` in their own modules.
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

# Re-exported: the names modules imported from here before the split (``ACTIVE_STATUSES`` in
# the engine, the helpers in companion stores on other branches).
from .campaigns import ACTIVE_STATUSES as ACTIVE_STATUSES
from .campaigns import CampaignsMixin
from .claims import ClaimsMixin
from .common import _chunks as _chunks
from .common import _decode_map as _decode_map
from .common import _s as _s
from .common import _store_error as _store_error
from .common import _strs as _strs
from .common import _translated as _translated
from .connection import (
    ReplicaWait,
    cluster_client,
    connection_class_for,
    is_cluster_url,
    is_sentinel_url,
    sentinel_client,
)
from .contacts import ContactsMixin
from .keys import CLUSTER_SLOT_GROUPS, Keys
from .leases import LeasesMixin
from .results import ResultsMixin
from .scripts import Scripts


class RedisStore(CampaignsMixin, ContactsMixin, ClaimsMixin, ResultsMixin, LeasesMixin):
    """The dialer's shared state. Safe to use from many tasks and many processes."""

    def __init__(
        self, client: aioredis.Redis, namespace: str = "dialer", replicas: ReplicaWait | None = None
    ) -> None:
        self._r = client
        cluster = isinstance(client, RedisCluster)  # keys tagged per slot group (keys.py)
        self.keys = Keys(namespace, CLUSTER_SLOT_GROUPS if cluster else 0)
        self._lua = Scripts.register(client)
        # WAIT after the engine's claims and writes (None or 0 replicas: none); see
        # settle_and_claim and README "Redis Sentinel"
        self.replicas = replicas if replicas is not None and replicas.min_replicas else None

    @classmethod
    def from_url(cls, url: str, namespace: str = "dialer") -> RedisStore:
        """A store on its own client; a dropped connection is retried a few times (~0.5 s).

        Retrying is safe: claim replays by call id, finish/release/add_contacts are idempotent.
        (``Redis.from_url`` alone does not retry, unlike the ``Redis()`` constructor.)
        """
        common: dict[str, Any] = dict(
            socket_connect_timeout=5,
            socket_timeout=10,
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), retries=5),
            # no CLIENT SETINFO on connect: not in the dialer's ACL (ops/redis/users.acl)
            driver_info=None,
        )
        if is_cluster_url(url):  # redis+cluster://host:port[,host:port...]/ (README)
            return cls(cast(aioredis.Redis, cluster_client(url, **common)), namespace)
        if is_sentinel_url(url):  # redis+sentinel://: the master the sentinels name
            master, replicas = sentinel_client(url, **common)
            return cls(master, namespace, replicas)
        client = aioredis.Redis.from_url(url, connection_class=connection_class_for(url), **common)
        return cls(client, namespace)

    @property
    def scripts(self) -> Scripts:
        """The registered Lua scripts, for companion stores (``breaker.BreakerStore``)."""
        return self._lua

    @property
    def client(self) -> aioredis.Redis:
        """The redis-py client, for companion stores on the same keys (``dnc.DncStore``)."""
        return self._r

    async def aclose(self) -> None:
        await self._r.aclose()

    @_translated
    async def ping(self) -> None:
        await self._r.ping()
