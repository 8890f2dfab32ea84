"""The records CSV neutralises formula-like cells (issue 15, item 6a), in both faces."""

from __future__ import annotations

import csv
import io

import pytest
import redis.asyncio as aioredis

from dialer.cli.records import export_records
from dialer.records_csv import RECORD_COLUMNS, RecordsCsv, safe_cell
from dialer.store import RedisStore
from tests.unit.api_helpers import VIEWER, api_client

PAYLOADS = ["=cmd|' /C calc'!A0", "@SUM(1)", "-2+3", "\t=1", "+1+cmd|' /C calc'!A0", "\r=1"]
PLAIN = ["+33612345678", "-1", "2.5", "", "answered", "call-1", "1700000000000-0", "12345"]


@pytest.mark.parametrize("value", PAYLOADS)
def test_a_formula_gets_a_leading_quote(value: str) -> None:
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", PLAIN)
def test_numbers_and_text_are_left_alone(value: str) -> None:
    assert safe_cell(value) == value


def test_the_writer_quotes_every_cell_of_a_row() -> None:
    sink = io.StringIO(newline="")
    writer = RecordsCsv(sink, ("record_id", "phone", "amd_cause"))
    writer.header()
    writer.row("1-0", {"phone": "+33612345678", "amd_cause": '=HYPERLINK("x")'})
    assert (
        sink.getvalue() == 'record_id,phone,amd_cause\r\n1-0,+33612345678,"\'=HYPERLINK(""x"")"\r\n'
    )


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def hostile_records(store: RedisStore) -> int:
    cid = await store.create_campaign("csv", "carrier1", "{}")
    for i, payload in enumerate(PAYLOADS):
        fields = {"call_id": f"call-{i}", "phone": "+33612345678", "dial_status": payload}
        await store.client.xadd(store.keys.records(cid), fields)  # type: ignore[arg-type]
    return cid


def cells(text: str, column: str) -> list[str]:
    return [row[column] for row in csv.DictReader(io.StringIO(text, newline=""))]


@pytest.mark.redis
async def test_the_api_export_neutralises_formulas(store: RedisStore) -> None:
    cid = await hostile_records(store)
    async with api_client(store) as client:
        response = await client.get(f"/campaigns/{cid}/records.csv", headers=VIEWER)
    assert response.status_code == 200
    assert response.text.splitlines()[0] == ",".join(RECORD_COLUMNS)
    assert cells(response.text, "dial_status") == ["'" + p for p in PAYLOADS]
    assert cells(response.text, "phone") == ["+33612345678"] * len(PAYLOADS)


@pytest.mark.redis
async def test_the_cli_export_neutralises_formulas(store: RedisStore) -> None:
    cid = await hostile_records(store)
    sink = io.StringIO(newline="")
    assert await export_records(store, cid, sink) == len(PAYLOADS)
    assert cells(sink.getvalue(), "dial_status") == ["'" + p for p in PAYLOADS]
    assert cells(sink.getvalue(), "phone") == ["+33612345678"] * len(PAYLOADS)
