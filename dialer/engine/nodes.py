"""The PBX nodes an engine is attached to: node name -> adapter, and what it knows of each.

Every call carries its node (the PBX it was dialed on: dialer.config's ``node``, kept in the
call's hash by claim.lua). An engine originates, hangs up, adopts and reconciles a call only
through its own node's adapter, and leaves the calls of the nodes it is not attached to alone:
their own engines follow them, or, once their leases expire, an engine attached to that node
adopts them. A call recorded before nodes were kept (no node) belongs to any node.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from dialer.pbx.base import PbxAdapter


class Nodes:
    def __init__(self, adapters: Mapping[str, PbxAdapter]) -> None:
        if not adapters:
            raise ValueError("an engine needs at least one PBX node")
        self._adapters = dict(adapters)
        self._turn = 0
        # PBX connections so far (all nodes): a runner claims only after a reconciliation of
        # its campaign that began on the current connections (LeaseKeeper.reconcile)
        self.epoch = 0
        self.lost_at: dict[str, float] = {}  # node -> when its connection dropped

    def __iter__(self) -> Iterator[str]:
        return iter(self._adapters)

    def __len__(self) -> int:
        return len(self._adapters)

    def __contains__(self, node: object) -> bool:
        return node in self._adapters

    def items(self) -> list[tuple[str, PbxAdapter]]:
        return list(self._adapters.items())

    @property
    def first(self) -> PbxAdapter:
        return next(iter(self._adapters.values()))

    def adapter(self, node: str) -> PbxAdapter:
        """The adapter of ``node``; the only one when the engine has one and the call has no
        node (recorded before nodes were kept). KeyError for a node not attached here."""
        if not node and len(self._adapters) == 1:
            return self.first
        return self._adapters[node]

    def ours(self, node: str) -> list[str]:
        """The nodes of this engine a call of ``node`` may be on: its own when attached here,
        none when it is another node's, every one when it has none (a call recorded before
        nodes were kept is taken as any node's: backward compatible)."""
        if not node:
            return list(self._adapters)
        return [node] if node in self._adapters else []

    @property
    def connected(self) -> bool:
        return any(a is not None and a.connected for a in self._adapters.values())

    def node_to_dial(self) -> str | None:
        """A connected node to originate the next claim on (in turn), None when none is."""
        names = list(self._adapters)
        for i in range(len(names)):
            name = names[(self._turn + i) % len(names)]
            adapter = self._adapters[name]
            if adapter is not None and adapter.connected:
                self._turn = (self._turn + i + 1) % len(names)
                return name
        return None
