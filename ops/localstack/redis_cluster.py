"""A private Redis Cluster on loopback: N masters (no replicas), each a redis-server on a free port.

Each master also needs its cluster bus port (port + 10000) free. ``redis-cli --cluster create``
spreads the 16384 slots over the masters; :meth:`RedisCluster.start` returns once every node
says ``cluster_state:ok``. Used by the Cluster tests (tests/integration/test_redis_cluster.py)
and the claim benchmark (loadtest/bench/cluster_claim.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .ports import free_port, port_is_free
from .redis_server import ping
from .wait import wait_until

BUS_OFFSET = 10_000  # Redis's cluster bus port is the client port + 10000


def _cluster_port() -> int:
    """A free port whose bus port (+10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + BUS_OFFSET < 65536 and port_is_free(port + BUS_OFFSET):
            return port
    raise RuntimeError("no free port with a free cluster bus port")


def _cli(port: int, *words: str, timeout: float = 30.0) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *words],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


@dataclass
class RedisClusterProcs:
    """``masters`` redis-server processes forming one cluster (``url``: the dialer's URL)."""

    workdir: Path
    masters: int = 3
    binary: str = "redis-server"
    ports: list[int] = field(default_factory=list)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,.../`` (dialer.store.connection)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports) + "/"

    def node_url(self, index: int) -> str:
        return f"redis://127.0.0.1:{self.ports[index]}/0"

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for i in range(self.masters):
            port = _cluster_port()
            self.ports.append(port)
            node_dir = self.workdir / f"node{i}"
            node_dir.mkdir(exist_ok=True)
            argv = [
                self.binary,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(node_dir),
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--cluster-node-timeout", "5000",
                "--appendonly", "no",
                "--save", "",
                "--daemonize", "no",
                "--logfile", str(node_dir / "redis.log"),
            ]  # fmt: skip
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
            self._procs.append(proc)
        for port in self.ports:
            wait_until(partial(ping, port), timeout=timeout, what=f"redis-server on {port}")
        seeds = [f"127.0.0.1:{p}" for p in self.ports]
        _cli(
            self.ports[0], "--cluster", "create", *seeds, "--cluster-replicas", "0", "--cluster-yes"
        )
        wait_until(self._ok, timeout=timeout, what="Redis Cluster state ok")

    def _ok(self) -> bool:
        return all("cluster_state:ok" in _cli(p, "CLUSTER", "INFO") for p in self.ports)

    def node_of_key(self, key: str) -> int:
        """The index (in ``ports``) of the master serving ``key``'s slot (CLUSTER NODES)."""
        slot = int(_cli(self.ports[0], "CLUSTER", "KEYSLOT", key))
        for line in _cli(self.ports[0], "CLUSTER", "NODES").splitlines():
            words = line.split()
            if len(words) < 8 or "master" not in words[2].split(","):
                continue
            port = int(words[1].split("@")[0].rpartition(":")[2])
            for served in words[8:]:
                first, _, last = served.partition("-")
                if first.isdigit() and int(first) <= slot <= int(last or first):
                    return self.ports.index(port)
        raise LookupError(f"slot {slot} of {key!r} is not served")

    def stop(self, timeout: float = 10.0) -> None:
        procs, self._procs = self._procs, []
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
