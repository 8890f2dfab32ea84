"""The call-records CSV: its columns and its one writer (``dialer records``, GET records.csv).

RFC 4180 (``"`` quoting, CRLF line ends), UTF-8. Cells a spreadsheet would run as a formula
are neutralised (OWASP, "CSV Injection"): a cell starting with ``=``, ``+``, ``-``, ``@``, TAB
or CR gets a leading ``'``, so ``=cmd|' /C calc'!A0`` is written ``'=cmd|' /C calc'!A0`` and
shows as text. Record fields come from contacts' data and from the PBX (a phone number as
written in an uploaded file, a SIP reason), so any of them may hold one.

A plain number is left as it is, sign included: ``+33612345678`` (an E.164 phone number, the
``phone`` column), ``-1``, ``2.5``. A spreadsheet reads such a cell as a number, not as a
formula, and even one that evaluated it would only get the number back: a sign and digits call
no function and refer to no cell. Checked with LibreOffice Calc 7.4 (``soffice --headless
--convert-to fods`` of a CSV, formulas evaluated on import): ``=1+1``, ``=cmd|' /C calc'!A0``
and ``=HYPERLINK(...)`` became formulas, ``+33612345678``, ``-1`` and ``2.5`` plain numbers,
and every neutralised cell a text without formula. Calc keeps the ``'`` visible in the cell
(Excel hides it). The ``+`` of a phone number may be dropped on display (33612345678): format
the column as text to keep it; the CSV itself keeps the exact value for programs.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from typing import Protocol

__all__ = ["RECORD_COLUMNS", "RecordsCsv", "safe_cell"]

#: Columns of the records CSV: the stream entry id, then the fields of
#: ``dialer.engine.calls.call_record`` (plus ``contact_id``, added by ``RedisStore.finish``,
#: and ``phone_label`` / ``next_phone`` of a contact with several numbers, by finish.lua).
#: Fields a record lacks are empty.
RECORD_COLUMNS = (
    "record_id",
    "call_id",
    "campaign",
    "contact",
    "contact_id",
    "phone",
    "trunk",
    "caller_id",
    "attempt",
    "dial",
    "status",
    "contact_status",
    "rule",
    "q850_cause",
    "sip_code",
    "amd_status",
    "amd_cause",
    "dialplan_result",
    "goal",
    "voicemail_drop",
    "dial_status",
    "originate_reason",
    "originate_failed",
    "end_source",
    "claimed_ms",
    "answered_ms",
    "ended_ms",
    "duration_s",
    "retry_at_ms",
    "engine",
    "outcome_table",
    # several numbers per contact (finish.lua): the dialed number's label, and the number the
    # contact's next attempt moved on to (empty when it stayed)
    "phone_label",
    "next_phone",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def safe_cell(value: str) -> str:
    """``value``, with a leading ``'`` when a spreadsheet would run it as a formula."""
    if value.startswith(_FORMULA_START) and _NUMBER.fullmatch(value) is None:
        return "'" + value
    return value


class _Sink(Protocol):
    def write(self, text: str, /) -> object: ...


class RecordsCsv:
    """Writes the header, then one row per record, each cell through :func:`safe_cell`."""

    def __init__(self, sink: _Sink, columns: Iterable[str] = RECORD_COLUMNS) -> None:
        self.columns = tuple(columns)
        self._writer = csv.writer(sink, lineterminator="\r\n")

    def header(self) -> None:
        self._writer.writerow([safe_cell(c) for c in self.columns])

    def row(self, record_id: str, fields: Mapping[str, str]) -> None:
        row = {"record_id": record_id, **fields}
        self._writer.writerow([safe_cell(row.get(c, "")) for c in self.columns])
