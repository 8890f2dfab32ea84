"""The node mark loop: while this engine sees its PBX connected, its node is up for every
engine's claims (dialer.store.nodes); the moment the connection drops, its mark goes, and so it
does when the engine stops cleanly. Each time the node comes up, ``on_up`` is told (the
node-loss rule resumes what the loss of its trunk group's nodes paused: dialer.engine.nodeloss).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from dialer.engine.cancel import checkpoint
from dialer.engine.heartbeat import on_clean_stop
from dialer.errors import DialerError, StoreError
from dialer.store.nodes import NODE_UP_TTL_MS, NodeStore

__all__ = ["node_heartbeat"]

log = logging.getLogger(__name__)


async def node_heartbeat(
    nodes: NodeStore,
    owner: str,
    node: str,
    connected: Callable[[], bool],
    *,
    on_up: Callable[[str], Awaitable[None]] | None = None,
    refresh: float = 1.0,
    poll: float = 0.05,
    ttl_ms: int = NODE_UP_TTL_MS,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Until cancelled: mark ``node`` up every ``refresh`` s while ``connected()``, and down as
    soon as it is not (checked every ``poll`` s, no Redis command in between); ``on_up(node)``
    once the mark is written after the node was down (or not marked yet). A crashed engine's
    mark expires by itself (``ttl_ms``); a stopped one's is removed."""
    marked: bool | None = None
    last = -float("inf")
    try:
        while True:
            checkpoint()  # a cancel that redis-py swallowed (dialer.engine.cancel)
            up = connected()
            if up != marked or (up and clock() - last >= refresh):
                came_up = up and marked is not True
                try:
                    if up:
                        await nodes.mark_up(node, owner, ttl_ms)
                    else:
                        await nodes.mark_down(node, owner)
                    marked, last = up, clock()
                except StoreError as exc:
                    log.warning("node %s: mark %s failed: %s", node, "up" if up else "down", exc)
                    await asyncio.sleep(refresh)
                    continue
                if came_up and on_up is not None:
                    try:
                        await on_up(node)
                    except DialerError as exc:  # the next return tries again
                        log.warning("node %s up: %s", node, exc)
            await asyncio.sleep(poll)
    finally:
        if marked:
            await on_clean_stop(f"node {node}'s mark", lambda: nodes.mark_down(node, owner))
