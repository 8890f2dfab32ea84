"""``dialer node ...`` and ``dialer trunkgroup ...`` over the HTTP API: the methods of
:class:`dialer.commands.NodeCommands` the CLI calls (reading needs the viewer role, changing
the administrator role).

The API replaces a node, a group or the cap whole (PUT); ``set`` with ``merge`` reads the
stored one first and sends it with the options given changed, as the local mode does in one
step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dialer.domain.nodes import GlobalCap, Node, TrunkGroup
from dialer.errors import NotFound, ValidationError
from dialer.store.nodes import NodeStatus

if TYPE_CHECKING:
    from .remote import ApiClient

__all__ = ["RemoteNodes"]

_STATUS_FIELDS = ("up", "engines", "channels")


def _status(d: Mapping[str, Any]) -> NodeStatus:
    node = Node.from_dict({k: v for k, v in d.items() if k not in _STATUS_FIELDS})
    return NodeStatus(node, bool(d["up"]), int(d["engines"]), int(d["channels"]))


class RemoteNodes:
    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def _stored(self, path: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self.client.call("GET", path)
        except NotFound:
            return None
        return found

    async def statuses(self) -> tuple[list[NodeStatus], GlobalCap]:
        reply = await self.client.call("GET", "/nodes")
        return [_status(n) for n in reply["nodes"]], GlobalCap.from_dict(reply["global_cap"])

    async def status(self, node: Node) -> NodeStatus:
        return _status(await self.client.call("GET", f"/nodes/{node.id}"))

    async def set_node(
        self, node_id: str, fields: Mapping[str, object], *, merge: bool = False
    ) -> tuple[Node, bool]:
        path = f"/nodes/{node_id}"
        stored = await self._stored(path) if merge else None
        base = {} if stored is None else _status(stored).node.to_dict()
        body = {k: v for k, v in {**base, **fields}.items() if k != "id"}
        code, reply = await self.client.request("PUT", path, body=body)
        return Node.from_dict(reply), code == 201

    async def remove_node(self, node_id: str) -> None:
        await self.client.call("DELETE", f"/nodes/{node_id}")

    async def groups(self) -> list[TrunkGroup]:
        reply = await self.client.call("GET", "/trunk-groups")
        return [TrunkGroup.from_dict(g) for g in reply["trunk_groups"]]

    async def set_group(
        self, name: str, fields: Mapping[str, object], *, merge: bool = False
    ) -> tuple[TrunkGroup, bool]:
        path = f"/trunk-groups/{name}"
        stored = await self._stored(path) if merge else None
        if merge and stored is None and "trunks" not in fields:
            raise ValidationError(
                f"trunk group {name} is new: give its trunks (--trunk TRUNK=NODE,...)"
            )
        body = {k: v for k, v in {**(stored or {}), **fields}.items() if k != "name"}
        code, reply = await self.client.request("PUT", path, body=body)
        return TrunkGroup.from_dict(reply), code == 201

    async def remove_group(self, name: str) -> None:
        await self.client.call("DELETE", f"/trunk-groups/{name}")

    async def get_cap(self) -> GlobalCap:
        return GlobalCap.from_dict(await self.client.call("GET", "/global-cap"))

    async def set_cap(self, fields: Mapping[str, object], *, merge: bool = False) -> GlobalCap:
        base = (await self.get_cap()).to_dict() if merge else {}
        reply = await self.client.call("PUT", "/global-cap", body={**base, **fields})
        return GlobalCap.from_dict(reply)
