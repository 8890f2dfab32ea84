"""PBX nodes, trunk groups and the global cap: the configuration several engines share.

A :class:`Node` is one PBX (Asterisk or FreeSWITCH) with its own channel and CPS caps. A
:class:`TrunkGroup` names the trunks a campaign dials through and the nodes each trunk is
reachable on (trunk ``carrier-a`` through nodes ``n1`` and ``n2``), an optional backup trunk,
and group-wide caps. :class:`GlobalCap` caps everything together. A cap of ``None`` is no cap
on that axis; a number is a whole number of channels from 1 to 100,000 or a rate above 0 and
up to 10,000 calls per second (the campaigns' and DIALER_TRUNKS' ceilings). Every id is
checked here, so what Redis holds (dialer.store.nodes) was valid when written; an invalid
entry read back is an :class:`~dialer.errors.InvalidSettings`.

An environment trunk (DIALER_TRUNKS) is a group of its own name holding that trunk on the
engine's node: :func:`env_group`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dialer.domain.retry import check_int, check_number
from dialer.errors import InvalidSettings, ValidationError

__all__ = [
    "MAX_CHANNELS",
    "MAX_CPS",
    "GlobalCap",
    "Node",
    "NodeKind",
    "TrunkGroup",
    "check_group",
    "check_node_id",
    "decode",
    "env_group",
]

MAX_CHANNELS, MAX_CPS = 100_000, 10_000  # as a campaign's and a DIALER_TRUNKS trunk's
_NODE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")  # as EngineSettings.node / DIALER_NODE
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")  # as a trunk name (DIALER_TRUNKS)


class NodeKind(StrEnum):
    ASTERISK = "asterisk"
    FREESWITCH = "freeswitch"


def _match(value: object, what: str, pattern: re.Pattern[str], hint: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationError(f"{what} must be {hint}, got {value!r}")
    return value


def check_node_id(value: object, what: str = "node id") -> str:
    """A node id: 1-63 lowercase letters, digits, '.', '_', '-' (first a letter or digit)."""
    return _match(value, what, _NODE, "1-63 lowercase letters, digits, '.', '_', '-'")


def check_group(value: object, what: str = "trunk group name") -> str:
    """A trunk group (or trunk) name: letters, digits, '_', '.', '-' (at most 64)."""
    return _match(value, what, _NAME, "1-64 letters, digits, '_', '.', '-'")


def _channels(value: object, what: str) -> int | None:
    if value is None:
        return None
    return check_int(value, what, minimum=1, maximum=MAX_CHANNELS)


def _cps(value: object, what: str) -> float | None:
    if value is None:
        return None
    return check_number(value, what, minimum=0, exclusive=True, maximum=MAX_CPS)


def _fields(data: object, what: str, known: Iterable[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationError(f"{what} must be an object, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(known))
    if unknown:
        raise ValidationError(f"{what}: unknown field(s) {', '.join(unknown)}")
    return data


def _named(
    data: object, what: str, known: Iterable[str], key: str, value: str | None
) -> dict[str, Any]:
    """:func:`_fields` of a node or a trunk group whose ``key`` (its id, its name) the path
    gives as ``value`` (None: the body must hold it): a body naming another is refused."""
    d = dict(_fields(data, what, known))
    if value is not None:
        if key in d and d[key] != value:
            raise ValidationError(f"{what} {key} {d[key]!r} differs from {value!r}")
        d[key] = value
    if key not in d:
        raise ValidationError(f"{what}: {key} is required")
    return d


@dataclass(frozen=True, slots=True)
class Node:
    """One PBX. ``enabled`` False: configured but given no claims (maintenance)."""

    id: str
    kind: NodeKind = NodeKind.ASTERISK
    max_channels: int | None = None
    cps: float | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        check_node_id(self.id)
        try:
            object.__setattr__(self, "kind", NodeKind(self.kind))
        except ValueError:
            kinds = ", ".join(k.value for k in NodeKind)
            raise ValidationError(f"node kind must be one of {kinds}, got {self.kind!r}") from None
        object.__setattr__(self, "max_channels", _channels(self.max_channels, "max_channels"))
        object.__setattr__(self, "cps", _cps(self.cps, "cps"))
        if not isinstance(self.enabled, bool):
            raise ValidationError(f"enabled must be true or false, got {self.enabled!r}")

    _FIELDS = ("id", "kind", "max_channels", "cps", "enabled")

    @classmethod
    def from_dict(cls, data: object, node_id: str | None = None) -> Node:
        """From JSON (the API's body, Redis's value); ``node_id`` overrides/sets ``id``."""
        return cls(**_named(data, "node", cls._FIELDS, "id", node_id))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "max_channels": self.max_channels,
            "cps": self.cps,
            "enabled": self.enabled,
        }


@dataclass(frozen=True, slots=True)
class TrunkGroup:
    """Trunks reachable through nodes, capped together.

    ``trunks``: trunk name -> the node ids it is reachable through (in order of preference
    only for ties: a claim spreads over the least loaded). ``backup``: a trunk of the group
    used while the others' breakers refuse (it must be one of ``trunks``).
    """

    name: str
    trunks: Mapping[str, tuple[str, ...]]
    backup: str | None = None
    max_channels: int | None = None
    cps: float | None = None

    def __post_init__(self) -> None:
        check_group(self.name)
        if not isinstance(self.trunks, Mapping) or not self.trunks:
            raise ValidationError(f"trunk group {self.name}: trunks must name at least one trunk")
        trunks: dict[str, tuple[str, ...]] = {}
        for trunk, nodes in self.trunks.items():
            check_group(trunk, "trunk name")
            if isinstance(nodes, str) or not isinstance(nodes, Iterable):
                raise ValidationError(f"trunk {trunk}: nodes must be a list of node ids")
            ids = tuple(check_node_id(n, f"trunk {trunk}: node id") for n in nodes)
            if not ids:
                raise ValidationError(f"trunk {trunk}: needs at least one node")
            if len(set(ids)) != len(ids):
                raise ValidationError(f"trunk {trunk}: a node is listed twice")
            trunks[trunk] = ids
        object.__setattr__(self, "trunks", trunks)
        if self.backup is not None and self.backup not in trunks:
            raise ValidationError(
                f"trunk group {self.name}: backup {self.backup!r} is not one of its trunks"
            )
        object.__setattr__(self, "max_channels", _channels(self.max_channels, "max_channels"))
        object.__setattr__(self, "cps", _cps(self.cps, "cps"))

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node of the group, each once, in order of first mention."""
        return tuple(dict.fromkeys(n for ids in self.trunks.values() for n in ids))

    def nodes_of(self, trunk: str) -> tuple[str, ...]:
        return self.trunks.get(trunk, ())

    def check_nodes(self, known: Iterable[str]) -> None:
        """ValidationError naming the first node of the group that is not configured."""
        have = set(known)
        for n in self.nodes:
            if n not in have:
                raise ValidationError(f"trunk group {self.name}: unknown node {n!r}")

    _FIELDS = ("name", "trunks", "backup", "max_channels", "cps")

    @classmethod
    def from_dict(cls, data: object, name: str | None = None) -> TrunkGroup:
        d = _named(data, "trunk group", cls._FIELDS, "name", name)
        if "trunks" not in d:
            raise ValidationError("trunk group: trunks is required")
        trunks = d["trunks"]
        if not isinstance(trunks, Mapping):
            raise ValidationError("trunk group: trunks must be an object {trunk: [node, ...]}")
        d["trunks"] = {str(t): n for t, n in trunks.items()}
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trunks": {t: list(n) for t, n in self.trunks.items()},
            "backup": self.backup,
            "max_channels": self.max_channels,
            "cps": self.cps,
        }


@dataclass(frozen=True, slots=True)
class GlobalCap:
    """Channels and calls per second over every campaign, trunk and node."""

    max_channels: int | None = None
    cps: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_channels", _channels(self.max_channels, "max_channels"))
        object.__setattr__(self, "cps", _cps(self.cps, "cps"))

    @classmethod
    def from_dict(cls, data: object) -> GlobalCap:
        return cls(**_fields(data, "global cap", ("max_channels", "cps")))

    def to_dict(self) -> dict[str, Any]:
        return {"max_channels": self.max_channels, "cps": self.cps}


def env_group(trunk: str, node: str) -> TrunkGroup:
    """A DIALER_TRUNKS trunk as a group: itself, on the engine's own node, no group cap (its
    DIALER_TRUNKS limits stay the trunk's own caps)."""
    return TrunkGroup(trunk, {trunk: (node,)})


def decode(kind: type[Node] | type[TrunkGroup], key: str, raw: str | bytes) -> Any:
    """A stored entry read back; InvalidSettings if it no longer validates."""
    try:
        return kind.from_dict(json.loads(raw))
    except (ValueError, TypeError, ValidationError) as exc:
        raise InvalidSettings(f"invalid settings: {kind.__name__} {key}: {exc}") from None
