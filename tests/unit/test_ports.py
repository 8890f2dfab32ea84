"""``free_port_block``: a busy port moves the search one port on, not a whole block."""

from __future__ import annotations

import socket

import pytest

from ops.localstack.ports import free_port_block, port_is_free


def _both_free(port: int) -> bool:
    return port_is_free(port, socket.SOCK_STREAM) and port_is_free(port, socket.SOCK_DGRAM)


def test_the_block_starts_right_after_a_busy_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        busy = s.getsockname()[1]
        if not all(_both_free(p) for p in range(busy + 1, busy + 9)):
            pytest.skip("the ports after the busy one are taken on this machine")
        assert free_port_block(8, start=busy - 4, end=busy + 100) == busy + 1
        assert free_port_block(8, start=busy + 1, end=busy + 100) == busy + 1


def test_a_udp_port_is_busy_too_and_no_room_is_an_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        busy = s.getsockname()[1]
        assert not port_is_free(busy, socket.SOCK_DGRAM)
        with pytest.raises(RuntimeError, match="no block of 8 free ports"):
            free_port_block(8, start=busy - 7, end=busy + 8)  # every block holds it
