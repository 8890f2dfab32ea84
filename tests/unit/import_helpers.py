"""Shared set-up for the import and DNC tests (test_import_*.py, test_dnc.py)."""

from __future__ import annotations

import io
from typing import Any, BinaryIO, cast

import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus
from dialer.store import RedisStore


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return value or ""


async def snapshot(client: aioredis.Redis, ns: str) -> dict[bytes, tuple[str, Any]]:
    """Every key of the namespace with its type and whole content."""
    out: dict[bytes, tuple[str, Any]] = {}
    async for key in client.scan_iter(match=f"{ns}:*", count=1000):
        kind = _text(await client.type(key))
        value: Any
        if kind == "hash":
            value = await client.hgetall(key)
        elif kind == "set":
            value = sorted(await client.smembers(key))
        elif kind == "zset":
            value = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "string":
            value = await client.get(key)
        elif kind == "stream":
            value = await client.xrange(key)
        else:
            value = await client.lrange(key, 0, -1)
        out[key] = (kind, value)
    return out


def nonzero(counts: dict[CallStatus, int]) -> dict[CallStatus, int]:
    return {s: n for s, n in counts.items() if n}


async def phones_of(store: RedisStore, cid: int, list_id: int | None = None) -> list[str]:
    """Stored phones of the campaign's contacts (of one list), in contact id order."""
    seq = int(_text(await store.client.get(store.keys.contact_seq(cid))) or 0)
    out = []
    for contact_id in range(1, seq + 1):
        raw = await store.client.hmget(store.keys.contact(cid, contact_id), ["phone", "list"])
        if raw[0] is None:
            continue
        if list_id is None or int(_text(raw[1])) == list_id:
            out.append(_text(raw[0]))
    return out


def csv_bytes(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def stream(data: bytes) -> BinaryIO:
    return io.BytesIO(data)


class Unseekable(io.RawIOBase):
    """A read-only stream that cannot seek (a pipe, an HTTP upload)."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:
        return self._buf.readinto(b)


def unseekable(data: bytes) -> BinaryIO:
    return cast(BinaryIO, io.BufferedReader(Unseekable(data)))


class ChangingFile:
    """A seekable file whose content is ``first`` until rewound, then ``second``.

    Plays a file rewritten between the importer's validation pass and its import pass.
    """

    def __init__(self, first: bytes, second: bytes) -> None:
        self._versions = [io.BytesIO(first), io.BytesIO(second)]
        self._current = 0
        self._rewinds = 0

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._versions[self._current].tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        self._rewinds += 1
        if self._rewinds == 2:  # 1: start of pass 1 (after sniffing), 2: start of pass 2
            self._current = 1
        return self._versions[self._current].seek(offset, whence)

    def read(self, n: int = -1) -> bytes:
        return self._versions[self._current].read(n)

    def readline(self, n: int = -1) -> bytes:
        return self._versions[self._current].readline(n)

    def as_binary(self) -> BinaryIO:
        return cast(BinaryIO, self)
