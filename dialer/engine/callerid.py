"""The caller id of each call of a batch, as the runner originates it.

The campaign's source applies unless the contact's list sets its own
(:func:`~dialer.domain.callerid.effective_source`). The lists' settings are read at most every
``refresh`` seconds per campaign (a change applies within that); the contacts' list ids, and
the rotating pools' turns (shared by every engine), in one round trip per batch, and only when
a list sets a caller id or a pool rotates. Should Redis fail there, the batch falls back to the
campaign's source with a turn counted here: a call is never held up for its caller id.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from dialer.domain.callerid import CallerIdSource, effective_source, rotation_field
from dialer.errors import DialerError
from dialer.store.callerid import contact_lists, list_caller_ids, take_turns
from dialer.store.redis_store import RedisStore

log = logging.getLogger(__name__)


class CallerIdChooser:
    def __init__(
        self,
        store: RedisStore,
        campaign_id: int,
        *,
        refresh: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._cid = campaign_id
        self._refresh = refresh
        self._clock = clock
        self._lists: dict[int, CallerIdSource] = {}
        self._read_at: float | None = None
        self._local_turn = 0

    async def _list_sources(self) -> dict[int, CallerIdSource]:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._refresh:
            self._lists = await list_caller_ids(self._store, self._cid)
            self._read_at = now
        return self._lists

    async def choose(
        self, campaign: CallerIdSource, calls: Sequence[tuple[int, str]]
    ) -> list[str | None]:
        """The caller id of each ``(contact_id, phone)``, in order (None: the trunk's own)."""
        try:
            return await self._choose(campaign, calls)
        except DialerError as exc:
            log.warning("campaign %s: caller ids from the campaign only: %s", self._cid, exc)
            first, self._local_turn = self._local_turn, self._local_turn + len(calls)
            return [campaign.pick(phone, first + i) for i, (_, phone) in enumerate(calls)]

    async def _choose(
        self, campaign: CallerIdSource, calls: Sequence[tuple[int, str]]
    ) -> list[str | None]:
        lists = await self._list_sources()
        list_ids: Sequence[int] = [0] * len(calls)
        if lists:
            list_ids = await contact_lists(self._store, self._cid, [c for c, _ in calls])
        sources: list[tuple[CallerIdSource, str]] = []
        for list_id in list_ids:
            own = lists.get(list_id)
            source = effective_source(own, campaign)
            sources.append((source, rotation_field(list_id if source is own else None)))
        wanted = Counter(name for source, name in sources if source.rotates)
        turns = await take_turns(self._store, self._cid, wanted) if wanted else {}
        chosen: list[str | None] = []
        for (source, name), (_, phone) in zip(sources, calls, strict=True):
            turn = 0
            if source.rotates:
                turn = turns[name]
                turns[name] += 1
            chosen.append(source.pick(phone, turn))
        return chosen
