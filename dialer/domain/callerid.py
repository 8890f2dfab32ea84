"""Which caller id a call presents: a fixed one, or one picked from a pool.

A campaign and each of its recipient lists may set a :class:`CallerIdSource`: a fixed
``caller_id`` and/or a :class:`CallerIdPool`. A list's source, when it sets anything, replaces
the campaign's for the list's contacts (:func:`effective_source`); a pool, when set, wins over
the fixed caller id of the same source.

Pool modes:

- ``rotate``: round robin. The turn is a counter shared by every engine (a Redis HINCRBY, see
  ``RedisStore.caller_id_turns``): call *n* of the pool presents ``numbers[n % len(numbers)]``.
- ``local``: local presence. The pool number sharing the longest digit prefix with the callee
  wins, provided the shared prefix covers the callee's country code and area code (its national
  destination code, by ``phonenumbers``; 3 digits past the country code when that is unknown);
  otherwise the pool's ``fallback`` (or its first number). Ties go to the earlier pool number.

Every number here is digits with an optional leading ``+`` (3 to 15 digits, E.164's ceiling),
so nothing a user types can reach the SIP ``From`` header or break AMI/ESL framing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from phonenumbers import NumberParseException

from dialer.errors import ValidationError

__all__ = [
    "CALLER_ID",
    "MAX_POOL",
    "CallerIdPool",
    "CallerIdSource",
    "PoolMode",
    "check_caller_id",
    "check_pool_number",
    "effective_source",
    "local_presence",
    "rotation_field",
]

_NUMBER = r"\+?[0-9]{1,20}"
#: A fixed caller id: a number, or ``"Name" <number>`` (the name without quotes or brackets).
CALLER_ID = re.compile(rf'(?:"[^"\\<>\x00-\x1f\x7f]{{0,64}}" ?)?<{_NUMBER}>|{_NUMBER}')
_POOL_NUMBER = re.compile(r"\+?[0-9]{3,15}")
MAX_POOL = 1000
_UNKNOWN_AREA = 3  # digits past the country code taken as the area when phonenumbers can't tell


class PoolMode(StrEnum):
    ROTATE = "rotate"
    LOCAL = "local"


def check_caller_id(value: object, name: str = "caller_id") -> str:
    if not isinstance(value, str) or CALLER_ID.fullmatch(value) is None:
        raise ValidationError(f'{name} must be a number or "Name" <number>, got {value!r}')
    return value


def check_pool_number(value: object, name: str) -> str:
    if not isinstance(value, str) or _POOL_NUMBER.fullmatch(value) is None:
        raise ValidationError(
            f"{name} must be a phone number of 3 to 15 digits (optional leading +), got {value!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class CallerIdPool:
    numbers: tuple[str, ...]
    mode: PoolMode = PoolMode.ROTATE
    fallback: str | None = None  # local: when no number is local to the callee

    def __post_init__(self) -> None:
        if isinstance(self.numbers, str) or not isinstance(self.numbers, Sequence):
            raise ValidationError(f"numbers must be a list of numbers, got {self.numbers!r}")
        numbers = tuple(self.numbers)
        if not 1 <= len(numbers) <= MAX_POOL:
            raise ValidationError(f"numbers must hold 1 to {MAX_POOL} numbers, got {len(numbers)}")
        for i, number in enumerate(numbers):
            check_pool_number(number, f"numbers[{i}]")
        if len(set(numbers)) != len(numbers):
            raise ValidationError("numbers must not repeat a number")
        object.__setattr__(self, "numbers", numbers)
        try:
            object.__setattr__(self, "mode", PoolMode(self.mode))
        except ValueError:
            modes = ", ".join(m.value for m in PoolMode)
            raise ValidationError(f"mode must be one of {modes}, got {self.mode!r}") from None
        if self.fallback is not None:
            check_pool_number(self.fallback, "fallback")
            if self.mode is not PoolMode.LOCAL:
                raise ValidationError("fallback applies to the local mode only")

    def pick(self, callee: str, turn: int) -> str:
        """The number presented to ``callee``; ``turn`` is the pool's shared counter (rotate)."""
        if self.mode is PoolMode.ROTATE:
            return self.numbers[turn % len(self.numbers)]
        return local_presence(self.numbers, callee) or self.fallback or self.numbers[0]

    def to_dict(self) -> dict[str, object]:
        return {"numbers": list(self.numbers), "mode": self.mode.value, "fallback": self.fallback}

    @classmethod
    def from_dict(cls, data: object, name: str = "caller_id_pool") -> CallerIdPool:
        if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
            raise ValidationError(f"{name} must be an object with string keys, got {data!r}")
        unknown = sorted(data.keys() - {"numbers", "mode", "fallback"})
        if unknown:
            raise ValidationError(f"{name}: unknown field {unknown[0]!r}")
        if "numbers" not in data:
            raise ValidationError(f"{name}: missing field 'numbers'")
        numbers = data["numbers"]
        if not isinstance(numbers, list):
            raise ValidationError(f"{name}.numbers must be a list of numbers, got {numbers!r}")
        try:
            return cls(
                tuple(numbers),
                data.get("mode", PoolMode.ROTATE),
                data.get("fallback"),
            )
        except ValidationError as exc:
            raise ValidationError(f"{name}.{exc}") from None


@dataclass(frozen=True, slots=True)
class CallerIdSource:
    """What one campaign or one list sets: nothing, a fixed caller id, a pool, or both."""

    caller_id: str | None = None
    pool: CallerIdPool | None = None

    def __post_init__(self) -> None:
        if self.caller_id is not None:
            check_caller_id(self.caller_id)
        if self.pool is not None and not isinstance(self.pool, CallerIdPool):
            raise ValidationError(f"caller_id_pool must be a pool, got {self.pool!r}")

    @property
    def empty(self) -> bool:
        return self.caller_id is None and self.pool is None

    @property
    def rotates(self) -> bool:
        """Its choice needs the shared turn counter."""
        return self.pool is not None and self.pool.mode is PoolMode.ROTATE

    def pick(self, callee: str, turn: int = 0) -> str | None:
        if self.pool is not None:
            return self.pool.pick(callee, turn)
        return self.caller_id

    def to_dict(self) -> dict[str, object]:
        return {
            "caller_id": self.caller_id,
            "caller_id_pool": None if self.pool is None else self.pool.to_dict(),
        }

    @classmethod
    def from_options(
        cls,
        caller_id: str | None = None,
        pool: str | None = None,
        mode: str | None = None,
        fallback: str | None = None,
    ) -> CallerIdSource:
        """From flat text options (CLI flags, query parameters): ``pool`` is comma-separated
        numbers; ``mode`` and ``fallback`` need a pool."""
        if pool is None:
            if mode is not None or fallback is not None:
                raise ValidationError("caller_id_mode and caller_id_fallback need a caller_id_pool")
            return cls(caller_id)
        numbers = [n.strip() for n in pool.split(",")]
        data: dict[str, object] = {"numbers": numbers, "mode": mode or PoolMode.ROTATE.value}
        if fallback is not None:
            data["fallback"] = fallback
        return cls(caller_id, CallerIdPool.from_dict(data))

    @classmethod
    def from_dict(cls, data: object, name: str = "caller id settings") -> CallerIdSource:
        if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
            raise ValidationError(f"{name} must be an object with string keys, got {data!r}")
        unknown = sorted(data.keys() - {"caller_id", "caller_id_pool"})
        if unknown:
            raise ValidationError(f"{name}: unknown field {unknown[0]!r}")
        caller_id = data.get("caller_id")
        if caller_id is not None:
            check_caller_id(caller_id)
        raw_pool = data.get("caller_id_pool")
        pool = None if raw_pool is None else CallerIdPool.from_dict(raw_pool)
        return cls(caller_id, pool)


def effective_source(
    list_source: CallerIdSource | None, campaign: CallerIdSource
) -> CallerIdSource:
    """The list's source when it sets anything, else the campaign's."""
    if list_source is not None and not list_source.empty:
        return list_source
    return campaign


def rotation_field(list_id: int | None) -> str:
    """The field of the campaign's rotation hash counting turns of this source's pool."""
    return "campaign" if list_id is None else f"list:{list_id}"


def _area_digits(callee: str) -> int:
    """How many leading digits of the callee's E.164 form name its country and area."""
    digits = callee.lstrip("+")
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except NumberParseException:
        return min(len(digits), 1 + _UNKNOWN_AREA)
    country = len(str(parsed.country_code))
    area = phonenumbers.length_of_national_destination_code(parsed) or _UNKNOWN_AREA
    return min(len(digits), country + area)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def local_presence(numbers: Sequence[str], callee: str) -> str | None:
    """The pool number local to ``callee`` (see the module doc), or None when none is."""
    digits = callee.lstrip("+")
    if not digits.isdigit():
        return None
    need = _area_digits(callee)
    best, chosen = need - 1, None
    for number in numbers:
        shared = _common_prefix(number.lstrip("+"), digits)
        if shared > best:
            best, chosen = shared, number
    return chosen
