"""Free-port helpers: every stack picks its own ports so two stacks can run side by side."""

from __future__ import annotations

import socket


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free right now on 127.0.0.1 for ``kind`` (TCP by default)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int, kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_block(size: int, start: int = 20000, end: int = 60000) -> int:
    """The first port ``p >= start`` such that ``p .. p+size-1`` are free for both TCP and UDP.

    A busy port moves the search to the port after it (not a whole block on), so one busy port
    (a service's, or a previous stack's in TIME_WAIT) costs one port, not ``size``."""
    p = start
    while p + size < end:
        busy = next((q for q in range(p, p + size) if not _free_both(q)), None)
        if busy is None:
            return p
        p = busy + 1
    raise RuntimeError(f"no block of {size} free ports between {start} and {end}")


def _free_both(port: int) -> bool:
    return port_is_free(port, socket.SOCK_STREAM) and port_is_free(port, socket.SOCK_DGRAM)
