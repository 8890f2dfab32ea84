"""``dialer dnc ...``: the global and per-campaign do-not-call lists (dialer.commands.dnc, or
its twin over the API)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, BinaryIO

from dialer.commands.dnc import GLOBAL
from dialer.domain.phones import check_region
from dialer.errors import ConfigError, ValidationError

from .common import Session, campaign_id, out, with_store
from .output import plural
from .output import sentence as _sentence


def _region(text: str) -> str:
    """argparse type: an ISO 3166 region, upper-cased."""
    try:
        return check_region(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _scope(args: argparse.Namespace) -> str:
    return "global list" if args.campaign is None else f"list of campaign {args.campaign}"


async def _add(args: argparse.Namespace, s: Session) -> int:
    listed = await s.dnc.add(args.numbers, args.campaign, region=args.region)
    out(
        f"{plural(listed.added, 'number')} added to the do-not-call {_scope(args)} "
        f"({listed.already_listed} already listed)"
    )
    return 0


async def _remove(args: argparse.Namespace, s: Session) -> int:
    removed = await s.dnc.remove(args.numbers, args.campaign, region=args.region)
    out(f"{plural(removed, 'number')} removed from the do-not-call {_scope(args)}")
    return 0


async def _check(args: argparse.Namespace, s: Session) -> int:
    for c in await s.dnc.check(args.numbers, args.campaign, region=args.region):
        if c.number is None:
            out(f"{c.input}: invalid number ({c.invalid_reason})")
            continue
        where = ", ".join("global list" if name == GLOBAL else name for name in c.lists)
        out(f"{c.number}: " + (f"do not call ({where})" if where else "not listed"))
    return 0


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


async def _import(args: argparse.Namespace, s: Session) -> int:
    """Every line is checked before anything is written (here, or by the API's server)."""
    path = Path(args.file)
    with _open(path) as source:
        try:
            listed = await s.dnc.import_numbers(source, args.campaign, region=args.region)
        except ValidationError as exc:
            raise ValidationError(f"{path}: {exc}") from None
    out(
        f"{plural(listed.given, 'number')} read from {path}: {listed.added} added to the "
        f"do-not-call {_scope(args)}, {listed.already_listed} already listed"
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
            type=_region,
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
