"""The node mark loop: while this engine sees its PBX connected, its node is up for every
engine's claims (dialer.store.nodes); the moment the connection drops, its mark goes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from dialer.errors import StoreError
from dialer.store.nodes import NODE_UP_TTL_MS, NodeStore

__all__ = ["node_heartbeat"]

log = logging.getLogger(__name__)


async def node_heartbeat(
    nodes: NodeStore,
    owner: str,
    node: str,
    connected: Callable[[], bool],
    *,
    refresh: float = 1.0,
    poll: float = 0.05,
    ttl_ms: int = NODE_UP_TTL_MS,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Until cancelled: mark ``node`` up every ``refresh`` s while ``connected()``, and down as
    soon as it is not (checked every ``poll`` s, no Redis command in between). A stopped or
    crashed engine's mark expires by itself (``ttl_ms``)."""
    marked: bool | None = None
    last = -float("inf")
    while True:
        up = connected()
        if up != marked or (up and clock() - last >= refresh):
            try:
                if up:
                    await nodes.mark_up(node, owner, ttl_ms)
                else:
                    await nodes.mark_down(node, owner)
                marked, last = up, clock()
            except StoreError as exc:
                log.warning("node %s: mark %s failed: %s", node, "up" if up else "down", exc)
                await asyncio.sleep(refresh)
        await asyncio.sleep(poll)
