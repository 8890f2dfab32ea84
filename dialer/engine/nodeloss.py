"""Node loss: a campaign whose trunk group has no PBX node left is paused, and resumed when one
is back (issue 17).

A node that goes away loses its capacity at once (its up mark goes: dialer.engine.nodebeat)
and the campaigns of its trunk group keep dialing on the group's other nodes. Only when none
of them is up does the campaign's runner see nothing to dial on; it then waits
:data:`NODE_LOSS_GRACE_S` (:class:`NodeLossGrace`), because a node that merely reconnects
(an AMI or ESL connection dropped and made again) must not pause anything, and then pauses the
campaign with :data:`~dialer.engine.control.NODE_LOSS_REASON` as its reason, as the switch-crash
rule pauses a campaign on an engine's only PBX (dialer.engine.pbxevents): no claim from then
on; the calls in flight are settled by that rule (their leases, then the node's return).

A node coming up (its first mark by this engine, or its return) resumes the campaigns paused
for this reason on a trunk of a group that holds the node: those this engine has run (whichever
engine paused them) and those still Pausing (any engine's), and only those: a campaign a person
paused (or paused for another reason) is left alone. (An engine started after the pause, that
never ran the campaign, does not resume a Paused one: the active index holds no Paused
campaign, and a scan of every campaign on each reconnect was not worth it; resume it by hand.)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Mapping

from dialer.domain.statuses import CampaignStatus
from dialer.engine.control import NODE_LOSS_REASON, CampaignControl
from dialer.engine.ports import NodeLossStore
from dialer.errors import NotFound, StoreError, TransitionRefused
from dialer.store.models import CampaignRecord
from dialer.store.nodes import NodeConfig, NodeRouter, nodes_blocker

__all__ = ["NODE_LOSS_GRACE_S", "NodeLoss", "NodeLossGrace"]

log = logging.getLogger(__name__)

NODE_LOSS_GRACE_S = 6.0  # no node of the group up this long: the campaign is paused


class NodeLossGrace:
    """A runner's timer: :meth:`observe` says whether the group has been down without a break
    for the whole grace (a single "up" starts it again)."""

    def __init__(
        self, grace: float = NODE_LOSS_GRACE_S, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._grace = grace
        self._clock = clock
        self._since: float | None = None  # when the group was first seen down (this outage)

    @property
    def down_since(self) -> float | None:
        return self._since

    def observe(self, down: bool) -> bool:
        """Note the group ``down`` (or not) now; True once it has been down for the grace."""
        if not down:
            self._since = None
            return False
        now = self._clock()
        if self._since is None:
            self._since = now
        return now - self._since >= self._grace

    def reset(self) -> None:
        self._since = None


class NodeLoss:
    """The engine's side of the rule: whether a trunk's group has a node up, the pause, and the
    resume when a node comes up."""

    def __init__(
        self,
        router: NodeRouter,
        control: CampaignControl,
        store: NodeLossStore,
        *,
        known: Callable[[], Mapping[int, str]] = dict,
        auto_resume: bool = True,
    ) -> None:
        self._router = router
        self._control = control
        self._store = store
        self._known = known  # campaign id -> trunk: the campaigns this engine has run
        self._auto_resume = auto_resume  # DIALER_PBX_AUTO_RESUME, as for a PBX outage

    async def group_down(self, trunk: str) -> bool:
        """Whether ``trunk`` is in a trunk group none of whose nodes for it is up (by every
        engine's marks, read now); False for a trunk in no group (the PBX rule's), and on
        Redis Cluster, which has no trunk groups (NodeStore.put_group)."""
        if self._router.store.keys.cluster:
            return False
        cfg = await self._router.config()
        group = cfg.group_of(trunk)
        if group is None:
            return False
        listed = [cfg.nodes[n] for n in group.nodes_of(trunk) if n in cfg.nodes]
        statuses = await self._router.store.statuses(listed) if listed else []
        return nodes_blocker(cfg, statuses, trunk) is not None

    async def pause(self, cid: int, trunk: str) -> CampaignStatus | None:
        """Pause campaign ``cid`` for the loss of ``trunk``'s nodes; the status its runner ends
        with, or None when it dials on (still Running: a node came back meanwhile)."""
        try:
            status = await self._control.pause_nowait(cid, NODE_LOSS_REASON)
        except NotFound:
            return CampaignStatus.DRAFT  # deleted: the runner ends (its status is not used)
        except TransitionRefused:  # another engine paused it first, or a person moved it
            try:
                record = await self._store.get_campaign(cid)
            except NotFound:
                return CampaignStatus.DRAFT
            return None if record.status is CampaignStatus.RUNNING else record.status
        log.warning("campaign %s paused: %s (trunk %s)", cid, NODE_LOSS_REASON, trunk)
        # a node that came up between the look and the pause resumed nothing (the campaign was
        # still Running then): look again now that the pause is written
        if not await self.group_down(trunk):
            await self._resume(cid)
            return None
        return status

    async def node_up(self, node: str) -> None:
        """``node`` is up (marked by this engine): resume the campaigns paused for the loss of
        every node of a group that holds it, among those this engine knows (it ran them) and
        those still Pausing (any engine's)."""
        if not self._auto_resume:
            return
        try:
            trunks = _trunks_of(await self._router.config(), node)
            if not trunks:
                return
            pausing = await self._store.campaigns_in((CampaignStatus.PAUSING,))
        except StoreError as exc:
            log.warning("node %s up: campaigns paused for node loss not read: %s", node, exc)
            return
        candidates = dict(self._known())
        for record in pausing.get(CampaignStatus.PAUSING, []):
            if record.status_reason == NODE_LOSS_REASON:
                candidates[record.id] = _trunk(record)
        for cid, trunk in sorted(candidates.items()):
            if trunk in trunks:  # resumed only if the rule paused it (its reason, read anew)
                await self._resume(cid)

    async def _resume(self, cid: int) -> None:
        """Resume ``cid`` if this rule paused it (a person's pause is never undone)."""
        try:
            record = await self._store.get_campaign(cid)
            if record.status not in _PAUSED or record.status_reason != NODE_LOSS_REASON:
                return
            await self._control.resume(cid, only_reason=NODE_LOSS_REASON)
        except (TransitionRefused, NotFound):
            return  # resumed (or stopped, deleted) meanwhile
        except StoreError as exc:
            log.warning("campaign %s: not resumed after node loss: %s", cid, exc)
            return
        log.warning("campaign %s resumed: a node of its trunk group is up", cid)


_PAUSED = frozenset({CampaignStatus.PAUSING, CampaignStatus.PAUSED})


def _trunks_of(cfg: NodeConfig, node: str) -> Collection[str]:
    """The trunks that ``node`` serves in its groups (none while it is disabled)."""
    configured = cfg.nodes.get(node)
    if configured is None or not configured.enabled:
        return ()
    return {t for g in cfg.groups.values() for t in g.trunks if node in g.nodes_of(t)}


def _trunk(record: CampaignRecord) -> str:
    """The campaign's trunk, from its settings (the record's copy as a fallback)."""
    try:
        trunk = json.loads(record.settings_json).get("trunk")
    except (ValueError, AttributeError):
        return record.trunk
    return trunk if isinstance(trunk, str) and trunk else record.trunk
