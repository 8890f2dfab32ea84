"""Shared fixtures: a private redis-server for the session, a clean namespace per test; the
turns of the tests when the suite runs on several workers (tests/alone.py).

The private redis-server runs without an ACL (its default user open): the unit tests' helpers
use commands the dialer user is refused (SCAN, TYPE, SCRIPT FLUSH, INFO, CONFIG). The ACL is
tested on a server of its own (tests/unit/test_redis_acl.py) and end to end on the local stack.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ops.localstack.redis_server import RedisServer
from tests import alone


def pytest_configure(config: pytest.Config) -> None:
    alone.configure(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    alone.unconfigure()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Each test in its turn (tests/alone.py): ``alone`` tests while no other test runs."""
    with alone.turn(item):
        return (yield)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private redis-server (AOF on) for the whole session, on a free port."""
    server = RedisServer(workdir=Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that kill or restart it."""
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def namespace() -> str:
    """A key prefix of the test's own: tests share the server, never keys.

    Below ``dialer:``: the local stack's Redis lets the dialer user at ``~dialer:*`` only
    (ops/redis/users.acl), so the tests run with the ACL the dialer has in production."""
    return f"dialer:t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=False)
    yield client
    await client.aclose()
