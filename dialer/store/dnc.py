"""Do-not-call lists, and the per-campaign phone ledger the CSV importer dedupes against.

Lists are Redis sets of E.164 numbers: ``{ns}:dnc`` (global) and ``{ns}:c:{cid}:dnc`` (one
campaign). Every number given to :class:`DncStore` is normalised by
:func:`dialer.domain.phones.normalize_phone` with the store's default region, as the importer
does, so ``"(212) 555-0123"`` and ``"+1 212 555 0123"`` are one entry.

Three ways a number on a list is kept from being dialed:

- at import: the importer stores it as Do not call (:meth:`ImportLedger.screen`);
- after a bulk upload to a list: :meth:`DncStore.mark_dnc_pending` moves queued contacts whose
  number is listed to Do not call (batched; counts exact); a contact with several numbers that
  has another usable one is left queued for the claim to skip the listed number;
- at dial time, for any number listed after its contact was queued: ``claim.lua`` looks the
  contact's number up in both sets in the same atomic step that would claim it; a listed one
  is not claimed but settled (contact Do not call, no attempt used, no lease or rate grant, a
  call record with rule ``dnc:blocked``), or, for a contact with several numbers, skipped: the
  contact moves to its next usable number, dialed in the same claim (the record stays, with
  ``next_phone``). Stored numbers are E.164 already (the importer normalises them), so the
  script compares them as they are. The only gap left is the few milliseconds between the
  claim and the originate.

Several numbers per contact (:mod:`dialer.domain.altnumbers`) are screened the same way, per
number: at import, when ``finish.lua`` moves a contact on to its next number, and at the claim.

A number the dialplan flags during a call (``DialplanResult.DO_NOT_CALL``) is listed with
:meth:`DncStore.add_from_call`, which the engine calls when an attempt ends Do not call.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from importlib import resources
from typing import Literal

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from dialer.domain.phones import check_region, invalid_reason, normalize_phone, to_e164
from dialer.errors import NotFound, StoreError, ValidationError

from .keys import Keys, contact_id_of
from .redis_store import RedisStore, _chunks, _s, _strs, _translated

_log = logging.getLogger(__name__)

DncScope = Literal["campaign", "global"]
_CHUNK = 1000
_SHOWN_INVALID = 5


def _script(client: aioredis.Redis, name: str) -> AsyncScript:
    source = resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")
    return client.register_script(source)


def _client_and_keys(
    store: RedisStore | aioredis.Redis, namespace: str | None
) -> tuple[aioredis.Redis, Keys]:
    if isinstance(store, RedisStore):
        if namespace is not None and namespace != store.keys.ns:
            raise ValueError(f"namespace {namespace!r} differs from the store's {store.keys.ns!r}")
        return store.client, store.keys
    return store, Keys(namespace or "dialer")


class DncStore:
    """The global and per-campaign do-not-call lists under one namespace.

    ``store`` is a :class:`RedisStore` (its client and namespace are used) or a redis-py
    client with ``namespace``. Raises StoreError when Redis fails.
    """

    def __init__(
        self,
        store: RedisStore | aioredis.Redis,
        namespace: str | None = None,
        *,
        default_region: str = "US",
    ) -> None:
        self._r, self.keys = _client_and_keys(store, namespace)
        self.region = check_region(default_region)
        self._add = _script(self._r, "dnc_add")
        self._mark = _script(self._r, "dnc_mark_pending")

    def _key(self, campaign: int | None) -> str:
        return self.keys.global_dnc if campaign is None else self.keys.campaign_dnc(campaign)

    def _normalise_all(self, numbers: Iterable[str]) -> list[str]:
        """Every number as E.164; ValidationError naming the first invalid ones, if any."""
        good: list[str] = []
        shown: list[str] = []
        invalid = 0
        for raw in numbers:
            e164 = to_e164(raw, self.region) if isinstance(raw, str) else None
            if e164 is not None:
                good.append(e164)
                continue
            invalid += 1
            if len(shown) < _SHOWN_INVALID:
                why = invalid_reason(raw, self.region) if isinstance(raw, str) else "not text"
                shown.append(f"{raw!r} ({why})")
        if invalid:
            more = f" and {invalid - len(shown)} more" if invalid > len(shown) else ""
            raise ValidationError(f"{invalid} invalid phone numbers: {', '.join(shown)}{more}")
        return good

    @_translated
    async def add(self, numbers: Iterable[str], campaign: int | None = None) -> int:
        """List ``numbers`` (globally, or for ``campaign``); returns how many were new.

        Every number is checked first: one invalid number refuses the call (ValidationError)
        before anything is written. NotFound if ``campaign`` does not exist.
        """
        phones = self._normalise_all(numbers)
        added = 0
        for chunk in _chunks(phones, _CHUNK):
            if campaign is None:
                added += await self._each_global_copy("SADD", chunk)
                continue
            res = int(
                await self._add(
                    keys=[self.keys.campaign_dnc(campaign), self.keys.campaign(campaign)],
                    args=chunk,
                )
            )
            if res < 0:
                raise NotFound(f"campaign {campaign} does not exist")
            added += res
        return added

    @_translated
    async def remove(self, numbers: Iterable[str], campaign: int | None = None) -> int:
        """Unlist ``numbers``; returns how many were listed. Invalid numbers: ValidationError;
        NotFound if ``campaign`` does not exist.

        Contacts already marked Do not call stay so.
        """
        phones = self._normalise_all(numbers)
        if campaign is not None:
            await self.require_campaign(campaign)
        removed = 0
        for chunk in _chunks(phones, _CHUNK):
            if campaign is None:
                removed += await self._each_global_copy("SREM", chunk)
                continue
            removed += int(await self._r.srem(self._key(campaign), *chunk))
        return removed

    async def _each_global_copy(self, command: str, chunk: list[str]) -> int:
        """SADD / SREM ``chunk`` on the global list and, on Redis Cluster, on every slot
        group's copy (the one claim.lua reads); returns the global list's own answer."""
        async with self._r.pipeline(transaction=False) as pipe:
            for key in self.keys.global_dnc_copies:
                pipe.execute_command(command, key, *chunk)
            return int((await pipe.execute())[0])

    @_translated
    async def contains(self, number: str, campaign: int | None = None) -> bool:
        """Whether ``number`` is on that one list (an invalid number never is)."""
        e164 = to_e164(number, self.region)
        if e164 is None:
            return False
        return bool(await self._r.sismember(self._key(campaign), e164))

    @_translated
    async def listed(
        self, numbers: Sequence[str], campaign: int | None = None
    ) -> list[tuple[bool, bool]]:
        """Per E.164 number: (on the global list, on ``campaign``'s list), in one round trip.
        NotFound if ``campaign`` does not exist."""
        if campaign is not None:
            await self.require_campaign(campaign)
        keys = [self.keys.global_dnc] + ([] if campaign is None else [self._key(campaign)])
        async with self._r.pipeline(transaction=False) as pipe:
            for number in numbers:
                for key in keys:
                    pipe.sismember(key, number)
            found = [bool(x) for x in await pipe.execute()]
        if campaign is None:
            return [(g, False) for g in found]
        return list(zip(found[::2], found[1::2], strict=True))

    @_translated
    async def require_campaign(self, campaign: int) -> None:
        """NotFound unless ``campaign`` exists."""
        if not await self._r.exists(self.keys.campaign(campaign)):
            raise NotFound(f"campaign {campaign} does not exist")

    @_translated
    async def count(self, campaign: int | None = None) -> int:
        return int(await self._r.scard(self._key(campaign)))

    async def iterate(
        self, campaign: int | None = None, *, batch: int = 1000
    ) -> AsyncIterator[str]:
        """Every number of the list (SSCAN: in no order; a number listed during the scan may
        or may not be seen, one listed throughout is seen at least once)."""
        cursor = 0
        while True:
            try:
                cursor, members = await self._r.sscan(self._key(campaign), cursor, count=batch)
            except (RedisError, OSError) as exc:
                raise StoreError(f"iterate: {type(exc).__name__}: {exc}") from exc
            for number in _strs(members):
                yield number
            if cursor == 0:
                return

    @_translated
    async def blocked(self, phone: str, cid: int) -> bool:
        """Whether ``phone`` is on the global list or campaign ``cid``'s: never dial it then.

        (The engine does not call this: ``claim.lua`` does the same check atomically.)
        """
        number = to_e164(phone, self.region) or phone
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.sismember(self.keys.global_dnc, number)
            pipe.sismember(self.keys.campaign_dnc(cid), number)
            on_global, on_campaign = await pipe.execute()
        return bool(on_global) or bool(on_campaign)

    async def add_from_call(self, phone: str, cid: int, scope: DncScope = "campaign") -> bool:
        """List the number of an attempt that ended Do not call (an IVR opt-out).

        ``scope`` "campaign" lists it for ``cid`` only, "global" for every campaign. Returns
        True when it was new. ValidationError for an invalid number or scope; NotFound when the
        campaign is gone (scope "campaign").
        """
        if scope not in ("campaign", "global"):
            raise ValidationError(f"scope must be 'campaign' or 'global', got {scope!r}")
        number = normalize_phone(phone, self.region)
        added = await self.add([number], None if scope == "global" else cid)
        _log.info("campaign %s: %s listed do-not-call (%s)", cid, number, scope)
        return added == 1

    @_translated
    async def mark_dnc_pending(self, cid: int, *, batch: int = 1000) -> int:
        """Queued contacts of ``cid`` whose number is listed become Do not call; returns how many.

        Scans the pending queue (fresh contacts and scheduled retries) in batches, each applied
        atomically, so engines may keep dialing meanwhile. Contacts added without the importer
        are matched only if their stored phone is already E.164. A contact with another usable
        number stays queued: the claim skips its listed number (``dnc_mark_pending.lua``).
        """
        await self.require_campaign(cid)
        k = self.keys
        fixed = [k.pending(cid), k.counts(cid), k.global_dnc_of(cid), k.campaign_dnc(cid)]
        moved = 0
        cursor = 0
        while True:
            cursor, entries = await self._r.zscan(k.pending(cid), cursor, count=batch)
            members = [_s(member) for member, _score in entries]
            for chunk in _chunks(members, batch):
                keys = fixed + [k.contact(cid, contact_id_of(m)) for m in chunk]
                moved += int(await self._mark(keys=keys, args=chunk))
            if cursor == 0:
                break
        if moved:
            _log.info("campaign %s: %d queued contacts moved to do-not-call", cid, moved)
        return moved


class ImportLedger:
    """The importer's Redis side: dedupe and screen numbers, undo a failed import."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._r = store.client
        self.keys = store.keys
        self._screen = _script(self._r, "dnc_screen")
        self._discard = _script(self._r, "dnc_discard_import")

    @_translated
    async def screen(self, cid: int, numbers: Sequence[str]) -> list[int]:
        """Per E.164 number: 0 duplicate, 1 new, 2 new and listed do-not-call.

        New numbers join the campaign's ledger (``{ns}:c:{cid}:phones``) in the same step.
        """
        if not numbers:
            return []
        if any(not n or "\n" in n for n in numbers):
            raise ValueError("screen() takes non-empty numbers without newlines")
        k = self.keys
        res = await self._screen(
            keys=[k.phones(cid), k.global_dnc_of(cid), k.campaign_dnc(cid)],
            args=["\n".join(numbers)],
        )
        verdicts = [int(c) for c in _s(res)]
        if len(verdicts) != len(numbers):
            raise StoreError(f"dnc_screen.lua answered {len(verdicts)} of {len(numbers)} numbers")
        return verdicts

    @_translated
    async def unscreen(self, cid: int, numbers: Sequence[str]) -> int:
        """Take numbers back out of the ledger (a batch screened but never stored)."""
        if not numbers:
            return 0
        return int(await self._r.srem(self.keys.phones(cid), *numbers))

    @_translated
    async def discard_import(
        self, cid: int, list_id: int, unstored: Sequence[str], *, batch: int = 1000
    ) -> int:
        """Undo an import that failed half-way; returns how many contacts had to be kept.

        Removes the list's contacts (and their ledger entries), the ledger entries of
        ``unstored`` numbers, then the list itself. Contacts an engine already claimed (the
        campaign was started during the import) are kept and the list is stopped instead.
        Sequence counters are not rolled back.
        """
        k = self.keys
        await self.unscreen(cid, unstored)
        fixed = [k.pending(cid), k.counts(cid), k.list_members(cid, list_id), k.phones(cid)]
        removed = kept = 0
        cursor = 0
        while True:
            cursor, members = await self._r.sscan(k.list_members(cid, list_id), cursor, count=batch)
            for chunk in _chunks(_strs(members), batch):
                keys = fixed + [k.contact(cid, contact_id_of(m)) for m in chunk]
                keys.append(k.zone_prefix(cid))  # local hours: the zone groups' queues
                gone, stay = await self._discard(keys=keys, args=chunk)
                removed, kept = removed + int(gone), kept + int(stay)
            if cursor == 0:
                break
        if kept:
            await self._store.stop_list(cid, list_id)
        else:
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hdel(k.lists(cid), str(list_id))
                pipe.execute_command("UNLINK", k.list_members(cid, list_id))
                await pipe.execute()
        _log.warning(
            "campaign %s: import into list %s rolled back (%d contacts removed, %d kept)",
            cid,
            list_id,
            removed,
            kept,
        )
        return kept
