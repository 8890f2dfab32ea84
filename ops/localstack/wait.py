"""Readiness is polled, never slept."""

from __future__ import annotations

import time
from collections.abc import Callable


class NotReady(RuntimeError):
    pass


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    """Call ``check`` until it returns true; raise NotReady naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    detail = f" (last error: {last_error!r})" if last_error else ""
    raise NotReady(f"{what} not ready after {timeout:.0f} s{detail}")
