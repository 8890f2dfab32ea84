"""A private redis-server process: free port, AOF on, data under a work directory.

Tests use it to kill (SIGKILL) and restart Redis and check that nothing is lost. With
:class:`RedisUsers` it runs with the ACL of ``ops/redis/users.acl`` (the local stack does): the
default user off, an ``admin`` and a least-privilege ``dialer`` user with their own passwords.
Without (the unit tests' private server), the default user is open, as the tests' helpers run
commands no dialer may (SCAN, TYPE, SCRIPT FLUSH, INFO) and the ACL is tested on its own.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .ports import free_port
from .templates import render
from .wait import wait_until

ACL_TEMPLATE = Path(__file__).resolve().parents[1] / "redis" / "users.acl"
DIALER_USER = "dialer"
ADMIN_USER = "admin"


@dataclass(frozen=True, slots=True)
class RedisUsers:
    """The passwords of the ACL's ``dialer`` and ``admin`` users."""

    dialer_secret: str
    admin_secret: str

    @classmethod
    def generate(cls) -> RedisUsers:
        return cls(secrets.token_hex(16), secrets.token_hex(16))

    def acl(self) -> str:
        """``ops/redis/users.acl`` with the passwords' digests, comments dropped."""
        text = render(
            ACL_TEMPLATE.read_text(),
            {
                "STACK_REDIS_DIALER_SHA256": _sha256(self.dialer_secret),
                "STACK_REDIS_ADMIN_SHA256": _sha256(self.admin_secret),
            },
            source=str(ACL_TEMPLATE),
        )
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        return "\n".join(lines) + "\n"


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _resp(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        raw = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def ping(port: int, *, username: str = "", password: str = "") -> bool:
    """PING (after AUTH when a user is given): True on PONG."""
    request = _resp("PING")
    if username:
        request = _resp("AUTH", username, password) + request
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        s.sendall(request)
        reply = b""
        while reply.count(b"\r\n") < (2 if username else 1):
            chunk = s.recv(256)
            if not chunk:
                return False
            reply += chunk
        return reply.endswith(b"+PONG\r\n") and (not username or reply.startswith(b"+OK"))


def url(port: int, username: str = "", password: str = "") -> str:
    """``redis://[user:password@]127.0.0.1:port/0`` (the passwords are hex: nothing to quote)."""
    auth = f"{username}:{password}@" if username else ""
    return f"redis://{auth}127.0.0.1:{port}/0"


@dataclass
class RedisServer:
    workdir: Path
    port: int = 0
    appendonly: bool = True
    binary: str = "redis-server"
    users: RedisUsers | None = None  # None: no ACL file, the default user open
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The dialer's URL (with the dialer user's credentials when there is an ACL)."""
        if self.users is None:
            return url(self.port)
        return url(self.port, DIALER_USER, self.users.dialer_secret)

    @property
    def admin_url(self) -> str:
        if self.users is None:
            return url(self.port)
        return url(self.port, ADMIN_USER, self.users.admin_secret)

    def ping(self) -> bool:
        if self.users is None:
            return ping(self.port)
        return ping(self.port, username=DIALER_USER, password=self.users.dialer_secret)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 10.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        if shutil.which(self.binary) is None:
            raise RuntimeError(f"{self.binary} not found: apt-get install redis-server")
        self._proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(self.ping, timeout=timeout, what=f"redis-server on {self.port}")

    def argv(self) -> list[str]:
        """The command line of this server (creates the work dir, picks a port if none, writes
        the ACL file when there are users).

        Also used by ops.localstack.stack, which runs Redis as a detached process.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        acl: list[str] = []
        if self.users is not None:
            acl_file = self.workdir / "users.acl"
            tmp = acl_file.with_suffix(".tmp")
            tmp.write_text(self.users.acl())
            tmp.chmod(0o600)
            tmp.rename(acl_file)
            acl = ["--aclfile", str(acl_file)]
        return [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.workdir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.workdir / "redis.log"),
            "--pidfile", str(self.workdir / "redis.pid"),
            *acl,
        ]  # fmt: skip

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM: Redis flushes the AOF)."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Crash it (SIGKILL), as a power cut would."""
        self._signal(signal.SIGKILL, 10.0)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _signal(self, sig: int, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
