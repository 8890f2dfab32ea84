"""``dialer list ...``: upload a CSV as a new recipient list; stop a list; a list's caller id."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from dialer.domain.callerid import CallerIdSource
from dialer.errors import ConfigError
from dialer.importer import ColumnMapping, alt_columns

from .common import Session, campaign_id, out, with_store
from .output import import_lines, plural
from .recycle import add_recycle


def _caller_ids(args: argparse.Namespace) -> CallerIdSource:
    return CallerIdSource.from_options(args.caller_id, args.pool, args.mode, args.fallback)


async def _upload(args: argparse.Namespace, s: Session) -> int:
    caller_ids = _caller_ids(args)  # refused before the import
    path = Path(args.file)
    if not await asyncio.to_thread(path.is_file):
        raise ConfigError(f"{path}: no such file")
    mapping = ColumnMapping(
        phone=args.phone_column,
        name=args.name_column,
        timezone=args.timezone_column,
        alt_phones=alt_columns(args.alt_phone_columns),
    )
    report = await s.commands.upload(
        args.id, path, mapping=mapping, region=args.region, caller_ids=caller_ids
    )
    for line in import_lines(args.id, report):
        out(line)
    if not caller_ids.empty and report.list_id is not None:
        out(f"list {report.list_id}: {_describe(caller_ids)}")
    return 0


def _describe(source: CallerIdSource) -> str:
    if source.pool is not None:
        pool = source.pool
        extra = f", fallback {pool.fallback}" if pool.fallback else ""
        return f"caller-ID pool ({pool.mode.value}{extra}): {', '.join(pool.numbers)}"
    if source.caller_id is not None:
        return f"caller id {source.caller_id}"
    return "the campaign's caller id"


async def _caller_id(args: argparse.Namespace, s: Session) -> int:
    if args.clear or any(
        v is not None for v in (args.caller_id, args.pool, args.mode, args.fallback)
    ):
        source = CallerIdSource() if args.clear else _caller_ids(args)
        await s.commands.set_list_caller_id(args.id, args.list_id, source)
    else:
        source = await s.commands.list_caller_id(args.id, args.list_id)
    out(f"list {args.list_id} of campaign {args.id}: {_describe(source)}")
    return 0


def _caller_id_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--caller-id", metavar="CID", help='a fixed caller id: +1... or "Name" <+1...>')
    p.add_argument("--pool", metavar="N1,N2,...", help="a caller-ID pool: comma-separated numbers")
    p.add_argument(
        "--mode",
        choices=("rotate", "local"),
        help="the pool's mode: rotate (round robin, default) or local (the callee's area code)",
    )
    p.add_argument("--fallback", metavar="N", help="local mode: the number when none is local")


async def _stop(args: argparse.Namespace, s: Session) -> int:
    _, moved = await s.commands.stop_list(args.id, args.list_id)
    out(
        f"list {args.list_id} of campaign {args.id} stopped: "
        f"{plural(moved, 'contact')} will not be dialed"
    )
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser(
        "list",
        parents=[common],
        help="recipient lists: upload a CSV, stop a list",
        description="Recipient lists of a campaign: each upload is a new list.",
    )
    cmds = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = cmds.add_parser(
        "upload",
        parents=[common],
        help="import a CSV file as a new list (campaign Draft or Paused)",
        description="Import a CSV file as a new list of a Draft or Paused campaign, all or "
        "nothing: a structural error on any line refuses the file. Numbers are normalised to "
        "E.164 (invalid ones are kept as Invalid number, never dialed), deduplicated within "
        "the campaign and screened against the do-not-call lists. The phone column is the "
        "first header like phone/number/msisdn/telephone unless --phone-column says; every "
        "other column becomes a call variable. Alternate numbers (phone2, phone3, alt_phone... "
        "or --alt-phone-columns) are dialed after a no-contact outcome.",
    )
    p.add_argument("id", type=campaign_id, metavar="ID", help="the campaign id")
    p.add_argument("file", metavar="FILE.csv", help="the CSV file (header line first)")
    p.add_argument(
        "--region",
        default="US",
        metavar="CC",
        help="region of numbers written without a country code, e.g. FR (default US)",
    )
    p.add_argument("--phone-column", metavar="C", help="header of the phone number column")
    p.add_argument(
        "--name-column", metavar="C", help="header of the contact name column (variable 'name')"
    )
    p.add_argument(
        "--timezone-column",
        metavar="C",
        help="header of the contact time zone column (variable 'timezone')",
    )
    p.add_argument(
        "--alt-phone-columns",
        metavar="C1,C2",
        help="headers of the alternate number columns, comma-separated, in dialing order "
        "(default: phone2, phone3, alt_phone... as found)",
    )
    _caller_id_flags(p)
    p.set_defaults(func=with_store(_upload))

    p = cmds.add_parser(
        "caller-id",
        parents=[common],
        help="show or set a list's caller id or caller-ID pool",
        description="Show a list's own caller id settings, or set them (any campaign status; "
        "engines apply a change within 5 s). A list's settings override the campaign's; "
        "--clear returns the list to the campaign's.",
    )
    p.add_argument("id", type=campaign_id, metavar="ID", help="the campaign id")
    p.add_argument("list_id", type=campaign_id, metavar="LIST_ID", help="the list id")
    _caller_id_flags(p)
    p.add_argument("--clear", action="store_true", help="remove the list's own settings")
    p.set_defaults(func=with_store(_caller_id))

    p = cmds.add_parser(
        "stop",
        parents=[common],
        help="stop a list for good: its contacts not yet dialed become Not dialed",
        description="Stop a list for good: its contacts not yet dialed become Not dialed; "
        "calls in flight end normally. A stopped list never restarts.",
    )
    p.add_argument("id", type=campaign_id, metavar="ID", help="the campaign id")
    p.add_argument("list_id", type=campaign_id, metavar="LIST_ID", help="the list id")
    p.set_defaults(func=with_store(_stop))

    add_recycle(cmds, common)
