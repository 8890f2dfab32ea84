"""The lease keeper: renews the leases of this engine's live calls, and reconciles per node.

Every ``renew_every`` it renews the leases of the calls it follows (and of the results still
unwritten), has the writer retry those results, and reconciles: it settles the calls of expired
leases ("orphans": their owner died or stalled) against the PBX's channel list, and the adopted
calls that ended unseen. Leases are fenced by their owner (this process's ``owner`` token,
fresh at every start): once another engine has adopted a call, this one's renewals, marks and
results for it are refused; it then stops following the call (no hang-up, no result).

Per node: an orphan is looked at only on the nodes this engine is attached to (its own node's
channel list and switch record; every node's for a call recorded before nodes were kept, which
belongs to any node). An orphan of another node is left alone: its own engines take it back,
or an engine attached to that node adopts it once its lease has expired. Never settling a
call by a channel list of the wrong switch is what keeps a live call from being taken for
vanished and dialed again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

from dialer.config import EngineSettings
from dialer.domain.callstate import CallState
from dialer.domain.outcome import classify
from dialer.engine.calls import LiveCall, lost_outcome, unknown_outcome
from dialer.engine.cancel import checkpoint
from dialer.engine.livecalls import LiveCalls
from dialer.engine.nodes import Nodes
from dialer.engine.ports import LeaseStore, Runner
from dialer.engine.writer import ResultWriter, count_lost
from dialer.errors import DialerError, LeaseLost, StoreError
from dialer.metrics import DialerMetrics
from dialer.pbx.base import CallEnded, EndSource

log = logging.getLogger(__name__)

_GONE_AFTER = 2  # an adopted call missing from this many channel lists in a row has ended


class _Listings:
    """Each node's channel list, asked for once per reconciliation pass, when first needed."""

    def __init__(self, nodes: Nodes) -> None:
        self._nodes = nodes
        self._live: dict[str, dict[str, bool]] = {}
        self._failed: dict[str, DialerError] = {}  # a node not answering is asked once a pass

    async def get(self, node: str) -> dict[str, bool]:
        if node in self._failed:
            raise self._failed[node]
        if node not in self._live:
            try:
                self._live[node] = await self._nodes.adapter(node).live_calls()
            except DialerError as exc:
                self._failed[node] = exc
                raise
        return self._live[node]


class LeaseKeeper:
    def __init__(
        self,
        settings: EngineSettings,
        store: LeaseStore,
        metrics: DialerMetrics,
        nodes: Nodes,
        live: LiveCalls[Runner],
        runners: Mapping[int, Runner],
        writer: ResultWriter,
        *,
        owner: str,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._store = store
        self._metrics = metrics
        self._nodes = nodes
        self._live = live
        self._runners = runners
        self._writer = writer
        self._finish: Callable[[LiveCall, CallEnded], Awaitable[None]] = writer.finish
        self._owner = owner
        self._clock = clock
        self._reconciling = asyncio.Lock()
        self.adopted: dict[str, int] = {}  # adopted calls -> channel lists in a row without them

    async def run(self) -> None:
        while True:
            checkpoint()
            await asyncio.sleep(self._settings.renew_every)
            await self.renew()
            await self._writer.retry_unwritten()
            try:
                await self._reconcile()
            except DialerError as exc:
                log.warning("reconciliation postponed: %s", exc)

    async def renew(self) -> None:
        by_campaign: dict[tuple[int, str], list[str]] = {}
        for call in self._live:
            by_campaign.setdefault((call.campaign_id, call.trunk), []).append(call.call_id)
        for call, _ in self._writer.unwritten:
            by_campaign.setdefault((call.campaign_id, call.trunk), []).append(call.call_id)
        for (cid, trunk), ids in by_campaign.items():
            try:
                renewal = await self._store.renew(
                    cid, trunk, ids, self._settings.lease_ms, owner=self._owner
                )
            except StoreError as exc:
                log.warning("lease renewal for campaign %s failed: %s", cid, exc)
                continue
            if renewal.retaken:
                log.warning(
                    "campaign %s: %d leases had expired; taken back (nobody had adopted them)",
                    cid,
                    len(renewal.retaken),
                )
            if renewal.lost:
                self.lease_lost(renewal.lost, "renewal refused")

    def lease_lost(self, call_ids: Sequence[str], why: str) -> None:
        """Another engine owns these calls now (it adopted them after this engine's leases
        expired): stop following them, do not hang them up, do not write their results."""
        lost = set(call_ids)
        for call_id in lost:
            self.adopted.pop(call_id, None)
            entry = self._live.drop(call_id)
            if entry is None:
                continue
            call = entry[0]
            for node in self._nodes.ours(call.node):
                self._nodes.adapter(node).forget(call_id)
            count_lost(self._metrics, call, why)
        for call in self._writer.forget(lost):
            count_lost(self._metrics, call, why)

    async def reconcile(self, runner: Runner) -> None:
        """Settle the campaign's orphans against the channel lists of this engine's nodes; the
        runner claims only after this has run once on the current PBX connections (raises
        DialerError when the store or a PBX cannot be asked: the runner then tries again)."""
        epoch = self._nodes.epoch
        async with self._reconciling:
            await self._reconcile_campaign(runner.campaign_id, runner, _Listings(self._nodes))
        runner.reconciled_epoch = epoch

    async def _reconcile(self) -> None:
        """Settle the orphans of every campaign this engine knows, and the adopted calls that
        ended unseen."""
        epoch = self._nodes.epoch
        listings = _Listings(self._nodes)
        async with self._reconciling:
            await self._check_adopted(listings)
            for cid, runner in list(self._runners.items()):
                await self._reconcile_campaign(cid, runner, listings)
                runner.reconciled_epoch = epoch

    async def _reconcile_campaign(self, cid: int, runner: Runner, listings: _Listings) -> None:
        """An orphan keeps its channel slot (the claim counts its lease) until this settles
        it, after a look at its node's channel list: still live there, this engine adopts the
        call (its lease now under this engine's owner: the former owner is fenced off) and
        follows it to its end; gone, it is settled with how it ended (:meth:`_unfollowed_end`),
        or, when nothing shows that it was ever dialed (never marked originated, no end seen,
        no switch record), its contact goes back to the queue. An orphan whose lease another
        engine took meanwhile is left to it; one of a node this engine is not attached to too."""
        for call_id in await self._store.orphaned_calls(cid):
            if call_id in self._live:
                continue  # ours: the next renewal gives the lease back
            ref = await self._store.get_call(call_id)
            if ref is None or ref.state == "done":
                continue
            nodes = self._nodes.ours(ref.node)
            if not nodes:
                continue  # another node's call: never settled by this engine's switches
            # the channel lists before the adoption: a call listed was live then
            try:
                lists = [(node, await listings.get(node)) for node in nodes]
            except DialerError as exc:
                if len(self._nodes) == 1:
                    raise  # the runner waits for its only switch
                log.warning("orphan %s left for now: a node cannot be asked: %s", call_id, exc)
                continue  # its slot stays held; the other nodes' orphans are settled
            on = next(((node, live) for node, live in lists if call_id in live), None)
            adoption = await self._store.adopt(
                cid, ref.trunk, call_id, self._settings.lease_ms, owner=self._owner,
                node=on[0] if on is not None else "",
            )  # fmt: skip
            if not adoption.owned:
                continue  # another engine adopted it first, or it ended meanwhile
            contact = await self._store.get_contact(cid, ref.contact)
            call = LiveCall(
                call_id=call_id,
                campaign_id=cid,
                trunk=ref.trunk,
                contact_id=ref.contact,
                phone=ref.phone,
                attempts=contact.attempts,
                tech_failures=contact.tech_failures,
                claimed_at=ref.claimed_ms / 1000,
                engine_id=self._settings.engine_id,
                dial=ref.dial,
                node=ref.node,
                state=CallState.ORPHANED,
            )
            if on is not None:
                node, live = on
                call.node = node
                await self._adopt(call, runner, ref.owner, stored=ref.state, answered=live[call_id])
                continue
            ended = await self._unfollowed_end(call, nodes, dialed=ref.state != "claimed")
            if ended is None:
                try:
                    await self._store.release(
                        cid, ref.trunk, call_id, ref.contact, owner=self._owner
                    )
                except LeaseLost:
                    continue
                log.info("released never-originated call %s of %s", call_id, ref.owner)
                continue
            log.info(
                "call %s of %s ended unfollowed: %s (%s)",
                call_id, ref.owner, classify(ended.raw).status.value, ended.source.value,
            )  # fmt: skip
            await self._finish(call, ended)

    async def _adopt(
        self, call: LiveCall, runner: Runner, previous: str, *, stored: str, answered: bool
    ) -> None:
        """Follow an orphan that is still live on its node."""
        log.info("adopting live call %s of %s on %s", call.call_id, previous, call.node)
        self._metrics.adopted(call.campaign_id)
        claimed = stored == "claimed"  # its owner died before its mark was written
        self._live.add(call, runner, CallState.CLAIMED if claimed else CallState.ORIGINATED)
        if claimed:
            self._writer.originated([call])
        pbx = self._nodes.adapter(call.node)
        seen = pbx.seen_end(call.call_id)
        if seen is not None and seen.source is EndSource.SEEN:
            # it ended after the listing, before this adoption: its end was seen here
            self._metrics.unfollowed_end(seen.source)
            await self._finish(call, replace(seen, started_at=call.claimed_at))
            return
        pbx.adopt(call.call_id, answered=answered)
        self.adopted[call.call_id] = 0

    async def _unfollowed_end(
        self, call: LiveCall, nodes: Sequence[str], *, dialed: bool
    ) -> CallEnded | None:
        """How a call that no engine followed to its end ended, gone from its node: (a) the
        end this engine saw (every engine records the end of every dialer call it sees), else
        (b) the switch's own record, else (c) an end this engine remembers as cut when its PBX
        connection dropped, else (d) "outcome unknown" (final: never redialed on its own) -
        or None for a call never marked originated that nothing shows was dialed: its contact
        goes back to the queue. Raises PbxUnavailable when a switch cannot be asked."""
        remembered: CallEnded | None = None
        for node in nodes:
            pbx = self._nodes.adapter(node)
            seen = pbx.seen_end(call.call_id)
            if seen is not None and seen.source is EndSource.SEEN:
                return self._counted(replace(seen, started_at=call.claimed_at))
            remembered = remembered or seen
        for node in nodes:
            ended = await self.switch_end(call, node)
            if ended is not None:
                return self._counted(ended)
        if remembered is not None:
            return self._counted(replace(remembered, started_at=call.claimed_at))
        if dialed:
            return self._counted(
                CallEnded(
                    call.call_id,
                    unknown_outcome(),
                    self._clock(),
                    None,
                    call.claimed_at,
                    EndSource.UNKNOWN,
                )  # fmt: skip
            )
        return None

    def _counted(self, ended: CallEnded) -> CallEnded:
        self._metrics.unfollowed_end(ended.source)
        return ended

    async def switch_end(self, call: LiveCall, node: str) -> CallEnded | None:
        """The switch's own record of the call's end, as an end (None: it kept none)."""
        pbx = self._nodes.adapter(node)
        raw = await pbx.call_record(call.call_id, started_at=call.claimed_at)
        if raw is None:
            return None
        return CallEnded(call.call_id, raw, self._clock(), None, call.claimed_at, EndSource.SWITCH)

    async def _check_adopted(self, listings: _Listings) -> None:
        """An adopted call may have ended between the channel list that showed it and its
        adoption (its Hangup then went by unfollowed, into the adapter's memory): one missing
        from its node's list twice in a row is settled with how it ended
        (:meth:`_unfollowed_end`), so that its slot cannot stay held for ever."""
        for call_id in list(self.adopted):
            call = self._live.get(call_id)
            if call is None:
                self.adopted.pop(call_id, None)
                continue
            try:
                live = await listings.get(call.node)
            except DialerError:
                if len(self._nodes) == 1:
                    raise
                continue  # its node is away: settled when it is back (settle_cut)
            if call_id in live:
                self.adopted[call_id] = 0
            elif (misses := self.adopted[call_id] + 1) < _GONE_AFTER:
                self.adopted[call_id] = misses
            else:
                log.warning("adopted call %s ended unseen", call_id)
                self._nodes.adapter(call.node).forget(call_id)
                ended = await self._unfollowed_end(call, [call.node], dialed=True)
                assert ended is not None  # dialed: at worst "outcome unknown"
                await self._finish(call, ended)

    async def settle_cut(self, node: str, lost_at: float) -> None:
        """``node`` is back after an outage: settle its calls that ended unseen meanwhile."""
        pbx = self._nodes.adapter(node)
        live = await pbx.live_calls()
        for call in list(self._live):
            call_id = call.call_id
            if node not in self._nodes.ours(call.node):
                continue  # another node's
            if call_id in live or call.claimed_at >= lost_at:
                continue
            log.warning("call %s ended while the PBX was unreachable", call_id)
            seen = pbx.forget(call_id)
            ended = await self.switch_end(call, node)  # it ended while AMI was away
            if ended is None:  # cut by the PBX's failure: what this engine knew decides
                raw = lost_outcome(seen, answered=call.answered_at is not None)
                ended = CallEnded(
                    call_id, raw, self._clock(), call.answered_at, call.claimed_at,
                    EndSource.LOST,
                )  # fmt: skip
            self._metrics.unfollowed_end(ended.source)
            await self._finish(call, ended)
