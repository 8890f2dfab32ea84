"""A Redis Sentinel group of real processes on loopback: one master, one replica, three
sentinels (``redis-server sentinel.conf --sentinel``: the same program as redis-sentinel),
each on a free port, with a short ``down-after-milliseconds`` so that a killed master is
replaced within a few seconds.

Import the fixture where it is needed: ``from tests.integration.sentinel_fixture import
sentinel_group_fixture  # noqa: F401`` (tests then take ``sentinel_group``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from ops.localstack.ports import free_port
from ops.localstack.redis_server import ping
from ops.localstack.wait import wait_until

SERVICE = "dialer-master"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
QUORUM = 2


@dataclass
class RedisProcess:
    """One redis-server (data node or sentinel) of the group, restartable with its argv."""

    name: str
    port: int
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: ping(self.port), timeout=10, what=self.name)

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL, waited for."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGCONT)  # a stopped one (SIGSTOP) cannot end
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)


@dataclass
class SentinelGroup:
    workdir: Path
    master: RedisProcess
    replica: RedisProcess
    sentinels: list[RedisProcess]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def master_port(self) -> int | None:
        """The master's port as the first sentinel that answers names it (None: none knows)."""
        for s in self.sentinels:
            try:
                with s.client() as c:
                    addr = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            except redis.RedisError:
                continue
            if addr:
                return int(addr[1])
        return None

    def current_master(self) -> RedisProcess:
        port = self.master_port()
        return self.master if port == self.master.port else self.replica

    def wait_promoted(self, port: int, timeout: float = 30.0) -> float:
        """Wait until every live sentinel names ``port`` the master; returns when (monotonic)."""

        def promoted() -> bool:
            for s in self.sentinels:
                with s.client() as c:
                    addr = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                    if not addr or int(addr[1]) != port:
                        return False
            with redis.Redis(port=port, socket_timeout=2) as c:
                return bool(c.execute_command("ROLE")[0] == b"master")

        wait_until(promoted, timeout=timeout, what=f"promotion of 127.0.0.1:{port}")
        return time.monotonic()

    def wait_replicating(self, node: RedisProcess, timeout: float = 30.0) -> None:
        """Wait until ``node`` is a replica in sync with the current master."""

        def synced() -> bool:
            with node.client() as c:
                info = c.info("replication")
            return bool(
                info.get("role") == "slave"
                and info.get("master_link_status") == "up"
                and int(info.get("master_port", 0)) == self.master_port()
            )

        wait_until(synced, timeout=timeout, what=f"{node.name} replicating")

    def stop(self) -> None:
        for p in [*self.sentinels, self.replica, self.master]:
            p.stop()


def data_node(workdir: Path, name: str, replicaof: int | None = None) -> RedisProcess:
    port = free_port()
    d = workdir / name
    d.mkdir(parents=True)
    argv = [
        "redis-server",
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(d),
        "--appendonly", "yes",  # a restarted master comes back with its data, not empty
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        "--logfile", str(d / "redis.log"),
        "--repl-diskless-sync", "yes",
        "--repl-diskless-sync-delay", "0",
    ]  # fmt: skip
    if replicaof is not None:
        argv += ["--replicaof", "127.0.0.1", str(replicaof)]
    return RedisProcess(name, port, argv)


def _sentinel(workdir: Path, name: str, master_port: int) -> RedisProcess:
    port = free_port()
    d = workdir / name
    d.mkdir(parents=True)
    conf = d / "sentinel.conf"  # the sentinel rewrites it: one file each
    conf.write_text(
        f"port {port}\n"
        "bind 127.0.0.1\n"
        f"dir {d}\n"
        f"logfile {d / 'sentinel.log'}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} {QUORUM}\n"
        f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {SERVICE} 1\n"
    )
    return RedisProcess(name, port, ["redis-server", str(conf), "--sentinel"])


def start_group(workdir: Path) -> SentinelGroup:
    """Start the five processes; return once every sentinel sees the replica and the other
    two sentinels (before that a failover could not reach its quorum)."""
    master = data_node(workdir, "master")
    master.start()
    replica = data_node(workdir, "replica", replicaof=master.port)
    sentinels = [_sentinel(workdir, f"sentinel-{i}", master.port) for i in range(3)]
    group = SentinelGroup(workdir, master, replica, sentinels)
    try:
        replica.start()
        for s in sentinels:
            s.start()

        def known() -> bool:
            for s in sentinels:
                with s.client() as c:
                    state = c.sentinel_master(SERVICE)
                if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                    return False
            return True

        wait_until(known, timeout=30, what="sentinels discovering each other", interval=0.1)
        group.wait_replicating(replica)
    except BaseException:
        group.stop()
        raise
    return group


@pytest.fixture(name="sentinel_group")
def sentinel_group_fixture(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A fresh group per test (tests kill its master)."""
    group = start_group(tmp_path / "sentinel")
    try:
        yield group
    finally:
        group.stop()
