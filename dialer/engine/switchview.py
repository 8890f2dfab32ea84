"""The switch's own view of its trunks feeds their circuit breakers (issue 17, item 3).

Without it a dead trunk is found by wasting originates on it (a run of refusals or of calls
nobody answers). A switch that qualifies its trunks knows sooner: Asterisk's PJSIP qualify
(SIP OPTIONS; ``ContactStatus`` events), FreeSWITCH's gateway pings. One loop per node whose
adapter is a :class:`~dialer.pbx.base.TrunkWatch` compares what its switch says of each trunk
in use (the campaigns' trunks and backup trunks) with what it last told the trunk's breaker,
and tells the breaker when they differ (``breaker_switch.lua``: SWITCH_DOWN opens it at once
with the switch's reason and holds it open without probes; SWITCH_UP ends the hold, so the
next claim is the half-open probe). "Down" is said again every :data:`REASSERT` seconds while it
lasts: the hold (``BreakerLimits.switch_hold``) lapses only when no engine renews it, and an
operator's reset of a trunk the switch still finds dead is undone within that time.

The loop wakes at each switch event that changes a trunk's status, and at least every
:data:`POLL` seconds; it wakes the runners when a hold ends (their claims were told to wait
for the hold's end); it reads the switch's state again at connect and reconnect (the events
of a disconnected spell are lost), when a campaign starts using a trunk, and every
:data:`REFRESH` seconds. A runner's claim on a trunk not read yet first awaits
:meth:`SwitchView.known` (through the engine's ``node_claim``), which reads it and tells the
breaker: a campaign starting on a trunk the switch finds dead makes no originate there.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dialer.domain.breaker import BreakerLimits
from dialer.engine.cancel import checkpoint
from dialer.engine.nodes import Nodes
from dialer.engine.trunkhealth import TrunkHealth
from dialer.errors import DialerError
from dialer.pbx.base import TrunkWatch
from dialer.store.breaker import BreakerStore

log = logging.getLogger(__name__)

# s: the longest wait between two looks at the switch's view and the trunks in use (both in
# memory: a campaign that starts on a trunk not read yet has it read within this)
POLL = 0.1
REASSERT = 5.0  # s: "down" is said again this often while it lasts
REFRESH = 30.0  # s: the switch's state is read again this often


@dataclass(slots=True)
class _Node:
    """What the loop of one node knows."""

    said: dict[str, tuple[bool, float]] = field(default_factory=dict)  # trunk -> (up, when)
    read: set[str] = field(default_factory=set)  # trunks read since the connection came up
    read_at: float = -math.inf


class SwitchView:
    def __init__(
        self,
        nodes: Nodes,
        trunks: Callable[[], Iterable[str]],
        breakers: BreakerStore,
        health: TrunkHealth,
        limits: BreakerLimits | None,
        *,
        wake: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nodes = nodes
        self._trunks = trunks  # the trunks in use (campaigns' trunks and backup trunks)
        self._breakers = breakers
        self._health = health
        self._limits = limits
        self._clock = clock
        self._wake = wake  # the runners: a breaker whose hold ended can be probed now
        self._watched = {
            node: (adapter, _Node())
            for node, adapter in nodes.items()
            if limits is not None and isinstance(adapter, TrunkWatch)
        }
        self._known: set[str] = set()  # trunks read on every node (known() returns at once)

    async def run(self) -> None:
        """One loop per node whose switch reports its trunks; returns at once when this
        engine does not feed breakers (``EngineSettings.breaker`` None) or none does."""
        async with asyncio.TaskGroup() as tg:
            for node, (adapter, state) in self._watched.items():
                tg.create_task(self.watch(node, adapter, state), name=f"switch-view-{node}")

    async def known(self, trunk: str) -> None:
        """Before a claim on ``trunk``: the first time, read what the switch says of it and
        tell its breaker (so that a campaign starting on a trunk the switch finds dead is
        refused by its breaker before its first originate). Never raises."""
        if trunk in self._known:
            return
        for node, (adapter, state) in self._watched.items():
            if trunk not in state.read and self._nodes.adapter(node).connected:
                try:
                    await adapter.refresh_trunks([trunk])
                    state.read.add(trunk)
                except DialerError as exc:
                    log.warning("node %s: trunk %s's state not read: %s", node, trunk, exc)
                    return
                await self._tell(node, adapter, trunk, state.said)
        self._known.add(trunk)

    async def watch(self, node: str, adapter: TrunkWatch, state: _Node) -> None:
        was_connected = False
        while True:
            checkpoint()  # a cancel that redis-py swallowed (dialer.engine.cancel)
            now = self._clock()
            trunks = frozenset(self._trunks())
            connected = self._nodes.adapter(node).connected
            if not connected and was_connected:
                state.read.clear()  # what changed meanwhile sent no event: read again
                self._known.clear()
            if connected and trunks and (now - state.read_at > REFRESH or not trunks <= state.read):
                try:
                    await adapter.refresh_trunks(sorted(trunks))
                    state.read_at = now
                    state.read |= trunks
                except DialerError as exc:
                    log.warning("node %s: trunks' state not read: %s", node, exc)
            was_connected = connected
            for trunk in sorted(trunks):
                await self._tell(node, adapter, trunk, state.said)
            try:
                async with asyncio.timeout(POLL):
                    await adapter.wait_trunks_changed()
            except TimeoutError:
                pass

    async def _tell(
        self, node: str, adapter: TrunkWatch, trunk: str, said: dict[str, tuple[bool, float]]
    ) -> None:
        """Tell the trunk's breaker what the switch says, if it was not told lately."""
        assert self._limits is not None
        status = adapter.trunk_status(trunk)
        if status is None:
            return
        now = self._clock()
        last = said.get(trunk)
        if last is not None and last[0] == status.up and (status.up or now - last[1] < REASSERT):
            return
        try:
            report = await self._breakers.switch(
                trunk, node, up=status.up, reason=status.reason, limits=self._limits
            )
        except DialerError as exc:
            log.warning("trunk %s: breaker not told %r: %s", trunk, status.reason, exc)
            return
        said[trunk] = (status.up, now)
        if last is None or last[0] != status.up:
            log.warning("trunk %s on node %s: %s (breaker %s)", trunk, node, status.reason,
                        report.state.value)  # fmt: skip
        self._health.report(trunk, report, by_switch=True)
        if status.up and last is not None and not last[0]:
            self._wake()  # the hold is over: the next claim is the probe
