"""CSV import speed: a file of one repeated line against a file of distinct lines.

``python -m loadtest.bench.imports [--mb 20] [--workdir DIR]`` (no stack, no root: a private
redis-server without AOF). Writes two files of about ``--mb`` MB each (one line repeated: every
row after the first is a duplicate; distinct numbers: every row is a contact), imports each
into a Draft campaign with :func:`dialer.importer.import_csv`, and prints rows/s, MB/s, the CPU
time of this process and of Redis, and Redis' command calls (``INFO commandstats``, scripts'
inner commands included) per row; then one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

from dialer.importer import import_csv
from dialer.store.redis_store import RedisStore
from loadtest.bench.common import Figures, emit, table
from ops.localstack.redis_server import RedisServer

HEADER = "phone,first_name,ref\r\n"


def write_repeated(path: Path, size: int) -> int:
    line = "+12125550100,Ann,ref-1\r\n"
    rows = max(1, (size - len(HEADER)) // len(line))
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        chunk = line * 10_000
        for _ in range(rows // 10_000):
            f.write(chunk)
        f.write(line * (rows % 10_000))
    return rows


def write_distinct(path: Path, size: int) -> int:
    rows = 0
    written = len(HEADER)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        while written < size:
            line = f"+1212{2000000 + rows:07d},Ann,ref-{rows}\r\n"
            f.write(line)
            written += len(line)
            rows += 1
    return rows


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / 100


async def _calls(store: RedisStore) -> int:
    stats = await store.client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if isinstance(v, dict))


async def measure(store: RedisStore, redis_pid: int, path: Path, name: str) -> Figures:
    mb = path.stat().st_size / 1e6  # noqa: ASYNC240 -- before the clock starts
    cid = await store.create_campaign(name, "trunk1", "{}")
    calls = await _calls(store)
    cpu, redis_cpu = _cpu(), _proc_cpu(redis_pid)
    started = time.perf_counter()
    report = await import_csv(store, cid, path)
    elapsed = time.perf_counter() - started
    cpu, redis_cpu = _cpu() - cpu, _proc_cpu(redis_pid) - redis_cpu
    commands = await _calls(store) - calls - 1  # less the INFO itself
    return {
        "file": name,
        "mb": round(mb, 1),
        "rows": report.rows,
        "imported": report.imported,
        "duplicates": report.duplicates,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(report.rows / elapsed),
        "mb_per_s": round(mb / elapsed, 2),
        "cpu_s": round(cpu, 2),
        "redis_cpu_s": round(redis_cpu, 2),
        "redis_calls_per_1000_rows": round(commands * 1000 / report.rows, 2),
    }


async def run(mb: float, workdir: Path) -> Figures:
    size = int(mb * 1e6)
    files = {"repeated": workdir / "repeated.csv", "distinct": workdir / "distinct.csv"}
    write_repeated(files["repeated"], size)
    write_distinct(files["distinct"], size)
    server = RedisServer(workdir=workdir / "redis", appendonly=False)
    server.start()
    try:
        assert server.pid is not None
        store = RedisStore.from_url(server.url, "bench-import")
        try:
            results = [await measure(store, server.pid, p, n) for n, p in files.items()]
        finally:
            await store.aclose()
    finally:
        server.stop()
    headers = list(results[0])
    table(f"CSV import, ~{mb:g} MB per file", headers, [[r[h] for h in headers] for r in results])
    return emit("imports", False, {r["file"]: r for r in results})  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.imports", description=__doc__)
    parser.add_argument("--mb", type=float, default=20.0, help="size of each file (default 20)")
    parser.add_argument("--workdir", type=Path, help="where the files go (default: a temp dir)")
    args = parser.parse_args()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args.mb, args.workdir))
        return
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        asyncio.run(run(args.mb, Path(tmp)))


if __name__ == "__main__":
    main()
