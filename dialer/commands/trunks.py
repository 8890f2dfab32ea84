"""Trunks' circuit breakers: see one, or reset it (an administrator's override).

The breaker's states and moves are :mod:`dialer.domain.breaker`'s; the store keeps one per
trunk, shared by every engine (:mod:`dialer.store.breaker`).
"""

from __future__ import annotations

from dialer.domain.campaign import TrunkLimits
from dialer.store.breaker import BreakerStore, BreakerView
from dialer.store.redis_store import RedisStore

__all__ = ["TrunkCommands", "trunk_name"]


def trunk_name(text: str) -> str:
    """``text`` if it is a trunk name as campaigns and DIALER_TRUNKS spell it; ValidationError
    otherwise."""
    return TrunkLimits.unlimited(text).name


class TrunkCommands:
    def __init__(self, store: RedisStore) -> None:
        self.breakers = BreakerStore(store)

    async def breaker(self, trunk: str) -> BreakerView:
        """The trunk's breaker (a trunk never reported on is closed)."""
        return await self.breakers.view(trunk_name(trunk))

    async def reset(self, trunk: str) -> BreakerView:
        """Close the trunk's breaker at once (runs and trips cleared); the breaker after."""
        name = trunk_name(trunk)
        await self.breakers.reset(name)
        return await self.breakers.view(name)
