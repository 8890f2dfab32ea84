"""``dialer dnc ...``: the global and per-campaign do-not-call lists."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dialer.domain.phones import invalid_reason, to_e164
from dialer.errors import ConfigError, ValidationError
from dialer.store.dnc import DncStore

from .common import Session, campaign_id, out, with_store
from .output import SHOWN_LINES, plural
from .output import sentence as _sentence

CHUNK = 10_000  # numbers per trip to Redis on import


def _dnc(args: argparse.Namespace, s: Session) -> DncStore:
    return DncStore(s.store, default_region=args.region)


def _scope(args: argparse.Namespace) -> str:
    return "global list" if args.campaign is None else f"list of campaign {args.campaign}"


async def _add(args: argparse.Namespace, s: Session) -> int:
    added = await _dnc(args, s).add(args.numbers, args.campaign)
    known = len(args.numbers) - added
    scope = _scope(args)
    out(f"{plural(added, 'number')} added to the do-not-call {scope} ({known} already listed)")
    return 0


async def _remove(args: argparse.Namespace, s: Session) -> int:
    removed = await _dnc(args, s).remove(args.numbers, args.campaign)
    out(f"{plural(removed, 'number')} removed from the do-not-call {_scope(args)}")
    return 0


async def _check(args: argparse.Namespace, s: Session) -> int:
    dnc = _dnc(args, s)
    for raw in args.numbers:
        e164 = to_e164(raw, dnc.region)
        if e164 is None:
            out(f"{raw}: invalid number ({invalid_reason(raw, dnc.region)})")
            continue
        where = []
        if await dnc.contains(e164):
            where.append("global list")
        if args.campaign is not None and await dnc.contains(e164, args.campaign):
            where.append(f"campaign {args.campaign}")
        out(f"{e164}: " + (f"do not call ({', '.join(where)})" if where else "not listed"))
    return 0


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, number) for every line that is not blank or a ``#`` comment."""
    try:
        with path.open(encoding="utf-8-sig") as f:
            for n, line in enumerate(f, start=1):
                text = line.strip()
                if text and not text.startswith("#"):
                    yield n, text
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _validate(path: Path, region: str) -> int:
    """Every number checked before anything is written; ValidationError naming the lines."""
    bad: list[str] = []
    count = invalid = 0
    for n, raw in _lines(path):
        count += 1
        if to_e164(raw, region) is None:
            invalid += 1
            if len(bad) < SHOWN_LINES:
                bad.append(f"line {n}: {raw[:40]!r} ({invalid_reason(raw, region)})")
    if invalid:
        raise ValidationError(
            f"{path}: {plural(invalid, 'invalid number')}, nothing imported: " + "; ".join(bad)
        )
    return count


async def _import(args: argparse.Namespace, s: Session) -> int:
    path = Path(args.file)
    total = _validate(path, DncStore(s.store, default_region=args.region).region)
    dnc = _dnc(args, s)
    added = 0
    chunk: list[str] = []
    for _, raw in _lines(path):
        chunk.append(raw)
        if len(chunk) == CHUNK:
            added += await dnc.add(chunk, args.campaign)
            chunk = []
    if chunk:
        added += await dnc.add(chunk, args.campaign)
    out(
        f"{plural(total, 'number')} read from {path}: {added} added to the do-not-call "
        f"{_scope(args)}, {total - added} already listed"
    )
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser(
        "dnc",
        parents=[common],
        help="do-not-call lists (global, or one campaign's)",
        description="Do-not-call lists: a listed number is never dialed (checked at import "
        "and again just before each call). Numbers are normalised to E.164.",
    )
    cmds = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    def add(name: str, fn: Any, helptext: str) -> Any:
        p = cmds.add_parser(name, parents=[common], help=helptext, description=_sentence(helptext))
        p.add_argument(
            "--campaign",
            type=campaign_id,
            metavar="ID",
            help="the list of this campaign (default: the global list)",
        )
        p.add_argument(
            "--region",
            default="US",
            metavar="CC",
            help="region of numbers written without a country code, e.g. FR (default US)",
        )
        p.set_defaults(func=with_store(fn))
        return p

    for name, fn, helptext in (
        ("add", _add, "list numbers as do-not-call"),
        ("remove", _remove, "unlist numbers (contacts already Do not call stay so)"),
        ("check", _check, "tell whether numbers are listed"),
    ):
        p = add(name, fn, helptext)
        p.add_argument("numbers", nargs="+", metavar="NUMBER", help="a phone number")
    p = add("import", _import, "list every number of a file (one per line; # comments)")
    p.add_argument("file", metavar="FILE", help="a text file with one number per line")
