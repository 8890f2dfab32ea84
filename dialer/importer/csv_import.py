"""import_csv: a CSV file into a new recipient list of a campaign, all or nothing.

Two streaming passes over the file (a stream that cannot seek is first spooled to a temporary
file), so memory stays bounded whatever the size:

1. **validate**, writing nothing: the header mapping, then every record's structure (field
   count, quoting, UTF-8, NUL, line length, empty phone cell). Any such error refuses the whole
   import with :class:`ImportRefused` (first 1000 errors, and their count); so does an empty or
   header-only file, or a header that cannot be mapped.
2. **import**: a new list (the campaign must still be Draft or Paused, as for
   ``CampaignControl.add_list``), then batches of ``batch`` rows: phones normalised to E.164
   (invalid ones are kept as Invalid number, never dialed), deduped against every number the
   importer already put in the campaign and screened against the global and campaign
   do-not-call lists (one Redis script per batch: :meth:`ImportLedger.screen`; only the main
   number: a listed alternate is skipped when the contact reaches it, and a contact whose main
   number is listed goes on with its alternates), then stored with
   :meth:`RedisStore.add_contacts`. Invalid numbers are not deduped (each is reported with its
   line); contacts added without the importer (``CampaignControl.add_list``) are not in the
   dedupe set (``{ns}:c:{cid}:phones``).

If pass 2 fails (Redis lost, the task cancelled, the list stopped, the file changed between the
passes) the list, its contacts and their dedupe entries are removed again before the error
propagates (best effort: when Redis itself is gone the rollback fails too; it is logged).
Sequence counters are never rolled back.

Parsing and phone normalisation run in a worker thread one chunk at a time, so the event loop
keeps serving the engine; the next batch is prepared while Redis stores the current one.
``progress(rows_done)`` is called after each stored batch of pass 2.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any, TypeVar

from dialer.domain.lifecycle import CampaignCommand, next_status
from dialer.domain.phones import check_region, invalid_reason, to_e164
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.domain.zones import zone_key
from dialer.store.dnc import ImportLedger
from dialer.store.models import AltNumber, ContactInput
from dialer.store.redis_store import RedisStore

from .mapping import ColumnMapping, Columns, MappingProblem
from .reader import CsvSource, Item, Source, records
from .report import ImportReport, LineError, Tally, refused, refused_file

_log = logging.getLogger(__name__)

T = TypeVar("T")
Progress = Callable[[int], object]

_SCAN_CHUNK = 20_000  # records validated per trip to the worker thread
_SHOWN_CHARS = 40
_MEMO_CELLS = 4096  # phone cells whose E.164 form is remembered (least recently used go)
_KNOWN_NUMBERS = 100_000  # numbers this import added, known duplicates without Redis (~10 MB)


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    phone: str  # E.164, or the cell as written when invalid
    valid: bool
    vars: dict[str, str]
    zone_group: str = ""  # local hours: dialer.domain.zones.ZoneGroup.key
    label: str = ""  # several numbers: the phone's label (its column's header)
    alternates: tuple[AltNumber, ...] = ()  # the other valid numbers, in dialing order


class _Worker:
    """One worker thread for the blocking file work; closing waits for it to be idle."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-import")

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.submit(fn, *args)

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)


async def import_csv(
    store: RedisStore,
    cid: int,
    source: Source,
    *,
    mapping: ColumnMapping | None = None,
    default_region: str = "US",
    batch: int = 1000,
    progress: Progress | None = None,
) -> ImportReport:
    """Import ``source`` (a path or a binary stream) as a new list of campaign ``cid``.

    Returns the report of a successful import. Raises :class:`ImportRefused` (a
    ValidationError carrying ``.report``) when the file is refused, ValidationError for an
    unknown ``default_region``, NotFound for a missing campaign, TransitionRefused unless the
    campaign is Draft or Paused, StoreError when Redis fails.
    """
    region = check_region(default_region)
    if batch < 1:
        raise ValueError("batch must be at least 1")
    await _require_editable(store, cid)
    source_file = CsvSource(source)
    worker = _Worker()
    try:
        await worker.run(source_file.open)
        mapping = mapping or ColumnMapping()
        columns, rows = await _validate(worker, source_file, mapping)
        await _require_editable(store, cid)
        loader = _Loader(store, cid, mapping, columns, region, batch, progress)
        return await loader.run(worker, source_file, rows)
    finally:
        await worker.close()
        source_file.close()


def _honour_cancel() -> None:
    """Raise CancelledError if this task was asked to cancel.

    On Python 3.11, redis-py sends through ``asyncio.wait_for``, which swallows a cancellation
    that lands while the send completes (fixed in 3.12): the request then only shows in
    ``Task.cancelling()``. Checked at each batch, so a cancelled import does stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _require_editable(store: RedisStore, cid: int) -> None:
    campaign = await store.get_campaign(cid)
    next_status(CampaignStatus(campaign.status), CampaignCommand.EDIT)


def _header(items: Iterator[Item], mapping: ColumnMapping) -> Columns:
    for item in items:
        if isinstance(item, LineError):
            raise refused_file(f"header: {item.reason}", item.line)
        line, fields = item
        try:
            return mapping.resolve(fields)
        except MappingProblem as exc:
            raise refused_file(str(exc), line) from None
    raise refused_file("the file is empty")


def _scan(items: Iterator[Item], columns: Columns, errors: Tally, limit: int) -> tuple[int, bool]:
    """Validate up to ``limit`` records; returns (records seen, more may follow)."""
    seen = 0
    for item in islice(items, limit):
        seen += 1
        if isinstance(item, LineError):
            errors.add(item.line, item.reason)
            continue
        problem = columns.problem(item[1])
        if problem is not None:
            errors.add(item[0], problem)
    return seen, seen == limit


async def _validate(
    worker: _Worker, source: CsvSource, mapping: ColumnMapping
) -> tuple[Columns, int]:
    """Pass 1: the columns and the number of data rows, or ImportRefused."""
    items = records(source.lines(), source.delimiter)
    columns = await worker.run(_header, items, mapping)
    errors = Tally()
    rows = 0
    more = True
    while more:
        seen, more = await worker.run(_scan, items, columns, errors, _SCAN_CHUNK)
        rows += seen
        _honour_cancel()
    if errors.count:
        raise refused(errors.as_tuple(), errors.count, rows)
    if rows == 0:
        raise refused_file("the file has a header but no data rows")
    return columns, rows


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= _SHOWN_CHARS else raw[:_SHOWN_CHARS] + "...")


class _Phones:
    """A cell to E.164 (or None), remembered for the :data:`_MEMO_CELLS` latest cells."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.e164 = functools.lru_cache(maxsize=_MEMO_CELLS)(
            functools.partial(to_e164, region=region)
        )


def _prepare(
    items: Iterator[Item], columns: Columns, phones: _Phones, limit: int, warnings: Tally
) -> tuple[list[_Row], LineError | None, bool]:
    """Pass 2: up to ``limit`` rows, parsed and normalised; (rows, error, more may follow)."""
    rows: list[_Row] = []
    region = phones.region
    for item in islice(items, limit):
        if isinstance(item, LineError):
            return rows, item, False
        line, fields = item
        problem = columns.problem(fields)
        if problem is not None:
            return rows, LineError(line, problem), False
        raw = columns.phone_of(fields)
        e164 = phones.e164(raw)
        if e164 is None:
            warnings.add(line, f"invalid number {_shown(raw)}: {invalid_reason(raw, region)}")
        zone = "" if e164 is None else zone_key(e164, columns.zone_of(fields))
        row = _Row(line, e164 or raw, e164 is not None, columns.vars_of(fields), zone)
        if columns.alt_phones:
            row = _with_alternates(row, columns, fields, phones, warnings)
        rows.append(row)
    return rows, None, len(rows) == limit


def _with_alternates(
    row: _Row, columns: Columns, fields: Sequence[str], phones: _Phones, warnings: Tally
) -> _Row:
    """The row with its valid alternate numbers; an invalid one is reported and left out, the
    same number twice is kept once. An invalid main number gives way to the first valid
    alternate (the row is kept)."""
    zone = columns.zone_of(fields)
    label = columns.headers[columns.phone]
    numbers: list[AltNumber] = [AltNumber(row.phone, label, row.zone_group)] if row.valid else []
    for raw, alt_label in columns.alternates_of(fields):
        e164 = phones.e164(raw)
        if e164 is None:
            reason = invalid_reason(raw, phones.region)
            warnings.add(
                row.line,
                f"invalid alternate number {_shown(raw)} ({alt_label!r} column): {reason}; "
                "left out, the contact is kept",
            )
        elif all(n.number != e164 for n in numbers):
            numbers.append(AltNumber(e164, alt_label, zone_key(e164, zone)))
    if not numbers:
        return row
    first = numbers[0]
    return replace(
        row,
        phone=first.number,
        valid=True,
        zone_group=first.zone_group or "",
        label=first.label,
        alternates=tuple(numbers[1:]),
    )


def _queued(variables: dict[str, str], numbers: Sequence[AltNumber]) -> ContactInput:
    """A pending contact dialed on ``numbers``, the first its main one."""
    first = numbers[0]
    return ContactInput(
        first.number,
        variables,
        zone_group=first.zone_group,
        label=first.label,
        alternates=tuple(numbers[1:]),
    )


class _Loader:
    """Pass 2: one list, written batch by batch, rolled back if anything fails."""

    def __init__(
        self,
        store: RedisStore,
        cid: int,
        mapping: ColumnMapping,
        columns: Columns,
        region: str,
        batch: int,
        progress: Progress | None,
    ) -> None:
        self._store = store
        self._ledger = ImportLedger(store)
        self._cid = cid
        self._mapping = mapping
        self._columns = columns
        self._region = region
        self._batch = batch
        self._progress = progress
        self._warnings = Tally()
        self._unstored: list[str] = []  # screened into the ledger, not yet stored
        self._added: set[str] = set()  # numbers this import added to the ledger (bounded)
        self.rows = self.imported = self.invalid = self.dnc = self.duplicates = 0

    async def run(self, worker: _Worker, source: CsvSource, expected_rows: int) -> ImportReport:
        items = records(source.lines(), source.delimiter)
        again = await worker.run(_header, items, self._mapping)
        if again != self._columns:
            raise refused_file("the file changed during the import (header)")
        list_id = await self._store.add_list(self._cid)
        try:
            await self._load(worker, items, list_id)
            if self.rows != expected_rows:
                raise refused_file(
                    f"the file changed during the import ({expected_rows} rows validated, "
                    f"{self.rows} read)"
                )
        except BaseException:
            await self._rollback(list_id)
            raise
        _log.info(
            "campaign %s: list %s imported: %d rows, %d contacts (%d invalid, %d dnc), "
            "%d duplicates",
            self._cid,
            list_id,
            self.rows,
            self.imported,
            self.invalid,
            self.dnc,
            self.duplicates,
        )
        return ImportReport(
            list_id=list_id,
            rows=self.rows,
            imported=self.imported,
            invalid_numbers=self.invalid,
            dnc=self.dnc,
            duplicates=self.duplicates,
            errors=(),
            error_count=0,
            warnings=self._warnings.as_tuple(),
        )

    async def _load(self, worker: _Worker, items: Iterator[Item], list_id: int) -> None:
        # The next batch is parsed in the worker thread while Redis stores this one.
        phones = _Phones(self._region)
        args = (_prepare, items, self._columns, phones, self._batch, self._warnings)
        upcoming: asyncio.Future[tuple[list[_Row], LineError | None, bool]] | None
        upcoming = worker.submit(*args)
        try:
            while upcoming is not None:
                rows, error, more = await upcoming
                upcoming = worker.submit(*args) if more and error is None else None
                await self._store_batch(list_id, rows)
                if error is not None:
                    raise refused((error,), 1, self.rows)
                _honour_cancel()
        finally:
            if upcoming is not None:
                upcoming.cancel()  # the worker is waited for by import_csv

    async def _store_batch(self, list_id: int, rows: list[_Row]) -> None:
        if not rows:
            return
        # each number once, and none this import added already: those are duplicates
        asked = list(dict.fromkeys(r.phone for r in rows if r.valid and r.phone not in self._added))
        verdicts = dict(zip(asked, await self._ledger.screen(self._cid, asked), strict=True))
        self._unstored = [phone for phone, v in verdicts.items() if v]
        contacts: list[ContactInput] = []
        for row in rows:
            if not row.valid:
                self.invalid += 1
                contacts.append(
                    ContactInput(row.phone, row.vars, CallStatus.INVALID_NUMBER, zone_group="")
                )
                continue
            verdict = verdicts.pop(row.phone, 0)  # a later row of the batch: a duplicate
            if verdict == 2 and row.alternates:  # listed: the contact goes on with the others
                self._warnings.add(
                    row.line,
                    f"number {row.phone} is on a do-not-call list: left out, the contact is "
                    "dialed on its other numbers",
                )
                contacts.append(_queued(row.vars, row.alternates))
            elif verdict == 0:
                self.duplicates += 1
            elif verdict == 2:
                self.dnc += 1
                contacts.append(
                    ContactInput(row.phone, row.vars, CallStatus.DO_NOT_CALL, zone_group="")
                )
            else:
                main = AltNumber(row.phone, row.label, row.zone_group)
                contacts.append(_queued(row.vars, (main, *row.alternates)))
        if contacts:
            self.imported += await self._store.add_contacts(
                self._cid, list_id, contacts, batch=len(contacts)
            )
        if len(self._added) + len(self._unstored) > _KNOWN_NUMBERS:
            self._added.clear()  # Redis finds the older ones' duplicates again
        self._added.update(self._unstored)
        self._unstored = []
        self.rows += len(rows)
        if self._progress is not None:
            self._progress(self.rows)

    async def _rollback(self, list_id: int) -> None:
        try:
            await self._ledger.discard_import(self._cid, list_id, self._unstored)
        except Exception:
            _log.exception("campaign %s: rollback of list %s failed", self._cid, list_id)
