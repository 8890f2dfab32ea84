"""What a written result calls for beyond the write, done beside the results writer.

The results writer (:mod:`dialer.engine.batch`) carries every campaign's marks, results and
claims, so it must never wait for work of one campaign. Two things follow from a result:

- the campaign's plan is used up: it pauses (``plan limit``). A pause is a status
  compare-and-set, then a settle that waits for the campaign's claimed calls to be marked
  originated, marks the writer itself writes: awaited in the writer, it held every campaign's
  claims for up to the settle's second;
- the callee opted out during the call: the number is listed do-not-call.

Each has its own loop here (:meth:`FollowUp.run` runs both in one task group), fed without
waiting: pauses by a set of campaign ids (asking twice is one entry, so it never holds more than
the campaigns there are), listings by a bounded queue (the writer waits for room only when the
listings fall that far behind). Work that meets a store error is tried again after
``retry_after`` seconds; a refused pause (the campaign is no longer Running, or gone) is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from dialer.engine.cancel import checkpoint
from dialer.engine.control import PLAN_LIMIT_REASON, CampaignControl
from dialer.errors import DialerError, NotFound, StoreError, TransitionRefused
from dialer.store.dnc import DncStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FollowUpStatistics:
    pauses_waiting: int
    listings_waiting: int
    paused: int  # plan-limit pauses applied by this engine
    listed: int  # numbers listed do-not-call from calls


class FollowUp:
    def __init__(
        self,
        control: CampaignControl,
        dnc: DncStore,
        *,
        paused: Callable[[int], None] = lambda cid: None,
        max_listings: int = 1000,
        retry_after: float = 0.5,
    ) -> None:
        self._control = control
        self._dnc = dnc
        self._on_paused = paused  # told each campaign id once its pause has landed
        self._retry_after = retry_after
        self._pauses: dict[int, None] = {}  # an ordered set
        self._pause_ready = asyncio.Event()
        self._listings: asyncio.Queue[tuple[str, int]] = asyncio.Queue(max_listings)
        self._paused = 0
        self._listed = 0

    def statistics(self) -> FollowUpStatistics:
        return FollowUpStatistics(
            pauses_waiting=len(self._pauses),
            listings_waiting=self._listings.qsize(),
            paused=self._paused,
            listed=self._listed,
        )

    def pause_for_plan_nowait(self, cid: int) -> None:
        """Pause ``cid`` (reason plan limit) soon; never waits."""
        self._pauses[cid] = None
        self._pause_ready.set()

    async def list_dnc(self, phone: str, cid: int) -> None:
        """List ``phone`` do-not-call for ``cid`` soon; waits only while the queue is full."""
        await self._listings.put((phone, cid))

    async def run(self) -> None:
        """Both loops; runs until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._pause_loop(), name="plan-pauses")
            tg.create_task(self._dnc_loop(), name="dnc-listings")

    async def _pause_loop(self) -> None:
        while True:
            await self._pause_ready.wait()
            self._pause_ready.clear()
            checkpoint()
            cids = list(self._pauses)
            self._pauses.clear()
            landed, failed = [], []
            for cid in cids:  # every status change first: a settle takes a moment
                try:
                    await self._control.pause_nowait(cid, reason=PLAN_LIMIT_REASON)
                except (TransitionRefused, NotFound):
                    continue  # not Running any more (paused, stopped, deleted meanwhile)
                except StoreError as exc:
                    log.warning("campaign %s: plan-limit pause postponed: %s", cid, exc)
                    failed.append(cid)
                    continue
                self._paused += 1
                landed.append(cid)
                self._on_paused(cid)
            for cid in landed:
                try:
                    ack = await self._control.wait_settled(cid)
                except DialerError as exc:  # the supervisor finishes the drain
                    log.warning("campaign %s: pause not settled: %s", cid, exc)
                    continue
                log.warning(
                    "campaign %s %s: %s reached (%d calls draining)",
                    cid,
                    ack.status.value,
                    PLAN_LIMIT_REASON,
                    ack.draining,
                )
            if failed:
                await asyncio.sleep(self._retry_after)
                for cid in failed:
                    self.pause_for_plan_nowait(cid)

    async def _dnc_loop(self) -> None:
        while True:
            phone, cid = await self._listings.get()
            checkpoint()
            while True:
                try:
                    await self._dnc.add_from_call(phone, cid)
                    self._listed += 1
                except NotFound:
                    log.info("campaign %s deleted: %s not listed do-not-call", cid, phone)
                except StoreError as exc:
                    log.warning("campaign %s: do-not-call listing postponed: %s", cid, exc)
                    await asyncio.sleep(self._retry_after)
                    continue
                except DialerError as exc:  # an invalid number
                    log.error("campaign %s: %s not listed do-not-call: %s", cid, phone, exc)
                break
