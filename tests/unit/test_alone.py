"""The turns of tests on several workers (tests/alone.py): an ``alone`` test waits for the
running tests and runs by itself; a test that comes while it waits waits for it.

flock locks belong to an open file, so threads that each open the files contend like workers.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest

from tests import alone


class FakeItem:
    def __init__(self, is_alone: bool) -> None:
        self.is_alone = is_alone

    def get_closest_marker(self, name: str) -> Any:
        return object() if name == alone.MARKER and self.is_alone else None


def in_turn(is_alone: bool, log: list[str], name: str, hold: threading.Event) -> threading.Thread:
    def run() -> None:
        with alone.turn(cast(pytest.Item, FakeItem(is_alone))):
            log.append(f"{name} in")
            hold.wait(5)
            log.append(f"{name} out")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def settle() -> None:
    time.sleep(0.2)


@pytest.fixture
def workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    monkeypatch.setenv(alone.ENV, str(tmp_path / "turn.lock"))


@pytest.mark.usefixtures("workers")
def test_an_alone_test_waits_for_the_running_ones_and_goes_before_newcomers() -> None:
    log: list[str] = []
    first, second, solo, late = (threading.Event() for _ in range(4))
    threads = [in_turn(False, log, "a", first), in_turn(False, log, "b", second)]
    settle()
    assert sorted(log) == ["a in", "b in"]  # shared turns run side by side
    threads.append(in_turn(True, log, "solo", solo))
    settle()
    threads.append(in_turn(False, log, "late", late))  # comes while the alone test waits
    settle()
    assert "solo in" not in log
    first.set()
    settle()
    assert "solo in" not in log  # b still runs
    second.set()
    settle()
    assert log[-1] == "solo in"  # alone, and before the test that came after it
    solo.set()
    settle()
    assert log[-2:] == ["solo out", "late in"]
    late.set()
    for thread in threads:
        thread.join(5)
    assert log.count("solo in") == 1
    solo_at = log.index("solo in")
    assert log[solo_at + 1] == "solo out"  # nothing ran inside the alone test's turn


def test_without_xdist_there_is_no_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.setenv(alone.ENV, "/nonexistent/dir/turn.lock")
    with alone.turn(cast(pytest.Item, FakeItem(True))):  # opens nothing
        pass
    with alone.turn(cast(pytest.Item, FakeItem(False))):
        pass
