"""``dialer trunk show|reset NAME...``: the trunks' circuit breakers (dialer.domain.breaker)."""

from __future__ import annotations

import argparse
from typing import Any

from dialer.commands import trunks as commands
from dialer.domain.breaker import BreakerState
from dialer.errors import ValidationError
from dialer.store.breaker import BreakerView

from .common import Session, out, with_store
from .output import when


def trunk_name(text: str) -> str:
    """A trunk name as campaigns and DIALER_TRUNKS spell it (argparse type)."""
    try:
        return commands.trunk_name(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def view_line(view: BreakerView) -> str:
    """One trunk's breaker in a line."""
    if view.state is BreakerState.CLOSED:
        return (
            f"{view.trunk}: closed (unanswered in a row {view.silent_run}, failures in a row "
            f"{view.fail_run}; trips so far {view.trips})"
        )
    if view.state is BreakerState.HALF_OPEN:
        return f"{view.trunk}: half-open, probe call {view.probe} (trips so far {view.trips})"
    return (
        f"{view.trunk}: open since {when(view.opened_ms)} ({view.reason}); a probe may go from "
        f"{when(view.retry_ms)} (trips so far {view.trips})"
    )


async def _show(args: argparse.Namespace, s: Session) -> int:
    for trunk in args.trunks:
        out(view_line(await s.breakers.breaker(trunk)))
    return 0


async def _reset(args: argparse.Namespace, s: Session) -> int:
    for trunk in args.trunks:
        await s.breakers.reset(trunk)
        out(f"{trunk}: breaker reset to closed (runs and trips cleared)")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser(
        "trunk",
        parents=[common],
        help="trunks' circuit breakers (show, reset)",
        description="A trunk's circuit breaker stops dialing on it after a run of failed or "
        "unanswered calls, and lets one probe call go after a cool-down (README: Trunk health).",
    )
    cmds = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, fn, helptext in (
        ("show", _show, "show trunks' breakers"),
        ("reset", _reset, "close trunks' breakers at once (an operator's override)"),
    ):
        p = cmds.add_parser(name, parents=[common], help=helptext, description=helptext + ".")
        p.add_argument("trunks", nargs="+", type=trunk_name, metavar="TRUNK", help="a trunk name")
        p.set_defaults(func=with_store(fn))
