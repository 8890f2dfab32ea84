"""``dialer node list|set|remove|cap`` and ``dialer trunkgroup list|set|remove``: the PBX
nodes, trunk groups and global cap in Redis (dialer.domain.nodes, dialer.store.nodes).

``set`` creates, or changes only the options given (``--max-channels unlimited`` lifts a cap).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from dialer.domain.nodes import GlobalCap, NodeKind, TrunkGroup
from dialer.store.nodes import NodeStatus

from .common import Session, out, with_store

_UNSET = object()  # an option not given: keep the stored value
UNLIMITED = "unlimited"


def _limit(text: str) -> Any:
    """argparse type: a number, or ``unlimited`` (None); the domain checks the range."""
    if text == UNLIMITED:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        hint = f"a number or {UNLIMITED!r} expected, got {text!r}"
        raise argparse.ArgumentTypeError(hint) from None


def _trunk_nodes(text: str) -> tuple[str, list[str]]:
    """argparse type: ``TRUNK=NODE[,NODE...]``."""
    trunk, sep, nodes = text.partition("=")
    if not sep or not trunk or not nodes:
        raise argparse.ArgumentTypeError(f"TRUNK=NODE[,NODE...] expected, got {text!r}")
    return trunk, [n.strip() for n in nodes.split(",")]


def _cap(value: object) -> str:
    return UNLIMITED if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def node_line(s: NodeStatus) -> str:
    n = s.node
    state = "up" if s.up else "down"
    if not n.enabled:
        state += ", disabled"
    return (
        f"{n.id}: {n.kind.value}, {state}, channels {s.channels}/{_cap(n.max_channels)}, "
        f"cps {_cap(n.cps)} ({s.engines} engine(s) see it)"
    )


def group_line(g: TrunkGroup) -> str:
    trunks = "; ".join(f"{t} via {', '.join(nodes)}" for t, nodes in g.trunks.items())
    backup = f", backup {g.backup}" if g.backup else ""
    return f"{g.name}: {trunks}{backup}; channels {_cap(g.max_channels)}, cps {_cap(g.cps)}"


def _given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options given on the command line (the others keep their stored values)."""
    return {n: getattr(args, n) for n in names if getattr(args, n) is not _UNSET}


async def _node_list(args: argparse.Namespace, s: Session) -> int:
    statuses, cap = await s.nodes.statuses()
    if args.json:
        data = {"nodes": [x.to_dict() for x in statuses], "global_cap": cap.to_dict()}
        out(json.dumps(data, indent=2))
        return 0
    for status in statuses:
        out(node_line(status))
    out(cap_line(cap))
    return 0


def cap_line(cap: GlobalCap) -> str:
    return f"global cap: channels {_cap(cap.max_channels)}, cps {_cap(cap.cps)}"


async def _node_set(args: argparse.Namespace, s: Session) -> int:
    fields = _given(args, "kind", "max_channels", "cps", "enabled")
    node, created = await s.nodes.set_node(args.id, fields, merge=True)
    out(("created " if created else "updated ") + node_line(await s.nodes.status(node)))
    return 0


async def _node_remove(args: argparse.Namespace, s: Session) -> int:
    await s.nodes.remove_node(args.id)
    out(f"{args.id}: removed")
    return 0


async def _node_cap(args: argparse.Namespace, s: Session) -> int:
    fields = _given(args, "max_channels", "cps")
    cap = await (s.nodes.set_cap(fields, merge=True) if fields else s.nodes.get_cap())
    out(cap_line(cap))
    return 0


async def _group_list(args: argparse.Namespace, s: Session) -> int:
    groups = await s.nodes.groups()
    if args.json:
        out(json.dumps({"trunk_groups": [g.to_dict() for g in groups]}, indent=2))
        return 0
    for group in groups:
        out(group_line(group))
    return 0


async def _group_set(args: argparse.Namespace, s: Session) -> int:
    fields = _given(args, "backup", "max_channels", "cps")
    if args.trunk:
        fields["trunks"] = dict(args.trunk)
    if "backup" in fields:
        fields["backup"] = fields["backup"] or None
    group, created = await s.nodes.set_group(args.name, fields, merge=True)
    out(("created " if created else "updated ") + group_line(group))
    return 0


async def _group_remove(args: argparse.Namespace, s: Session) -> int:
    await s.nodes.remove_group(args.name)
    out(f"{args.name}: removed")
    return 0


def _limits(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-channels", type=_limit, default=_UNSET, metavar="N", help="channels, or unlimited"
    )
    p.add_argument("--cps", type=_limit, default=_UNSET, metavar="X", help="cps, or unlimited")


def _leaf(cmds: Any, name: str, common: argparse.ArgumentParser, text: str) -> Any:
    return cmds.add_parser(name, parents=[common], help=text, description=text + ".")


def _group(sub: Any, common: argparse.ArgumentParser, name: str, text: str, about: str) -> Any:
    """A command group (``node``, ``trunkgroup``) with its ``list [--json]`` subcommand."""
    group = sub.add_parser(name, parents=[common], help=text, description=about)
    return group.add_subparsers(dest="action", metavar="ACTION", required=True)


def _listing(cmds: Any, common: argparse.ArgumentParser, text: str, fn: Any) -> None:
    p = _leaf(cmds, "list", common, text)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=with_store(fn))


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cmds = _group(
        sub,
        common,
        "node",
        "PBX nodes and the global cap (list, set, remove, cap)",
        "PBX nodes (Asterisk or FreeSWITCH), each with its channel and CPS caps; "
        "engines attached to a node mark it up while they see its PBX.",
    )
    _listing(cmds, common, "list nodes (up or down, channels)", _node_list)
    p = _leaf(cmds, "set", common, "create a node or change its options")
    p.add_argument("id", metavar="ID", help="node id (lowercase letters, digits, . _ -)")
    p.add_argument(
        "--kind",
        choices=[k.value for k in NodeKind],
        default=_UNSET,
        help="the PBX (default asterisk)",
    )
    _limits(p)
    on = p.add_mutually_exclusive_group()
    on.add_argument(
        "--enable",
        dest="enabled",
        action="store_const",
        const=True,
        default=_UNSET,
        help="give it claims again",
    )
    on.add_argument(
        "--disable",
        dest="enabled",
        action="store_const",
        const=False,
        help="give it no claims (maintenance)",
    )
    p.set_defaults(func=with_store(_node_set))
    p = _leaf(cmds, "remove", common, "remove a node (no group may name it)")
    p.add_argument("id", metavar="ID", help="node id")
    p.set_defaults(func=with_store(_node_remove))
    p = _leaf(cmds, "cap", common, "show or set the global cap")
    _limits(p)
    p.set_defaults(func=with_store(_node_cap))

    cmds = _group(
        sub,
        common,
        "trunkgroup",
        "trunk groups (list, set, remove)",
        "A trunk group names trunks and the nodes each is reachable through, an "
        "optional backup trunk, and caps over the whole group.",
    )
    _listing(cmds, common, "list trunk groups", _group_list)
    p = _leaf(cmds, "set", common, "create a group or change its options")
    p.add_argument("name", metavar="NAME", help="trunk group name")
    p.add_argument(
        "--trunk",
        type=_trunk_nodes,
        action="append",
        metavar="TRUNK=NODE[,NODE]",
        help="a trunk and the nodes it is reachable through (repeat; replaces the trunks)",
    )
    p.add_argument("--backup", default=_UNSET, metavar="TRUNK", help="backup trunk ('' none)")
    _limits(p)
    p.set_defaults(func=with_store(_group_set))
    p = _leaf(cmds, "remove", common, "remove a trunk group")
    p.add_argument("name", metavar="NAME", help="trunk group name")
    p.set_defaults(func=with_store(_group_remove))
