"""The ``dialer`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from dialer.config import EngineSettings
from dialer.errors import DialerError


def _engine(args: argparse.Namespace) -> int:
    from dialer.app import run_engine

    asyncio.run(run_engine(EngineSettings.from_env()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialer", description="Telephony-native outbound dialer engine."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "engine",
        help="run one engine process (settings from DIALER_* environment variables)",
        description="Run one engine process until SIGINT/SIGTERM. Settings: DIALER_REDIS_URL, "
        "DIALER_NAMESPACE, DIALER_AMI_URL, DIALER_ENGINE_ID, DIALER_LEASE_MS, DIALER_TRUNKS.",
    )
    p.set_defaults(func=_engine)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
    except DialerError as exc:
        print(f"dialer: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
