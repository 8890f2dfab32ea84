"""What an import reports: line-level errors, the counts, and the refusal carrying them."""

from __future__ import annotations

from dataclasses import dataclass

from dialer.errors import ValidationError

#: Errors (and warnings) kept in detail; the counts go on.
MAX_DETAILS = 1000


@dataclass(frozen=True, slots=True)
class LineError:
    """A problem at one physical line of the file (1 = the first line, the header)."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ImportReport:
    """The outcome of one import.

    ``rows`` counts data records read (header and blank lines excluded). Of them, ``imported``
    became contacts (``invalid_numbers`` kept as Invalid number, ``dnc`` as Do not call, the
    rest Pending) and ``duplicates`` were dropped, so ``rows == imported + duplicates`` when the
    import succeeded. ``errors`` holds the first :data:`MAX_DETAILS` structural errors and
    ``error_count`` their total; any error refuses the whole import (``list_id`` None, nothing
    written). ``warnings`` holds the first :data:`MAX_DETAILS` invalid numbers with their lines.
    """

    list_id: int | None
    rows: int
    imported: int
    invalid_numbers: int
    dnc: int
    duplicates: int
    errors: tuple[LineError, ...]
    error_count: int
    warnings: tuple[LineError, ...] = ()

    @property
    def pending(self) -> int:
        """Contacts queued for dialing."""
        return self.imported - self.invalid_numbers - self.dnc


class ImportRefused(ValidationError):
    """The import was refused as a whole and wrote nothing; ``report`` tells why.

    ``report.errors`` names the lines (line 1 for a problem with the header or the file).
    """

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.message = message
        self.report = report

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.report))


def refused(errors: tuple[LineError, ...], error_count: int, rows: int) -> ImportRefused:
    """The refusal for ``errors`` (the first few quoted in the message)."""
    report = ImportReport(
        list_id=None,
        rows=rows,
        imported=0,
        invalid_numbers=0,
        dnc=0,
        duplicates=0,
        errors=errors,
        error_count=error_count,
    )
    shown = "; ".join(str(e) for e in errors[:3])
    more = f" (and {error_count - 3} more)" if error_count > 3 else ""
    noun = "error" if error_count == 1 else "errors"
    return ImportRefused(f"import refused, {error_count} {noun}: {shown}{more}", report)


def refused_file(reason: str, line: int = 1) -> ImportRefused:
    """A refusal for the file as a whole (empty, no header, no phone column...)."""
    return refused((LineError(line, reason),), 1, 0)


class Tally:
    """Collects line errors: the first :data:`MAX_DETAILS` in detail, all of them counted."""

    __slots__ = ("count", "details")

    def __init__(self) -> None:
        self.details: list[LineError] = []
        self.count = 0

    def add(self, line: int, reason: str) -> None:
        self.count += 1
        if len(self.details) < MAX_DETAILS:
            self.details.append(LineError(line, reason))

    def as_tuple(self) -> tuple[LineError, ...]:
        return tuple(self.details)
