"""The engine: one process's share of the dialing, for every campaign in the store.

:class:`Engine` is the composition root: it wires the parts around one registry of live calls
(:class:`~dialer.engine.livecalls.LiveCalls`, moved by dialer.domain.callstate's table), each
part depending on a narrow protocol (:mod:`dialer.engine.ports`), not on the Engine, and owns
one task group with their loops:

- supervise (:mod:`~dialer.engine.supervisor`): runs a :class:`CampaignRunner` for each
  Running campaign; finishes drained pauses and stops; opens Scheduled campaigns when their
  calling hours open (and ends those whose end date passed); sets the gauges;
- events (:mod:`~dialer.engine.pbxevents`): reads each PBX node's call events and hands each
  ended attempt to the results writer without waiting for Redis;
- writes (:mod:`~dialer.engine.writer`): one group-commit writer for the results, the
  "originated" marks and the claims: what comes in within ``write_linger_ms`` shares one
  pipelined round trip; what a written result calls for goes to follow-up;
- follow-up (:mod:`~dialer.engine.followup`): pauses a campaign whose plan is used up (its
  runner stops claiming at once, before the pause lands) and lists numbers that opted out;
- node marks (:mod:`~dialer.engine.nodebeat`): each node up while its PBX is; a campaign
  whose trunk group has no node up is paused after a grace, and resumed when one comes up
  (:mod:`~dialer.engine.nodeloss`);
- leases (:mod:`~dialer.engine.leases`): renews the channel leases of this process's live
  calls, retries results that could not be written, and reconciles per node: settles the
  calls of expired leases (orphans) against the channel lists of its own PBX nodes only.

Leases are fenced by their owner (this process's ``owner`` token, fresh at every start): once
another engine has adopted a call, this one's renewals, marks and results for it are refused;
it then stops following the call (no hang-up, no result: the adopter's).

Any number of engine processes can run against one Redis: every limit and every claim is
enforced there, atomically. Every call carries its PBX node (``EngineSettings.node``): an
engine never settles, adopts or hangs up the calls of a node it is not attached to.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dialer.config import EngineSettings
from dialer.domain.callstate import CallState
from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CampaignStatus
from dialer.engine.calls import LiveCall
from dialer.engine.control import CampaignControl
from dialer.engine.followup import FollowUp
from dialer.engine.heartbeat import heartbeat
from dialer.engine.leases import LeaseKeeper
from dialer.engine.livecalls import LiveCalls
from dialer.engine.nodebeat import node_heartbeat
from dialer.engine.nodeloss import NodeLoss
from dialer.engine.nodes import Nodes
from dialer.engine.pbxevents import PbxEvents
from dialer.engine.ports import Runner
from dialer.engine.runner import CampaignRunner
from dialer.engine.supervisor import RunnableRunner, Supervisor
from dialer.engine.switchview import SwitchView
from dialer.engine.trunkhealth import TrunkHealth
from dialer.engine.writer import ResultWriter, _Claim, _Ended, _Write
from dialer.metrics import DialerMetrics
from dialer.pbx.base import CallEnded, PbxAdapter
from dialer.store.breaker import BreakerStore
from dialer.store.dnc import DncStore
from dialer.store.engines import EngineRegistry
from dialer.store.models import ClaimBatch, ClaimCommand
from dialer.store.nodes import NodeClaim, NodeRouter, NodeStore
from dialer.store.redis_store import RedisStore

__all__ = ["Engine", "EngineStatistics", "_Claim", "_Ended"]


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    campaigns_running: int
    live_calls: int
    unwritten_results: int
    pbx_connected: bool


class Engine:
    """The composition root (see the module's docstring). ``pbx`` is one adapter (the node
    ``settings.node``) or a mapping node name -> adapter: each call is originated, hung up,
    adopted and reconciled through its own node's adapter."""

    def __init__(
        self,
        settings: EngineSettings,
        store: RedisStore,
        pbx: PbxAdapter | Mapping[str, PbxAdapter],
        *,
        clock: Callable[[], float] = time.time,
        metrics: DialerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or DialerMetrics(settings.engine_id)
        self.store = store
        self.nodes = Nodes(pbx if isinstance(pbx, Mapping) else {settings.node: pbx})
        self.pbx = self.nodes.first
        # nodes, trunk groups and caps configured in Redis (issue 17): each claim on a trunk of
        # a group goes to the least loaded of this engine's nodes there that is up
        self.node_router = NodeRouter(NodeStore(store.client, store.keys), tuple(self.nodes))
        self.control = CampaignControl(store, clock=clock, contexts=settings.contexts)
        # a campaign whose trunk group has no node up is paused, and resumed when one is back
        self.node_loss = NodeLoss(
            self.node_router,
            self.control,
            store,
            known=lambda: {cid: r.settings.trunk for cid, r in self._runners.items()},
            auto_resume=settings.pbx_auto_resume,
        )
        self.dnc = DncStore(store)
        self.breakers = BreakerStore(store)
        self._clock = clock
        # the lease owner token: the engine id and a token of this start (a restarted engine
        # with the same id does not own its former self's calls: it adopts them)
        self.owner = f"{settings.engine_id}/{secrets.token_hex(4)}"
        self.live: LiveCalls[Runner] = LiveCalls()
        # what this engine knows of its trunks' breakers; signals go in the writer's round trip
        self.health = TrunkHealth(self.metrics, lambda signals: self.writer.feed_breakers(signals))
        self.followup = FollowUp(
            self.control, self.dnc, paused=lambda cid: self.supervisor.wake(cid)
        )
        self.supervisor = Supervisor(
            settings,
            store,
            self.control,
            self.metrics,
            self.breakers,
            self.health,
            new_runner=self._new_runner,
        )
        self._runners: dict[int, RunnableRunner] = self.supervisor.runners
        self.writer = ResultWriter(
            settings,
            store,
            self.breakers,
            self.metrics,
            self.followup,
            self.live,
            self._runners,
            self.health,
            owner=self.owner,
            plan_used_up=self.plan_used_up,
            lease_lost=self.lease_lost,
        )
        self.writes = self.writer.writes
        self.leases = LeaseKeeper(
            settings,
            store,
            self.metrics,
            self.nodes,
            self.live,
            self._runners,
            self.writer,
            owner=self.owner,
            clock=clock,
        )
        self.events = PbxEvents(
            settings,
            self.control,
            self.metrics,
            self.nodes,
            self.live,
            self._runners,
            self.writer,
            self.leases,
            clock=clock,
            grouped=self._grouped,
        )

        # the switch's own view of the trunks in use feeds their breakers
        self.switch_view = SwitchView(
            self.nodes,
            self._trunks_in_use,
            self.breakers,
            self.health,
            settings.breaker,
            wake=self._wake_runners,
        )

    def _wake_runners(self) -> None:
        for runner in self._runners.values():
            runner.wake()

    def _trunks_in_use(self) -> set[str]:
        trunks = {r.settings.trunk for r in self._runners.values()}
        return trunks | {t for r in self._runners.values() if (t := r.settings.backup_trunk)}

    def _new_runner(self, cid: int, settings: CampaignSettings) -> RunnableRunner:
        return CampaignRunner(self, cid, settings, clock=self._clock)

    def statistics(self) -> EngineStatistics:
        return EngineStatistics(
            campaigns_running=len(self.supervisor.running),
            live_calls=len(self.live),
            unwritten_results=len(self.writer.unwritten),
            pbx_connected=self.nodes.connected,
        )

    async def run(self) -> None:
        """Run until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                self.supervisor.run(lambda: len(self.writer.unwritten)), name="supervise"
            )
            tg.create_task(self.events.run(), name="pbx-events")
            tg.create_task(self.switch_view.run(), name="switch-view")
            tg.create_task(self.writes.run(), name="writes")
            tg.create_task(self.followup.run(), name="follow-up")
            tg.create_task(self.leases.run(), name="leases")
            tg.create_task(
                heartbeat(
                    EngineRegistry(self.store),
                    self.owner,
                    lambda: self.nodes.connected,
                    self.settings.trunks,
                ),
                name="heartbeat",
            )
            for name, adapter in self.nodes.items():  # each node up while its PBX is
                marks = node_heartbeat(
                    self.node_router.store,
                    self.owner,
                    name,
                    _connected_of(adapter),
                    on_up=self.node_loss.node_up,
                )
                tg.create_task(marks, name=f"node-marks-{name}")

    # -- what a runner asks of its engine (dialer.engine.ports.RunnerHost) -----------------

    @property
    def pbx_epoch(self) -> int:
        """PBX connections so far: a runner claims only after a reconciliation of its
        campaign that began on the current connections (LeaseKeeper.reconcile)."""
        return self.nodes.epoch

    @property
    def connected(self) -> bool:
        """Whether any of this engine's PBX nodes is connected."""
        return self.nodes.connected

    def node_to_dial(self) -> str | None:
        return self.nodes.node_to_dial()

    async def _grouped(self, trunk: str) -> bool:
        return (await self.node_router.config()).group_of(trunk) is not None

    async def node_claim(self, trunk: str) -> NodeClaim | None:
        """The node block of a claim on ``trunk`` (dialer.store.nodes): this engine's nodes of
        the trunk's group with the group's and the global caps; None for a trunk in no group
        (the claim then goes to :meth:`node_to_dial`'s node, as before nodes were kept).
        The first claim on a trunk also reads what the switch says of it (SwitchView.known)."""
        await self.switch_view.known(trunk)
        return await self.node_router.claim_for(trunk)

    async def group_down(self, trunk: str) -> bool:
        return await self.node_loss.group_down(trunk)

    async def pause_for_node_loss(self, cid: int, trunk: str) -> CampaignStatus | None:
        return await self.node_loss.pause(cid, trunk)

    def adapter(self, node: str) -> PbxAdapter:
        return self.nodes.adapter(node)

    def flush_writes(self) -> None:
        self.writes.flush()

    def register(self, call: LiveCall, runner: Runner) -> None:
        """Follow a call a runner just claimed."""
        self.live.add(call, runner)

    def unregister(self, call_id: str) -> None:
        """Stop following a call this engine will not dial after all (its slot is free)."""
        self.live.end(call_id, CallState.RELEASED)

    async def claim(self, command: ClaimCommand) -> ClaimBatch:
        return await self.writer.claim(command)

    async def reconcile(self, runner: Runner) -> None:
        await self.leases.reconcile(runner)

    def plan_used_up(self, cid: int) -> None:
        """The campaign's plan is used up: its runner claims no more from now on, and the
        campaign is paused (plan limit) by the follow-up loop, not by the caller."""
        runner = self._runners.get(cid)
        if runner is not None:
            runner.plan_used_up = True
            runner.wake()
        self.followup.pause_for_plan_nowait(cid)

    def trunk_unhealthy(self, trunk: str) -> None:
        """A claim learnt that ``trunk``'s breaker refuses claims."""
        self.health.unhealthy.add(trunk)

    def originated(self, calls: Sequence[LiveCall]) -> None:
        self.writer.originated(calls)

    def finish_soon(self, call: LiveCall, ended: CallEnded) -> None:
        self.writer.finish_soon(call, ended)

    async def finish(self, call: LiveCall, ended: CallEnded) -> None:
        await self.writer.finish(call, ended)

    def lease_lost(self, call_ids: Sequence[str], why: str) -> None:
        self.leases.lease_lost(call_ids, why)

    # -- kept for the tests that drive the parts one step at a time ------------------------

    async def _write_batch(self, batch: list[_Write]) -> None:
        await self.writer._write_batch(batch)

    async def _settings_of(self, call: LiveCall) -> CampaignSettings:
        return await self.writer.settings_of(call)

    async def _run_runner(self, runner: RunnableRunner) -> None:
        await self.supervisor.run_runner(runner)


def _connected_of(adapter: PbxAdapter) -> Callable[[], bool]:
    """Whether ``adapter``'s PBX connection is up, asked anew at each call."""
    return lambda: adapter.connected
