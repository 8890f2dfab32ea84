"""``dialer list recycle`` and ``dialer contact remove``: recycling a list, removing contacts."""

from __future__ import annotations

import argparse
from typing import Any

from dialer.domain.recycle import RECYCLABLE
from dialer.errors import NotFound
from dialer.store.recycle import Target

from .common import Session, campaign_id, out, with_store
from .output import plural


def _into(text: str) -> Target:
    return "new" if text == "new" else campaign_id(text)


async def _recycle(args: argparse.Namespace, s: Session) -> int:
    statuses = [v.strip() for arg in args.status for v in arg.split(",")]
    report = await s.commands.recycle(args.id, args.list_id, statuses, into=args.into)
    names = ", ".join(report.statuses)
    if report.list_id is None:
        out(f"list {args.list_id} of campaign {args.id}: no contact is {names}; nothing recycled")
        return 0
    made = " (new Draft campaign)" if report.created_campaign else ""
    out(
        f"list {args.list_id} of campaign {args.id} ({names}): "
        f"{plural(report.recycled, 'contact')} recycled into list {report.list_id} of campaign "
        f"{report.campaign}{made}"
    )
    if report.skipped_dnc:
        out(f"{plural(report.skipped_dnc, 'contact')} on a do-not-call list left out")
    if report.skipped_changed:
        out(f"{plural(report.skipped_changed, 'contact')} changed status meanwhile: left out")
    return 0


async def _remove(args: argparse.Namespace, s: Session) -> int:
    report = await s.commands.remove(args.id, args.contacts, args.phone or (), args.region)
    out(f"campaign {args.id}: {plural(len(report.removed), 'contact')} removed")
    if report.already_removed:
        out(f"already removed: {', '.join(map(str, report.already_removed))}")
    if report.in_call:
        out(f"in a call, not removed: {', '.join(map(str, report.in_call))}")
    missing = [*map(str, report.not_found), *report.phones_not_found]
    if missing:
        raise NotFound(f"campaign {args.id}: no such contact: {', '.join(missing)}")
    return 1 if report.in_call else 0


def add_recycle(cmds: Any, common: argparse.ArgumentParser) -> None:
    """``dialer list recycle`` (added to the ``list`` group)."""
    p = cmds.add_parser(
        "recycle",
        parents=[common],
        help="copy a finished or stopped list's contacts in some statuses into a new list",
        description="Copy the contacts of a finished or stopped list whose status is one of "
        "--status into a new list: of the same campaign (Draft or Paused), of --into ID, or "
        "of a new Draft campaign (--into new: the source's name, trunk and settings). Each "
        "copy is a new contact linked to the old one (recycled_from); old contacts and their "
        "records stay. Do-not-call numbers are never recycled. A contact whose attempts ran "
        "out (completed_no_answer) matches the outcome of its last call (busy, no_answer...). "
        f"Statuses: {', '.join(sorted(s.value for s in RECYCLABLE))}.",
    )
    p.add_argument("id", type=campaign_id, metavar="ID", help="the campaign id")
    p.add_argument("list_id", type=campaign_id, metavar="LIST_ID", help="the list id")
    p.add_argument(
        "--status",
        action="append",
        required=True,
        metavar="S[,S...]",
        help="contact statuses to take (repeat or comma-separate), e.g. busy,no_answer",
    )
    p.add_argument(
        "--into",
        type=_into,
        default=None,
        metavar="ID|new",
        help="the campaign receiving the new list (default: the same one)",
    )
    p.set_defaults(func=with_store(_recycle))


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser(
        "contact",
        parents=[common],
        help="contacts: remove from a Draft or Paused campaign",
        description="Contacts of a campaign.",
    )
    cmds = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = cmds.add_parser(
        "remove",
        parents=[common],
        help="remove contacts (campaign Draft or Paused): never dialed again, records kept",
        description="Mark contacts Removed, by id and/or phone number, while the campaign is "
        "Draft or Paused. A removed contact leaves the dial queue and is never dialed again; "
        "its call records stay. A contact in a call is not removed (exit code 1).",
    )
    p.add_argument("id", type=campaign_id, metavar="ID", help="the campaign id")
    p.add_argument(
        "contacts", type=campaign_id, nargs="*", metavar="CONTACT_ID", help="contact ids"
    )
    p.add_argument("--phone", action="append", metavar="NUMBER", help="a phone number (repeat)")
    p.add_argument(
        "--region", default="US", metavar="CC", help="region of numbers without a country code"
    )
    p.set_defaults(func=with_store(_remove))
