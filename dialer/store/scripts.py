"""The Lua scripts (package data, one file per operation), registered once per client.

Each script is called through a redis-py ``AsyncScript``: EVALSHA, and on NOSCRIPT (a restarted
or flushed server) SCRIPT LOAD then EVALSHA again. The KEYS / ARGV / return contract of each
script is documented in the header of its ``.lua`` file.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

SCRIPT_NAMES = (
    "active",
    "adopt",
    "add_contacts",
    "breaker_report",
    "breaker_switch",
    "claim",
    "finish",
    "mark_undialed",
    "originated",
    "reap",
    "recycle_commit",
    "recycle_stage",
    "release",
    "remove_contacts",
    "renew",
    "stats",
    "transition",
    "update_settings",
)


def load_source(name: str) -> str:
    """The text of ``lua/<name>.lua`` shipped with the package."""
    if name not in SCRIPT_NAMES:
        raise ValueError(f"unknown script {name!r}")
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")


@dataclass(frozen=True, slots=True)
class Scripts:
    """One ``AsyncScript`` per operation, bound to a client."""

    active: AsyncScript
    adopt: AsyncScript
    add_contacts: AsyncScript
    breaker_report: AsyncScript
    breaker_switch: AsyncScript
    claim: AsyncScript
    finish: AsyncScript
    mark_undialed: AsyncScript
    originated: AsyncScript
    reap: AsyncScript
    recycle_commit: AsyncScript
    recycle_stage: AsyncScript
    release: AsyncScript
    remove_contacts: AsyncScript
    renew: AsyncScript
    stats: AsyncScript
    transition: AsyncScript
    update_settings: AsyncScript

    async def load(self, client: aioredis.Redis) -> None:
        """SCRIPT LOAD every script (after a restarted or flushed server lost them)."""
        for name in SCRIPT_NAMES:
            script: AsyncScript = getattr(self, name)
            script.sha = await client.script_load(script.script)

    @classmethod
    def register(cls, client: aioredis.Redis) -> Scripts:
        loaded: dict[str, Any] = {
            name: client.register_script(load_source(name)) for name in SCRIPT_NAMES
        }
        return cls(**loaded)
