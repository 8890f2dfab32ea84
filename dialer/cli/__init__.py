"""The ``dialer`` command (argparse): run the engine and the API, manage campaigns from a shell.

::

    dialer engine                           one engine process
    dialer run                              engine + HTTP API + /metrics
    dialer campaign create FILE             YAML/TOML settings (+ contacts CSV) -> id
    dialer campaign list [--status S]       | show ID | edit ID FILE
    dialer campaign start|pause|resume ID   | stop ID [--hangup] | delete ID
    dialer campaign stop-all [--hangup]
    dialer campaign why ID [--json]         what holds it back (also in dialer status)
    dialer list upload ID FILE.csv          [--region CC] [--phone-column C]
    dialer list stop ID LIST_ID
    dialer status ID [--watch]              [--interval S]
    dialer records ID [--output FILE.csv]
    dialer analytics ID [--json]
    dialer dnc add|remove|check NUMBER...   [--campaign ID]
    dialer dnc import FILE                  [--campaign ID]
    dialer trunk show|reset TRUNK...        circuit breakers
    dialer callback add|move ID CONTACT AT  | cancel ID CONTACT | list ID
    dialer node list|set|remove|cap         PBX nodes, the global cap
    dialer trunkgroup list|set|remove       trunk groups over nodes

With ``--api URL`` (or ``DIALER_API_URL``) and a token (``--token``, ``DIALER_API_TOKEN`` or
``~/.config/dialer/token``, mode 0600) every command goes through the HTTP API and its roles
(:mod:`.remote`); without one, or with ``--local``, it talks to Redis on the host (host admin,
no roles). Settings come from DIALER_* environment variables
(:meth:`EngineSettings.from_env`), with ``--redis-url`` / ``--namespace`` overrides. A user
error prints ``dialer: <sentence>`` on stderr and exits 2; an unexpected one exits 1.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence

from dialer import __version__
from dialer.errors import DialerError
from dialer.importer import ImportRefused

from . import callbacks, campaigns, dnc, lists, nodes, records, recycle, service, status, trunks
from .common import Parser, common_options, note
from .output import plural, refusal_lines

__all__ = ["build_parser", "main"]

_LONG_RUNNING = ("engine", "run")


def build_parser() -> Parser:
    common = common_options()
    parser = Parser(
        prog="dialer",
        description="Outbound dialer: an asyncio engine pacing calls on Asterisk (AMI), with "
        "campaigns, queues and limits in Redis. Settings come from DIALER_* environment "
        "variables; --redis-url and --namespace override them.",
        epilog="Run 'dialer COMMAND --help' for a command's options.",
        parents=[common],
    )
    parser.add_argument(
        "--version", action="version", version=f"dialer {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = (service, campaigns, lists, status, records, dnc, trunks, recycle, callbacks, nodes)
    for module in modules:
        module.register(sub, common)
    return parser


def _leaf(exc: BaseException) -> BaseException:
    """The error inside task-group wrappers (the first DialerError, else the first leaf)."""
    while isinstance(exc, BaseExceptionGroup):
        inner = exc.exceptions
        exc = next((e for e in inner if isinstance(_leaf(e), DialerError)), inner[0])
    return exc


def _user_error(exc: DialerError) -> None:
    if isinstance(exc, ImportRefused):
        report = exc.report
        note(f"dialer: import refused ({plural(report.error_count, 'error')}), nothing imported:")
        for line in refusal_lines(report):
            note(line)
    else:
        note(f"dialer: {exc}")
    for line in getattr(exc, "__notes__", ()):  # what happened besides (remote.py)
        note(f"dialer: {line}")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    verbose = bool(getattr(args, "verbose", False))
    quiet = logging.INFO if args.command in _LONG_RUNNING else logging.WARNING
    logging.basicConfig(
        level=logging.DEBUG if verbose else quiet,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `dialer records 1 | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except BaseException as exc:  # noqa: B036  # one exit path for every failure
        error = _leaf(exc)
        if isinstance(error, KeyboardInterrupt):
            return 130
        if isinstance(error, SystemExit):
            raise
        if isinstance(error, DialerError):
            _user_error(error)
            return 2
        if verbose:
            traceback.print_exception(exc)
        hint = "" if verbose else " (run with -v for the traceback)"
        note(f"dialer: unexpected error: {type(error).__name__}: {error}{hint}")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
