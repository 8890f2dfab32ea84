"""What every ``dialer`` command shares: the parser class, settings, the Redis session, output.

Commands talk to Redis directly, through the same layer the HTTP API uses (CampaignControl,
RedisStore, the importer, DncStore, analytics); nothing goes over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

from dialer.commands import CampaignCommands, NodeCommands
from dialer.config import EngineSettings
from dialer.engine.control import CampaignControl
from dialer.errors import StoreError
from dialer.store.redis_store import RedisStore

__all__ = [
    "Parser",
    "Session",
    "campaign_id",
    "common_options",
    "note",
    "out",
    "positive_float",
    "positive_int",
    "redacted",
    "settings_from",
    "with_store",
]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``dialer: <sentence> (see 'dialer x --help')``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"dialer: {message} (see '{self.prog} --help')\n")


def common_options() -> argparse.ArgumentParser:
    """Options every (sub)command accepts, before or after its name.

    Defaults are SUPPRESS so that a subcommand's parser never overwrites a value given to a
    parent parser; read them with ``getattr(args, name, None)``.
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="debug logging, and a traceback for unexpected errors",
    )
    parent.add_argument(
        "--redis-url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="Redis to use (default: $DIALER_REDIS_URL, else redis://127.0.0.1:6379/0)",
    )
    parent.add_argument(
        "--namespace",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="key prefix of this dialer in Redis (default: $DIALER_NAMESPACE, else 'dialer')",
    )
    return parent


def settings_from(args: argparse.Namespace) -> EngineSettings:
    """DIALER_* environment variables, then ``--redis-url`` / ``--namespace``."""
    settings = EngineSettings.from_env()
    overrides: dict[str, str] = {}
    for name in ("redis_url", "namespace"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return replace(settings, **overrides) if overrides else settings  # type: ignore[arg-type]


def redacted(url: str) -> str:
    """``url`` without its passwords (a Sentinel URL's hosts and sentinel_password too)."""
    parts = urlsplit(url)
    query = re.sub(r"(password=)[^&]*", r"\1***", parts.query)
    if parts.password is None:
        return urlunsplit(parts._replace(query=query))
    hosts = parts.netloc.rpartition("@")[2]  # host:port, or a Sentinel URL's list of them
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=f"{user}{hosts}", query=query))


@dataclass(frozen=True, slots=True)
class Session:
    """A command's view of the dialer: settings and a connected store."""

    settings: EngineSettings
    store: RedisStore

    @property
    def commands(self) -> CampaignCommands:
        """The campaign commands (dialer.commands), with this host's contexts and trunks."""
        control = CampaignControl(self.store, contexts=self.settings.contexts)
        return CampaignCommands(self.store, control, trunks=self.settings.trunks or None)

    @property
    def nodes(self) -> NodeCommands:
        return NodeCommands(self.store)


@asynccontextmanager
async def open_session(settings: EngineSettings) -> AsyncIterator[Session]:
    store = RedisStore.from_url(settings.redis_url, namespace=settings.namespace)
    try:
        try:
            await store.ping()
        except StoreError as exc:
            cause = exc.__cause__ or exc
            raise StoreError(
                f"cannot reach Redis at {redacted(settings.redis_url)} "
                f"(set DIALER_REDIS_URL or --redis-url): {type(cause).__name__}: {cause}"
            ) from exc
        yield Session(settings, store)
    finally:
        await store.aclose()


StoreCommand = Callable[[argparse.Namespace, Session], Awaitable[int]]


def with_store(fn: StoreCommand) -> Callable[[argparse.Namespace], int]:
    """A synchronous handler running ``fn`` in its own event loop with a connected store."""

    async def session(args: argparse.Namespace) -> int:
        async with open_session(settings_from(args)) as s:
            return await fn(args, s)

    def handler(args: argparse.Namespace) -> int:
        return asyncio.run(session(args))

    handler.__doc__ = fn.__doc__
    return handler


def out(text: str = "") -> None:
    """A line of the command's result (stdout)."""
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    """A line about the work, not its result (stderr): keeps stdout parseable."""
    sys.stderr.write(text + "\n")


def _number(text: str, kind: type[int] | type[float], what: str) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} expected, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{what} expected, got {text!r}")
    return value


def campaign_id(text: str) -> int:
    """argparse type: a campaign (or list) id, a positive whole number."""
    return int(_number(text, int, "an id (a positive whole number)"))


def positive_int(text: str) -> int:
    return int(_number(text, int, "a positive whole number"))


def positive_float(text: str) -> float:
    return float(_number(text, float, "a positive number of seconds"))
