"""Request bodies under a size limit: JSON in memory, CSV uploads spooled to a temporary file.

A ``Content-Length`` over the limit is refused before anything is read; a body without one
(chunked) is counted as it arrives and refused the moment it passes the limit. Either way the
client gets 413 ``body_too_large`` and nothing it sent is used.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from typing import BinaryIO, cast

from starlette.requests import ClientDisconnect, Request

from .errors import ApiError

_FLUSH = 1024 * 1024  # bytes gathered before one write to the spool file (in a thread)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, "body_too_large", f"the request body is over {limit} bytes", {"limit_bytes": limit}
    )


def _check_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise ApiError(400, "bad_request", "Content-Length is not a whole number")
    if int(declared) > limit:
        raise _too_large(limit)


async def read_body(request: Request, limit: int) -> bytes:
    _check_length(request, limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "bad_request", "the client went away during the body") from None
    return b"".join(chunks)


class _NotJson:
    """Where the body had ``NaN``, ``Infinity`` or ``-Infinity`` (JSON has none of them)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def _refuse_constants(data: object) -> None:
    """400 ``bad_json`` naming the first field that holds NaN or an infinity (details: the
    field, e.g. ``cps`` or ``retry.delays.busy``); walked without recursion."""
    stack: list[tuple[str, object]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _NotJson):
            field = path or "the body"
            raise ApiError(
                400,
                "bad_json",
                f"the body is not valid JSON: {field} is {value.name}, which JSON does not have",
                {"field": field},
            )
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else k, v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))


async def read_json(request: Request, limit: int, *, empty: object = None) -> object:
    """The JSON body (``empty`` when there is no body at all); 400 ``bad_json`` if it is not."""
    return parse_json(await read_body(request, limit), empty=empty)


def parse_json(body: bytes, *, empty: object = None) -> object:
    """``body`` as JSON (``empty`` when blank); 400 ``bad_json`` if it is not."""
    if not body.strip():
        if empty is None:
            raise ApiError(400, "bad_json", "a JSON body is required")
        return empty
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_NotJson)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    _refuse_constants(data)
    return data


async def read_object(request: Request, limit: int, *, empty: object = None) -> dict[str, object]:
    data = await read_json(request, limit, empty=empty)
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_input", "the body must be a JSON object")
    return data


async def spool_upload(request: Request, limit: int) -> BinaryIO:
    """The body in an anonymous temporary file (deleted on close), positioned at 0.

    Memory holds at most about one megabyte of it at a time; the caller closes the file.
    """
    _check_length(request, limit)
    spool = cast(BinaryIO, tempfile.TemporaryFile())
    try:
        size = 0
        pending: list[bytes] = []
        gathered = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            pending.append(chunk)
            gathered += len(chunk)
            if gathered >= _FLUSH:
                await asyncio.to_thread(spool.write, b"".join(pending))
                pending, gathered = [], 0
        if pending:
            await asyncio.to_thread(spool.write, b"".join(pending))
        await asyncio.to_thread(spool.seek, 0)
    except ClientDisconnect:
        spool.close()
        raise ApiError(400, "bad_request", "the client went away during the upload") from None
    except BaseException:
        spool.close()
        raise
    return spool
