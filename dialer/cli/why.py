"""``dialer campaign why ID``: what holds a campaign back right now (also in ``dialer status``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dialer.domain.why import WhyReport

from .common import Session, campaign_id, out, with_store
from .output import when

__all__ = ["add_command", "why_lines"]


def why_lines(report: WhyReport) -> list[str]:
    """``why: dialing: ...``, or ``why: not dialing`` and one line per blocker."""
    if report.dialing:
        return [f"why: {report.summary}"]
    lines = ["why: not dialing"]
    width = max((len(b.code.value) for b in report.blockers), default=0)
    for b in report.blockers:
        clears = f" [clears {when(b.clears_at_ms)}]" if b.clears_at_ms is not None else ""
        lines.append(f"  {b.code.value.ljust(width)}  {b.message}{clears}")
    return lines


async def _why(args: argparse.Namespace, s: Session) -> int:
    report = await s.commands.why(args.id)
    if args.json:
        out(json.dumps(report.to_dict(), indent=2))
    else:
        for line in why_lines(report):
            out(line)
    return 0


def add_command(cmds: Any, common: argparse.ArgumentParser) -> None:
    """Add ``why`` to the ``campaign`` subcommands."""
    p = cmds.add_parser(
        "why",
        parents=[common],
        help="why a campaign is not dialing: each blocker, and when it should clear",
        description="What holds a campaign back right now: window closed (next opening), "
        "every contact waiting for a retry (next due), trunk full or its breaker open, PBX "
        "unavailable, plan limit, no engine alive. Prints 'dialing' with the channels and the "
        "rate when nothing does. Exit status 0 either way.",
    )
    p.add_argument("id", type=campaign_id, metavar="ID", help="the campaign id")
    p.add_argument("--json", action="store_true", help="print JSON (as GET /campaigns/ID/why)")
    p.set_defaults(func=with_store(_why))
