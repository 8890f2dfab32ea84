"""PBX nodes, trunk groups and the global cap: set (whole, or only the fields given) and remove.

The API's PUT replaces a node or a group whole; ``dialer node set`` changes only the options
given and keeps the rest. Both are :meth:`NodeCommands.set_node` (``merge``), so the rules (a
group's nodes configured, a trunk in one group, the ranges of the caps) are the domain's and
the store's, checked once.
"""

from __future__ import annotations

from collections.abc import Mapping

from dialer.domain.nodes import GlobalCap, Node, TrunkGroup
from dialer.errors import NotFound, ValidationError
from dialer.store.nodes import NodeStatus, NodeStore
from dialer.store.redis_store import RedisStore

__all__ = ["NodeCommands"]


class NodeCommands:
    def __init__(self, store: RedisStore) -> None:
        self.nodes = NodeStore(store.client, store.keys)

    async def statuses(self) -> tuple[list[NodeStatus], GlobalCap]:
        """Every node with whether it is up and its channels in use; the global cap."""
        cfg = await self.nodes.config()
        return await self.nodes.statuses(cfg.nodes.values()), cfg.cap

    async def status(self, node: Node) -> NodeStatus:
        (status,) = await self.nodes.statuses([node])
        return status

    async def get_node(self, node_id: str) -> NodeStatus:
        return await self.status(await self.nodes.get_node(node_id))

    async def set_node(
        self, node_id: str, fields: Mapping[str, object], *, merge: bool = False
    ) -> tuple[Node, bool]:
        """Create or replace a node: (the node, whether it was created). ``merge``: the
        fields given change the stored node, the others stay."""
        base: Mapping[str, object] = {}
        if merge:
            try:
                base = (await self.nodes.get_node(node_id)).to_dict()
            except NotFound:
                pass
        node = Node.from_dict({**base, **fields}, node_id)
        return node, await self.nodes.put_node(node)

    async def remove_node(self, node_id: str) -> None:
        await self.nodes.remove_node(node_id)

    async def groups(self) -> list[TrunkGroup]:
        return list((await self.nodes.config()).groups.values())

    async def get_group(self, name: str) -> TrunkGroup:
        return await self.nodes.get_group(name)

    async def set_group(
        self, name: str, fields: Mapping[str, object], *, merge: bool = False
    ) -> tuple[TrunkGroup, bool]:
        """Create or replace a trunk group: (the group, whether it was created). ``merge``:
        the fields given change the stored group; a new group needs its trunks."""
        base: Mapping[str, object] = {}
        if merge:
            try:
                base = (await self.nodes.get_group(name)).to_dict()
            except NotFound:
                if "trunks" not in fields:
                    raise ValidationError(
                        f"trunk group {name} is new: give its trunks (--trunk TRUNK=NODE,...)"
                    ) from None
        group = TrunkGroup.from_dict({**base, **fields}, name)
        return group, await self.nodes.put_group(group)

    async def remove_group(self, name: str) -> None:
        await self.nodes.remove_group(name)

    async def get_cap(self) -> GlobalCap:
        return await self.nodes.get_cap()

    async def set_cap(self, fields: Mapping[str, object], *, merge: bool = False) -> GlobalCap:
        """Set the global cap (None: no cap on that axis); ``merge``: keep the axes not given."""
        base = (await self.nodes.get_cap()).to_dict() if merge else {}
        cap = GlobalCap.from_dict({**base, **fields})
        await self.nodes.put_cap(cap)
        return cap
