"""Detached processes of a stack: spawn, check, stop, and find leftovers in /proc.

The stack's servers outlive the command that started them (``python -m ops.localstack up``
returns while they run), so they are spawned with ``os.posix_spawn`` in a session of their own,
identified by pid afterwards, and stopped from any process by pid. When the caller is their
parent (the Python API in a test session) exited children are reaped here, so none is left as a
zombie.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


class LeftoverProcess(RuntimeError):
    """A process of a stack is still running after the stack was stopped."""


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    cmdline: tuple[str, ...]


def spawn(argv: Sequence[str], *, log_file: Path, cwd: Path | None = None) -> int:
    """Start ``argv`` in a new session, stdin from /dev/null, stdout+stderr appended to a file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    path = argv[0]
    if "/" not in path:
        path = _which(path)
    actions: list[tuple[int, int, str, int, int] | tuple[int, int, int]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)  # posix_spawn has no cwd argument before Python 3.13
    try:
        return os.posix_spawn(path, list(argv), dict(os.environ), file_actions=actions, setsid=True)
    finally:
        if cwd is not None:
            os.chdir(old)


def _which(name: str) -> str:
    for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(name)


def reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our exited child (no zombie left behind)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def is_alive(pid: int | None) -> bool:
    """True if any thread of ``pid`` runs (a zombie counts as dead; our own zombie child is
    reaped).

    A process's first thread turns zombie as soon as it exits, while its other threads may
    still be running or on their way out, holding the process's files: a SIGKILLed Asterisk
    with a few hundred threads keeps its control socket for a while after that, and an
    Asterisk started meanwhile finds it "already running" and exits."""
    if not pid:
        return False
    reap(pid)
    if _any_thread_running(PROC / str(pid)):
        return True
    reap(pid)  # it may have exited after the first reap: collect it now (a CI run saw a zombie)
    return False


def _any_thread_running(proc: Path) -> bool:
    if _running(proc / "stat"):
        return True
    try:
        threads = list((proc / "task").iterdir())
    except OSError:
        return False
    return any(_running(thread / "stat") for thread in threads)


def _running(stat_file: Path) -> bool:
    """The process or thread of this ``stat`` file exists and is not a zombie."""
    try:
        stat = stat_file.read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> tuple[str, ...]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ()
    return tuple(p.decode(errors="replace") for p in raw.split(b"\0") if p)


def wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.02)
    return not is_alive(pid)


def terminate(pid: int | None, *, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` s; returns once the process is gone."""
    if not is_alive(pid):
        return
    assert pid is not None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_dead(pid, timeout):
            return
    raise LeftoverProcess(f"pid {pid} survived SIGKILL: {' '.join(cmdline(pid))}")


def find_processes(markers: Iterable[str]) -> list[ProcessInfo]:
    """Live processes whose command line contains any of ``markers`` (never this process)."""
    wanted = [m for m in markers if m]
    found: list[ProcessInfo] = []
    me = os.getpid()
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        args = cmdline(pid)
        joined = " ".join(args)
        if args and any(m in joined for m in wanted) and is_alive(pid):
            found.append(ProcessInfo(pid, args))
    return found


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets ``pid`` holds open."""
    inodes: set[int] = set()
    fd_dir = PROC / str(pid) / "fd"
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def bound_ports(pid: int | None = None) -> dict[str, set[int]]:
    """Ports bound by ``pid`` (any process if None): ``{"tcp": listening, "udp": bound}``, IPv4."""
    mine = socket_inodes(pid) if pid is not None else None
    out: dict[str, set[int]] = {"tcp": set(), "udp": set()}
    for proto in out:
        try:
            lines = (PROC / "net" / proto).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            listening = proto == "udp" or fields[3] == "0A"
            if listening and (mine is None or int(fields[9]) in mine):
                out[proto].add(port)
    return out
