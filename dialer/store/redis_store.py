"""RedisStore: campaigns, contacts, leases and call records in Redis, behind async methods.

Every method raises :class:`~dialer.errors.StoreError` when Redis fails (connection refused or
lost, timeout, script error) and :class:`~dialer.errors.NotFound` for a missing campaign, list
or contact; lifecycle refusals raise :class:`~dialer.errors.TransitionRefused`. Key names and
the schema are in :mod:`dialer.store.keys`; the scripts' contracts in their ``.lua`` headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from dialer.errors import LeaseLost

from .campaigns import ACTIVE_STATUSES as ACTIVE_STATUSES
from .campaigns import CampaignsMixin
from .claims import ClaimsMixin
from .common import _chunks as _chunks
from .common import _decode_map as _decode_map
from .common import _s as _s
from .common import _store_error as _store_error
from .common import _strs as _strs
from .common import _translated as _translated
from .connection import connection_class_for
from .contacts import ContactsMixin
from .keys import Keys
from .leases import LeasesMixin
from .models import FinishItem, Usage, Written
from .results import ResultsMixin
from .scripts import Scripts


class RedisStore(CampaignsMixin, ContactsMixin, ClaimsMixin, ResultsMixin, LeasesMixin):
    """The dialer's shared state. Safe to use from many tasks and many processes."""

    def __init__(self, client: aioredis.Redis, namespace: str = "dialer") -> None:
        self._r = client
        self.keys = Keys(namespace)
        self._lua = Scripts.register(client)

    @classmethod
    def from_url(cls, url: str, namespace: str = "dialer") -> RedisStore:
        """A store on its own client; a dropped connection is retried a few times (~0.5 s).

        Retrying is safe: claim replays by call id, finish/release/add_contacts are idempotent.
        (``Redis.from_url`` alone does not retry, unlike the ``Redis()`` constructor.)
        """
        client = aioredis.Redis.from_url(
            url,
            connection_class=connection_class_for(url),
            socket_connect_timeout=5,
            socket_timeout=10,
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), retries=5),
            # no CLIENT SETINFO on connect: not in the dialer's ACL (ops/redis/users.acl)
            driver_info=None,
        )
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

    @_translated
    async def mark_originated(self, call_id: str, cid: int, *, owner: str = "") -> bool:
        """The PBX accepted the originate. False if the call was not in state claimed.
        LeaseLost when ``owner`` is given and another owner holds the call."""
        reply = await self.settle_and_claim({cid: [call_id]}, (), owner=owner)
        if reply.error is not None:
            raise reply.error
        if reply.lost:
            raise LeaseLost(f"call {call_id} is owned by another engine")
        return reply.moved == 1

    @_translated
    async def settle(
        self, originated: Mapping[int, Sequence[str]], finished: Sequence[FinishItem]
    ) -> tuple[int, list[Written]]:
        """Mark calls originated (per campaign) and end attempts, in one pipelined round trip.

        Returns how many calls went from claimed to originated, and per finished item what
        :meth:`finish_batch` returns. Both scripts are idempotent: the whole batch is sent
        again once if Redis had lost the scripts (NOSCRIPT after a restart).
        """
        reply = await self.settle_and_claim(originated, finished)
        if reply.error is not None:
            raise reply.error
        return reply.moved, reply.written

    @_translated
    async def inflight_calls(self, cid: int) -> list[str]:
        """Calls holding a campaign lease (expired ones included until settled)."""
        return _strs(await self._r.zrange(self.keys.inflight(cid), 0, -1))

    @_translated
    async def add_usage(self, cid: int, *, attempts: int, talk_seconds: float) -> Usage:
        """Count what an attempt used of the campaign's plan; returns the new totals."""
        key = self.keys.usage(cid)
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "attempts", attempts)
            pipe.hincrbyfloat(key, "talk_seconds", talk_seconds)
            total_attempts, total_seconds = await pipe.execute()
        return Usage(int(total_attempts), float(total_seconds))

    def control_channel(self) -> str:
        return self.keys.control

    @_translated
    async def publish(self, message: str) -> None:
        await self._r.publish(self.keys.control, message)
