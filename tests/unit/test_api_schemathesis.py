"""Schemathesis, with all its checks, against the API served by uvicorn on a real redis-server.

One run per role's token (viewer, operator, administrator) over every operation of the
document the app serves: the data it generates from the document (valid and invalid) must get
the answers the document promises (status codes, content types, response schemas, 4xx for
invalid data, 2xx-or-a-documented-refusal for valid data, 405 with the full Allow list, 401
without the token). A seeded campaign with a list and contacts gives the generated requests
something to find besides 404. The number of examples is bounded to keep the run short; the
NDJSON report is read back to check that every operation was really exercised.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from dialer.api import Role, create_app, endpoints, serve_api
from dialer.metrics import DialerMetrics
from dialer.store import RedisStore
from tests.unit.api_helpers import OPERATOR, SETTINGS, TOKEN_OF, TOKENS, csv_body

TRUNKS = ("carrier1", "backup1")
EXAMPLES = 3  # fuzzed cases per operation and role (the coverage phase adds its own)
# (role, phases): the administrator reaches every handler, so its run has every phase
# (coverage: the schema's boundaries, each parameter missing, empty, too long; fuzzing;
# stateful: links between operations); the other roles' runs fuzz each operation, mostly to
# get the 403 the document promises.
RUNS = (
    (Role.ADMINISTRATOR, "coverage,fuzzing,stateful"),
    (Role.OPERATOR, "fuzzing"),
    (Role.VIEWER, "fuzzing"),
)
# Valid data the domain may still refuse, for a rule that JSON Schema cannot state (a time zone
# that exists, ends_at after starts_at, a phone number's validity, a dialplan variable's
# grammar, a CSV that imports, a status that can be recycled, a trunk group's nodes that exist
# and trunks that no other group holds, a node that no group names, the numbers added to or
# removed from a do-not-call list, or the lines of one imported): there 422 is a documented
# answer to valid data; everywhere else valid data must pass.
_INTERPRETER_BUG = "AST constructor recursion depth mismatch"
CONFIG = """\
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "415", "422"]

[[operations]]
include-operation-id = [
  "create_campaign", "edit_campaign", "upload_list", "recycle", "remove_many",
  "set_callback", "put_list_caller_id", "put_group", "delete_node",
  "add_numbers", "add_numbers_of_campaign", "remove_numbers", "remove_numbers_of_campaign",
  "import_numbers", "import_numbers_of_campaign",
]
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# A campaign's do-not-call operations take the bodies and query of the global list's, whose
# coverage phase walks every boundary of them: these are fuzzed (and linked) only, which keeps
# the run about as long as before they came.
[[operations]]
include-operation-id-regex = "^[a-z]+_numbers_of_campaign$"
phases.coverage.enabled = false
"""


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def _seed(client: httpx.AsyncClient) -> None:
    response = await client.post("/campaigns", json=SETTINGS, headers=OPERATOR)
    assert response.status_code == 201, response.text
    cid = response.json()["id"]
    upload = await client.post(
        f"/campaigns/{cid}/lists",
        content=csv_body(["+12125550100,Ann,1", "+12125550101,Bob,2"]),
        headers={**OPERATOR, "Content-Type": "text/csv"},
    )
    assert upload.status_code == 201, upload.text


def _read(report: Path) -> tuple[dict[str, int], list[str]]:
    """Calls made per operation, and the scenarios that did not pass, from the NDJSON report."""
    calls: dict[str, int] = {}
    failed: list[str] = []
    for line in report.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if finished is None:
            continue
        recorder = finished["recorder"]
        label = recorder["label"]
        made = recorder.get("interactions") or {}  # a stateful scenario records none
        calls[label] = calls.get(label, 0) + len(made)
        if finished["status"] not in ("success", "skip"):
            failed.append(f"{label}: {finished['status']}")
    return calls, failed


@pytest.mark.redis
@pytest.mark.timeout(180)
async def test_schemathesis_finds_no_failure(store: RedisStore, tmp_path: Path) -> None:
    app = create_app(store, tokens=TOKENS, metrics=DialerMetrics("fuzz"), trunks=TRUNKS)
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    operations = {f"{e.method} {e.template}" for e in endpoints(metrics=True)}
    async with serve_api(app, "127.0.0.1", 0) as endpoint:
        async with httpx.AsyncClient(base_url=endpoint.url) as client:
            await _seed(client)
        for role, phases in RUNS:
            report = tmp_path / f"{role}.ndjson"
            for attempt in (1, 2):
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "schemathesis.cli",
                    "run",
                    f"{endpoint.url}/openapi.json",
                    "--checks",
                    "all",
                    "--max-examples",
                    str(EXAMPLES),
                    "--seed",
                    "1",
                    "--phases",
                    phases,
                    "--workers",  # one thread: the interpreter bug below shows with two
                    "1",
                    "--no-shrink",
                    "--header",
                    f"Authorization: Bearer {TOKEN_OF[role]}",
                    "--report",
                    "ndjson",
                    "--report-ndjson-path",
                    str(report),
                    cwd=tmp_path,
                    env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
                output, _ = await process.communicate()
                text = output.decode(errors="replace")
                # CPython 3.11.7's ast.parse now and then raises "AST constructor recursion depth
                # mismatch" (gh-106905, fixed in 3.11.8) inside Hypothesis's description of a
                # filter: an error of the interpreter, not a finding. Run once more then.
                if attempt == 1 and process.returncode and _INTERPRETER_BUG in text:
                    continue
                break
            assert process.returncode == 0, text[-6000:]
            calls, failed = _read(report)
            assert not failed, (failed, text[-6000:])
            # Schemathesis does not test the operation that served the document it loaded
            expected = operations - {"GET /openapi.json"}
            assert expected <= set(calls), sorted(expected - set(calls))
            if "coverage" in phases:  # every operation really exercised
                assert all(calls[op] >= 1 for op in expected), calls
            else:  # a few fuzzed cases per operation: one may draw none that it sends
                assert sum(calls[op] >= 1 for op in expected) >= 0.9 * len(expected), calls
            total = sum(calls[op] for op in expected)
            assert total >= (20 if "coverage" in phases else 2) * len(expected), (role, total)
