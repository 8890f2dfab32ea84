"""The PBX events: one loop per node reads its adapter's call events and PBX states.

An ended attempt goes to the results writer without waiting for Redis; an answer is noted on
the call (and fed to its trunk's breaker when that trunk is unhealthy). A node's connection
lost pauses every campaign this engine dials once no node is left connected (nothing is
originated blindly), except those on a trunk of a trunk group (dialer.store.nodes): their
claims go to the group's other nodes that are up; when none is, their runners pause them after
a grace, and a node of the group coming up resumes them (dialer.engine.nodeloss). A node back
settles its calls that ended unseen during the outage (:meth:`LeaseKeeper.settle_cut`) and
resumes what the outage paused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from dialer.config import EngineSettings
from dialer.engine.cancel import checkpoint
from dialer.engine.control import PBX_DOWN_REASON, CampaignControl
from dialer.engine.leases import LeaseKeeper
from dialer.engine.livecalls import LiveCalls
from dialer.engine.nodes import Nodes
from dialer.engine.pacing import stamps_followed
from dialer.engine.ports import Runner
from dialer.engine.writer import ResultWriter
from dialer.errors import DialerError, NotFound, StoreError, TransitionRefused
from dialer.metrics import DialerMetrics
from dialer.pbx.base import CallEnded, ChannelCreated, PbxState

log = logging.getLogger(__name__)


class PbxEvents:
    def __init__(
        self,
        settings: EngineSettings,
        control: CampaignControl,
        metrics: DialerMetrics,
        nodes: Nodes,
        live: LiveCalls[Runner],
        runners: Mapping[int, Runner],
        writer: ResultWriter,
        leases: LeaseKeeper,
        *,
        clock: Callable[[], float],
        grouped: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self._settings = settings
        # whether a trunk is in a trunk group (its campaigns are not paused by an outage)
        self._grouped = grouped
        self._control = control
        self._metrics = metrics
        self._nodes = nodes
        self._live = live
        self._runners = runners
        self._writer = writer
        self._leases = leases
        self._clock = clock

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for node, _ in self._nodes.items():
                tg.create_task(self.pump(node), name=f"pbx-events-{node}")

    async def pump(self, node: str) -> None:
        adapter = self._nodes.adapter(node)
        stamps = stamps_followed(self._settings.rate_stamps, adapter.name)  # the CPS margin
        async for events in adapter.event_batches():
            checkpoint()
            for event in events:
                if isinstance(event, PbxState):
                    await self._pbx_state(node, event)
                    continue
                call = self._live.get(event.call_id)
                if call is None or (call.node and call.node != node):
                    continue  # not ours, or another node's channel of the same id
                if isinstance(event, CallEnded):
                    self._writer.finish_soon(call, event)
                elif isinstance(event, ChannelCreated):  # the switch's stamp: the CPS margin
                    if stamps and (runner := self._live.runner_of(event.call_id)) is not None:
                        runner.channel_created(call, event.at)
                else:
                    call.answered_at = event.at
                    self._writer.health.answered(call)

    async def _pbx_state(self, node: str, event: PbxState) -> None:
        log.warning("PBX %s %s: %s", node, "up" if event.connected else "down", event.reason)
        pbx = self._nodes.adapter(node)
        self._metrics.pbx_state(pbx.name, event.connected)
        if event.connected:
            self._nodes.epoch += 1  # every runner reconciles again before it claims
        try:
            if event.connected:
                await self._pbx_back(node)
            else:
                await self._pbx_lost(node)
        except DialerError as exc:
            log.error("handling PBX %s failed: %s", "up" if event.connected else "down", exc)
        for runner in self._runners.values():
            runner.wake()

    async def _pbx_lost(self, node: str) -> None:
        """Pause every campaign this engine dials unless another of its nodes is connected."""
        self._nodes.lost_at[node] = self._clock()
        if any(a.connected for n, a in self._nodes.items() if n != node):
            return  # the other nodes dial on
        for cid, runner in list(self._runners.items()):
            if self._grouped is not None:
                try:
                    if await self._grouped(runner.settings.trunk):
                        continue  # the group's other nodes dial it (the claim waits if none)
                except StoreError as exc:
                    log.warning("trunk groups unreadable (%s): campaign %s paused", exc, cid)
            try:
                await self._control.pause(cid, reason=PBX_DOWN_REASON)
                log.warning("campaign %s paused: %s", cid, PBX_DOWN_REASON)
            except (TransitionRefused, NotFound):
                pass  # not running, or another engine paused it first

    async def _pbx_back(self, node: str) -> None:
        """Settle the node's calls that ended unseen during the outage, then resume what the
        outage paused."""
        lost_at = self._nodes.lost_at.pop(node, None)
        if lost_at is None:
            return  # the first connection
        await self._leases.settle_cut(node, lost_at)
        if not self._settings.pbx_auto_resume:
            return
        for cid in list(self._runners):
            try:
                await self._control.resume(cid, only_reason=PBX_DOWN_REASON)
            except (TransitionRefused, NotFound):
                pass
