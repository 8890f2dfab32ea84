"""The malformed-CSV corpus (tests/data/csv): each file gives its documented report or refusal.

Every refused file leaves the campaign's Redis keys exactly as they were (the campaign already
holds an imported list, so there is state to disturb).
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus
from dialer.importer import ImportRefused, import_csv
from dialer.pbx.sanitize import channel_variables
from dialer.store import RedisStore
from tests.unit.csv_corpus import CORPUS, CORPUS_DIR, HOSTILE_NAME
from tests.unit.import_helpers import csv_bytes, phones_of, snapshot, stream

pytestmark = pytest.mark.redis

ACCEPTED = sorted(name for name, case in CORPUS.items() if not case.errors)
REFUSED = sorted(name for name, case in CORPUS.items() if case.errors)


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def campaign_with_a_list(store: RedisStore) -> int:
    cid = await store.create_campaign("corpus", "trunk1", "{}")
    data = csv_bytes("phone,name", ["+12125550900,Old", "+12125550901,Older"])
    await import_csv(store, cid, stream(data))
    return cid


def test_committed_corpus_matches_its_generator() -> None:
    on_disk = {p.name for p in CORPUS_DIR.iterdir() if not p.name.startswith(".")}
    assert on_disk == set(CORPUS)
    for name, case in CORPUS.items():
        assert (CORPUS_DIR / name).read_bytes() == case.data, name


@pytest.mark.parametrize("name", REFUSED)
async def test_refused_file_leaves_no_state(
    store: RedisStore, redis_client: aioredis.Redis, namespace: str, name: str
) -> None:
    case = CORPUS[name]
    cid = await campaign_with_a_list(store)
    before = await snapshot(redis_client, namespace)
    with pytest.raises(ImportRefused) as info:
        await import_csv(store, cid, CORPUS_DIR / name, default_region=case.region)
    report = info.value.report
    assert report.list_id is None
    assert (report.imported, report.error_count) == (0, len(case.errors))
    got = [(e.line, e.reason) for e in report.errors]
    assert len(got) == len(case.errors), got
    for (line, reason), (want_line, fragment) in zip(got, case.errors, strict=True):
        assert line == want_line, got
        assert fragment in reason, got
    assert str(case.errors[0][1]) in str(info.value)
    assert await snapshot(redis_client, namespace) == before


@pytest.mark.parametrize("name", ACCEPTED)
async def test_accepted_file(store: RedisStore, name: str) -> None:
    case = CORPUS[name]
    cid = await store.create_campaign("corpus", "trunk1", "{}")
    report = await import_csv(store, cid, CORPUS_DIR / name, default_region=case.region)
    assert report.list_id == 1
    assert (report.rows, report.imported, report.invalid_numbers) == (
        case.rows,
        case.imported,
        case.invalid,
    )
    assert (report.errors, report.error_count, report.duplicates, report.dnc) == ((), 0, 0, 0)
    assert tuple(w.line for w in report.warnings) == case.warning_lines
    assert tuple(await phones_of(store, cid)) == case.phones
    first = await store.get_contact(cid, 1)
    assert first.vars == case.vars
    counts = await store.counts(cid)
    assert counts[CallStatus.PENDING] == case.imported - case.invalid
    assert counts[CallStatus.INVALID_NUMBER] == case.invalid


async def test_hostile_values_are_stored_verbatim_and_sanitised_for_the_pbx(
    store: RedisStore,
) -> None:
    cid = await store.create_campaign("corpus", "trunk1", "{}")
    await import_csv(store, cid, CORPUS_DIR / "hostile.csv")
    evil = await store.get_contact(cid, 1)
    assert evil.vars["name"] == HOSTILE_NAME  # verbatim in the store
    for contact_id in (1, 2):
        contact = await store.get_contact(cid, contact_id)
        for name, value in channel_variables(contact.vars).items():
            assert not any(ch in value for ch in "\r\n\0\x07"), (name, value)
            assert name.replace("_", "").isalnum()
