"""Callbacks in Redis: set, move and cancel one (``callback.lua``), list the upcoming ones.

A callback is a contact in status Rescheduled, queued in ``pending`` and ``retries`` at its due
time (README: Callbacks). The script's header documents the contact fields ``cb_*`` it keeps.
Listing (``callback_list.lua``) reads ``retries`` in due order and keeps its Rescheduled
contacts: callbacks set by the dialplan appear beside the operators' ones, with no index of
their own for finish.lua to keep in step.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from importlib import resources

from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from dialer.domain.callbacks import CallbackSource
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.errors import NotFound, StoreError, TransitionRefused

from .keys import contact_id_of, contact_member
from .redis_store import RedisStore, _store_error

__all__ = ["CallbackChange", "CallbackInCall", "CallbackStore", "CallbackView"]

SCAN_SLICE = 500  # retries queue entries one callback_list.lua call reads at most


class CallbackInCall(TransitionRefused):
    """The contact is being dialed right now: its callback cannot change (409)."""


@dataclass(frozen=True, slots=True)
class CallbackChange:
    """What ``callback.lua`` did: the contact's status before and after, its queue time after
    (None: not queued) and who had set the callback before (None: there was none)."""

    contact_id: int
    before: CallStatus
    after: CallStatus
    due_ms: int | None
    source_before: CallbackSource | None


@dataclass(frozen=True, slots=True)
class CallbackView:
    """One upcoming callback."""

    contact_id: int
    phone: str
    list_id: int
    attempts: int
    due_ms: int
    requested_ms: int  # = due_ms for a dialplan callback (it asks for no more)
    source: CallbackSource


@functools.cache
def _source(name: str) -> str:
    """The text of ``lua/<name>.lua`` (read once)."""
    return resources.files("dialer.store").joinpath("lua", f"{name}.lua").read_text("utf-8")


def _s(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


class CallbackStore:
    """Callbacks of the campaigns of ``store`` (one script registered per instance)."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._script: AsyncScript = store.client.register_script(_source("callback"))
        self._list: AsyncScript = store.client.register_script(_source("callback_list"))

    async def now_ms(self) -> int:
        try:
            sec, usec = await self._store.client.time()
        except (RedisError, OSError) as exc:
            raise _store_error("time", exc) from exc
        return int(sec) * 1000 + int(usec) // 1000

    async def _run(
        self,
        cid: int,
        contact_id: int,
        args: Sequence[str | int],
        allowed: Collection[CampaignStatus],
    ) -> CallbackChange:
        k = self._store.keys
        keys = [
            k.campaign(cid),
            k.contact(cid, contact_id),
            k.pending(cid),
            k.retries(cid),
            k.counts(cid),
            k.list_stop(cid),
            k.global_dnc_of(cid),
            k.campaign_dnc(cid),
            k.zone_prefix(cid),  # local hours
        ]
        member = contact_member(contact_id)
        statuses = sorted(s.value for s in allowed)
        try:
            raw = await self._script(keys=keys, args=[args[0], member, *args[1:], *statuses])
        except (RedisError, OSError) as exc:
            raise _store_error("callback", exc) from exc
        code, detail = _s(raw[0]), _s(raw[1])
        if code == "ok":
            due = _s(raw[3])
            source = _s(raw[4])
            return CallbackChange(
                contact_id,
                CallStatus(detail),
                CallStatus(_s(raw[2])),
                int(due) if due else None,
                CallbackSource(source) if source else None,
            )
        raise _refusal(cid, contact_id, code, detail)

    async def schedule(
        self,
        cid: int,
        contact_id: int,
        *,
        due_ms: int,
        requested_ms: int,
        allowed: Collection[CampaignStatus],
        only_move: bool = False,
    ) -> CallbackChange:
        """Set or move the contact's callback: Rescheduled, dialed from ``due_ms``.
        ``only_move``: refuse a contact without a callback."""
        op = "move" if only_move else "set"
        return await self._run(cid, contact_id, [op, due_ms, requested_ms, ""], allowed)

    async def cancel(
        self,
        cid: int,
        contact_id: int,
        *,
        dialplan_status: CallStatus,
        allowed: Collection[CampaignStatus],
    ) -> CallbackChange:
        """Cancel the contact's callback: back to its earlier state (``dialplan_status`` for
        a callback the dialplan set)."""
        return await self._run(cid, contact_id, ["cancel", "", "", dialplan_status.value], allowed)

    async def upcoming(
        self, cid: int, *, after_ms: int | None = None, limit: int = 100
    ) -> list[CallbackView]:
        """Callbacks in due order (those due after ``after_ms`` when given), at most
        ``limit``: ``callback_list.lua`` over the retries queue, :data:`SCAN_SLICE` entries a
        call (6-13 us an entry on the loaded test machine: a call holds Redis 3-7 ms; 20,000
        queued retries are read in 0.1-0.3 s)."""
        store = self._store
        k = store.keys
        low = "-inf" if after_ms is None else f"({after_ms}"
        out: list[CallbackView] = []
        offset = 0
        try:
            if not await store.client.exists(k.campaign(cid)):
                raise NotFound(f"campaign {cid} does not exist")
            while len(out) < limit:
                raw = await self._list(
                    keys=[k.retries(cid), k.contact_prefix(cid)],
                    args=[low, offset, SCAN_SLICE, limit - len(out)],
                )
                scanned = int(raw[0])
                for i in range(1, len(raw), 7):
                    out.append(_view([_s(v) for v in raw[i : i + 7]]))
                offset += scanned
                if scanned < SCAN_SLICE and len(out) < limit:
                    break  # the end of the queue
        except (RedisError, OSError) as exc:
            raise _store_error("upcoming callbacks", exc) from exc
        return out


def _view(row: list[str]) -> CallbackView:
    member, due, phone, list_id, attempts, source, requested = row
    origin = CallbackSource.OPERATOR if source else CallbackSource.DIALPLAN
    due_ms = int(float(due))
    return CallbackView(
        contact_id=contact_id_of(member),
        phone=phone,
        list_id=int(list_id or 0),
        attempts=int(attempts or 0),
        due_ms=due_ms,
        requested_ms=int(requested) if origin is CallbackSource.OPERATOR and requested else due_ms,
        source=origin,
    )


def _refusal(cid: int, contact_id: int, code: str, detail: str) -> Exception:
    who = f"contact {contact_id} of campaign {cid}"
    if code == "no_campaign":
        return NotFound(f"campaign {cid} does not exist")
    if code == "no_contact":
        return NotFound(f"{who} does not exist")
    if code == "campaign":
        label = CampaignStatus(detail).label
        return TransitionRefused(
            f"campaign {cid} is {label}: its callbacks cannot change", status=detail
        )
    if code == "in_call":
        return CallbackInCall(
            f"{who} is being dialed now (call {detail}); try again once the call has ended",
            status=CallStatus.IN_PROGRESS.value,
        )
    if code == "do_not_call":
        return TransitionRefused(f"{who} is on a do-not-call list ({detail})", status=code)
    if code == "list_stopped":
        return TransitionRefused(f"{who}: its list {detail} was stopped", status=code)
    if code == "no_callback":
        label = CallStatus(detail).label
        return TransitionRefused(f"{who} has no callback (it is {label})", status=detail)
    return StoreError(f"callback.lua answered {code!r}")
