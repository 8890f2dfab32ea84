"""Sliding-window rate in claim.lua, measured from the grants' server times."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from dialer.store import ClaimResult, RateWindow, RedisStore
from tests.unit.store_helpers import claim, finish, max_in_window, running_campaign

pytestmark = pytest.mark.redis

RUN_S = 2.3


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


@pytest.mark.parametrize(
    ("cps", "limit", "window"),
    [(5, 5, 1000), (1, 1, 1000), (0.5, 1, 2000), (2.5, 3, 1200), (0.3, 1, 3334), (100, 100, 1000)],
)
def test_rate_window_rule(cps: float, limit: int, window: int) -> None:
    w = RateWindow.for_cps(cps)
    assert (w.limit, w.window_ms) == (limit, window)
    assert w.limit / w.window_ms * 1000 <= cps  # never faster than cps on average


def test_rate_window_unlimited_and_invalid() -> None:
    assert RateWindow.for_cps(None) == RateWindow(0, 0)  # claim.lua's "no limit"
    for bad in (0, -1, float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError, match="finite number above 0"):
            RateWindow.for_cps(bad)


async def hammer(
    store: RedisStore, cid: int, tag: str, *, trunk: str, cps: float, trunk_cps: float | None
) -> tuple[list[int], list[ClaimResult]]:
    """Claim in a tight loop for RUN_S seconds, finishing each grant at once."""
    grants: list[int] = []
    refusals: list[ClaimResult] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + RUN_S
    i = 0
    while loop.time() < end:
        i += 1
        r = await claim(store, cid, f"{tag}-{i}", trunk=trunk, cps=cps, trunk_cps=trunk_cps)
        if r.kind == "ok":
            grants.append(r.server_ms)
            assert await finish(store, cid, f"{tag}-{i}", r.contact_id, trunk=trunk)
        else:
            assert r.kind == "rate"
            refusals.append(r)
        await asyncio.sleep(0.005)
    return grants, refusals


def assert_waits_honest(grants: list[int], refusals: list[ClaimResult]) -> None:
    """After a refusal at T saying "wait W", no grant before T + W, and one soon after."""
    for r in refusals:
        later = [g for g in grants if g >= r.server_ms]
        assert all(g >= r.server_ms + r.wait_ms for g in later)
        if later and r.server_ms + r.wait_ms < grants[-1]:
            assert later[0] <= r.server_ms + r.wait_ms + 200


async def test_rates_integer_fractional_and_trunk(store: RedisStore) -> None:
    five, _ = await running_campaign(store, 200, trunk="t5")
    half, _ = await running_campaign(store, 200, trunk="thalf")
    two_half, _ = await running_campaign(store, 200, trunk="t25")
    shared_a, _ = await running_campaign(store, 200, trunk="tshared")
    shared_b, _ = await running_campaign(store, 200, trunk="tshared")

    (g5, r5), (gh, rh), (g25, r25), (ga, ra), (gb, rb) = await asyncio.gather(
        hammer(store, five, "five", trunk="t5", cps=5, trunk_cps=None),
        hammer(store, half, "half", trunk="thalf", cps=0.5, trunk_cps=None),
        hammer(store, two_half, "twohalf", trunk="t25", cps=2.5, trunk_cps=None),
        hammer(store, shared_a, "a", trunk="tshared", cps=100, trunk_cps=4),
        hammer(store, shared_b, "b", trunk="tshared", cps=100, trunk_cps=4),
    )

    # cps 5: never more than 5 in any 1-s window, and the limiter is not stingy
    assert max_in_window(g5, 1000) == 5
    assert 11 <= len(g5) <= 15
    # cps 0.5: one grant per 2 s
    assert max_in_window(gh, 2000) == 1
    assert len(gh) == 2
    # cps 2.5: at most ceil(2.5) = 3 in any second, 3 per 1.2 s on average
    assert max_in_window(g25, 1000) == 3
    assert max_in_window(g25, 1200) == 3
    assert 6 <= len(g25) <= 6 + 3
    # trunk cps 4 shared by two campaigns
    merged = ga + gb
    assert max_in_window(merged, 1000) == 4
    assert 9 <= len(merged) <= 12
    assert ga
    assert gb
    # a shared trunk's refusal is the trunk's window (each campaign's cps 100 never binds): no
    # grant on the trunk before its wait, and one soon after, to either campaign (the other
    # may take the slot first: campaign a once waited 1 s behind b's grants under load)
    for grants, refusals in ((g5, r5), (gh, rh), (g25, r25), (merged, ra), (merged, rb)):
        assert refusals
        assert_waits_honest(sorted(grants), refusals)
