"""Readiness is polled, never slept."""

from __future__ import annotations

import time
from collections.abc import Callable


class NotReady(RuntimeError):
    pass


class Exited(NotReady):
    """The process being waited for has exited: it will never be ready, so waiting stops."""


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    """Call ``check`` until it returns true; raise NotReady naming ``what`` after ``timeout`` s.

    ``check`` raising :class:`Exited` ends the wait at once; any other error is retried."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exited:
            raise
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    detail = f" (last error: {last_error!r})" if last_error else ""
    raise NotReady(f"{what} not ready after {timeout:.0f} s{detail}")
