"""A private redis-server process: free port, AOF on, data under a work directory.

Tests use it to kill (SIGKILL) and restart Redis and check that nothing is lost.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .ports import free_port
from .wait import wait_until


def ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


@dataclass
class RedisServer:
    workdir: Path
    port: int = 0
    appendonly: bool = True
    binary: str = "redis-server"
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 10.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        if shutil.which(self.binary) is None:
            raise RuntimeError(f"{self.binary} not found: apt-get install redis-server")
        self._proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: ping(self.port), timeout=timeout, what=f"redis-server on {self.port}")

    def argv(self) -> list[str]:
        """The command line of this server (creates the work dir, picks a port if none).

        Also used by ops.localstack.stack, which runs Redis as a detached process.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
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
