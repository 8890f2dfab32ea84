"""Running ``dialer`` in-process (``main([...])``) against the session's real Redis."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from dialer.cli import main
from dialer.store.redis_store import RedisStore
from ops.localstack.redis_server import RedisServer

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


class Cli:
    """``cli("campaign", "list")`` runs main with this test's Redis and namespace."""

    def __init__(self, url: str, namespace: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.namespace = namespace
        self._capsys = capsys

    def __call__(self, *argv: str) -> Result:
        code = main(["--redis-url", self.url, "--namespace", self.namespace, *argv])
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *argv: str) -> Result:
        result = self(*argv)
        assert result.code == 0, result
        return result

    def store_call(self, fn: Callable[[RedisStore], Awaitable[T]]) -> T:
        """Run ``fn(store)`` on a store of its own (the tests here are synchronous)."""

        async def run() -> T:
            store = RedisStore.from_url(self.url, namespace=self.namespace)
            try:
                return await fn(store)
            finally:
                await store.aclose()

        return asyncio.run(run())


def make_cli(
    redis_server: RedisServer,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    """For a test module's ``cli`` fixture: no DIALER_* variable of the caller leaks in."""
    for name in (
        "DIALER_REDIS_URL",
        "DIALER_NAMESPACE",
        "DIALER_AMI_URL",
        "DIALER_API_URL",
        "DIALER_API_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    return Cli(redis_server.url, namespace, capsys)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


BASE_YAML = """
name: cli test
trunk: carrier
max_channels: 4
cps: 5
ring_timeout: 3
retry:
  max_attempts: 2
  delays: {busy: 0.5, no_answer: 0.5}
"""


def campaign_file(tmp_path: Path, extra: str = "", name: str = "campaign.yaml") -> Path:
    return write(tmp_path / name, BASE_YAML + textwrap.dedent(extra))


def numbers(n: int, start: int = 0) -> list[str]:
    """Valid US numbers of their own."""
    return [f"+1212{5550100 + start + i:07d}" for i in range(n)]
