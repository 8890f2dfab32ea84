"""``dialer list ...``: upload a CSV as a new recipient list; stop a list."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from dialer.domain.lifecycle import ListCommand, next_list_status
from dialer.errors import ConfigError, NotFound
from dialer.importer import ColumnMapping, import_csv

from .common import Session, campaign_id, out, with_store
from .output import import_lines, plural


async def _upload(args: argparse.Namespace, s: Session) -> int:
    path = Path(args.file)
    if not await asyncio.to_thread(path.is_file):
        raise ConfigError(f"{path}: no such file")
    mapping = ColumnMapping(
        phone=args.phone_column, name=args.name_column, timezone=args.timezone_column
    )
    report = await import_csv(s.store, args.id, path, mapping=mapping, default_region=args.region)
    for line in import_lines(args.id, report):
        out(line)
    return 0


async def _stop(args: argparse.Namespace, s: Session) -> int:
    lists = await s.store.list_status(args.id)
    if args.list_id not in lists:
        raise NotFound(f"list {args.list_id} of campaign {args.id} does not exist")
    next_list_status(args.list_id, lists[args.list_id], ListCommand.STOP)
    moved = await s.store.stop_list(args.id, args.list_id)
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
        "other column becomes a call variable.",
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
    p.set_defaults(func=with_store(_upload))

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
