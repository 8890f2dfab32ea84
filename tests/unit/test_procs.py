"""Process checks of the local stack: `is_alive` with threads left, and waiting for readiness."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops.localstack.procs import is_alive, wait_dead
from ops.localstack.wait import Exited, NotReady, wait_until

# exit(2) of the calling thread only (exit_group(2) would end them all)
SYS_EXIT = {"x86_64": 60, "aarch64": 93}.get(platform.machine())

# the main thread exits on its own; the daemon thread goes on, holding the process's files
LEADER_EXITS = f"""
import ctypes, threading, time
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("up", flush=True)
ctypes.CDLL(None).syscall({SYS_EXIT}, 0)
"""


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(SYS_EXIT is None, reason="exit(2) number known for x86_64 and aarch64 only")
def test_a_zombie_leader_with_a_running_thread_is_alive() -> None:
    with subprocess.Popen([sys.executable, "-c", LEADER_EXITS], stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"up\n"
            deadline = time.monotonic() + 10
            while _state(child.pid) != "Z":  # the first thread is gone
                assert time.monotonic() < deadline, "the main thread did not exit"
                time.sleep(0.01)
            assert len(os.listdir(f"/proc/{child.pid}/task")) == 2
            assert is_alive(child.pid)
            assert not wait_dead(child.pid, 0.2)
            os.kill(child.pid, signal.SIGKILL)
            assert wait_dead(child.pid, 10)
            assert not is_alive(child.pid)
        finally:
            child.kill()  # (nothing if it is gone)


def test_an_exited_child_is_dead_and_reaped() -> None:
    with subprocess.Popen([sys.executable, "-c", "pass"]) as child:
        assert wait_dead(child.pid, 10)
        assert not Path(f"/proc/{child.pid}").exists()  # reaped: no zombie left
    assert not is_alive(0)
    assert not is_alive(None)


def test_waiting_stops_when_the_process_has_exited() -> None:
    calls = []

    def check() -> bool:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise OSError("not yet")  # retried
        raise Exited("it exited during start-up")

    started = time.monotonic()
    with pytest.raises(Exited, match="exited during start-up"):
        wait_until(check, timeout=30, what="it", interval=0.01)
    assert len(calls) == 3
    assert time.monotonic() - started < 5


def test_waiting_times_out_naming_the_last_error() -> None:
    def check() -> bool:
        raise OSError("connection refused")

    with pytest.raises(NotReady, match=r"it not ready after 0 s \(last error: OSError"):
        wait_until(check, timeout=0.1, what="it", interval=0.01)
