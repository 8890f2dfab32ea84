"""``dialer dnc ...`` and ``dialer trunk ...`` over the HTTP API: the methods of
:class:`dialer.commands.DncCommands` and :class:`dialer.commands.TrunkCommands` the CLI calls
(checking and reading need the viewer role, adding and importing the operator role, removing
and resetting a breaker the administrator role).

An import sends the file as it is; the server checks every line and names the bad ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO

from dialer.commands.dnc import MAX_NUMBERS, Checked, Listed
from dialer.errors import ValidationError
from dialer.store.breaker import BreakerView

if TYPE_CHECKING:
    from .remote import ApiClient

__all__ = ["RemoteDnc", "RemoteTrunks"]


def _path(campaign: int | None, verb: str = "") -> str:
    return ("/dnc" if campaign is None else f"/campaigns/{campaign}/dnc") + verb


class RemoteDnc:
    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def _numbers(
        self, verb: str, numbers: Sequence[str], campaign: int | None, region: str
    ) -> dict[str, object]:
        if len(numbers) > MAX_NUMBERS:  # the API's JSON body limit
            raise ValidationError(
                f"through the API one command takes up to {MAX_NUMBERS:,} numbers, got "
                f"{len(numbers):,}: put them in a file for 'dialer dnc import FILE'"
            )
        body = {"numbers": list(numbers), "default_region": region}
        reply: dict[str, object] = await self.client.call("POST", _path(campaign, verb), body=body)
        return reply

    async def add(
        self, numbers: Sequence[str], campaign: int | None = None, *, region: str = "US"
    ) -> Listed:
        reply = await self._numbers("", numbers, campaign, region)
        return Listed.of(len(numbers), int(str(reply["added"])))

    async def remove(
        self, numbers: Sequence[str], campaign: int | None = None, *, region: str = "US"
    ) -> int:
        return int(str((await self._numbers("/remove", numbers, campaign, region))["removed"]))

    async def check(
        self, numbers: Sequence[str], campaign: int | None = None, *, region: str = "US"
    ) -> list[Checked]:
        reply = await self._numbers("/check", numbers, campaign, region)
        found = reply["numbers"]
        assert isinstance(found, list)
        return [Checked.from_dict(d) for d in found]

    async def import_numbers(
        self, source: BinaryIO, campaign: int | None = None, *, region: str = "US"
    ) -> Listed:
        content = await asyncio.to_thread(source.read)
        reply = await self.client.call(
            "POST",
            _path(campaign, "/import"),
            content=content,
            content_type="text/plain",
            params={"default_region": region},
        )
        return Listed.of(int(reply["read"]), int(reply["added"]))


class RemoteTrunks:
    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def breaker(self, trunk: str) -> BreakerView:
        return BreakerView.from_dict(await self.client.call("GET", f"/trunks/{trunk}/breaker"))

    async def reset(self, trunk: str) -> BreakerView:
        reply = await self.client.call("POST", f"/trunks/{trunk}/breaker/reset")
        return BreakerView.from_dict(reply)
