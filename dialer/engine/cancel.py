"""A cancellation checkpoint for loops that talk to Redis.

On Python 3.11, redis-py can swallow a ``Task.cancel()`` that lands while it sends a command
(the cancellation is lost inside its timeout handling, although ``Task.cancelling()`` still says
one is pending). Every engine loop calls :func:`checkpoint` once per turn so that a lost
cancellation is raised again there and shutdown never hangs.
"""

from __future__ import annotations

import asyncio


def checkpoint() -> None:
    """Raise CancelledError if the current task was asked to cancel and the request was lost."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
