"""``dialer callback add|move|cancel|list``: callbacks set by people (README: Callbacks).

The commands are :class:`dialer.engine.callbacks.CallbackCommands` (through
:mod:`dialer.commands`), as in the HTTP API.
``AT`` is ISO 8601 with its offset (``2026-12-24T09:00:00+01:00``) or a delay from now
(``+90s``, ``+30m``, ``+2h``, ``+1d``).
"""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime
from typing import Any

from dialer.engine.callbacks import CallbackSet
from dialer.store.callbacks import CallbackChange

from .common import Session, campaign_id, out, positive_int, with_store
from .output import table, when

_DELAY = re.compile(r"\+([0-9]{1,7})([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def callback_time(text: str, *, now: float | None = None) -> str:
    """``+30m`` as ISO 8601 from ``now`` (this host's clock); anything else as given (the
    domain checks it)."""
    match = _DELAY.fullmatch(text.strip())
    if match is None:
        return text
    at = (time.time() if now is None else now) + int(match[1]) * _UNIT_S[match[2]]
    return datetime.fromtimestamp(at, UTC).isoformat()


def set_lines(cid: int, result: CallbackSet, verb: str) -> list[str]:
    plan, change = result.plan, result.change
    lines = [f"campaign {cid} contact {change.contact_id}: callback {verb} for {when(plan.due_ms)}"]
    if plan.moved:
        lines.append(f"  asked for {when(plan.requested_ms)}: {plan.reason}")
    if change.source_before is not None:
        lines.append(f"  (it replaced a callback set by the {change.source_before.value})")
    return lines


def cancel_line(cid: int, change: CallbackChange) -> str:
    queued = f", queued for {when(change.due_ms)}" if change.due_ms is not None else ""
    return (
        f"campaign {cid} contact {change.contact_id}: callback cancelled; "
        f"now {change.after.label}{queued}"
    )


async def _add(args: argparse.Namespace, s: Session) -> int:
    result = await s.commands.callbacks.schedule(args.id, args.contact, callback_time(args.at))
    verb = "moved" if result.change.source_before is not None else "set"
    for line in set_lines(args.id, result, verb):
        out(line)
    return 0


async def _move(args: argparse.Namespace, s: Session) -> int:
    result = await s.commands.callbacks.schedule(
        args.id, args.contact, callback_time(args.at), only_move=True
    )
    for line in set_lines(args.id, result, "moved"):
        out(line)
    return 0


async def _cancel(args: argparse.Namespace, s: Session) -> int:
    out(cancel_line(args.id, await s.commands.callbacks.cancel(args.id, args.contact)))
    return 0


async def _list(args: argparse.Namespace, s: Session) -> int:
    views = await s.commands.callbacks.upcoming(args.id, limit=args.limit)
    if not views:
        out(f"campaign {args.id}: no upcoming callback")
        return 0
    rows = [
        (v.contact_id, v.phone, when(v.due_ms), when(v.requested_ms), v.source.value, v.attempts)
        for v in views
    ]
    for line in table(("CONTACT", "PHONE", "DUE", "ASKED FOR", "SET BY", "ATTEMPTS"), rows):
        out(line)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser(
        "callback",
        parents=[common],
        help="callbacks (add, move, cancel, list)",
        description="A callback dials a contact at a given time (never before it, never "
        "outside the calling hours: a time outside them moves to the next opening); the "
        "contact is Rescheduled until then. Cancelling returns the contact to its state "
        "before the callback (README: Callbacks).",
    )
    cmds = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, fn, helptext, timed in (
        ("add", _add, "set a contact's callback (or move the one it has)", True),
        ("move", _move, "move a contact's callback to another time", True),
        ("cancel", _cancel, "cancel a contact's callback", False),
    ):
        p = cmds.add_parser(name, parents=[common], help=helptext, description=helptext + ".")
        p.add_argument("id", type=campaign_id, metavar="ID", help="campaign id")
        p.add_argument("contact", type=campaign_id, metavar="CONTACT_ID", help="contact id")
        if timed:
            p.add_argument(
                "at",
                metavar="AT",
                help="ISO 8601 with offset (2026-12-24T09:00:00+01:00) or +90s/+30m/+2h/+1d",
            )
        p.set_defaults(func=with_store(fn))
    p = cmds.add_parser(
        "list", parents=[common], help="upcoming callbacks", description="Upcoming callbacks."
    )
    p.add_argument("id", type=campaign_id, metavar="ID", help="campaign id")
    p.add_argument("--limit", type=positive_int, default=100, help="at most this many (100)")
    p.set_defaults(func=with_store(_list))
