"""PBX nodes, trunk groups and the global cap: list, read, set (PUT) and remove.

Reading needs the viewer role, changing the administrator role. The rules live in
:mod:`dialer.domain.nodes` and :mod:`dialer.store.nodes`; this module parses and renders, and
holds its rows for the endpoint table (:data:`ROUTES`, app.py) and its part of the OpenAPI
document (:func:`openapi_paths`, openapi.py).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.domain.nodes import MAX_CHANNELS, MAX_CPS, GlobalCap, Node, NodeKind, TrunkGroup
from dialer.store.nodes import NodeStore

from .auth import Role
from .bodies import read_object
from .context import ApiContext, Handler

__all__ = ["ROUTES", "openapi_paths"]


def _nodes(ctx: ApiContext) -> NodeStore:
    return NodeStore(ctx.store.client, ctx.store.keys)


def _param(request: Request, name: str) -> str:
    value = request.path_params[name]
    assert isinstance(value, str)
    return value


async def list_nodes(ctx: ApiContext, request: Request) -> Response:
    """Every node with whether it is up (an engine sees its PBX) and its channels in use."""
    store = _nodes(ctx)
    cfg = await store.config()
    statuses = await store.statuses(cfg.nodes.values())
    return JSONResponse({"nodes": [s.to_dict() for s in statuses], "global_cap": cfg.cap.to_dict()})


async def get_node(ctx: ApiContext, request: Request) -> Response:
    store = _nodes(ctx)
    node = await store.get_node(_param(request, "node_id"))
    (status,) = await store.statuses([node])
    return JSONResponse(status.to_dict())


async def put_node(ctx: ApiContext, request: Request) -> Response:
    """Create or replace a node (201 when created)."""
    body = await read_object(request, ctx.max_body_bytes)
    node = Node.from_dict(body, _param(request, "node_id"))
    created = await _nodes(ctx).put_node(node)
    return JSONResponse(node.to_dict(), status_code=201 if created else 200)


async def delete_node(ctx: ApiContext, request: Request) -> Response:
    """Remove a node; refused (422) while a trunk group names it."""
    node_id = _param(request, "node_id")
    await _nodes(ctx).remove_node(node_id)
    return JSONResponse({"removed": node_id})


async def list_groups(ctx: ApiContext, request: Request) -> Response:
    cfg = await _nodes(ctx).config()
    return JSONResponse({"trunk_groups": [g.to_dict() for g in cfg.groups.values()]})


async def get_group(ctx: ApiContext, request: Request) -> Response:
    group = await _nodes(ctx).get_group(_param(request, "name"))
    return JSONResponse(group.to_dict())


async def put_group(ctx: ApiContext, request: Request) -> Response:
    """Create or replace a trunk group: its nodes must exist, its trunks be in no other group."""
    body = await read_object(request, ctx.max_body_bytes)
    group = TrunkGroup.from_dict(body, _param(request, "name"))
    created = await _nodes(ctx).put_group(group)
    return JSONResponse(group.to_dict(), status_code=201 if created else 200)


async def delete_group(ctx: ApiContext, request: Request) -> Response:
    name = _param(request, "name")
    await _nodes(ctx).remove_group(name)
    return JSONResponse({"removed": name})


async def get_cap(ctx: ApiContext, request: Request) -> Response:
    return JSONResponse((await _nodes(ctx).get_cap()).to_dict())


async def put_cap(ctx: ApiContext, request: Request) -> Response:
    """The global cap over every engine and node (null: no cap on that axis)."""
    cap = GlobalCap.from_dict(await read_object(request, ctx.max_body_bytes))
    await _nodes(ctx).put_cap(cap)
    return JSONResponse(cap.to_dict())


NODE = "/nodes/{node_id}"
GROUP = "/trunk-groups/{name}"
VIEW, ADMIN = Role.VIEWER, Role.ADMINISTRATOR

# method, path, least role, handler, action (app.py's Endpoint rows)
ROUTES: tuple[tuple[str, str, Role, Handler, str], ...] = (
    ("GET", "/nodes", VIEW, list_nodes, "list PBX nodes"),
    ("GET", NODE, VIEW, get_node, "read a PBX node"),
    ("PUT", NODE, ADMIN, put_node, "set a PBX node"),
    ("DELETE", NODE, ADMIN, delete_node, "remove a PBX node"),
    ("GET", "/trunk-groups", VIEW, list_groups, "list trunk groups"),
    ("GET", GROUP, VIEW, get_group, "read a trunk group"),
    ("PUT", GROUP, ADMIN, put_group, "set a trunk group"),
    ("DELETE", GROUP, ADMIN, delete_group, "remove a trunk group"),
    ("GET", "/global-cap", VIEW, get_cap, "read the global cap"),
    ("PUT", "/global-cap", ADMIN, put_cap, "set the global cap"),
)

# ---------------------------------------------------------------------------- OpenAPI

Doc = dict[str, Any]
_ID = "^[a-z0-9][a-z0-9._-]{0,62}$"
_NAME = "^[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}$"
_CHANNELS: Doc = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_CHANNELS}
_CPS: Doc = {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_CPS}
_NODE: Doc = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": _ID},
        "kind": {"type": "string", "enum": [k.value for k in NodeKind], "default": "asterisk"},
        "max_channels": _CHANNELS,
        "cps": _CPS,
        "enabled": {"type": "boolean", "default": True},
    },
    "additionalProperties": False,
}
_NODE_STATUS: Doc = {
    "type": "object",
    "properties": {
        **_NODE["properties"],
        "up": {"type": "boolean"},
        "engines": {"type": "integer"},
        "channels": {"type": "integer"},
    },
}
_GROUP: Doc = {
    "type": "object",
    "required": ["trunks"],
    "properties": {
        "name": {"type": "string", "pattern": _NAME},
        "trunks": {
            "type": "object",
            "description": "trunk name -> the node ids it is reachable through",
            "additionalProperties": {
                "type": "array",
                "items": {"type": "string", "pattern": _ID},
                "minItems": 1,
            },
        },
        "backup": {"type": ["string", "null"]},
        "max_channels": _CHANNELS,
        "cps": _CPS,
    },
    "additionalProperties": False,
}
_CAP: Doc = {
    "type": "object",
    "properties": {"max_channels": _CHANNELS, "cps": _CPS},
    "additionalProperties": False,
}
_ERR = "#/components/responses/"


def _op(role: Role, summary: str, ok: Doc, *, params: list[Doc], body: Doc | None = None) -> Doc:
    codes = ["401", "403", "503"]
    content = {"application/json": {"schema": ok}}
    responses: Doc = {"200": {"description": "done", "content": content}}
    if params:
        codes.append("404")
    if body is not None:
        codes += ["400", "413", "422"]
        responses["201"] = {"description": "created", "content": content}
    names = {"400": "BadRequest", "401": "Unauthenticated", "403": "Forbidden", "404": "NotFound"}
    names |= {"413": "TooLarge", "422": "Invalid", "503": "StoreUnavailable"}
    responses |= {c: {"$ref": _ERR + names[c]} for c in codes}
    op: Doc = {
        "summary": summary,
        "x-required-role": role.value,
        "security": [{"bearer": []}],
        "parameters": params,
        "responses": responses,
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def openapi_paths() -> Doc:
    """This module's paths of the OpenAPI document."""
    node = [{"name": "node_id", "in": "path", "required": True, "schema": {"pattern": _ID}}]
    group = [{"name": "name", "in": "path", "required": True, "schema": {"pattern": _NAME}}]
    removed = {"type": "object", "properties": {"removed": {"type": "string"}}}
    nodes = {"type": "array", "items": _NODE_STATUS}
    groups = {"type": "array", "items": _GROUP}
    return {
        "/nodes": {
            "get": _op(
                VIEW,
                "PBX nodes, each with whether it is up and its channels in use",
                {"type": "object", "properties": {"nodes": nodes, "global_cap": _CAP}},
                params=[],
            )
        },
        "/nodes/{node_id}": {
            "get": _op(VIEW, "A PBX node", _NODE_STATUS, params=node),
            "put": _op(ADMIN, "Create or replace a PBX node", _NODE, params=node, body=_NODE),
            "delete": _op(
                ADMIN,
                "Remove a PBX node (refused while a trunk group names it)",
                removed,
                params=node,
            ),
        },
        "/trunk-groups": {
            "get": _op(
                VIEW,
                "Trunk groups",
                {"type": "object", "properties": {"trunk_groups": groups}},
                params=[],
            )
        },
        "/trunk-groups/{name}": {
            "get": _op(VIEW, "A trunk group", _GROUP, params=group),
            "put": _op(
                ADMIN,
                "Create or replace a trunk group (its nodes configured, its trunks in no other)",
                _GROUP,
                params=group,
                body=_GROUP,
            ),
            "delete": _op(ADMIN, "Remove a trunk group", removed, params=group),
        },
        "/global-cap": {
            "get": _op(VIEW, "The global cap over every engine and node", _CAP, params=[]),
            "put": _op(ADMIN, "Set the global cap (null: no cap)", _CAP, params=[], body=_CAP),
        },
    }
