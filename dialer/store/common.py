"""Helpers shared by the store's modules: Redis errors as ours, and reply decoding.

:func:`_translated` wraps a store method so that redis-py's exceptions become
:class:`~dialer.errors.StoreError` (a script's own error a :class:`~dialer.errors.ScriptError`);
the others turn Redis replies (bytes or str) into Python values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import NoPermissionError, RedisClusterException, RedisError, ResponseError

from dialer.domain.statuses import CallStatus
from dialer.errors import ScriptError, StoreError

P = ParamSpec("P")
R = TypeVar("R")


def _translated(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn redis-py's exceptions into StoreError (ours pass through)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise _store_error(fn.__name__, exc) from exc

    return wrapper


def _store_error(what: str, exc: Exception) -> Exception:
    """redis-py's error as ours: a script's (an error raised by Redis itself) is a ScriptError,
    any other Redis or socket error a StoreError; anything else is returned as it is."""
    if isinstance(exc, NoPermissionError):
        return StoreError(
            f"{what}: Redis refused it (ACL): {exc}; the dialer's Redis user needs the commands "
            "and the keys of ops/redis/users.acl (keys: DIALER_NAMESPACE must be dialer or "
            "start with dialer:)"
        )
    if isinstance(exc, ResponseError):
        return ScriptError(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, (RedisError, RedisClusterException, OSError)):
        return StoreError(f"{what}: {type(exc).__name__}: {exc}")
    return exc


def _s(value: bytes | str | int | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _int_or_none(value: bytes | str | None) -> int | None:
    text = _s(value)
    return int(float(text)) if text else None


def _decode_map(raw: Mapping[bytes | str, bytes | str] | None) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in (raw or {}).items()}


def _pairs(flat: Sequence[Any]) -> dict[Any, Any]:
    """A HGETALL reply returned by a script (``[field, value, ...]``) as a mapping."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _counts_of(raw: Mapping[bytes | str, bytes | str]) -> dict[CallStatus, int]:
    """The counts hash as contacts per status (every status present, 0 included)."""
    by_status = _decode_map(raw)
    return {s: int(by_status.get(s.value, 0)) for s in CallStatus}


def _strs(values: Iterable[Any] | None) -> list[str]:
    """Members of a reply (bytes or str) as str."""
    return [_s(v) for v in values or ()]


def _chunks(items: Iterable[R], size: int) -> Iterator[list[R]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
