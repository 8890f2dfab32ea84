"""The narrow interfaces the engine's parts depend on (structural: typing.Protocol).

Each part of the engine (:mod:`supervisor`, :mod:`writer`, :mod:`leases`, :mod:`runner`) is
given what it uses, described here, instead of the Engine: :class:`Runner` is what they need of
a campaign's runner, the ``*Store`` protocols the few store calls each makes
(:class:`~dialer.store.redis_store.RedisStore` has them all), :class:`RunnerHost` what a
runner needs of the engine that runs it. Nothing here imports the Engine: no import cycle.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Protocol

from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.engine.calls import LiveCall
from dialer.pbx.base import CallEnded, PbxAdapter
from dialer.store.models import (
    Adoption,
    CallRef,
    CampaignRecord,
    ClaimBatch,
    ClaimCommand,
    ContactRecord,
    FinishItem,
    QueueStats,
    Renewal,
    SettleReply,
    Usage,
)

if TYPE_CHECKING:
    from dialer.config import EngineSettings
    from dialer.engine.control import CampaignControl
    from dialer.engine.followup import FollowUp
    from dialer.metrics import DialerMetrics
    from dialer.store.nodes import NodeClaim
    from dialer.store.redis_store import RedisStore


class Runner(Protocol):
    """A campaign's runner, as the supervisor, the writer and the lease keeper see it."""

    campaign_id: int
    settings: CampaignSettings
    at_cap: bool
    plan_used_up: bool
    reconciled_epoch: int

    @property
    def calls(self) -> MutableMapping[str, LiveCall]: ...

    def slot_freed(self) -> None: ...

    def wake(self) -> None: ...

    def used(self, usage: Usage) -> None: ...

    def plan_reached(self, attempts: int = 0, talk_seconds: float = 0.0) -> bool: ...

    def channel_created(self, call: LiveCall, at: float) -> None: ...


class ResultStore(Protocol):
    """The writer's store calls."""

    async def settle_and_claim(
        self,
        originated: Mapping[int, Sequence[str]],
        finished: Sequence[FinishItem],
        claims: Sequence[ClaimCommand] = (),
        *,
        owner: str = "",
        scripts: Sequence[tuple[str, list[str | int]]] = (),
    ) -> SettleReply: ...

    async def get_campaign(self, cid: int) -> CampaignRecord: ...


class LeaseStore(Protocol):
    """The lease keeper's store calls."""

    async def renew(
        self, cid: int, trunk: str, call_ids: Sequence[str], lease_ms: int, *, owner: str
    ) -> Renewal: ...

    async def orphaned_calls(self, cid: int) -> list[str]: ...

    async def get_call(self, call_id: str) -> CallRef | None: ...

    async def adopt(
        self, cid: int, trunk: str, call_id: str, lease_ms: int, *, owner: str, node: str = ""
    ) -> Adoption: ...

    async def get_contact(self, cid: int, contact_id: int) -> ContactRecord: ...

    async def release(
        self, cid: int, trunk: str, call_id: str, contact_id: int, *, owner: str = ""
    ) -> bool: ...


class SupervisorStore(Protocol):
    """The supervisor's store calls."""

    async def rebuild_active_index(self, *, page: int = 1000) -> int: ...

    async def campaigns_in(
        self, statuses: Collection[CampaignStatus], *, page: int = 1000
    ) -> dict[CampaignStatus, list[CampaignRecord]]: ...

    async def campaign_stats(
        self, cid: int
    ) -> tuple[CampaignRecord, QueueStats, dict[CallStatus, int]]: ...


class NodeLossStore(Protocol):
    """The node-loss rule's store calls (dialer.engine.nodeloss)."""

    async def campaigns_in(
        self, statuses: Collection[CampaignStatus], *, page: int = 1000
    ) -> dict[CampaignStatus, list[CampaignRecord]]: ...

    async def get_campaign(self, cid: int) -> CampaignRecord: ...


class RunnerHost(Protocol):
    """What a CampaignRunner needs of the engine that runs it (Engine is one)."""

    @property
    def settings(self) -> EngineSettings: ...

    @property
    def store(self) -> RedisStore: ...

    @property
    def control(self) -> CampaignControl: ...

    @property
    def followup(self) -> FollowUp: ...

    @property
    def metrics(self) -> DialerMetrics: ...

    @property
    def owner(self) -> str: ...

    @property
    def pbx_epoch(self) -> int: ...

    def flush_writes(self) -> None: ...

    @property
    def connected(self) -> bool: ...

    def node_to_dial(self) -> str | None: ...

    async def node_claim(self, trunk: str) -> NodeClaim | None: ...

    async def group_down(self, trunk: str) -> bool:
        """Whether ``trunk`` is in a trunk group with no node up (dialer.engine.nodeloss)."""
        ...

    async def pause_for_node_loss(self, cid: int, trunk: str) -> CampaignStatus | None:
        """Pause the campaign: no node of ``trunk``'s group is left; the status its runner
        ends with (None: it dials on)."""
        ...

    def adapter(self, node: str) -> PbxAdapter: ...

    def register(self, call: LiveCall, runner: Runner) -> None: ...

    def unregister(self, call_id: str) -> None: ...

    async def claim(self, command: ClaimCommand) -> ClaimBatch: ...

    async def reconcile(self, runner: Runner) -> None: ...

    def trunk_unhealthy(self, trunk: str) -> None: ...

    def originated(self, calls: Sequence[LiveCall]) -> None: ...

    async def finish(self, call: LiveCall, ended: CallEnded) -> None: ...
