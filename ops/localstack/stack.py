"""The local stack: Redis, the SIPp carrier simulator and a PBX, up and down in one call.

The PBX is Asterisk 22 (the default), FreeSWITCH 1.10.12 (from the cached build,
:mod:`.fsbuild`) or both (``up(pbx="asterisk"|"freeswitch"|"both")``); both switches reach the
same carrier simulator by trunks of the same names. With FreeSWITCH alone no Asterisk runs (its
root is not even built) and the Asterisk fields of :class:`StackInfo` are 0 / "".

``up()`` is idempotent: a stack that is alive and ready is returned as it is. Every stack has
a name, a work dir (``stack.json``, logs, Redis data, the rendered SIPp scenario and its audio)
and a block of ports of its own, so two stacks run side by side. ``down()`` stops everything
and raises :class:`~.procs.LeftoverProcess` if any process of the stack is still there.

``up()`` on a stack whose Asterisk, SIPp or Redis died restarts only what is missing, in place:
the ports, secrets and Redis data (AOF) recorded in ``stack.json``, so clients connected before
(an engine) reconnect to the same addresses. A new block of ports is taken only when there is
no stack in the work dir, or when its block has been taken by another stack meanwhile.

Redis runs with the ACL of ``ops/redis/users.acl``: the default user off, an ``admin`` (every
command, ``redis_admin_url``) and the ``dialer`` (least privilege, ``redis_url``), each with a
password generated per stack and kept in ``stack.json`` (mode 0600) like the AMI secret.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
import signal
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from . import asterisk, freeswitch, fsbuild, sipp
from .info import (
    AMI_USERNAME,
    COMPONENTS,
    DEAD_TRUNK,
    ORIGINATE_CONTEXT,
    ORIGINATE_EXTEN,
    QUALIFIED_TRUNK,
    TRUNK,
    StackError,
    StackInfo,
    load,
    save,
)
from .ports import free_port_block
from .procs import (
    LeftoverProcess,
    bound_ports,
    cmdline,
    find_processes,
    is_alive,
    spawn,
    terminate,
    wait_dead,
)
from .redis_server import DIALER_USER, RedisServer, RedisUsers, ping
from .root import build_root
from .wait import Exited, NotReady, wait_until

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
PORT_RANGE = (20000, 32000)  # below Linux's ephemeral range (32768-60999)
DEFAULT_RTP_PORTS = 400  # 200 concurrent calls (an RTP port pair per channel)
FREESWITCH_RTP_PORTS = 400  # FreeSWITCH's own range, after the 16 service ports
PBXES = ("asterisk", "freeswitch", "both")
# A new stack runs Asterisk unless told otherwise: it needs no build of its own (FreeSWITCH's
# takes about 6 minutes once), the demo and the benchmarks were measured on it, and the AMI
# watching user is what most tools here read.
DEFAULT_PBX = "asterisk"


def base_dir() -> Path:
    """Where stacks live by default: ``$DIALER_STACK_DIR`` or ``<tmp>/dialer-stacks``."""
    return Path(os.environ.get("DIALER_STACK_DIR") or Path(tempfile.gettempdir()) / "dialer-stacks")


def default_workdir(name: str) -> Path:
    return base_dir() / name


# -- state on disk ----------------------------------------------------------------------------


@contextmanager
def _global_lock() -> Iterator[None]:
    """One ``up``/``down`` at a time on this machine (ports are chosen under it)."""
    base = base_dir()
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _claims_dir() -> Path:
    return base_dir() / ".claims"


def _claimed_ranges() -> list[tuple[int, int]]:
    """Port blocks of live stacks (RTP ranges are not bound while idle, so bind tests miss them)."""
    ranges: list[tuple[int, int]] = []
    claims = _claims_dir()
    if not claims.is_dir():
        return ranges
    for claim in claims.glob("*.json"):
        data = json.loads(claim.read_text())
        info = load(Path(data["workdir"]))
        # a stack with one process left keeps its block: `up` restarts the others in place
        if info is not None and any(is_alive(pid) for pid in info.pids.values()):
            ranges.append((data["start"], data["end"]))
        else:
            claim.unlink(missing_ok=True)
    return ranges


def _block(info: StackInfo) -> tuple[int, int]:
    """The stack's block of ports (end exclusive): Asterisk's RTP range when it runs one, the
    16 service ports after it (the first is Asterisk's SIP port, SIPp's the second) and
    FreeSWITCH's RTP range after those when it runs one."""
    if not info.with_asterisk:
        return info.sipp_port - 1, info.freeswitch_rtp_end + 1
    return info.rtp_start, max(info.rtp_end + 17, info.freeswitch_rtp_end + 1)


def _claim(info: StackInfo) -> None:
    claims = _claims_dir()
    claims.mkdir(parents=True, exist_ok=True)
    start, end = _block(info)
    (claims / f"{info.name}-{start}.json").write_text(
        json.dumps({"workdir": str(info.workdir), "start": start, "end": end})
    )


def _allocate(size: int) -> int:
    taken = _claimed_ranges()
    start, end = PORT_RANGE
    while start + size < end:
        block = free_port_block(size, start=start, end=end)
        overlapping = [hi for lo, hi in taken if block < hi and lo < block + size]
        if not overlapping:
            return block
        start = max(overlapping)  # past the live stack's block (its end is exclusive)
    raise StackError(f"no free block of {size} ports in {PORT_RANGE}")


# -- readiness --------------------------------------------------------------------------------


def _owned(info: StackInfo, component: str) -> bool:
    """The component's recorded process is alive and still the stack's (not a reused pid)."""
    pid = info.pids[component]
    if not is_alive(pid):
        return False
    args = " ".join(cmdline(pid))
    if component == "asterisk":
        return f"{info.conf_dir}/asterisk.conf" in args
    if component == "freeswitch":
        return freeswitch.owns(info.freeswitch_layout(), args)
    if component == "redis":  # redis-server sets its title to "redis-server 127.0.0.1:<port>"
        return "redis-server" in args and f":{info.redis_port}" in args
    return "sipp" in args and f"-p {info.sipp_port}" in args


def _answers(info: StackInfo, component: str) -> bool:
    try:
        if component == "redis":
            users = info.redis_users
            if users is None:
                return ping(info.redis_port)
            return ping(info.redis_port, username=DIALER_USER, password=users.dialer_secret)
        if component == "sipp":
            return sipp.options_ok(info.sipp_port)
        if component == "freeswitch":
            return freeswitch.ready_now(info.freeswitch_layout())
        return asterisk.ami_login_ok(
            info.ami_host, info.ami_port, info.ami_username, info.ami_secret
        )
    except OSError:
        return False


def is_ready(info: StackInfo) -> bool:
    """Every process alive (and still ours) and every service answering."""
    parts = info.components
    return all(_owned(info, c) for c in parts) and all(_answers(info, c) for c in parts)


# -- up / down --------------------------------------------------------------------------------


def up(
    name: str = "default",
    workdir: Path | None = None,
    *,
    rtp_ports: int = DEFAULT_RTP_PORTS,
    with_freeswitch: bool = False,
    pbx: str | None = None,
) -> StackInfo:
    """Bring the stack up (or return it if it already runs and answers).

    ``pbx``: ``asterisk``, ``freeswitch`` (from the cached build, :mod:`.fsbuild`, with gateways
    toward the same carrier simulator) or ``both``; ``with_freeswitch=True`` is ``both``. A
    running stack that runs other switches than the ones asked for is started anew; when
    neither is given a running stack is taken as it is, and a new one runs ``DEFAULT_PBX``."""
    if not _NAME.match(name):
        raise StackError(f"bad stack name {name!r}: lowercase letters, digits, - and _")
    wanted = _wanted_pbx(pbx, with_freeswitch)
    if os.geteuid() != 0:
        raise StackError("the local stack needs root (chroot, ports, process checks)")
    workdir = (workdir or default_workdir(name)).resolve()
    ready = _ready_as_asked(workdir, wanted)
    if ready is not None:  # without the machine-wide lock: other stacks' ups and downs hold it
        log.info("stack %s already up", name)
        return ready
    with _global_lock():
        existing = load(workdir)
        if existing is not None and wanted is not None and existing.pbx != wanted:
            log.info("stack %s runs %s, %s is asked for: starting it anew",
                     name, existing.pbx, wanted)  # fmt: skip
            _teardown(existing)
            existing = None
        if existing is not None:
            if is_ready(existing):
                log.info("stack %s already up", name)
                return existing
            why = _in_place_refused(existing)
            if why is None:
                return _restart_in_place(existing)
            log.warning("stack %s cannot restart in place (%s): starting it anew", name, why)
            _teardown(existing)
        return _start(name, workdir, rtp_ports, wanted or DEFAULT_PBX)


def _ready_as_asked(workdir: Path, wanted: str | None) -> StackInfo | None:
    """The stack of ``workdir`` if it runs what is asked for and is ready (read-only)."""
    try:
        existing = load(workdir)
    except (OSError, ValueError, TypeError):  # being rewritten: the locked path decides
        return None
    if existing is None or (wanted is not None and existing.pbx != wanted):
        return None
    return existing if is_ready(existing) else None


def _wanted_pbx(pbx: str | None, with_freeswitch: bool) -> str | None:
    """The switches asked for (None: whatever the stack runs, ``DEFAULT_PBX`` for a new one)."""
    if pbx is not None and pbx not in PBXES:
        raise StackError(f"pbx must be one of {', '.join(PBXES)}, not {pbx!r}")
    if with_freeswitch:
        if pbx not in (None, "both"):
            raise StackError(f"with_freeswitch means pbx='both', not {pbx!r}")
        return "both"
    return pbx


def _in_place_refused(info: StackInfo) -> str | None:
    """Why the stack cannot be restarted on its recorded ports (None: it can)."""
    if info.redis_users is None:
        return "its stack.json predates the Redis ACL"
    start, end = _block(info)
    claims = _claims_dir()
    mine = claims / f"{info.name}-{start}.json"
    for claim in claims.glob("*.json") if claims.is_dir() else ():
        if claim == mine:
            continue
        data = json.loads(claim.read_text())
        if data["start"] < end and start < data["end"]:
            info_other = load(Path(data["workdir"]))
            if info_other is not None and any(is_alive(p) for p in info_other.pids.values()):
                return f"its ports are claimed by the stack of {data['workdir']}"
    return None


def _restart_in_place(info: StackInfo) -> StackInfo:
    """Start again, on the recorded ports and secrets, every component that is gone or does
    not answer; the others are left alone. Returns (and saves) the stack with the new pids."""
    started = time.monotonic()
    _claim(info)  # a stack whose processes all died may have lost its claim to a pruning
    restarted: list[str] = []
    for component in info.components:
        if _owned(info, component):
            if _answers(info, component) or _wait_answering(info, component):
                continue
            log.warning("stack %s: %s is alive but does not answer; restarting it",
                        info.name, component)  # fmt: skip
            _stop_component(info, component)
        info = _START[component](info)
        save(info)
        restarted.append(component)
    log.info(
        "stack %s restarted in place in %.1f s: %s",
        info.name, time.monotonic() - started, ", ".join(restarted) or "nothing",
    )  # fmt: skip
    return info


def _wait_answering(info: StackInfo, component: str, within: float = 5.0) -> bool:
    """A live process that has not answered yet (one still starting) gets ``within`` s."""
    try:
        wait_until(lambda: _answers(info, component), timeout=within, what=component)
    except NotReady:
        return False
    return True


def _stop_component(info: StackInfo, component: str) -> None:
    pid = info.pids[component]
    if component == "asterisk":
        asterisk.stop(info._layout(), pid)
    elif component == "sipp":
        sipp.stop(pid)
    elif component == "freeswitch":
        freeswitch.stop(pid)
    else:
        terminate(pid, timeout=10.0)


def _sipp_layout(info: StackInfo) -> sipp.SippLayout:
    return sipp.SippLayout(
        workdir=info.workdir / "sipp",
        sip_port=info.sipp_port,
        media_port=info.sipp_media_port,
        control_port=info.sipp_control_port,
    )


def _wait_ports_free(info: StackInfo, ports: list[tuple[str, int]]) -> None:
    """The ports of a component that just died, released (the kernel closes a large process's
    sockets a moment after its exit is reported); StackError if another process holds one."""

    def free() -> bool:
        bound = bound_ports()
        return not any(port in bound[kind] for kind, port in ports)

    try:
        wait_until(free, timeout=_PORT_RELEASE_S, what="ports")
    except NotReady:
        raise StackError(
            f"stack {info.name}: ports {ports} are held by another process; "
            "bring the stack down and up again"
        ) from None


def _restart_redis(info: StackInfo) -> StackInfo:
    _wait_ports_free(info, [("tcp", info.redis_port)])
    redis = RedisServer(
        workdir=info.workdir / "redis", port=info.redis_port, users=info.redis_users
    )
    pid = spawn(redis.argv(), log_file=info.workdir / "redis" / "stdout.log")
    wait_until(lambda: _redis_up(pid, redis), timeout=20, what="redis-server")
    return replace(info, redis_pid=pid)


def _restart_sipp(info: StackInfo) -> StackInfo:
    layout = _sipp_layout(info)
    _wait_ports_free(info, [("udp", layout.sip_port), ("udp", layout.media_port)])
    if not layout.scenario.is_file():
        sipp.render_scenario(layout)
    pid = sipp.start(layout)
    sipp.wait_ready(layout, pid)
    return replace(info, sipp_pid=pid)


def _restart_asterisk(info: StackInfo) -> StackInfo:
    _wait_ports_free(
        info, [("tcp", info.ami_port), ("tcp", info.http_port), ("udp", info.sip_port)]
    )
    layout = info._layout()
    pid = asterisk.start(layout, log_file=info.workdir / "asterisk" / "console.log")
    asterisk.wait_ready(layout, pid)
    return replace(info, asterisk_pid=pid)


def _restart_freeswitch(info: StackInfo) -> StackInfo:
    _wait_ports_free(info, [("tcp", info.esl_port), ("udp", info.freeswitch_sip_port)])
    layout = info.freeswitch_layout()
    freeswitch.render_config(layout)
    pid = freeswitch.start(layout)
    freeswitch.wait_ready(layout, pid)
    return replace(info, freeswitch_pid=pid)


_START = {
    "redis": _restart_redis,
    "sipp": _restart_sipp,
    "asterisk": _restart_asterisk,
    "freeswitch": _restart_freeswitch,
}


def _start(name: str, workdir: Path, rtp_ports: int, pbx: str) -> StackInfo:
    started = time.monotonic()
    with_asterisk = pbx in ("asterisk", "both")
    with_freeswitch = pbx in ("freeswitch", "both")
    fs_build = fsbuild.ready_build() if with_freeswitch else None
    if with_freeswitch and fs_build is None:
        raise StackError(
            f"no FreeSWITCH build at {fsbuild.prefix_path()}: "
            "python -m ops.localstack build-freeswitch (scripts/bootstrap runs it)"
        )
    root = build_root() if with_asterisk else None
    _check_name_free(name, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o700)
    ast_rtp_ports = rtp_ports if with_asterisk else 0
    fs_rtp_ports = FREESWITCH_RTP_PORTS if with_freeswitch else 0
    base = _allocate(ast_rtp_ports + 16 + fs_rtp_ports)
    # Asterisk's RTP range, then 16 service ports from p: Asterisk SIP p, SIPp p+1 (its media
    # p+2 .. p+5, control p+8), AMI p+10, the dead trunk p+11, Asterisk HTTP p+12, Redis p+13,
    # FreeSWITCH SIP p+14 and ESL p+15, then FreeSWITCH's RTP range.
    p = base + ast_rtp_ports
    dead_port = p + 11
    gateways = ((TRUNK, p + 1), (DEAD_TRUNK, dead_port), (QUALIFIED_TRUNK, dead_port))
    layout = None
    if root is not None:
        layout = asterisk.AsteriskLayout(
            root=root.path,
            name=name,
            module_dir=root.module_dir,
            ami_port=p + 10,
            ami_username=AMI_USERNAME,
            ami_secret=secrets.token_hex(16),
            sip_port=p,
            sipp_port=p + 1,
            dead_port=dead_port,
            http_port=p + 12,
            rtp_start=base,
            rtp_end=base + rtp_ports - 1,
        )
    sipp_layout = sipp.SippLayout(
        workdir=workdir / "sipp", sip_port=p + 1, media_port=p + 2, control_port=p + 8
    )
    redis = RedisServer(workdir=workdir / "redis", port=p + 13, users=RedisUsers.generate())
    fs_layout = None
    if fs_build is not None:
        fs_layout = freeswitch.FreeSwitchLayout(
            build=fs_build,
            dir=workdir / "freeswitch",
            sip_port=p + 14,
            esl_port=p + 15,
            esl_password=secrets.token_hex(16),
            rtp_start=p + 16,
            rtp_end=p + 16 + fs_rtp_ports - 1,
            gateways=gateways,
            pinged=(QUALIFIED_TRUNK,),
        )
    pids: dict[str, int] = {}
    try:
        pids["redis"] = spawn(redis.argv(), log_file=workdir / "redis" / "stdout.log")
        sipp.render_scenario(sipp_layout)
        pids["sipp"] = sipp.start(sipp_layout)
        if layout is not None:
            asterisk.render_config(layout)
            pids["asterisk"] = asterisk.start(layout, log_file=workdir / "asterisk" / "console.log")
        if fs_layout is not None:
            freeswitch.render_config(fs_layout)
            pids["freeswitch"] = freeswitch.start(fs_layout)
        wait_until(lambda: _redis_up(pids["redis"], redis), timeout=10, what="redis-server")
        sipp.wait_ready(sipp_layout, pids["sipp"])
        if layout is not None:
            asterisk.wait_ready(layout, pids["asterisk"])
        if fs_layout is not None:
            freeswitch.wait_ready(fs_layout, pids["freeswitch"])
    except BaseException:
        _stop_processes(layout, pids, fs_layout)
        if layout is not None:
            asterisk.remove_instance_dirs(layout, keep_log=workdir / "asterisk" / "messages.log")
        raise
    info = StackInfo(
        name=name,
        workdir=workdir,
        root=root.path if root is not None else Path(),
        conf_dir="",
        asterisk_version="",
        redis_url=redis.url,
        redis_port=redis.port,
        ami_host="",
        ami_port=0,
        ami_username="",
        ami_secret="",
        sip_port=0,
        sipp_port=sipp_layout.sip_port,
        sipp_media_port=sipp_layout.media_port,
        sipp_control_port=sipp_layout.control_port,
        dead_port=dead_port,
        http_port=0,
        rtp_start=0,
        rtp_end=0,
        redis_pid=pids["redis"],
        asterisk_pid=0,
        sipp_pid=pids["sipp"],
        redis_secret=redis.users.dialer_secret if redis.users else "",
        redis_admin_secret=redis.users.admin_secret if redis.users else "",
    )
    if layout is not None and root is not None:
        info = replace(
            info,
            conf_dir=layout.conf_dir,
            asterisk_version=root.asterisk_version,
            ami_host="127.0.0.1",
            ami_port=layout.ami_port,
            ami_username=layout.ami_username,
            ami_secret=layout.ami_secret,
            sip_port=layout.sip_port,
            http_port=layout.http_port,
            rtp_start=layout.rtp_start,
            rtp_end=layout.rtp_end,
            asterisk_pid=pids["asterisk"],
        )
    if fs_layout is not None:
        info = replace(
            info,
            freeswitch_pid=pids["freeswitch"],
            freeswitch_prefix=str(fs_layout.build.prefix),
            freeswitch_sip_port=fs_layout.sip_port,
            esl_port=fs_layout.esl_port,
            esl_password=fs_layout.esl_password,
            freeswitch_rtp_start=fs_layout.rtp_start,
            freeswitch_rtp_end=fs_layout.rtp_end,
        )
    save(info)
    _claim(info)
    log.info("stack %s (%s) up in %.1f s", name, pbx, time.monotonic() - started)
    return info


def _check_name_free(name: str, workdir: Path) -> None:
    """StackError if another work dir's live stack has this name (Asterisk's config dir and
    the port claims are named after it)."""
    users = find_processes([f"/etc/dialer-{name}/"])
    if users:
        raise StackError(
            f"stack name {name!r} is in use by another work dir (pid {users[0].pid}): "
            "choose another --name or bring that stack down"
        )
    claims = _claims_dir()
    for claim in claims.glob(f"{name}-*.json") if claims.is_dir() else ():
        other = Path(json.loads(claim.read_text())["workdir"])
        info = load(other)
        if (
            other != workdir
            and info is not None
            and info.name == name
            and any(is_alive(pid) for pid in info.pids.values())
        ):
            raise StackError(
                f"stack name {name!r} is in use by the stack of {other}: "
                "choose another --name or bring that stack down"
            )


def _redis_up(pid: int, redis: RedisServer) -> bool:
    if not is_alive(pid):
        raise Exited(f"redis-server exited during start-up (port {redis.port})")
    return redis.ping()


def _stop_processes(
    layout: asterisk.AsteriskLayout | None,
    pids: dict[str, int],
    fs_layout: freeswitch.FreeSwitchLayout | None = None,
) -> None:
    if fs_layout is not None:
        freeswitch.shutdown_now(fs_layout, pids.get("freeswitch"))
    else:
        freeswitch.stop(pids.get("freeswitch"))
    sipp.stop(pids.get("sipp"))
    if layout is not None:
        asterisk.stop(layout, pids.get("asterisk"))
    terminate(pids.get("redis"), timeout=10.0)  # SIGTERM: Redis writes its AOF


def down(name: str = "default", workdir: Path | None = None) -> bool:
    """Stop the stack; False if there was nothing to stop. Raises LeftoverProcess if any is left."""
    workdir = (workdir or default_workdir(name)).resolve()
    with _global_lock():
        info = load(workdir)
        if info is None:
            _check_gone(name, workdir, pids=())
            return False
        _teardown(info)
        return True


def _teardown(info: StackInfo) -> None:
    layout = info._layout() if info.with_asterisk else None
    fs_layout = info.freeswitch_layout() if info.with_freeswitch else None
    _stop_processes(layout, info.pids, fs_layout)
    if layout is not None:
        asterisk.remove_instance_dirs(layout, keep_log=info.workdir / "asterisk" / "messages.log")
    (info.workdir / "stack.json").unlink(missing_ok=True)
    for claim in _claims_dir().glob(f"{info.name}-*.json"):
        claim.unlink(missing_ok=True)
    _check_gone(info.name, info.workdir, pids=info.pids.values(), ports=_ports_of(info))


def _ports_of(info: StackInfo) -> list[tuple[str, int]]:
    ports = [("tcp", info.redis_port), ("udp", info.sipp_port), ("udp", info.sipp_media_port)]
    if info.with_asterisk:
        ports += [("tcp", info.ami_port), ("tcp", info.http_port), ("udp", info.sip_port)]
    if info.with_freeswitch:
        ports += [("tcp", info.esl_port), ("udp", info.freeswitch_sip_port)]
    return ports


_PORT_RELEASE_S = 5.0


def _check_gone(
    name: str,
    workdir: Path,
    *,
    pids: Iterable[int] = (),
    ports: Iterable[tuple[str, int]] = (),
) -> None:
    """Raise LeftoverProcess if a process of the stack survived (by pid, command line, port).

    A port may stay bound for a moment after its process is gone (the kernel closes the
    sockets of a large process after its exit is reported): ports alone get
    ``_PORT_RELEASE_S`` to be released."""
    pids, ports = list(pids), list(ports)
    deadline = time.monotonic() + _PORT_RELEASE_S
    while True:
        left = [pid for pid in pids if is_alive(pid)]
        found = find_processes([f"/etc/dialer-{name}/", f"{workdir}/"])
        bound = bound_ports()
        busy = [f"{kind}/{port}" for kind, port in ports if port in bound[kind]]
        if left or found or not busy or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if left or found or busy:
        detail = [f"pid {pid}" for pid in left]
        detail += [f"pid {p.pid}: {' '.join(p.cmdline)}" for p in found]
        detail += [f"port {b} still bound" for b in busy]
        raise LeftoverProcess(f"stack {name!r} left processes behind: {'; '.join(detail)}")


def status(name: str = "default", workdir: Path | None = None) -> tuple[StackInfo | None, bool]:
    """The stack's recorded state and whether it is ready now."""
    info = load((workdir or default_workdir(name)).resolve())
    return info, info is not None and is_ready(info)


__all__ = [
    "AMI_USERNAME",
    "COMPONENTS",
    "DEAD_TRUNK",
    "DEFAULT_PBX",
    "ORIGINATE_CONTEXT",
    "ORIGINATE_EXTEN",
    "PBXES",
    "TRUNK",
    "LeftoverProcess",
    "StackError",
    "StackInfo",
    "default_workdir",
    "down",
    "is_ready",
    "load",
    "status",
    "up",
]


# -- faults: stop, kill and restart one component in place (same ports, same config) ----------


def kill_asterisk(info: StackInfo, *, hard: bool = True) -> StackInfo:
    """Asterisk goes away: SIGKILL (``hard``, a crash) or ``core stop now``. Returns the info."""
    if hard:
        terminate_now(info.asterisk_pid)
    else:
        asterisk.stop(info._layout(), info.asterisk_pid)
    return info


def start_asterisk(info: StackInfo) -> StackInfo:
    """Start Asterisk again with the stack's configuration; returns (and saves) the new info."""
    with _global_lock():
        new = _restart_asterisk(info)
        save(new)
    return new


def kill_redis(info: StackInfo, *, hard: bool = False) -> StackInfo:
    """Redis goes away: SIGTERM (it writes its AOF) or SIGKILL (``hard``)."""
    if hard:
        terminate_now(info.redis_pid)
    else:
        terminate(info.redis_pid, timeout=10.0)
    return info


def start_redis(info: StackInfo) -> StackInfo:
    """Start Redis again on the same port, users and data directory (the AOF is replayed)."""
    with _global_lock():
        new = _restart_redis(info)
        save(new)
    return new


def terminate_now(pid: int) -> None:
    """SIGKILL and wait until the process is gone."""
    if not is_alive(pid):
        return
    os.kill(pid, signal.SIGKILL)
    if not wait_dead(pid, 10.0):
        raise StackError(f"pid {pid} survived SIGKILL")
