"""What every ``dialer`` command shares: the parser class, settings, the session, output.

Two ways to reach the dialer, chosen once per command (:func:`api_target`):

- through the HTTP API (``--api URL`` or ``DIALER_API_URL``, with a token: ``--token``,
  ``DIALER_API_TOKEN`` or ``~/.config/dialer/token``): the server's roles apply to every
  command (:mod:`.remote`);
- on the host, straight to Redis (``--local``, or when no API URL is configured): the host
  administrator's mode, with no roles. It needs the Redis URL and password, which give every
  right anyway, so the API's roles could not bind their holder; it stays the default without
  an API URL so that scripts and docs written for it keep working.

Either way a command calls the same commands (:mod:`dialer.commands`, or their remote twins).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

from dialer.commands import CampaignCommands, DncCommands, NodeCommands, TrunkCommands
from dialer.config import EngineSettings
from dialer.engine.control import CampaignControl
from dialer.errors import ConfigError, StoreError
from dialer.store.redis_store import RedisStore

from .remote import ApiClient, RemoteCommands, Target, read_token_file, token_file
from .remote_dnc import RemoteDnc, RemoteTrunks
from .remote_nodes import RemoteNodes

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
    parent.add_argument(
        "--api",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="the dialer's HTTP API: commands go through it and its roles apply "
        "(default: $DIALER_API_URL; none: --local)",
    )
    parent.add_argument(
        "--token",
        metavar="TOKEN",
        default=argparse.SUPPRESS,
        help="the API token (default: $DIALER_API_TOKEN, else the file "
        "~/.config/dialer/token, readable by its owner only)",
    )
    parent.add_argument(
        "--local",
        action="store_true",
        default=argparse.SUPPRESS,
        help="talk to Redis directly on the host, ignoring $DIALER_API_URL: host admin, "
        "no roles (the default when no API URL is set)",
    )
    return parent


def api_target(args: argparse.Namespace) -> Target | None:
    """Where the API is and the token to show it; None: the host's local mode."""
    url = getattr(args, "api", None)
    if getattr(args, "local", False):
        if url is not None:
            raise ConfigError("--local and --api exclude each other")
        return None
    url = url or os.environ.get("DIALER_API_URL")
    if not url:
        return None
    token = (
        getattr(args, "token", None)
        or os.environ.get("DIALER_API_TOKEN")
        or read_token_file(token_file())
    )
    if not token:
        raise ConfigError(
            f"the API at {url} needs a token: --token, DIALER_API_TOKEN or the file "
            f"{token_file()} (chmod 600)"
        )
    return Target(url, token)


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


HOST_ONLY = (
    "this command is not served by the HTTP API yet: run it on the dialer's host with "
    "--local (host admin, no roles)"
)


@dataclass(frozen=True, slots=True)
class Session:
    """A command's view of the dialer: a connected store (local mode) or the API (remote)."""

    settings: EngineSettings
    local: RedisStore | None = None
    remote: RemoteCommands | None = None

    @property
    def store(self) -> RedisStore:
        """The store, in local mode; ConfigError (HOST_ONLY) through the API."""
        if self.local is None:
            raise ConfigError(HOST_ONLY)
        return self.local

    @property
    def host(self) -> CampaignCommands:
        """The campaign commands (dialer.commands) on this host's store, with its contexts
        and trunks; ConfigError (HOST_ONLY) through the API."""
        control = CampaignControl(self.store, contexts=self.settings.contexts)
        return CampaignCommands(self.store, control, trunks=self.settings.trunks or None)

    @property
    def commands(self) -> CampaignCommands | RemoteCommands:
        """The commands the API serves: through it when configured, else on this host."""
        return self.remote if self.remote is not None else self.host

    @property
    def nodes(self) -> NodeCommands | RemoteNodes:
        """The node commands: through the API when configured, else on this host."""
        return self.remote.nodes if self.remote is not None else NodeCommands(self.store)

    @property
    def dnc(self) -> DncCommands | RemoteDnc:
        """The do-not-call commands: through the API when configured, else on this host."""
        return self.remote.dnc if self.remote is not None else DncCommands(self.store)

    @property
    def breakers(self) -> TrunkCommands | RemoteTrunks:
        """The trunk breaker commands: through the API when configured, else on this host."""
        return self.remote.breakers if self.remote is not None else TrunkCommands(self.store)


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
        yield Session(settings, local=store)
    finally:
        await store.aclose()


StoreCommand = Callable[[argparse.Namespace, Session], Awaitable[int]]


def with_store(fn: StoreCommand) -> Callable[[argparse.Namespace], int]:
    """A synchronous handler running ``fn`` in its own event loop, with a connected store
    (local mode) or the API client (:func:`api_target`)."""

    async def session(args: argparse.Namespace) -> int:
        target = api_target(args)
        if target is None:
            async with open_session(settings_from(args)) as s:
                return await fn(args, s)
        client = ApiClient(target)
        try:
            return await fn(args, Session(settings_from(args), remote=RemoteCommands(client)))
        finally:
            await client.aclose()

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
