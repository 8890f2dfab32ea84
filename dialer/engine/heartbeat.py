"""The engine's heartbeat loop: tells every reader (``dialer status``, ``GET .../why``) that this
engine process is alive, whether its PBX connection is up, and its trunk limits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from dialer.domain.campaign import TrunkLimits
from dialer.errors import StoreError
from dialer.store.engines import BEAT_INTERVAL_S, BEAT_TTL_MS, EngineRegistry

__all__ = ["heartbeat"]

log = logging.getLogger(__name__)


async def heartbeat(
    registry: EngineRegistry,
    owner: str,
    pbx_connected: Callable[[], bool],
    trunks: Mapping[str, TrunkLimits],
    *,
    interval: float = BEAT_INTERVAL_S,
    ttl_ms: int = BEAT_TTL_MS,
) -> None:
    """Beat every ``interval`` s until cancelled. A stopped engine's entry is left to expire
    (``ttl_ms``), as a crashed one's: no Redis command runs under cancellation."""
    while True:
        try:
            await registry.beat(owner, pbx_connected=pbx_connected(), trunks=trunks, ttl_ms=ttl_ms)
        except StoreError as exc:
            log.warning("heartbeat: store unavailable: %s", exc)
        await asyncio.sleep(interval)
