"""Local calling hours for one campaign runner: which zone groups the next claim may take.

The campaign's zone groups are read from Redis every :data:`REFRESH_S` (a list uploaded while
it runs adds groups); which of them are open is computed from the campaign's window and
holidays (:func:`dialer.domain.zones.zones_now`) and kept until the first open or close among
them. The claim script itself refuses an open group past its deadline (by Redis's clock), so
a stale answer here never dials late: it may only wait a little longer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from dialer.domain.campaign import CampaignSettings
from dialer.domain.zones import ZoneGroup, ZonesNow, zones_now
from dialer.store.keys import Keys
from dialer.store.models import ZoneClaim
from dialer.store.zones import zone_groups

__all__ = ["REFRESH_S", "LocalHours"]

REFRESH_S = 5.0

log = logging.getLogger(__name__)


class LocalHours:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        campaign_id: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client, self._keys, self._cid = client, keys, campaign_id
        self._clock = clock
        self._groups: dict[int, ZoneGroup] = {}
        self._read_at = float("-inf")
        self._state: ZonesNow | None = None
        self._settings: CampaignSettings | None = None

    async def claim(self, settings: CampaignSettings) -> ZoneClaim | None:
        """The claim's zone argument: None when the campaign has no local hours."""
        if not settings.local_hours:
            return None
        now = self._clock()
        if now - self._read_at >= REFRESH_S:
            self._read_at = now
            try:
                groups = await zone_groups(self._client, self._keys, self._cid)
            except (RedisError, OSError) as exc:  # the claim will meet it too: keep the last
                log.warning("campaign %s: zone groups not read: %s", self._cid, exc)
                groups = self._groups
            if groups != self._groups:
                self._groups, self._state = groups, None
        state = self._state
        if state is None or now >= state.valid_until or settings is not self._settings:
            state = zones_now(now, settings.window, self._groups, settings.holidays)
            self._state, self._settings = state, settings
        next_ms = None if state.next_opening is None else int(state.next_opening * 1000)
        return ZoneClaim(state.open, next_ms)
