"""Which CSV column is the phone, the name, the time zone; every other column is a variable.

Headers are trimmed and must be non-empty and distinct (case-insensitively). Without an explicit
:class:`ColumnMapping`, the phone column is the first header that *is* ``phone``, ``number``,
``msisdn`` or ``telephone`` (any case), else the first that *contains* one of those words
(``"Mobile phone"``); the name column is ``name`` / ``full name``; the time zone ``timezone`` /
``time zone`` / ``tz``. The name and time zone are stored as the variables :data:`NAME_VAR` and
:data:`TIMEZONE_VAR`; every other column under its header, values verbatim. A time-zone cell
must be empty (the zone then comes from the number) or an IANA zone name (``America/Chicago``):
the contact is called in that zone's hours when its campaign has local hours
(dialer.domain.zones); any other value is a malformed record, reported at its line.

Alternate numbers (several numbers per contact, dialer.domain.altnumbers): the columns of
:attr:`ColumnMapping.alt_phones` in that order, else every header like ``phone2``,
``phone_3``, ``alt_phone``, ``alternate number 2``, ``mobile2`` in header order; each header is
its number's label (the main number's label is its own header). An empty cell is no number; a
cell that is not a valid number is reported at its line and left out, the row is kept.

Every variable goes on each call of the contact (dialer.domain.variables): a file with more
variable columns than a call carries is refused at its header, a record whose variables take
more bytes than that at its line.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dialer.domain.altnumbers import MAX_NUMBERS
from dialer.domain.variables import (
    MAX_CONTACT_VARIABLE_BYTES,
    contact_variables_problem,
    too_many_variables,
)
from dialer.domain.zones import check_zone
from dialer.errors import ValidationError

NAME_VAR = "name"
TIMEZONE_VAR = "timezone"

_PHONE_WORDS = re.compile(r"phone|number|msisdn|telephone", re.IGNORECASE)
_NAME = re.compile(r"(full[ _-]?)?name", re.IGNORECASE)
_TIMEZONE = re.compile(r"time[ _-]?zone|tz", re.IGNORECASE)
_ALT_PHONE = re.compile(
    r"(alt(ernate)?[ _-]?)?(phone|number|telephone|tel|mobile|msisdn)[ _-]?[2-9]"
    r"|alt(ernate)?[ _-]?(phone|number|telephone|tel|mobile)",
    re.IGNORECASE,
)
MAX_ALT_COLUMNS = MAX_NUMBERS - 1


def alt_columns(text: str | None) -> tuple[str, ...] | None:
    """``"home, work"`` as the headers of the alternate number columns (None: guessed)."""
    if text is None or not text.strip():
        return None
    return tuple(h.strip() for h in text.split(",") if h.strip())


class MappingProblem(Exception):
    """The headers cannot be mapped (turned into a refusal at line 1 by the importer)."""


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Header names to use; None picks the default (see the module docstring)."""

    phone: str | None = None
    name: str | None = None
    timezone: str | None = None
    alt_phones: tuple[str, ...] | None = None  # the alternate numbers' headers, in order

    def resolve(self, headers: Sequence[str]) -> Columns:
        """The column indexes for ``headers``; MappingProblem when they cannot be used."""
        names = tuple(h.strip() for h in headers)
        _check_headers(names)
        phone = _pick(names, self.phone, "phone", _default_phone)
        name = _pick(names, self.name, "name", lambda n: _first_full(n, _NAME))
        tz = _pick(names, self.timezone, "timezone", lambda n: _first_full(n, _TIMEZONE))
        if phone is None:
            raise MappingProblem(
                f"no phone column (a header like phone, number, msisdn or telephone); "
                f"headers found: {_listing(names)}"
            )
        if phone in (name, tz):
            raise MappingProblem(f"column {names[phone]!r} cannot be both the phone and another")
        alts = self._alternates(names, phone, (name, tz))
        variables: list[tuple[int, str]] = []
        for i, header in enumerate(names):
            if i == phone or i in alts:
                continue
            key = NAME_VAR if i == name else TIMEZONE_VAR if i == tz else header
            variables.append((i, key))
        too_many = too_many_variables(len(variables))
        if too_many is not None:
            raise MappingProblem(f"{len(variables)} variable columns besides the phone: {too_many}")
        keys = [key for _, key in variables]
        for key in (NAME_VAR, TIMEZONE_VAR):
            if keys.count(key) > 1:
                raise MappingProblem(
                    f"variable {key!r} would come from two columns: rename the column {key!r}"
                )
        names_bytes = sum(len(key.encode("utf-8", "surrogatepass")) for _, key in variables)
        return Columns(names, phone, tuple(variables), names_bytes, tz, alts)

    def _alternates(
        self, names: tuple[str, ...], phone: int, others: tuple[int | None, ...]
    ) -> tuple[int, ...]:
        if self.alt_phones is None:
            alts = tuple(
                i
                for i, n in enumerate(names)
                if i != phone and i not in others and _ALT_PHONE.fullmatch(n)
            )
        else:
            alts = tuple(_find(names, h, "alternate phone") for h in self.alt_phones)
            if len(set(alts)) != len(alts):
                raise MappingProblem("an alternate phone column is named twice")
            for i in alts:
                if i == phone or i in others:
                    raise MappingProblem(
                        f"column {names[i]!r} cannot be both an alternate phone and another"
                    )
        if len(alts) > MAX_ALT_COLUMNS:
            raise MappingProblem(
                f"{len(alts)} alternate phone columns: at most {MAX_ALT_COLUMNS} "
                f"(a contact has at most {MAX_NUMBERS} numbers)"
            )
        return alts


@dataclass(frozen=True, slots=True)
class Columns:
    """A resolved mapping: the phone column and the variables, by index."""

    headers: tuple[str, ...]
    phone: int
    variables: tuple[tuple[int, str], ...]  # (column index, variable name)
    names_bytes: int = 0  # UTF-8 bytes of the variable names
    timezone: int | None = None  # the time-zone column (local hours), if any
    alt_phones: tuple[int, ...] = ()  # the alternate numbers' columns, in dialing order

    def problem(self, fields: Sequence[str]) -> str | None:
        """Why a data record cannot be imported (a structural error), or None."""
        if len(fields) != len(self.headers):
            n = len(fields)
            return f"{n} field{'' if n == 1 else 's'}, expected {len(self.headers)}"
        if not fields[self.phone].strip():
            return f"empty phone ({self.headers[self.phone]!r} column)"
        if self.timezone is not None and _zone_problem(fields[self.timezone]):
            return (
                f"unknown time zone {fields[self.timezone][:64]!r} "
                f"({self.headers[self.timezone]!r} column): an IANA name such as "
                f"America/New_York, or empty"
            )
        chars = sum(len(fields[i]) for i, _ in self.variables)
        if self.names_bytes + 4 * chars > MAX_CONTACT_VARIABLE_BYTES:  # maybe too large
            return contact_variables_problem(self.vars_of(fields))
        return None

    def phone_of(self, fields: Sequence[str]) -> str:
        return fields[self.phone].strip()

    def alternates_of(self, fields: Sequence[str]) -> list[tuple[str, str]]:
        """The record's alternate numbers as written, with their labels (empty cells left out)."""
        return [(fields[i].strip(), self.headers[i]) for i in self.alt_phones if fields[i].strip()]

    def vars_of(self, fields: Sequence[str]) -> dict[str, str]:
        return {key: fields[i] for i, key in self.variables}

    def zone_of(self, fields: Sequence[str]) -> str | None:
        """The record's explicit time zone (checked by :meth:`problem`), None when empty."""
        if self.timezone is None:
            return None
        return fields[self.timezone].strip() or None


@functools.lru_cache(maxsize=1024)
def _zone_problem(cell: str) -> bool:
    zone = cell.strip()
    if not zone:
        return False
    try:
        check_zone(zone)
    except ValidationError:
        return True
    return False


def _listing(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names) or "none"


def _check_headers(names: Sequence[str]) -> None:
    seen: dict[str, int] = {}
    for i, header in enumerate(names, start=1):
        if not header:
            raise MappingProblem(f"header of column {i} is empty; headers found: {_listing(names)}")
        first = seen.setdefault(header.casefold(), i)
        if first != i:
            raise MappingProblem(f"duplicate header {header!r} (columns {first} and {i})")


def _first_full(names: Sequence[str], pattern: re.Pattern[str]) -> int | None:
    return next((i for i, n in enumerate(names) if pattern.fullmatch(n)), None)


def _default_phone(names: Sequence[str]) -> int | None:
    exact = _first_full(names, _PHONE_WORDS)
    if exact is not None:
        return exact
    return next((i for i, n in enumerate(names) if _PHONE_WORDS.search(n)), None)


def _pick(
    names: Sequence[str],
    wanted: str | None,
    role: str,
    default: Callable[[Sequence[str]], int | None],
) -> int | None:
    if wanted is None:
        return default(names)
    return _find(names, wanted, role)


def _find(names: Sequence[str], wanted: str, role: str) -> int:
    folded = wanted.strip().casefold()
    for i, n in enumerate(names):
        if n.casefold() == folded:
            return i
    raise MappingProblem(f"{role} column {wanted!r} not found; headers found: {_listing(names)}")
