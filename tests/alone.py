"""Tests marked ``alone`` run while no other test runs, when the suite runs on several workers.

``scripts/test`` runs the suite on two pytest-xdist workers, each with its own stacks. A test
that measures time on the machine (a rate on the switch's clock, a retry's or a callback's
lateness, CPU per call, the benchmarks) keeps the bounds it was written with only if nothing
else loads the machine meanwhile. So every test takes a turn of a readers-writer lock shared by
the workers (``fcntl.flock`` on a file the controller names in ``$DIALER_TEST_TURN_LOCK``): an
``alone`` test takes it exclusively, any other test shared. The turn covers the test's whole
protocol (setup, call, teardown), so a stack started or stopped by another test's fixtures does
not run beside an ``alone`` test either.

A gate file gives the ``alone`` test precedence: it holds the gate while it waits for the
running tests to end, and a test takes the gate for a moment before its shared turn, so no new
test starts meanwhile. Without xdist (a plain ``pytest`` run) there is no lock and no wait.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ENV = "DIALER_TEST_TURN_LOCK"
MARKER = "alone"


def configure(config: pytest.Config) -> None:
    """In the xdist controller: name a fresh lock file for the workers (they inherit the
    environment when they start, after this)."""
    if os.environ.get("PYTEST_XDIST_WORKER") or config.getoption("dist", "no") == "no":
        return
    fd, path = tempfile.mkstemp(prefix="dialer-test-turn-", suffix=".lock")
    os.close(fd)
    os.environ[ENV] = path


def unconfigure() -> None:
    """In the controller: remove the lock files it named."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    path = os.environ.pop(ENV, None)
    if path is not None:
        Path(path).unlink(missing_ok=True)
        Path(path + ".gate").unlink(missing_ok=True)


@contextmanager
def turn(item: pytest.Item) -> Iterator[None]:
    """The test's turn: exclusive for an ``alone`` test, shared for any other."""
    path = os.environ.get(ENV) if os.environ.get("PYTEST_XDIST_WORKER") else None
    if path is None:
        yield
        return
    alone = item.get_closest_marker(MARKER) is not None
    with open(path + ".gate", "a") as gate, open(path, "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
        yield  # closing the files releases what is still held
