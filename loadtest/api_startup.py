"""What the API's schema library costs: start-up time (imports + app creation) and memory (RSS).

Each variant runs in a fresh interpreter, several times; the medians are printed::

    .venv/bin/python -m loadtest.api_startup                    # this tree vs main's API
    .venv/bin/python -m loadtest.api_startup --base bbb27cb     # vs another revision
    .venv/bin/python -m loadtest.api_startup --others /tmp/venv/bin/python

``--base``: the revision whose API is "today's" (extracted with git archive into a temporary
directory and run with the same interpreter). ``--others``: an interpreter with fastapi,
msgspec, litestar and spectree installed, to time the candidates' own imports and a minimal app
with one validated model (the project's environment does not have them).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_MEASURE = """
import time, sys
t0 = time.perf_counter()
{body}
elapsed = time.perf_counter() - t0
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
print(f"{{elapsed * 1000:.1f}} {{rss}}")
"""

DIALER_APP = """
import redis.asyncio as aioredis
from dialer.api import Role, create_app
from dialer.metrics import DialerMetrics
from dialer.store import RedisStore
app = create_app(RedisStore(aioredis.Redis(), "x:"), tokens={"a" * 16: Role.VIEWER},
                 metrics=DialerMetrics("x"))
"""

BARE = """
import starlette.applications, uvicorn, redis.asyncio
"""

CANDIDATES = {
    "starlette + pydantic (one model)": """
from pydantic import BaseModel, Field
from starlette.applications import Starlette
class Body(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    cps: float = Field(gt=0, le=10000)
Body.model_json_schema(); app = Starlette()
""",
    "fastapi (one route, one model)": """
from fastapi import FastAPI
from pydantic import BaseModel, Field
class Body(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    cps: float = Field(gt=0, le=10000)
app = FastAPI()
@app.post("/campaigns")
async def create(body: Body) -> Body:
    return body
app.openapi()
""",
    "starlette + msgspec (one struct)": """
from typing import Annotated
import msgspec
from starlette.applications import Starlette
class Body(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    cps: Annotated[float, msgspec.Meta(gt=0, le=10000)]
msgspec.json.schema(Body); app = Starlette()
""",
    "starlette + spectree (one route)": """
from pydantic import BaseModel
from spectree import SpecTree
from starlette.applications import Starlette
class Body(BaseModel):
    name: str
spec = SpecTree("starlette"); app = Starlette(); spec.register(app)
""",
    "litestar (one route, one model)": """
from dataclasses import dataclass
from litestar import Litestar, post
@dataclass
class Body:
    name: str
    cps: float
@post("/campaigns")
async def create(data: Body) -> Body:
    return data
app = Litestar([create])
app.openapi_schema
""",
}


def _run(python: str, body: str, cwd: Path, runs: int) -> tuple[float, float]:
    """Median milliseconds and median RSS in MiB over ``runs`` fresh interpreters."""
    times, rss = [], []
    for _ in range(runs):
        out = subprocess.run(
            [python, "-c", _MEASURE.format(body=body)],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        times.append(float(out[0]))
        rss.append(int(out[1]) / 1024)
    return statistics.median(times), statistics.median(rss)


def _extract(revision: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "archive", revision, "dialer"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="main", help="revision of today's API (default main)")
    parser.add_argument("--others", help="an interpreter with the candidate libraries")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        _extract(args.base, Path(tmp))
        rows.append(
            ("bare: starlette, uvicorn, redis", *_run(sys.executable, BARE, ROOT, args.runs))
        )
        rows.append(
            (f"API at {args.base}", *_run(sys.executable, DIALER_APP, Path(tmp), args.runs))
        )
    rows.append(("API in this tree", *_run(sys.executable, DIALER_APP, ROOT, args.runs)))
    if args.others:
        for name, body in CANDIDATES.items():
            rows.append((name, *_run(args.others, body, Path(tempfile.gettempdir()), args.runs)))
    print(f"{'import + app creation':<40} {'ms':>8} {'RSS MiB':>8}   (median of {args.runs})")
    for name, ms, mib in rows:
        print(f"{name:<40} {ms:8.0f} {mib:8.1f}")


if __name__ == "__main__":
    main()
