"""The API's OpenAPI 3.1 document, generated from the endpoint table (served at
``GET /openapi.json``).

Each operation comes from one row of :func:`dialer.api.app.endpoints`: its path parameters from
the route's convertors, its query parameters and request body from the row's
:class:`~dialer.api.spec.Spec` models (:mod:`.params`), its responses from the reply models
(:mod:`.replies`) and the errors the spec implies. The same models validate the requests, so
the document and the checks cannot drift apart. ``x-required-role`` states the least role
allowed (``null``: no token).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from dialer import __version__

from .replies import Error
from .spec import Media, Reply, Spec

if TYPE_CHECKING:
    from .app import Endpoint

Doc = dict[str, Any]
REF = "#/components/schemas/{model}"
_CONVERTOR = re.compile(r"{(\w+):(\w+)}")
_ERRORS = {
    400: "bad_json or bad_request",
    401: "unauthenticated: no or unknown bearer token",
    403: "forbidden: the message names the role needed",
    404: "not_found",
    409: "campaign_not_<verb>, list_not_stoppable, contact_in_call, campaign_draining, ...",
    413: "body_too_large (JSON 64 KiB, CSV 200 MiB by default)",
    415: "unsupported_media_type: the body's Content-Type is not the one documented",
    422: "invalid_input (a field, a query parameter or a setting) or import_refused",
    503: "store_unavailable",
}


def _models(table: Iterable[Endpoint]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [Error]
    for e in table:
        replies: list[Reply] = [e.spec.reply, *e.spec.other.values()]
        for model in (e.spec.query, e.spec.body, *replies):
            if isinstance(model, type) and model not in found:
                found.append(model)
    return found


@functools.cache
def _schemas(models: tuple[type[BaseModel], ...]) -> tuple[dict[Any, Doc], Doc]:
    """Every model's schema, generated once per set of models (an app per test is common)."""
    modes: list[tuple[type[BaseModel], Any]] = [(m, "validation") for m in models]
    refs, defs = models_json_schema(modes, ref_template=REF)
    return {model: schema for (model, _), schema in refs.items()}, defs.get("$defs", {})


def _query_params(model: type[BaseModel], schemas: Doc) -> list[Doc]:
    schema = schemas[model.__name__]
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        if "anyOf" in prop:  # X | None: null is never sent in a query string
            options = [p for p in prop.pop("anyOf") if p.get("type") != "null"]
            prop = {**prop, **options[0]} if len(options) == 1 else {**prop, "anyOf": options}
        if prop.get("default", 0) is None:
            del prop["default"]
        out.append(
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", ()),
                "description": description,
                "schema": prop,
            }
        )
    return out


def _path_param_schema(kind: str) -> Doc:
    """The schema of a path parameter by its Starlette convertor: an int, else a string. A
    string convertor with a regex of its own (a node id, a trunk group's name) makes a path
    that does not match it no route at all: 404, like an id that does not exist. (Its pattern
    is not written here: Schemathesis's path mutations of a pattern hit a CPython 3.11.7 bug,
    "AST constructor recursion depth mismatch", and 404 is what such a path gets anyway.)"""
    return {"type": "integer", "minimum": 0} if kind == "int" else {"type": "string"}


def _path_params(path: str) -> list[Doc]:
    return [
        {"name": name, "in": "path", "required": True, "schema": _path_param_schema(kind)}
        for name, kind in _CONVERTOR.findall(path)
    ]


def _content(reply: Reply, refs: dict[Any, Doc], description: str) -> Doc:
    if reply is None:
        return {"description": description}
    if isinstance(reply, Media):
        return {
            "description": reply.description,
            "content": {t: {"schema": {"type": "string"}} for t in reply.types},
        }
    return {"description": description, "content": {"application/json": {"schema": refs[reply]}}}


def _error_statuses(e: Endpoint) -> list[int]:
    spec = e.spec
    codes = set()
    if e.role is not None:
        codes |= {401, 403}
    if _CONVERTOR.search(e.path):
        codes.add(404)
    if spec.query is not None:
        codes.add(422)
    if spec.body is not None or spec.upload is not None:
        codes |= {400, 413, 415, 422}
    if spec.refusals:
        codes.add(409)
    if spec.store:
        codes.add(503)
    return sorted(codes)


def _operation(e: Endpoint, refs: dict[Any, Doc], schemas: Doc) -> Doc:
    spec: Spec = e.spec
    role = e.role.value if e.role is not None else None
    responses = {str(spec.status): _content(spec.reply, refs, "success")}
    for status, reply in spec.other.items():
        responses[str(status)] = _content(reply, refs, "success")
    for status in _error_statuses(e):
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    op: Doc = {
        "summary": spec.summary,
        "operationId": e.handler.__name__,
        "x-required-role": role,
        "security": [] if role is None else [{"bearer": []}],
        "parameters": _path_params(e.path)
        + (_query_params(spec.query, schemas) if spec.query else []),
        "responses": responses,
    }
    if spec.body is not None:
        op["requestBody"] = {
            "required": not spec.body_optional,
            "content": {"application/json": {"schema": refs[spec.body]}},
        }
    elif spec.upload is not None:
        op["requestBody"] = {
            "required": not spec.body_optional,
            "content": {spec.upload: {"schema": {"type": "string"}}},
        }
    return op


def openapi_document(table: Sequence[Endpoint]) -> Doc:
    """The document of the app serving ``table`` (with or without /metrics, public or not)."""
    refs, schemas = copy.deepcopy(_schemas(tuple(_models(table))))
    paths: Doc = {}
    for e in table:
        paths.setdefault(e.template, {})[e.method.lower()] = _operation(e, refs, schemas)
    error = {"content": {"application/json": {"schema": refs[Error]}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dialer control API",
            "version": __version__,
            "description": (
                "Roles: viewer (read), operator (create, edit, upload, start, pause, resume, "
                "list numbers as do-not-call), administrator (also stop, cancel, delete, unlist "
                "do-not-call numbers, set PBX nodes and trunk groups, reset trunk breakers). "
                "Send Authorization: Bearer <token>. Errors: {error: {code, message, details}}."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                f"E{status}": {"description": text, **error} for status, text in _ERRORS.items()
            },
            "schemas": schemas,
        },
    }


def with_trunks(document: Doc, trunks: Collection[str] | None) -> Doc:
    """``document`` with the configured trunks as the only values of ``trunk`` and
    ``backup_trunk`` (None: any trunk name, as the pattern says)."""
    if trunks is None:
        return document
    for model in ("CampaignSettingsBody", "CampaignEditBody"):
        props = document["components"]["schemas"][model]["properties"]
        props["trunk"]["enum"] = sorted(trunks)
        backup = props["backup_trunk"]
        backup["anyOf"] = [{**backup["anyOf"][0], "enum": sorted(trunks)}, {"type": "null"}]
    return document
