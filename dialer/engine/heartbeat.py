"""The engine's heartbeat loop: tells every reader (``dialer status``, ``GET .../why``) that this
engine process is alive, whether its PBX connection is up, and its trunk limits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from dialer.domain.campaign import TrunkLimits
from dialer.engine.cancel import checkpoint
from dialer.errors import StoreError
from dialer.store.engines import BEAT_INTERVAL_S, BEAT_TTL_MS, EngineRegistry

__all__ = ["LEAVE_TIMEOUT_S", "heartbeat", "on_clean_stop"]

log = logging.getLogger(__name__)

LEAVE_TIMEOUT_S = 1.0  # a stop never waits longer than this for Redis to forget the engine


async def on_clean_stop(what: str, farewell: Callable[[], Awaitable[None]]) -> None:
    """Run ``farewell`` as the loop stops (cancelled: a clean stop), at most
    :data:`LEAVE_TIMEOUT_S`: an unreachable Redis must not hold the stop up; the entry then
    expires by itself, as a crashed engine's does."""
    try:
        async with asyncio.timeout(LEAVE_TIMEOUT_S):
            await farewell()
    except (StoreError, TimeoutError) as exc:
        log.warning("%s: not removed on stop (%s): it expires by itself", what, exc or "timeout")


async def heartbeat(
    registry: EngineRegistry,
    owner: str,
    pbx_connected: Callable[[], bool],
    trunks: Mapping[str, TrunkLimits],
    *,
    interval: float = BEAT_INTERVAL_S,
    ttl_ms: int = BEAT_TTL_MS,
) -> None:
    """Beat every ``interval`` s until cancelled; then remove the entry (a stopped engine is
    not alive, at once; a crashed one's entry expires after ``ttl_ms``)."""
    try:
        while True:
            checkpoint()  # a cancel that redis-py swallowed (dialer.engine.cancel)
            try:
                await registry.beat(
                    owner, pbx_connected=pbx_connected(), trunks=trunks, ttl_ms=ttl_ms
                )
            except StoreError as exc:
                log.warning("heartbeat: store unavailable: %s", exc)
            await asyncio.sleep(interval)
    finally:
        await on_clean_stop(f"engine {owner}'s heartbeat", lambda: registry.leave(owner))
