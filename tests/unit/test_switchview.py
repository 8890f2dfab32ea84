"""The switch view loop (dialer.engine.switchview) on a real redis-server, with a scripted
TrunkWatch: what it tells the breakers, when it reads the switch again, when it wakes the
runners."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from dialer.domain.breaker import BreakerLimits, BreakerState
from dialer.engine import switchview
from dialer.engine.nodes import Nodes
from dialer.engine.switchview import SwitchView
from dialer.engine.trunkhealth import TrunkHealth
from dialer.metrics import DialerMetrics
from dialer.pbx.base import PbxAdapter, TrunkStatus, TrunkWatch
from dialer.store import RedisStore
from dialer.store.breaker import BreakerStore

pytestmark = pytest.mark.redis

TRUNK = "carrier-q"
LIMITS = BreakerLimits(switch_hold=60.0)


class FakeSwitch:
    """A TrunkWatch whose statuses the test sets; counts the read-outs."""

    def __init__(self) -> None:
        self.connected = True
        self.statuses: dict[str, TrunkStatus] = {}
        self.reads: list[list[str]] = []
        self._changed = asyncio.Event()

    def say(self, up: bool) -> None:
        reason = "switch: contact Reachable" if up else "switch: contact Unreachable"
        self.statuses[TRUNK] = TrunkStatus(TRUNK, up, reason)
        self._changed.set()

    def trunk_status(self, trunk: str) -> TrunkStatus | None:
        return self.statuses.get(trunk)

    async def refresh_trunks(self, trunks: Iterable[str]) -> None:
        self.reads.append(list(trunks))

    async def wait_trunks_changed(self) -> None:
        await self._changed.wait()
        self._changed.clear()


async def until(check: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(0.01)


async def test_down_opens_and_holds_up_ends_the_hold_and_wakes(
    redis_client: aioredis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(switchview, "REASSERT", 0.2)
    breakers = BreakerStore(RedisStore(redis_client, namespace))
    switch = FakeSwitch()
    assert isinstance(switch, TrunkWatch)
    woken: list[int] = []
    trunks = {TRUNK}
    health = TrunkHealth(DialerMetrics("e1"), lambda signals: None)
    view = SwitchView(
        Nodes({"n1": cast(PbxAdapter, switch)}),
        lambda: trunks,
        breakers,
        health,
        LIMITS,
        wake=lambda: woken.append(1),
    )

    async def state() -> BreakerState:
        return (await breakers.view(TRUNK)).state

    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(view.run())
        await until(lambda: asyncio.sleep(0, result=bool(switch.reads)))
        assert switch.reads[0] == [TRUNK]  # read at connect
        assert await state() is BreakerState.CLOSED  # no opinion yet: nothing told
        switch.say(up=False)
        await until(lambda: _is(state, BreakerState.OPEN))
        opened = await breakers.view(TRUNK)
        assert (opened.reason, opened.held) == ("switch: contact Unreachable", ("n1",))
        assert TRUNK in health.unhealthy  # calls in flight: not charged
        await breakers.reset(TRUNK)  # an operator's reset: the switch still says down
        await until(lambda: _is(state, BreakerState.OPEN), within=2)  # said again
        switch.say(up=True)
        await until(lambda: asyncio.sleep(0, result=bool(woken)))
        view_now = await breakers.view(TRUNK)
        assert view_now.held == ()
        assert view_now.state is BreakerState.OPEN  # the probe closes it, not the switch
        assert view_now.retry_ms <= view_now.opened_ms + 10_000  # the hold is over
        # a reconnect reads the trunks again
        reads = len(switch.reads)
        switch.connected = False
        await asyncio.sleep(3 * switchview.POLL)
        switch.connected = True
        await until(lambda: asyncio.sleep(0, result=len(switch.reads) > reads))
        task.cancel()


async def _is(state: Any, wanted: BreakerState) -> bool:
    return bool(await state() is wanted)


async def test_no_limits_no_loop(redis_client: aioredis.Redis, namespace: str) -> None:
    switch = FakeSwitch()
    view = SwitchView(
        Nodes({"n1": cast(PbxAdapter, switch)}),
        lambda: {TRUNK},
        BreakerStore(RedisStore(redis_client, namespace)),
        TrunkHealth(DialerMetrics("e1"), lambda signals: None),
        None,
    )
    await asyncio.wait_for(view.run(), 1)
    assert switch.reads == []
