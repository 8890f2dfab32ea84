"""A 1,000,000-row CSV file imports in bounded memory (slow: about a minute on 2 cores).

Peak RSS growth is measured from the kernel's high-water mark (VmHWM, reset through
/proc/self/clear_refs), or, where that cannot be reset, by sampling VmRSS at every batch.
The test uses a Redis of its own without AOF: a million contacts would otherwise swell the
session server's append-only file.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dialer.domain.statuses import CallStatus
from dialer.importer import import_csv
from dialer.store import RedisStore
from ops.localstack.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ROWS = 1_000_000
MAX_GROWTH_MB = 150


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir=tmp_path / "redis", appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def store(private_redis: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(private_redis.url, "big")
    yield store
    await store.aclose()


def write_file(path: Path) -> None:
    """Mostly unique US numbers; every 1000th row a duplicate, every 5000th an invalid one."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("phone,first name,last name,ref\r\n")
        for i in range(ROWS):
            if i % 5000 == 4999:
                phone = "12345"
            elif i % 1000 == 999:
                phone = f"+1212{2000000 + i - 1:07d}"
            else:
                phone = f"+1212{2000000 + i:07d}"
            f.write(f'{phone},"Name {i}","Smith, Jr",ref-{i}\r\n')


async def test_million_rows_bounded_memory(tmp_path: Path, store: RedisStore) -> None:
    path = tmp_path / "million.csv"
    write_file(path)
    cid = await store.create_campaign("big", "trunk1", "{}")
    peak_resettable = _reset_peak()
    base_kb = _status_kb("VmHWM" if peak_resettable else "VmRSS")
    sampled = [_status_kb("VmRSS")]
    started = time.perf_counter()
    report = await import_csv(
        store, cid, path, progress=lambda done: sampled.append(_status_kb("VmRSS"))
    )
    elapsed = time.perf_counter() - started
    peak_kb = max(sampled)
    if peak_resettable:
        peak_kb = max(peak_kb, _status_kb("VmHWM"))
    growth_mb = (peak_kb - base_kb) / 1024
    sampled_mb = (max(sampled) - sampled[0]) / 1024
    print(  # noqa: T201 -- the test's own output (pytest -s), not asserted
        f"\n{ROWS:,} rows in {elapsed:.1f} s = {ROWS / elapsed:,.0f} rows/s; peak RSS growth "
        f"{growth_mb:.1f} MB ({'VmHWM' if peak_resettable else 'sampled'}; "
        f"sampled per batch: {sampled_mb:.1f} MB)"
    )
    invalid = ROWS // 5000
    duplicates = ROWS // 1000 - invalid
    assert (report.rows, report.invalid_numbers, report.duplicates) == (ROWS, invalid, duplicates)
    assert report.imported == ROWS - duplicates
    assert len(report.warnings) == invalid
    counts = await store.counts(cid)
    assert counts[CallStatus.PENDING] == ROWS - duplicates - invalid
    assert counts[CallStatus.INVALID_NUMBER] == invalid
    last = await store.get_contact(cid, report.imported)
    assert last.vars == {
        "first name": f"Name {ROWS - 1}",
        "last name": "Smith, Jr",
        "ref": f"ref-{ROWS - 1}",
    }
    assert growth_mb < MAX_GROWTH_MB
