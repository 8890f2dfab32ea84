"""PBX nodes, trunk groups and the global cap in Redis, and what a claim is given of them.

Configuration (dialer.domain.nodes, written by the API and the CLI): ``{ns}:nodes`` and
``{ns}:trunkgroups`` (hashes of JSON), ``{ns}:cap`` (JSON). A group may only name configured
nodes, a trunk may be in one group only, and a node that a group names cannot be removed:
each write checks this under WATCH, so two admins cannot break it together.

Liveness: every engine attached to a node marks it up (:meth:`NodeStore.mark_up`, a score in
the zset ``{ns}:n:{node}:up`` = until when, by the Redis clock) while its PBX connection is
up, refreshed well within the TTL, and removes its mark as soon as the connection drops
(:meth:`NodeStore.mark_down`). The node is up while one engine's mark is in the future:
claim.lua checks it in the claim itself, so a node that went down gets no claim at once.

:class:`NodeClaim` is claim.lua's node block for one claim (ARGV[18] and its keys), built by
:class:`NodeRouter` from a snapshot of the configuration that it reads again every few
seconds (never per claim).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from dialer.domain.nodes import GlobalCap, Node, TrunkGroup, check_group, check_node_id, decode
from dialer.domain.statuses import CampaignStatus
from dialer.domain.why import Blocker, BlockerCode, WhyReport, WhySnapshot
from dialer.errors import NotFound, StoreError, ValidationError

from .keys import Keys
from .models import RateWindow

__all__ = [
    "NODE_UP_TTL_MS",
    "NodeClaim",
    "NodeConfig",
    "NodeRouter",
    "NodeStatus",
    "NodeStore",
    "nodes_blocker",
    "with_nodes_blocker",
]

NODE_UP_TTL_MS = 5_000  # a node mark not refreshed this long is down (engine gone or stalled)
_REFRESH_S = 2.0  # NodeRouter reads the configuration again after this long
_RETRIES = 20  # WATCH conflicts before giving up


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _dump(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class NodeClaim:
    """claim.lua's node block: the candidate nodes of one claim, the trunk group's and the
    global caps (None: no cap). ``nodes``: (node id, max channels, cps, check up): a node
    checked up is a candidate only while an engine marks it up."""

    group: str
    nodes: tuple[tuple[str, int | None, float | None, bool], ...]
    group_max_channels: int | None = None
    group_cps: float | None = None
    max_channels: int | None = None
    cps: float | None = None

    def keys(self, k: Keys) -> list[str]:
        """The node block's KEYS, in claim.lua's order."""
        out = [k.global_inflight, k.global_rate, k.group_inflight(self.group)]
        out.append(k.group_rate(self.group))
        for node, *_ in self.nodes:
            out += (k.node_up(node), k.node_inflight(node), k.node_rate(node))
        return out

    def arg(self, first_key: int, margin_ms: int = 0) -> str:
        """claim.lua's ARGV[18], its block's keys starting at KEYS[``first_key``]."""
        g = RateWindow.for_cps(self.group_cps, margin_ms)
        a = RateWindow.for_cps(self.cps, margin_ms)
        nodes = []
        for node, channels, cps, check in self.nodes:
            r = RateWindow.for_cps(cps, margin_ms)
            nodes.append([node, channels or 0, r.limit, r.window_ms, 1 if check else 0])
        spec = {
            "k": first_key,
            "g": self.group,
            "gc": self.group_max_channels or 0,
            "gl": g.limit,
            "gw": g.window_ms,
            "ac": self.max_channels or 0,
            "al": a.limit,
            "aw": a.window_ms,
            "n": nodes,
        }
        return json.dumps(spec, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A snapshot of the configuration."""

    nodes: Mapping[str, Node] = field(default_factory=dict)
    groups: Mapping[str, TrunkGroup] = field(default_factory=dict)
    cap: GlobalCap = GlobalCap()

    def group_of(self, trunk: str) -> TrunkGroup | None:
        """The group that holds ``trunk`` (one at most), or the group named so."""
        for group in self.groups.values():
            if trunk in group.trunks:
                return group
        return None

    def claim_for(self, trunk: str, attached: Sequence[str] = ()) -> NodeClaim | None:
        """The node block of a claim on ``trunk`` by an engine attached to ``attached``.

        A trunk of a group: the group's nodes of that trunk that are configured, enabled and
        attached, all checked up; none leaves the claim nothing (stop ``node``): an engine
        attached to no node of the group (or to none at all) dials none of its trunks, as it
        could not originate on their nodes. A trunk of no
        group (DIALER_TRUNKS, backward compatible) is a group of its own on the engine's own
        node (``attached[0]``): that node's caps and liveness when it is configured, else
        only the global cap (no node block at all without one: as before nodes existed).
        """
        cap = self.cap
        group = self.group_of(trunk)
        if group is not None:
            wanted = tuple(n for n in group.nodes_of(trunk) if n in attached)
            candidates = tuple(
                (n, node.max_channels, node.cps, True)
                for n in wanted
                if (node := self.nodes.get(n)) is not None and node.enabled
            )
            return NodeClaim(
                group.name,
                candidates,
                group.max_channels,
                group.cps,
                cap.max_channels,
                cap.cps,
            )
        own = attached[0] if attached else None
        node = self.nodes.get(own) if own else None
        if own and node is not None:
            entry = () if not node.enabled else ((own, node.max_channels, node.cps, True),)
            return NodeClaim(trunk, entry, None, None, cap.max_channels, cap.cps)
        if cap.max_channels is None and cap.cps is None:
            return None
        entry = ((own or "local", None, None, False),)
        return NodeClaim(trunk, entry, None, None, cap.max_channels, cap.cps)


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A node as ``node list`` and the why view show it."""

    node: Node
    up: bool
    engines: int  # engines whose mark is current
    channels: int  # its leases (calls claimed or up on it)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.node.to_dict(),
            "up": self.up,
            "engines": self.engines,
            "channels": self.channels,
        }


class NodeStore:
    """The nodes, trunk groups and global cap in Redis; the nodes' up marks."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self.keys = keys

    async def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return await fn()
        except (RedisError, OSError) as exc:
            raise StoreError(f"{what}: {exc}") from exc

    # ------------------------------------------------------------------ configuration

    async def config(self) -> NodeConfig:
        """Everything, in one round trip. InvalidSettings if an entry no longer validates."""
        k = self.keys

        async def read() -> list[Any]:
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.hgetall(k.nodes)
                pipe.hgetall(k.trunk_groups)
                pipe.get(k.global_cap)
                return list(await pipe.execute())

        raw_nodes, raw_groups, raw_cap = await self._call("nodes", read)
        nodes = {_s(i): decode(Node, _s(i), v) for i, v in raw_nodes.items()}
        groups = {_s(n): decode(TrunkGroup, _s(n), v) for n, v in raw_groups.items()}
        cap = GlobalCap() if raw_cap is None else GlobalCap.from_dict(json.loads(raw_cap))
        return NodeConfig(dict(sorted(nodes.items())), dict(sorted(groups.items())), cap)

    async def get_node(self, node_id: str) -> Node:
        check_node_id(node_id)
        raw = await self._call("node", lambda: self._r.hget(self.keys.nodes, node_id))
        if raw is None:
            raise NotFound(f"node {node_id} does not exist")
        node: Node = decode(Node, node_id, raw)
        return node

    async def get_group(self, name: str) -> TrunkGroup:
        check_group(name)
        raw = await self._call("trunk group", lambda: self._r.hget(self.keys.trunk_groups, name))
        if raw is None:
            raise NotFound(f"trunk group {name} does not exist")
        group: TrunkGroup = decode(TrunkGroup, name, raw)
        return group

    async def _watched(
        self, what: str, check: Callable[[NodeConfig], Callable[[Any], None]]
    ) -> None:
        """Read the configuration under WATCH, let ``check`` validate it (ValidationError,
        NotFound) and return the writes, run in MULTI; again on a conflicting write."""
        k = self.keys
        for _ in range(_RETRIES):
            try:
                async with self._r.pipeline(transaction=True) as pipe:
                    await pipe.watch(k.nodes, k.trunk_groups)
                    write = check(await self._config_on(pipe))
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                    write(pipe)
                    await pipe.execute()
                    return
            except WatchError:
                continue
            except (RedisError, OSError) as exc:
                raise StoreError(f"{what}: {exc}") from exc
        raise StoreError(f"{what}: the configuration kept changing; try again")

    async def _config_on(self, pipe: Any) -> NodeConfig:
        """:meth:`config` read on a watching pipeline (immediate mode)."""
        k = self.keys
        raw_nodes = await pipe.hgetall(k.nodes)
        raw_groups = await pipe.hgetall(k.trunk_groups)
        nodes = {_s(i): decode(Node, _s(i), v) for i, v in raw_nodes.items()}
        groups = {_s(n): decode(TrunkGroup, _s(n), v) for n, v in raw_groups.items()}
        return NodeConfig(nodes, groups)

    async def put_node(self, node: Node) -> bool:
        """Create or replace ``node``; True if it was created."""
        created = False

        def check(cfg: NodeConfig) -> Callable[[Any], None]:
            nonlocal created
            created = node.id not in cfg.nodes
            return lambda pipe: pipe.hset(self.keys.nodes, node.id, _dump(node.to_dict()))

        await self._watched("put node", check)
        return created

    async def remove_node(self, node_id: str) -> None:
        """NotFound if absent; ValidationError while a trunk group names it."""
        check_node_id(node_id)

        def check(cfg: NodeConfig) -> Callable[[Any], None]:
            if node_id not in cfg.nodes:
                raise NotFound(f"node {node_id} does not exist")
            users = [g.name for g in cfg.groups.values() if node_id in g.nodes]
            if users:
                raise ValidationError(
                    f"node {node_id} is used by trunk group(s) {', '.join(sorted(users))}"
                )
            return lambda pipe: pipe.hdel(self.keys.nodes, node_id)

        await self._watched("remove node", check)

    async def put_group(self, group: TrunkGroup) -> bool:
        """Create or replace ``group``; True if created. ValidationError if it names a node
        that is not configured or a trunk that another group holds."""
        if self.keys.cluster:  # its caps would span slot groups: not one script (README)
            raise ValidationError(
                "trunk groups need single-node Redis (or Sentinel): on Redis Cluster a group's "
                "node, group and global caps cannot be held by one claim script"
            )
        created = False

        def check(cfg: NodeConfig) -> Callable[[Any], None]:
            nonlocal created
            group.check_nodes(cfg.nodes)
            for other in cfg.groups.values():
                shared = sorted(set(other.trunks) & set(group.trunks))
                if other.name != group.name and shared:
                    raise ValidationError(
                        f"trunk group {group.name}: trunk {shared[0]!r} is already in "
                        f"trunk group {other.name}"
                    )
            created = group.name not in cfg.groups
            return lambda pipe: pipe.hset(
                self.keys.trunk_groups, group.name, _dump(group.to_dict())
            )

        await self._watched("put trunk group", check)
        return created

    async def remove_group(self, name: str) -> None:
        check_group(name)
        key = self.keys.trunk_groups
        n = await self._call("remove trunk group", lambda: self._r.hdel(key, name))
        if not n:
            raise NotFound(f"trunk group {name} does not exist")

    async def get_cap(self) -> GlobalCap:
        raw = await self._call("cap", lambda: self._r.get(self.keys.global_cap))
        if raw is None:
            return GlobalCap()
        try:
            return GlobalCap.from_dict(json.loads(raw))
        except (ValueError, TypeError, ValidationError) as exc:
            raise ValidationError(f"invalid settings: global cap: {exc}") from None

    async def put_cap(self, cap: GlobalCap) -> None:
        await self._call("cap", lambda: self._r.set(self.keys.global_cap, _dump(cap.to_dict())))

    # ------------------------------------------------------------------ liveness

    async def mark_up(self, node: str, owner: str, ttl_ms: int = NODE_UP_TTL_MS) -> None:
        """``owner`` sees ``node``'s PBX connected for ``ttl_ms`` more (by the Redis clock)."""
        key = self.keys.node_up(node)

        async def write() -> None:
            sec, usec = await self._r.time()
            now = int(sec) * 1000 + int(usec) // 1000
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.zadd(key, {owner: now + ttl_ms})
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.expire(key, max(1, -(-ttl_ms * 2 // 1000)))  # (EXPIRE: the dialer's ACL)
                await pipe.execute()

        await self._call("node up", write)

    async def mark_down(self, node: str, owner: str) -> None:
        """``owner`` lost ``node``'s PBX: its mark goes now (the node is down unless another
        engine's mark is current)."""
        await self._call("node down", lambda: self._r.zrem(self.keys.node_up(node), owner))

    async def statuses(self, nodes: Iterable[Node]) -> list[NodeStatus]:
        """Each node's liveness and leases, in one round trip."""
        listed = list(nodes)
        k = self.keys

        async def read() -> list[Any]:
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.time()
                for n in listed:
                    pipe.zrange(k.node_up(n.id), 0, -1, withscores=True)
                    pipe.zcard(k.node_inflight(n.id))
                return list(await pipe.execute())

        replies = await self._call("node status", read)
        sec, usec = replies[0]
        now = int(sec) * 1000 + int(usec) // 1000
        out = []
        for i, n in enumerate(listed):
            marks, channels = replies[1 + 2 * i], replies[2 + 2 * i]
            engines = sum(1 for _, until in marks if until > now)
            out.append(NodeStatus(n, engines > 0, engines, int(channels)))
        return out


class NodeRouter:
    """An engine's view of the configuration for its claims: :meth:`claim_for` answers from a
    snapshot read again every ``refresh_s`` (a failed read keeps the last one)."""

    def __init__(
        self,
        store: NodeStore,
        attached: Sequence[str] = (),
        *,
        refresh_s: float = _REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.attached = tuple(attached)
        self._refresh_s = refresh_s
        self._clock = clock
        self._config: NodeConfig | None = None
        self._read_at = 0.0

    async def config(self) -> NodeConfig:
        """The snapshot, read again when stale. StoreError when there is none yet and Redis
        fails, or an entry does not validate (a claim fails then, and is tried again)."""
        if self._config is None or self._clock() - self._read_at >= self._refresh_s:
            try:
                self._config = await self.store.config()
            except (StoreError, ValidationError) as exc:
                if self._config is None:
                    raise StoreError(f"node configuration unreadable: {exc}") from exc
            self._read_at = self._clock()
        return self._config

    async def claim_for(self, trunk: str) -> NodeClaim | None:
        if self.store.keys.cluster:  # no trunk groups on Redis Cluster (put_group)
            return None
        return (await self.config()).claim_for(trunk, self.attached)


def nodes_blocker(cfg: NodeConfig, statuses: Iterable[NodeStatus], trunk: str) -> Blocker | None:
    """PBX unavailable when ``trunk`` is in a group and none of its nodes there is up."""
    group = cfg.group_of(trunk)
    if group is None:
        return None
    seen = {st.node.id: st for st in statuses}
    states = []
    for node_id in group.nodes_of(trunk):
        st = seen.get(node_id)
        if st is not None and st.up and st.node.enabled:
            return None
        what = "not configured" if st is None else "disabled" if not st.node.enabled else "down"
        states.append(f"{node_id} {what}")
    return Blocker(
        BlockerCode.PBX_UNAVAILABLE,
        f"no PBX node of trunk {trunk} (trunk group {group.name}) is up ({', '.join(states)}): "
        "claims resume by themselves when one is back",
    )


async def with_nodes_blocker(store: NodeStore, s: WhySnapshot, report: WhyReport) -> WhyReport:
    """``report`` with :func:`nodes_blocker` of a Running campaign's trunk (the why view)."""
    if s.status is not CampaignStatus.RUNNING or s.settings is None:
        return report
    if any(b.code is BlockerCode.PBX_UNAVAILABLE for b in report.blockers):
        return report
    cfg = await store.config()
    trunk = s.settings.trunk
    group = cfg.group_of(trunk)
    if group is None:
        return report
    listed = [cfg.nodes[n] for n in group.nodes_of(trunk) if n in cfg.nodes]
    blocker = nodes_blocker(cfg, await store.statuses(listed), trunk)
    if blocker is None:
        return report
    blockers = (blocker, *report.blockers)
    summary = "not dialing: " + "; ".join(b.message for b in blockers)
    return replace(report, dialing=False, summary=summary, blockers=blockers)
