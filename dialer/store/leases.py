"""Leases: the live calls' claims on their channel slots, renewed, adopted, released.

A claimed call holds a lease (its expiry in ``{ns}:c:{cid}:inflight`` and its trunk's set)
owned by one engine's token (the call hash's ``owner``). The owner renews it while the channel
lives; a lease that expires makes the call an orphan (``{ns}:c:{cid}:orphans``) that another
engine may adopt after checking the switch's channels. An owner check fences every write: a
call another engine adopted is refused to its old owner (LeaseLost). Lua: ``renew.lua``,
``adopt.lua``, ``release.lua`` (a claim given back undialed), ``reap.lua`` (expired leases to
orphans).
"""

from __future__ import annotations

from collections.abc import Sequence

from dialer.errors import LeaseLost, StoreError

from .common import _decode_map, _int_or_none, _s, _strs, _translated
from .core import StoreCore, lane_keys
from .keys import CALL_TTL_S, contact_member
from .models import Adoption, AdoptVerdict, CallRef, Renewal


class LeasesMixin(StoreCore):
    """The leases of live calls, in :class:`~dialer.store.redis_store.RedisStore`."""

    @_translated
    async def renew(
        self, cid: int, trunk: str, call_ids: Sequence[str], lease_ms: int, *, owner: str
    ) -> Renewal:
        """Extend ``owner``'s leases of live calls to now + lease_ms (never shortens).

        Finished calls are skipped. ``retaken``: the calls whose lease had expired before this
        renewal and that nobody adopted (they got it back: the channel is real). ``lost``: the
        calls another engine owns now (it adopted them): not renewed; stop acting on them.
        """
        if not call_ids:
            return Renewal([], [])
        k = self.keys
        keys = [k.inflight(cid), k.trunk_inflight(trunk), k.orphans(cid), k.claimed(cid)]
        keys += [k.call(c, cid) for c in call_ids]
        retaken, lost = await self._lua.renew(keys=keys, args=[lease_ms, owner, *call_ids])
        return Renewal(_strs(retaken), _strs(lost))

    @_translated
    async def adopt(
        self, cid: int, trunk: str, call_id: str, lease_ms: int, *, owner: str, node: str = ""
    ) -> Adoption:
        """Take over an orphan (a call whose lease expired): ``owner`` holds its lease now,
        unless another owner's lease is still running ("held") or the call ended ("gone").
        Only for an engine that has just checked the PBX's channel list (see adopt.lua);
        ``node``: the node that list showed it on (kept when the call had none)."""
        k = self.keys
        keys = [k.inflight(cid), k.trunk_inflight(trunk), k.orphans(cid), k.call(call_id, cid)]
        args: list[str | int] = [owner, lease_ms, call_id, node]
        verdict, state, previous = await self._lua.adopt(keys=keys, args=args)
        v: AdoptVerdict
        match _s(verdict):
            case "adopted":
                v = "adopted"
            case "mine":
                v = "mine"
            case "held":
                v = "held"
            case "gone":
                v = "gone"
            case other:
                raise StoreError(f"adopt.lua answered {other!r}")
        return Adoption(v, _s(state), _s(previous))

    def _end_keys(self, cid: int, trunk: str, call_id: str, contact_id: int) -> list[str]:
        k = self.keys
        return [k.call(call_id, cid), k.contact(cid, contact_id), *lane_keys(k, cid, trunk)]

    @_translated
    async def release(
        self, cid: int, trunk: str, call_id: str, contact_id: int, *, owner: str = ""
    ) -> bool:
        """Undo a claim that was never dialed (no attempt consumed). False if already ended.

        With ``owner`` (an engine's lease owner token), LeaseLost when another owner holds
        the call (it adopted it): nothing is changed.
        """
        res = await self._lua.release(
            keys=[
                *self._end_keys(cid, trunk, call_id, contact_id),
                self.keys.retries(cid),
                self.keys.zone_prefix(cid),  # local hours
                *self.keys.node_lease_prefixes(cid),
            ],
            args=[call_id, contact_id, CALL_TTL_S, contact_member(contact_id), owner],
        )
        if int(res) == -1:
            raise LeaseLost(f"call {call_id} is owned by another engine")
        return int(res) == 1

    @_translated
    async def get_call(self, call_id: str) -> CallRef | None:
        k = self.keys
        if k.cluster:  # the call's slot group is its campaign's: look in each
            async with self._r.pipeline(transaction=False) as pipe:
                for group in k.groups():
                    pipe.hgetall(f"{k.call_prefix_in(group)}{call_id}")
                found = [raw for raw in await pipe.execute() if raw]
            h = _decode_map(found[0] if found else {})
        else:
            h = _decode_map(await self._r.hgetall(k.call(call_id)))
        if not h:
            return None
        return CallRef(
            call_id=call_id,
            cid=int(h.get("cid", 0)),
            contact=int(h.get("contact", 0)),
            trunk=h.get("trunk", ""),
            state=h.get("state", ""),
            owner=h.get("owner", ""),
            phone=h.get("phone", ""),
            claimed_ms=int(h.get("claimed_ms", 0)),
            originated_ms=_int_or_none(h.get("originated_ms")),
            dial=int(h.get("dial", 0)),
            node=h.get("node", ""),
        )

    @_translated
    async def orphaned_calls(self, cid: int) -> list[str]:
        """Calls whose lease expired before they were finished or released (owner died or
        stalled). Each keeps its channel slot and stays listed until finished, released,
        adopted or renewed by its owner (get_call tells its state and owner).
        """
        k = self.keys
        res = await self._lua.reap(keys=[k.inflight(cid), k.claimed(cid), k.orphans(cid)])
        return [_s(c) for c in res]
