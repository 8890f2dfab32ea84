"""``python -m ops.localstack build-root|up|down|status|env``.

python -m ops.localstack build-root          # the cached Asterisk 22 root (about 50 s once)
python -m ops.localstack build-freeswitch    # the cached FreeSWITCH 1.10.12 (about 6-10 min once)
python -m ops.localstack up [--name N] [--workdir DIR] [--rtp-ports 400] [--pbx PBX]
# --pbx asterisk|freeswitch|both: the switches it runs (a new stack: asterisk; --with-freeswitch
# is --pbx both).
# ``up`` on a stack that is partly dead restarts the dead parts on the same ports and secrets;
# ``up --pbx X`` on a stack that runs other switches starts it anew with X.
eval "$(python -m ops.localstack env)"       # DIALER_REDIS_URL, DIALER_AMI_URL, ...
eval "$(python -m ops.localstack env --pbx freeswitch)"  # DIALER_ESL_URL instead of the AMI URL
python -m ops.localstack status              # JSON; exit 1 if not up and ready
python -m ops.localstack down
DIALER_ESL_PASSWORD=... python -m ops.localstack run-freeswitch [--prefix P] [--gateway T=PORT]
# FreeSWITCH alone in the foreground, its config rendered as the stack's (docker-compose)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

from . import freeswitch, fsbuild, sipp, stack
from .procs import LeftoverProcess
from .root import RootError, build_root
from .wait import NotReady


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.localstack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build-root", help="build (or find) the cached Asterisk 22 root")
    sub.add_parser(
        "build-freeswitch",
        help="build (or find) the cached FreeSWITCH 1.10.12 from $DIALER_FREESWITCH_SOURCES",
    )
    render = sub.add_parser("render-scenario", help="write the SIPp scenario and its audio")
    render.add_argument("--out", type=Path, required=True, help="directory to write into")
    fs = sub.add_parser(
        "run-freeswitch",
        help="render FreeSWITCH's config (as the stack's) and run it in the foreground; "
        "the ESL password comes from $DIALER_ESL_PASSWORD",
    )
    fs.add_argument(
        "--prefix",
        type=Path,
        default=None,
        help="FreeSWITCH's install prefix (bin/freeswitch; default: the cached build)",
    )
    fs.add_argument("--dir", type=Path, default=Path("/var/lib/dialer-freeswitch"),
                    help="the instance's dirs (conf, log, db, run...)")  # fmt: skip
    fs.add_argument("--sip-port", type=int, default=5080, help="the sofia profile's SIP port")
    fs.add_argument("--esl-port", type=int, default=8021, help="ESL on 127.0.0.1")
    fs.add_argument("--rtp-start", type=int, default=16384)
    fs.add_argument("--rtp-end", type=int, default=16783)
    fs.add_argument(
        "--gateway",
        action="append",
        metavar="TRUNK=PORT",
        help="a gateway named after a trunk, toward 127.0.0.1:PORT (repeatable; "
        "default: carrier=5070 carrier-dead=5099, as the local stack's)",
    )
    for name, text in (
        ("up", "start the stack (idempotent; restarts its dead parts in place)"),
        ("down", "stop the stack; fails if a process is left"),
        ("status", "print the stack as JSON; exit 1 unless it is up and ready"),
        ("env", "print shell exports for the dialer"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--name", default="default", help="stack name (default: default)")
        cmd.add_argument(
            "--workdir",
            type=Path,
            default=None,
            help="work dir (default: $DIALER_STACK_DIR/<name>)",
        )
        if name == "env":
            cmd.add_argument(
                "--pbx",
                choices=("asterisk", "freeswitch"),
                default=None,
                help="which switch the dialer is pointed at (DIALER_AMI_URL or DIALER_ESL_URL; "
                "default: Asterisk if the stack runs one, else FreeSWITCH)",
            )
        if name == "up":
            cmd.add_argument(
                "--rtp-ports",
                type=int,
                default=stack.DEFAULT_RTP_PORTS,
                help="size of Asterisk's RTP port range (2 per concurrent call)",
            )
            cmd.add_argument(
                "--pbx",
                choices=stack.PBXES,
                default=None,
                help="the switch(es) to run: FreeSWITCH from the cached build (build-freeswitch). "
                f"Default: what the stack runs, {stack.DEFAULT_PBX} for a new one",
            )
            cmd.add_argument(
                "--with-freeswitch",
                dest="pbx",
                action="store_const",
                const="both",
                help="the same as --pbx both",
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "build-root":
            root = build_root()
            print(f"{root.path}: {root.asterisk_version}")
        elif args.command == "build-freeswitch":
            fs = fsbuild.build()
            print(f"{fs.prefix}: {fs.version}")
        elif args.command == "render-scenario":
            layout = sipp.SippLayout(args.out, sip_port=0, media_port=0, control_port=0)
            print(sipp.render_scenario(layout))
        elif args.command == "run-freeswitch":
            return _run_freeswitch(args)
        elif args.command == "up":
            print(
                stack.up(
                    args.name,
                    args.workdir,
                    rtp_ports=args.rtp_ports,
                    pbx=args.pbx,
                ).to_json()
            )
        elif args.command == "down":
            stopped = stack.down(args.name, args.workdir)
            print(f"stack {args.name}: {'stopped' if stopped else 'was not running'}")
        elif args.command == "status":
            found, ready = stack.status(args.name, args.workdir)
            data = json.loads(found.to_json()) if found else {"name": args.name}
            if found:
                data["pbx"] = found.pbx
            data["ready"] = ready
            print(json.dumps(data, indent=2))
            return 0 if ready else 1
        elif args.command == "env":
            info, ready = stack.status(args.name, args.workdir)
            if info is None or not ready:
                print(f"stack {args.name} is not up: python -m ops.localstack up", file=sys.stderr)
                return 1
            for key, value in info.env(args.pbx).items():
                print(f"export {key}={shlex.quote(value)}")
    except (
        stack.StackError,
        RootError,
        fsbuild.FreeSwitchBuildError,
        LeftoverProcess,
        NotReady,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _run_freeswitch(args: argparse.Namespace) -> int:
    """Render the config into ``args.dir`` and replace this process with FreeSWITCH."""
    password = os.environ.get("DIALER_ESL_PASSWORD", "")
    if len(password) < 16 or not password.isalnum():
        print("error: set DIALER_ESL_PASSWORD (16+ letters and digits)", file=sys.stderr)
        return 2
    if args.prefix is None:
        build = fsbuild.ready_build()
        if build is None:
            print(f"error: no FreeSWITCH build at {fsbuild.prefix_path()}", file=sys.stderr)
            return 2
    else:
        build = fsbuild.FreeSwitchBuild(prefix=args.prefix, version="")
    if not build.binary.is_file():
        print(f"error: no FreeSWITCH binary at {build.binary}", file=sys.stderr)
        return 2
    gateways = []
    for item in args.gateway or ("carrier=5070", "carrier-dead=5099"):
        name, _, port = item.partition("=")
        if not name or not port.isdigit():
            print(f"error: --gateway {item!r}: want TRUNK=PORT", file=sys.stderr)
            return 2
        gateways.append((name, int(port)))
    layout = freeswitch.FreeSwitchLayout(
        build=build,
        dir=args.dir,
        sip_port=args.sip_port,
        esl_port=args.esl_port,
        esl_password=password,
        rtp_start=args.rtp_start,
        rtp_end=args.rtp_end,
        gateways=tuple(gateways),
    )
    freeswitch.render_config(layout)
    argv = layout.argv()
    sys.stdout.flush()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main())
