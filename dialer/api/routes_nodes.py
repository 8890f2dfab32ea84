"""PBX nodes, trunk groups and the global cap: list, read, set (PUT) and remove.

Reading needs the viewer role, changing the administrator role. The rules live in
:mod:`dialer.domain.nodes` and :mod:`dialer.store.nodes`, the commands in
:mod:`dialer.commands.nodes`; this module parses and renders, and
holds its rows for the endpoint table (:func:`routes`, app.py): their specs are its request
and reply models, from which the OpenAPI document and the validation both follow.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.domain.nodes import MAX_CHANNELS, MAX_CPS, NodeKind

from .auth import Role
from .context import ApiContext, Handler
from .params import _integral
from .spec import Spec, body_of

__all__ = ["routes"]


def _param(request: Request, name: str) -> str:
    value = request.path_params[name]
    assert isinstance(value, str)
    return value


async def list_nodes(ctx: ApiContext, request: Request) -> Response:
    """Every node with whether it is up (an engine sees its PBX) and its channels in use."""
    statuses, cap = await ctx.nodes.statuses()
    return JSONResponse({"nodes": [s.to_dict() for s in statuses], "global_cap": cap.to_dict()})


async def get_node(ctx: ApiContext, request: Request) -> Response:
    return JSONResponse((await ctx.nodes.get_node(_param(request, "node_id"))).to_dict())


async def put_node(ctx: ApiContext, request: Request) -> Response:
    """Create or replace a node (201 when created)."""
    body = body_of(request, NodeBody).model_dump(mode="json", exclude_unset=True)
    node, created = await ctx.nodes.set_node(_param(request, "node_id"), body)
    return JSONResponse(node.to_dict(), status_code=201 if created else 200)


async def delete_node(ctx: ApiContext, request: Request) -> Response:
    """Remove a node; refused (422) while a trunk group names it."""
    node_id = _param(request, "node_id")
    await ctx.nodes.remove_node(node_id)
    return JSONResponse({"removed": node_id})


async def list_groups(ctx: ApiContext, request: Request) -> Response:
    groups = await ctx.nodes.groups()
    return JSONResponse({"trunk_groups": [g.to_dict() for g in groups]})


async def get_group(ctx: ApiContext, request: Request) -> Response:
    group = await ctx.nodes.get_group(_param(request, "name"))
    return JSONResponse(group.to_dict())


async def put_group(ctx: ApiContext, request: Request) -> Response:
    """Create or replace a trunk group: its nodes must exist, its trunks be in no other group."""
    body = body_of(request, GroupBody).model_dump(mode="json", exclude_unset=True)
    group, created = await ctx.nodes.set_group(_param(request, "name"), body)
    return JSONResponse(group.to_dict(), status_code=201 if created else 200)


async def delete_group(ctx: ApiContext, request: Request) -> Response:
    name = _param(request, "name")
    await ctx.nodes.remove_group(name)
    return JSONResponse({"removed": name})


async def get_cap(ctx: ApiContext, request: Request) -> Response:
    return JSONResponse((await ctx.nodes.get_cap()).to_dict())


async def put_cap(ctx: ApiContext, request: Request) -> Response:
    """The global cap over every engine and node (null: no cap on that axis)."""
    cap = await ctx.nodes.set_cap(
        body_of(request, CapBody).model_dump(mode="json", exclude_unset=True)
    )
    return JSONResponse(cap.to_dict())


# -- request and reply models (the schema and the validation: dialer.api.spec) -----------------

_ID_RE = r"[a-z0-9][a-z0-9._-]{0,62}"  # dialer.domain.nodes: a node id
_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"  # a trunk group's or a trunk's name
_ID = f"^{_ID_RE}$"


class _Text(Convertor[str]):
    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class NodeIdConvertor(_Text):
    regex = _ID_RE


class GroupNameConvertor(_Text):
    regex = _NAME_RE


# a path whose id or name cannot exist is no route: 404, as for one that does not exist
register_url_convertor("node_id", NodeIdConvertor())
register_url_convertor("group_name", GroupNameConvertor())
_Channels = Annotated[int, Field(ge=1, le=MAX_CHANNELS), BeforeValidator(_integral)] | None
_Cps = Annotated[float, Field(gt=0, le=MAX_CPS)] | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NodeBody(_Body):
    kind: Annotated[NodeKind, Strict(False)] = NodeKind.ASTERISK
    max_channels: _Channels = None
    cps: _Cps = None
    enabled: bool = True


class GroupBody(_Body):
    trunks: dict[
        Annotated[str, Field(pattern=f"^{_NAME_RE}$")],  # a trunk name
        Annotated[list[Annotated[str, Field(pattern=_ID)]], Field(min_length=1)],
    ] = Field(min_length=1, description="trunk name -> the node ids it is reachable through")
    backup: str | None = None
    max_channels: _Channels = None
    cps: _Cps = None


class CapBody(_Body):
    max_channels: _Channels = None
    cps: _Cps = None


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class NodeView(_Reply):
    id: str
    kind: str
    max_channels: int | None = None
    cps: float | None = None
    enabled: bool = True


class NodeStatusView(NodeView):
    up: bool
    engines: int
    channels: int


class CapView(_Reply):
    max_channels: int | None = None
    cps: float | None = None


class NodesView(_Reply):
    nodes: list[NodeStatusView]
    global_cap: CapView


class GroupView(_Reply):
    name: str
    trunks: dict[str, list[str]]
    backup: str | None = None
    max_channels: int | None = None
    cps: float | None = None


class GroupsView(_Reply):
    trunk_groups: list[GroupView]


class Removed(_Reply):
    removed: str


NODE = "/nodes/{node_id:node_id}"
GROUP = "/trunk-groups/{name:group_name}"
VIEW, ADMIN = Role.VIEWER, Role.ADMINISTRATOR


def routes() -> list[tuple[str, str, Role, Handler, str, Spec]]:
    """The rows of app.py's endpoint table: method, path, least role, handler, action, spec."""
    created = {201: NodeView}
    return [
        ("GET", "/nodes", VIEW, list_nodes, "list PBX nodes",
         Spec("PBX nodes, each with whether it is up and its channels in use", NodesView)),
        ("GET", NODE, VIEW, get_node, "read a PBX node", Spec("A PBX node", NodeStatusView)),
        ("PUT", NODE, ADMIN, put_node, "set a PBX node",
         Spec("Create (201) or replace a PBX node", NodeView, body=NodeBody, other=created)),
        ("DELETE", NODE, ADMIN, delete_node, "remove a PBX node",
         Spec("Remove a PBX node (refused while a trunk group names it)", Removed)),
        ("GET", "/trunk-groups", VIEW, list_groups, "list trunk groups",
         Spec("Trunk groups", GroupsView)),
        ("GET", GROUP, VIEW, get_group, "read a trunk group", Spec("A trunk group", GroupView)),
        ("PUT", GROUP, ADMIN, put_group, "set a trunk group",
         Spec("Create (201) or replace a trunk group: its nodes configured, its trunks in no "
              "other group", GroupView, body=GroupBody, other={201: GroupView})),
        ("DELETE", GROUP, ADMIN, delete_group, "remove a trunk group",
         Spec("Remove a trunk group", Removed)),
        ("GET", "/global-cap", VIEW, get_cap, "read the global cap",
         Spec("The global cap over every engine and node", CapView)),
        ("PUT", "/global-cap", ADMIN, put_cap, "set the global cap",
         Spec("Set the global cap (null: no cap on that axis)", CapView, body=CapBody)),
    ]  # fmt: skip
