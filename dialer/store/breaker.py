"""Trunk circuit breakers in Redis, shared by every engine (``{ns}:t:{trunk}:breaker``).

``breaker_report.lua`` feeds a trunk's breaker the signals of finished calls;
``breaker_switch.lua`` the switch's own view of the trunk (reachable or not); ``claim.lua``
refuses claims on an open or half-open trunk and grants the half-open probe. The states and
moves are :data:`dialer.domain.breaker.BREAKER_TRANSITIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import redis.asyncio as aioredis

from dialer.domain.breaker import BreakerLimits, BreakerState, Signal
from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CampaignStatus
from dialer.errors import InvalidSettings

from .keys import MEMBER_DIGITS
from .models import CampaignRecord
from .redis_store import RedisStore, _s, _store_error, _translated

__all__ = ["BreakerReport", "BreakerStore", "BreakerView"]


@dataclass(frozen=True, slots=True)
class BreakerReport:
    """What one report did: the state after it, trips (closed -> open) and closes it made,
    the end of the cool-down in server ms (0 unless open), and the attempts its trips gave
    back to the contacts of the run that tripped it."""

    state: BreakerState
    trips: int
    closes: int
    retry_ms: int
    refunded: int = 0


@dataclass(frozen=True, slots=True)
class BreakerView:
    """A trunk's breaker as stored (a trunk never reported on is closed)."""

    trunk: str
    state: BreakerState = BreakerState.CLOSED
    reason: str = ""
    opened_ms: int = 0
    retry_ms: int = 0  # open: end of the cool-down
    probe: str = ""  # half-open: the probe call
    held: tuple[str, ...] = ()  # the nodes whose switch says the trunk is unreachable
    trips: int = 0
    silent_run: int = 0
    fail_run: int = 0

    def to_dict(self) -> dict[str, object]:
        """As the API shows it (times in ms since the epoch, 0: none)."""
        plain = {f.name: getattr(self, f.name) for f in fields(self)}
        return plain | {"state": self.state.value, "held": list(self.held)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BreakerView:
        """From :meth:`to_dict`'s JSON."""
        plain = {f.name: d[f.name] for f in fields(cls)}
        return cls(**plain | {"state": BreakerState(d["state"]), "held": tuple(d["held"])})

    def describe(self) -> str:
        """The reason shown on a campaign dialing this trunk ("" when closed)."""
        if self.state is BreakerState.CLOSED:
            return ""
        if self.state is BreakerState.HALF_OPEN:
            return f"trunk {self.trunk} unavailable: breaker half-open, probe call {self.probe}"
        return f"trunk {self.trunk} unavailable: breaker open ({self.reason})"


def report_of(reply: Any) -> BreakerReport:
    """breaker_report.lua's reply (or the error a pipeline gave in its place) as a report;
    raises StoreError / ScriptError for an error."""
    if isinstance(reply, Exception):
        raise _store_error("breaker_report", reply)
    state, trips, closes, retry, refunded = reply
    return BreakerReport(
        BreakerState(_s(state)), int(trips), int(closes), int(retry), int(refunded)
    )


class BreakerStore:
    def __init__(self, store: RedisStore) -> None:
        self._r: aioredis.Redis = store.client
        self.keys = store.keys
        self._report = store.scripts.breaker_report
        self._switch = store.scripts.breaker_switch

    @_translated
    async def report(
        self, trunk: str, signals: Sequence[tuple[str, Signal, bool]], limits: BreakerLimits
    ) -> BreakerReport:
        """Apply (call id, signal, charged) in order to ``trunk``'s breaker; ``charged``: the
        call used one of its contact's attempts (a trip gives it back)."""
        keys, args = self._report_keys_args(trunk, signals, limits)
        return report_of(await self._report(keys=keys, args=args))

    @_translated
    async def switch(
        self, trunk: str, node: str, *, up: bool, reason: str, limits: BreakerLimits
    ) -> BreakerReport:
        """The switch of ``node`` says ``trunk`` is reachable (``up``) or not
        (SWITCH_UP / SWITCH_DOWN of dialer.domain.breaker: breaker_switch.lua)."""
        args: list[str | int] = [
            node,
            "up" if up else "down",
            reason,
            limits.switch_hold_ms,
            limits.probe_timeout_ms,
        ]
        return report_of(await self._switch(keys=[self.keys.trunk_breaker(trunk)], args=args))

    def report_command(
        self, trunk: str, signals: Sequence[tuple[str, Signal, bool]], limits: BreakerLimits
    ) -> tuple[str, list[str | int]]:
        """:meth:`report` as an EVALSHA call for ``RedisStore.settle_and_claim(scripts=...)``
        (its reply goes to :func:`report_of`)."""
        keys, args = self._report_keys_args(trunk, signals, limits)
        return self._report.sha, [len(keys), *keys, *args]

    def _report_keys_args(
        self, trunk: str, signals: Sequence[tuple[str, Signal, bool]], limits: BreakerLimits
    ) -> tuple[list[str], list[str | int]]:
        k = self.keys
        args: list[str | int] = [
            limits.failure_run,
            limits.silent_run,
            limits.cooldown_ms,
            limits.probe_timeout_ms,
            MEMBER_DIGITS,
        ]
        for call_id, signal, charged in signals:
            args += [call_id, signal.value, 1 if charged else 0]
        group = k.group_of_trunk(trunk)  # its campaigns' slot group on Redis Cluster
        keys = [k.trunk_breaker(trunk), k.call_prefix_in(group), k.campaign_prefix_in(group)]
        return keys, args

    @_translated
    async def view(self, trunk: str) -> BreakerView:
        raw = await self._r.hgetall(self.keys.trunk_breaker(trunk))
        h = {_s(k): _s(v) for k, v in raw.items()}
        return BreakerView(
            trunk=trunk,
            state=BreakerState(h.get("state") or BreakerState.CLOSED),
            reason=h.get("reason", ""),
            opened_ms=int(h.get("opened_ms") or 0),
            retry_ms=int(h.get("retry_ms") or 0),
            probe=h.get("probe", ""),
            held=tuple(n for n in h.get("held", "").split(",") if n),
            trips=int(h.get("trips") or 0),
            silent_run=int(h.get("silent_run") or 0),
            fail_run=int(h.get("fail_run") or 0),
        )

    async def campaign_reason(self, record: CampaignRecord) -> str:
        """Why a Running campaign does not dial on its trunk ("": it does, or it is not
        Running, or it has a reason of its own already)."""
        if record.status is not CampaignStatus.RUNNING or record.status_reason:
            return ""
        try:
            settings = CampaignSettings.from_json(record.settings_json)
        except InvalidSettings:
            return ""
        primary = await self.view(settings.trunk)
        reason = primary.describe()
        if reason and settings.backup_trunk is not None:
            backup = await self.view(settings.backup_trunk)
            if backup.state is BreakerState.CLOSED:
                reason += f"; dialing on backup trunk {settings.backup_trunk}"
            else:
                reason += f"; backup {backup.describe()}"
        return reason

    async def with_reason(self, record: CampaignRecord) -> CampaignRecord:
        """``record`` with the trunk's breaker as its status reason when it blocks dialing."""
        reason = await self.campaign_reason(record)
        return replace(record, status_reason=reason) if reason else record

    @_translated
    async def reset(self, trunk: str) -> None:
        """Forget the trunk's breaker (closed, counts cleared): an operator's override."""
        await self._r.delete(self.keys.trunk_breaker(trunk))
