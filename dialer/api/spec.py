"""One operation's contract, and the request validation that follows from it.

Every row of :func:`dialer.api.app.endpoints` carries a :class:`Spec`: its query model, its
body model (or the media type of a raw upload), its success response and the 409 it may
answer. :func:`validate` checks a request against it before the handler runs (after the role
check, which stays first); :mod:`.openapi` writes the document from the same specs. Handlers
read what was validated with :func:`query_of` and :func:`body_of`.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as ModelError
from starlette.requests import Request

from .bodies import parse_json, read_body
from .errors import ApiError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Media:
    """A success response that is not JSON (CSV, the Prometheus exposition)."""

    types: tuple[str, ...]
    description: str


#: What a success response holds: a JSON model, a non-JSON media type, or nothing (204).
Reply = type[BaseModel] | Media | None


@dataclass(frozen=True, slots=True)
class Spec:
    summary: str
    reply: Reply
    status: int = 200
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_optional: bool = False  # no body at all reads as {} (an upload: as an empty file)
    upload: str | None = None  # a raw body of this media type (the handler reads it)
    refusals: bool = False  # may answer 409 (the campaign's or list's status refuses)
    store: bool = True  # reads Redis: may answer 503
    other: Mapping[int, Reply] = field(default_factory=dict)  # further success statuses


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def require_media(request: Request, accepted: Collection[str], hint: str) -> None:
    """415 ``unsupported_media_type`` unless the raw body's media type is one of ``accepted``
    (or none is given); ``hint`` says what to send."""
    media = media_type(request)
    if media and media not in accepted:
        raise ApiError(415, "unsupported_media_type", f"{hint}, not {media[:60]}")


def _is_json(media: str) -> bool:
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@functools.cache
def _properties(model: type[BaseModel]) -> dict[str, Any]:
    props: dict[str, Any] = model.model_json_schema().get("properties", {})
    return props


def _describe(schema: dict[str, Any]) -> str | None:
    """What a property's schema asks for, in the domain's words ("a whole number from 1 to
    1000"); None when it is not a simple bound."""
    options = [o for o in schema.get("anyOf", [schema]) if o.get("type") != "null"]
    if len(options) != 1:
        return None
    kind = options[0]
    if "enum" in kind:  # a long one (the regions) is said by the field's own validator
        values = kind["enum"]
        return "one of " + ", ".join(str(v) for v in values) if len(values) <= 20 else None
    low = kind.get("minimum", kind.get("exclusiveMinimum"))
    high = kind.get("maximum", kind.get("exclusiveMaximum"))
    if kind.get("type") == "integer":
        return f"a whole number from {low} to {high}" if high is not None else None
    if kind.get("type") == "number" and low is not None and high is not None:
        above = "above" if "exclusiveMinimum" in kind else "from"
        return f"a number {above} {low} and up to {high}"
    if kind.get("type") == "boolean":
        return "true or false"
    if kind.get("type") == "string" and "maxLength" in kind:
        return f"a text of {kind.get('minLength', 0)} to {kind['maxLength']} characters"
    return None


def model_error(exc: ModelError, model: type[BaseModel], where: str = "") -> ApiError:
    """422 ``invalid_input`` naming the first wrong field: ``cps must be a number above 0 and
    up to 10000, got 20000``; ``query parameter limit must be a whole number from 1 to 1000``."""
    first = exc.errors(include_url=False)[0]
    loc = tuple(first["loc"])
    name = _field(loc) or "the body"
    if first["type"] == "extra_forbidden":
        return ApiError(422, "invalid_input", f"unknown field {name[:40]!r}", {"field": name})
    if first["type"] == "missing":
        return ApiError(422, "invalid_input", f"{where}{name} is required", {"field": name})
    described = _describe(_properties(model).get(str(loc[0]), {})) if len(loc) == 1 else None
    if described is not None:
        message = f"{described}, got {first['input']!r}"
    else:
        message = str(first["msg"])
        for prefix in ("Input should be ", "Value error, "):
            if message.startswith(prefix):
                message = message.removeprefix(prefix)
                if first["type"] in ("enum", "literal_error"):
                    message = f"one of {message}"
                break
        else:
            message = message[0].lower() + message[1:]
    return ApiError(422, "invalid_input", f"{where}{name} must be {message}"[:300], {"field": name})


async def validate(spec: Spec, request: Request, max_body_bytes: int) -> None:
    """Check the query and the JSON body against ``spec``'s models; the results go to
    ``request.state`` for :func:`query_of` and :func:`body_of`."""
    if spec.query is not None:
        try:
            request.state.query = spec.query.model_validate(dict(request.query_params))
        except ModelError as exc:
            raise model_error(exc, spec.query, "query parameter ") from None
    if spec.body is None:
        return
    body = await read_body(request, max_body_bytes)
    media = media_type(request)
    if body.strip() and media and not _is_json(media):  # none given: read as JSON
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as JSON with Content-Type application/json, not {media[:60]}",
        )
    data = parse_json(body, empty={} if spec.body_optional else None)
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_input", "the body must be a JSON object")
    try:
        request.state.body = spec.body.model_validate(data)
    except ModelError as exc:
        raise model_error(exc, spec.body) from None


def query_of(request: Request, model: type[M]) -> M:
    value = request.state.query
    assert isinstance(value, model), f"the route's spec declares {type(value).__name__}"
    return value


def body_of(request: Request, model: type[M]) -> M:
    value = request.state.body
    assert isinstance(value, model), f"the route's spec declares {type(value).__name__}"
    return value
