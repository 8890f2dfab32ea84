"""Streaming CSV reading with line numbers: bytes -> physical lines -> records.

The input is read as bytes and framed on LF (CRLF works too; a lone CR is not a line end).
Each physical line is checked before anything else: over :data:`MAX_LINE` bytes, a NUL byte or
invalid UTF-8 makes that line an error (``"line 17: not UTF-8 text"``), never an exception,
and the line is handed on in a harmless form so that quote framing carries on. Records are then
parsed by the ``csv`` module (``"`` quotes, ``""`` escapes, strict: only the delimiter or the
line end may follow a closing quote), so a quoted field may hold the delimiter, quotes, CR and
LF; a record's line number is the physical line where it starts. Rows whose cells are all empty
(``,,,``) count as blank lines and are skipped. Memory is
bounded: one line, one record (at most :data:`MAX_RECORD` bytes, a field at most the csv
module's 128 KiB limit), the 64 KiB sniffing sample.

The delimiter is guessed by ``csv.Sniffer`` among ``,`` ``;`` and TAB on the first 64 KiB,
falling back to ``,``. A UTF-8 BOM is skipped; a UTF-16 BOM refuses the file.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from .report import LineError, refused_file

MAX_LINE = 64 * 1024
MAX_RECORD = 1024 * 1024
SNIFF_BYTES = 64 * 1024
DELIMITERS = ",;\t"

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_SPOOL_CHUNK = 1024 * 1024

Source = BinaryIO | str | os.PathLike[str]
#: A data record (first line, fields) or a line-level error.
Item = tuple[int, list[str]] | LineError


class _RecordTooLong(Exception):
    """Raised by LineReader inside the csv reader: the current record passed MAX_RECORD."""


class LineReader:
    """Physical lines of a binary stream as text; byte-level problems are noted, not raised."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.line_no = 0
        self.record_bytes = 0
        self.bad: list[LineError] = []

    def __iter__(self) -> LineReader:
        return self

    def __next__(self) -> str:
        data = self._raw.readline(MAX_LINE + 1)
        if not data:
            raise StopIteration
        self.line_no += 1
        self.record_bytes += len(data)
        if len(data) > MAX_LINE and not data.endswith(b"\n"):
            self.bad.append(LineError(self.line_no, f"line longer than {MAX_LINE} bytes"))
            self._skip_rest()
            text = "\n"
        elif b"\0" in data:
            self.bad.append(LineError(self.line_no, "NUL byte in the line"))
            text = data.replace(b"\0", b"").decode("utf-8", "replace")
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                self.bad.append(LineError(self.line_no, "not UTF-8 text"))
                text = data.decode("utf-8", "replace")
        if self.record_bytes > MAX_RECORD:
            raise _RecordTooLong
        return text

    def _skip_rest(self) -> None:
        while chunk := self._raw.readline(MAX_LINE):
            self.record_bytes += len(chunk)
            if chunk.endswith(b"\n"):
                return

    def take_bad(self) -> list[LineError]:
        bad, self.bad = self.bad, []
        return bad


def _csv_reason(exc: csv.Error) -> str:
    text = str(exc)
    if "unexpected end of data" in text:
        return "unterminated quoted field"
    if "field larger than field limit" in text:
        return f"quoted field longer than {csv.field_size_limit()} characters (unterminated quote?)"
    return f"malformed CSV: {text}"


def records(lines: LineReader, delimiter: str) -> Iterator[Item]:
    """Every non-blank record as (line, fields), or a LineError; blank records are skipped.

    A record with a bad line yields that line's error(s) instead of the record.
    """
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True, strict=True)
    while True:
        start = lines.line_no + 1
        lines.record_bytes = 0
        try:
            fields = next(reader)
        except StopIteration:
            yield from lines.take_bad()
            return
        except csv.Error as exc:
            yield from lines.take_bad() or [LineError(start, _csv_reason(exc))]
            continue
        except _RecordTooLong:
            bad = lines.take_bad()
            yield from bad or [LineError(start, f"record longer than {MAX_RECORD} bytes")]
            continue
        if lines.bad:
            yield from lines.take_bad()
            continue
        if any(f.strip() for f in fields):
            yield start, fields


class CsvSource:
    """The input, opened once and read twice (validate, then import).

    A path is opened here and closed by :meth:`close`; a seekable stream is read from its
    current position and left open; a stream that cannot seek is first copied to a temporary
    file (so any stream works, in bounded memory).
    """

    def __init__(self, source: Source) -> None:
        self._source = source
        self._file: BinaryIO | None = None
        self._owned = False
        self._start = 0
        self.delimiter = ","

    def open(self) -> None:
        """Open, skip a BOM, sniff the delimiter. Blocking: run it in a thread."""
        if isinstance(self._source, (str, os.PathLike)):
            self._file = open(self._source, "rb")  # closed by close()
            self._owned = True
        elif self._source.seekable():
            self._file = self._source
        else:
            spool = tempfile.TemporaryFile()
            self._file, self._owned = spool, True
            shutil.copyfileobj(self._source, spool, _SPOOL_CHUNK)
            spool.seek(0)
        f = self._file
        self._start = f.tell()
        head = f.read(SNIFF_BYTES)
        if head.startswith(_UTF16_BOMS):
            raise refused_file("the file is UTF-16 text; save it as UTF-8")
        if head.startswith(_UTF8_BOM):
            self._start += len(_UTF8_BOM)
            head = head[len(_UTF8_BOM) :]
        self.delimiter = sniff_delimiter(head)

    def lines(self) -> LineReader:
        """A fresh reader from the first line."""
        if self._file is None:
            raise RuntimeError("CsvSource.open() first")
        self._file.seek(self._start)
        return LineReader(self._file)

    def close(self) -> None:
        if self._file is not None and self._owned:
            self._file.close()
        self._file = None


def sniff_delimiter(head: bytes) -> str:
    """``,`` ``;`` or TAB, guessed from the complete lines of ``head``; ``,`` when unsure."""
    cut = head.rfind(b"\n")
    sample = (head[: cut + 1] if cut >= 0 else head).decode("utf-8", "replace")
    if not sample.strip():
        return ","
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","
