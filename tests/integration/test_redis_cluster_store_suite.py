"""The existing store tests, run again on the 3-master cluster (test_redis_cluster.py).

Every test function of the store test modules whose only fixtures are ``store`` (and
``namespace``) is called with a store on the cluster: the same assertions, on Cluster key names
and on three masters. Tests that take a raw single-node client or server are left to the
single-node run (they look at keys or restart the server), and so are the few in
``SINGLE_NODE_ONLY``, each with its reason.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import ModuleType
from typing import Any

import pytest

from dialer.store import RedisStore
from ops.localstack.redis_cluster import RedisClusterProcs
from tests.unit import (
    test_dial_order,
    test_dnc,
    test_stale_claim,
    test_store_batch,
    test_store_campaigns,
    test_store_claim,
    test_store_contacts,
)

pytestmark = pytest.mark.redis

MODULES: tuple[ModuleType, ...] = (
    test_store_claim,
    test_store_batch,
    test_store_campaigns,
    test_store_contacts,
    test_dnc,
    test_dial_order,
    test_stale_claim,
)
TestFn = Callable[..., Coroutine[Any, Any, None]]
_OTHER_TRUNK = "claims on trunk1 for a campaign created on trunk t: on Cluster a trunk of another "
_OTHER_TRUNK += "slot group is refused (ValueError: keys.py, Redis Cluster)"
#: The tests that do not hold on Cluster by design, and why (the others must all pass).
SINGLE_NODE_ONLY = {
    "test_store_campaigns::test_missing_campaign_is_not_found": "claims campaign 999 on "
    "trunk1: on Cluster the trunk's slot group is checked first (ValueError, not NotFound)",
    "test_store_campaigns::test_campaigns_in_scans_once_for_several_statuses": "reads the "
    "single-node active index by name (on Cluster: one per slot group)",
    "test_store_campaigns::test_active_index_is_rebuilt_for_an_older_store": "deletes the "
    "single-node active index by name (on Cluster: one per slot group)",
    "test_store_campaigns::test_campaigns_in_reads_a_page_and_its_hashes_in_one_round_trip": (
        "counts EVALSHA on one server; on Cluster the 16 group indexes are read"
    ),
    "test_store_campaigns::test_campaign_stats_reads_hash_queue_and_counts_at_once": "counts "
    "EVALSHA with INFO on one server (on Cluster: a random master)",
    "test_store_contacts::test_add_contacts_statuses_and_vars": _OTHER_TRUNK,
    "test_store_contacts::test_stop_list_moves_only_its_queued_contacts": _OTHER_TRUNK,
    "test_store_campaigns::test_list_newest_first_with_filter_and_paging": "campaigns created "
    "in one millisecond tie in the listing and are ordered by their id's text; Cluster ids "
    "(n * 16 + group) cross a digit count sooner (96 -> 112): seen once in three runs (one "
    "node has the same tie from id 9 to 10)",
    "test_dial_order::test_due_time_keeps_the_queue_order": "needs the first claim in a later "
    "millisecond than the upload (a tie orders the retry first): seen once in four runs here",
}


def _store_only(module: ModuleType) -> Iterator[tuple[str, TestFn]]:
    for name, fn in vars(module).items():
        if not name.startswith("test_") or not inspect.iscoroutinefunction(fn):
            continue
        if getattr(fn, "pytestmark", None):
            continue  # parametrized or marked: its own module runs it
        if set(inspect.signature(fn).parameters) <= {"store", "namespace"}:
            yield f"{module.__name__.rpartition('.')[2]}::{name}", fn


CASES = [
    case for module in MODULES for case in _store_only(module) if case[0] not in SINGLE_NODE_ONLY
]


def test_every_exclusion_names_a_test() -> None:
    found = {name for module in MODULES for name, _ in _store_only(module)}
    assert set(SINGLE_NODE_ONLY) <= found


@pytest.fixture
async def cluster_store(cluster: RedisClusterProcs, namespace: str) -> AsyncIterator[RedisStore]:
    made = RedisStore.from_url(cluster.url, namespace)
    yield made
    await made.aclose()


@pytest.mark.parametrize(("name", "fn"), CASES, ids=[name for name, _ in CASES])
async def test_store_test_on_cluster(
    name: str, fn: TestFn, cluster_store: RedisStore, namespace: str
) -> None:
    wanted = inspect.signature(fn).parameters
    given = {"store": cluster_store, "namespace": namespace}
    await fn(**{k: v for k, v in given.items() if k in wanted})
