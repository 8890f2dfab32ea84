"""Do-not-call lists: add, remove, check and import numbers, on the global list or a campaign's.

Every number is normalised to E.164 with a default region, as :class:`DncStore` does. An
import reads a text (one number per line, blank lines and ``#`` comments skipped) twice: every
line is checked first and one bad line refuses the whole import (:class:`NumbersRefused`,
naming the lines) before anything is written; then the numbers go to Redis in chunks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from dialer.domain.phones import invalid_reason, to_e164
from dialer.errors import ValidationError
from dialer.store.common import _chunks
from dialer.store.dnc import DncStore
from dialer.store.redis_store import RedisStore

__all__ = [
    "MAX_NUMBERS",
    "BadLine",
    "Checked",
    "DncCommands",
    "Listed",
    "NumbersRefused",
    "numbered_lines",
]

CHUNK = 10_000  # numbers per trip to Redis on import
MAX_NUMBERS = 1000  # numbers in one API request (its JSON stays under the 64 KiB body limit)
SHOWN_LINES = 10  # bad lines named in a refusal
GLOBAL = "global"


@dataclass(frozen=True, slots=True)
class Listed:
    """What an add or an import did: numbers given (lines read), how many were new."""

    given: int
    added: int
    already_listed: int

    @classmethod
    def of(cls, given: int, added: int) -> Listed:
        return cls(given, added, given - added)


@dataclass(frozen=True, slots=True)
class Checked:
    """One number checked: its E.164 form (None: invalid, and why), the lists that hold it
    (``global``, ``campaign N``)."""

    input: str
    number: str | None
    lists: tuple[str, ...] = ()
    invalid_reason: str | None = None

    @property
    def listed(self) -> bool:
        return bool(self.lists)

    def to_dict(self) -> dict[str, object]:
        return {
            "input": self.input,
            "number": self.number,
            "listed": self.listed,
            "lists": list(self.lists),
            "invalid_reason": self.invalid_reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Checked:
        return cls(str(d["input"]), d["number"], tuple(d["lists"]), d["invalid_reason"])


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    text: str  # the line as given, cut to 40 characters
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.text!r} ({self.reason})"


class NumbersRefused(ValidationError):
    """An import refused whole: ``invalid`` bad lines, the first of them in ``lines``."""

    def __init__(self, invalid: int, lines: Sequence[BadLine]) -> None:
        noun = "invalid number" if invalid == 1 else "invalid numbers"
        shown = "; ".join(str(b) for b in lines)
        super().__init__(f"{invalid} {noun}, nothing imported: {shown}")
        self.invalid = invalid
        self.lines = tuple(lines)


def numbered_lines(source: BinaryIO) -> Iterator[tuple[int, str]]:
    """(line number, number) for every line of ``source`` (UTF-8, a BOM allowed) that is not
    blank or a ``#`` comment; ValidationError at the first line that is not UTF-8."""
    for n, raw in enumerate(source, start=1):
        try:
            text = raw.decode("utf-8-sig" if n == 1 else "utf-8").strip()
        except UnicodeDecodeError:
            raise ValidationError(f"not UTF-8 text (line {n})") from None
        if text and not text.startswith("#"):
            yield n, text


def _validate(source: BinaryIO, region: str) -> int:
    """How many numbers ``source`` holds; NumbersRefused naming its bad lines, if any."""
    bad: list[BadLine] = []
    count = invalid = 0
    for n, raw in numbered_lines(source):
        count += 1
        if to_e164(raw, region) is None:
            invalid += 1
            if len(bad) < SHOWN_LINES:
                bad.append(BadLine(n, raw[:40], invalid_reason(raw, region)))
    if invalid:
        raise NumbersRefused(invalid, bad)
    return count


class DncCommands:
    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def _dnc(self, region: str) -> DncStore:
        return DncStore(self.store, default_region=region)

    async def add(
        self, numbers: Sequence[str], campaign: int | None = None, *, region: str = "US"
    ) -> Listed:
        """List ``numbers`` (globally, or on ``campaign``'s list); one invalid number refuses
        them all (ValidationError naming it); NotFound if the campaign does not exist."""
        added = await self._dnc(region).add(numbers, campaign)
        return Listed.of(len(numbers), added)

    async def remove(
        self, numbers: Sequence[str], campaign: int | None = None, *, region: str = "US"
    ) -> int:
        """Unlist ``numbers``; how many were listed. Contacts already Do not call stay so."""
        return await self._dnc(region).remove(numbers, campaign)

    async def check(
        self, numbers: Sequence[str], campaign: int | None = None, *, region: str = "US"
    ) -> list[Checked]:
        """Each number with the lists that hold it: the global list, and ``campaign``'s when
        one is given (NotFound if it does not exist). An invalid number is no error here."""
        dnc = self._dnc(region)
        e164 = [to_e164(raw, dnc.region) for raw in numbers]
        valid = [n for n in e164 if n is not None]
        found = iter(await dnc.listed(valid, campaign))
        checked: list[Checked] = []
        for raw, number in zip(numbers, e164, strict=True):
            if number is None:
                checked.append(Checked(raw, None, invalid_reason=invalid_reason(raw, dnc.region)))
                continue
            on_global, on_campaign = next(found)
            lists = ((GLOBAL,) if on_global else ()) + (
                (f"campaign {campaign}",) if on_campaign else ()
            )
            checked.append(Checked(raw, number, lists))
        return checked

    async def import_numbers(
        self, source: BinaryIO, campaign: int | None = None, *, region: str = "US"
    ) -> Listed:
        """List every number of ``source`` (one a line; seekable), all or nothing: a bad line
        refuses the import (NumbersRefused) before anything is written."""
        dnc = self._dnc(region)
        if campaign is not None:
            await dnc.require_campaign(campaign)
        total = await asyncio.to_thread(_validate, source, dnc.region)
        await asyncio.to_thread(source.seek, 0)
        added = 0
        for chunk in _chunks((raw for _, raw in numbered_lines(source)), CHUNK):
            added += await dnc.add(chunk, campaign)
        return Listed.of(total, added)
