"""Lists and contacts: add lists and contacts, stop a list, settle queued contacts, read one.

A list is a field of ``{ns}:c:{cid}:lists`` (its status) with its members' set; a contact is
the hash ``{ns}:c:{cid}:ct:{id}``, queued in ``{ns}:c:{cid}:pending`` (by due time) and
counted per status in ``{ns}:c:{cid}:counts``. Lua: ``add_contacts.lua`` (a batch, atomic),
``mark_undialed.lua`` (queued contacts to a final status). Claiming contacts is in
:mod:`.claims`; recycling and removing them in :mod:`.recycle`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence

from dialer.domain.altnumbers import ContactNumber
from dialer.domain.statuses import CallStatus, ListStatus
from dialer.domain.zones import zone_key
from dialer.errors import NotFound, TransitionRefused

from .common import _chunks, _decode_map, _int_or_none, _s, _strs, _translated
from .core import StoreCore
from .keys import contact_id_of, contact_member
from .models import INITIAL_STATUSES, ContactInput, ContactRecord

_log = logging.getLogger(__name__)

#: Statuses a queued contact may not be moved to by stop_list / mark_undialed.
_NOT_FINAL = frozenset(
    {
        CallStatus.PENDING,
        CallStatus.IN_PROGRESS,
        CallStatus.RETRY_SCHEDULED,
        CallStatus.RESCHEDULED,
    }
)


class ContactsMixin(StoreCore):
    """The lists and contacts of :class:`~dialer.store.redis_store.RedisStore`."""

    @_translated
    async def add_list(self, cid: int) -> int:
        await self._require_campaign(cid)
        list_id = int(await self._r.incr(self.keys.list_seq(cid)))
        await self._r.hset(self.keys.lists(cid), str(list_id), ListStatus.ACTIVE.value)
        return list_id

    async def _list_refused(self, cid: int, list_id: int, status: str) -> Exception:
        if not status:
            await self._require_campaign(cid)
            return NotFound(f"list {list_id} of campaign {cid} does not exist")
        return TransitionRefused(f"list {list_id} of campaign {cid} is {status}")

    @_translated
    async def add_contacts(
        self, cid: int, list_id: int, contacts: Iterable[ContactInput], *, batch: int = 1000
    ) -> int:
        """Add contacts to an active list, in atomic batches; returns how many were added.

        PENDING contacts are queued due now; INVALID_NUMBER / DO_NOT_CALL ones are stored with
        that status and never queued.
        """
        k = self.keys
        current = _s(await self._r.hget(k.lists(cid), str(list_id)))
        if current != ListStatus.ACTIVE:
            raise await self._list_refused(cid, list_id, current)
        fixed = [k.pending(cid), k.counts(cid), k.list_members(cid, list_id), k.lists(cid)]
        fixed += [k.zones(cid), k.zone_prefix(cid)]  # local hours: the contacts' zone groups
        added = 0
        for chunk in _chunks(contacts, batch):
            for c in chunk:
                if c.status not in INITIAL_STATUSES:
                    raise ValueError(f"a contact cannot be added as {c.status.value}")
            last = int(await self._r.incrby(k.contact_seq(cid), len(chunk)))
            ids = range(last - len(chunk) + 1, last + 1)
            args: list[str] = [str(list_id)]
            for contact_id, c in zip(ids, chunk, strict=True):
                vars_json = json.dumps(dict(c.vars), ensure_ascii=False, separators=(",", ":"))
                args += [contact_member(contact_id), c.phone, vars_json, c.status.value]
                args.append(c.zone_group if c.zone_group is not None else zone_key(c.phone))
                args.append(_numbers_arg(c))
            res = await self._lua.add_contacts(
                keys=fixed + [k.contact(cid, i) for i in ids], args=args
            )
            if int(res[0]) != 1:
                raise await self._list_refused(cid, list_id, _s(res[1]))
            added += int(res[1])
        return added

    @_translated
    async def list_status(self, cid: int) -> dict[int, ListStatus]:
        await self._require_campaign(cid)
        raw = await self._r.hgetall(self.keys.lists(cid))
        return {
            int(lid): ListStatus(_s(v)) for lid, v in sorted(raw.items(), key=lambda i: int(i[0]))
        }

    @_translated
    async def stop_list(
        self,
        cid: int,
        list_id: int,
        status: CallStatus = CallStatus.NOT_DIALED,
        *,
        batch: int = 1000,
    ) -> int:
        """Stop a list for good; its queued contacts get ``status``. Returns how many moved.

        From the moment the list is marked stopped, claim, finish and release give its
        contacts ``status`` on sight, so none is dialed while the batches run.
        """
        if status in _NOT_FINAL:
            raise ValueError(f"{status.value} is not a final status")
        k = self.keys
        if not _s(await self._r.hget(k.lists(cid), str(list_id))):
            raise await self._list_refused(cid, list_id, "")
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(k.lists(cid), str(list_id), ListStatus.STOPPED.value)
            pipe.hset(k.list_stop(cid), str(list_id), status.value)
            await pipe.execute()
        moved = 0
        cursor = 0
        while True:
            cursor, members = await self._r.sscan(k.list_members(cid, list_id), cursor, count=batch)
            for chunk in _chunks(members, batch):
                moved += await self._mark(cid, chunk, status)
            if cursor == 0:
                break
        _log.info("list %s of campaign %s stopped: %d contacts %s", list_id, cid, moved, status)
        return moved

    @_translated
    async def mark_undialed(self, cid: int, status: CallStatus, *, batch: int = 1000) -> int:
        """Give every queued contact of the campaign ``status``; returns how many moved."""
        if status in _NOT_FINAL:
            raise ValueError(f"{status.value} is not a final status")
        await self._require_campaign(cid)
        moved = 0
        while members := _strs(await self._r.zrange(self.keys.pending(cid), 0, batch - 1)):
            moved += await self._mark(cid, members, status)
        return moved

    async def _mark(self, cid: int, members: Sequence[bytes | str], status: CallStatus) -> int:
        k = self.keys
        keys = [k.pending(cid), k.counts(cid)]
        keys += [k.contact(cid, contact_id_of(m)) for m in members]
        return int(await self._lua.mark_undialed(keys=keys, args=[status.value, *members]))

    @_translated
    async def get_contact(self, cid: int, contact_id: int) -> ContactRecord:
        h = _decode_map(await self._r.hgetall(self.keys.contact(cid, contact_id)))
        if not h:
            raise NotFound(f"contact {contact_id} of campaign {cid} does not exist")
        return ContactRecord(
            id=contact_id,
            phone=h.get("phone", ""),
            vars=json.loads(h.get("vars") or "{}"),
            list_id=int(h.get("list", 0)),
            status=CallStatus(h["status"]),
            attempts=int(h.get("attempts", 0)),
            tech_failures=int(h.get("tech_failures", 0)),
            last_call=h.get("last_call", ""),
            next_due_ms=_int_or_none(h.get("next_due_ms")),
            dials=int(h.get("dials", 0)),
            recycled_from=h.get("recycled_from", ""),
            numbers=numbers_of(h),
        )


def _numbers_arg(c: ContactInput) -> str:
    """add_contacts.lua's numbers argument: "" for a contact with one number."""
    if not c.alternates:
        return ""
    main = c.zone_group if c.zone_group is not None else zone_key(c.phone)
    nums = [[c.phone, c.label, main]]
    for alt in c.alternates:
        group = alt.zone_group if alt.zone_group is not None else zone_key(alt.number)
        nums.append([alt.number, alt.label, group])
    return json.dumps(nums, ensure_ascii=False, separators=(",", ":"))


def numbers_of(h: dict[str, str]) -> tuple[ContactNumber, ...]:
    """The contact's numbers as its view shows them (finish.lua keeps numbers and nstate)."""
    if not h.get("numbers"):
        return ()
    nums = json.loads(h["numbers"])
    state = json.loads(h.get("nstate") or "{}")
    current = int(state.get("i", 0))
    tries, last = state.get("t", []), state.get("s", [])
    return tuple(
        ContactNumber(
            number=str(n[0]),
            label=str(n[1]),
            tries=int(tries[i]) if i < len(tries) else 0,
            last_status=str(last[i]) if i < len(last) else "",
            current=i == current,
        )
        for i, n in enumerate(nums)
    )
