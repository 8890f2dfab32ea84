"""``dialer callback ...`` over the HTTP API: the methods of
:class:`dialer.engine.callbacks.CallbackCommands` the CLI calls, built back from the API's JSON.

The API sets or moves a callback in one call; ``dialer callback move`` must refuse a contact
that has none, so it reads the contact first (a check before the set: a callback cancelled in
between is set anew rather than refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dialer.domain.callbacks import CallbackPlan, CallbackSource
from dialer.domain.statuses import CallStatus
from dialer.engine.callbacks import CallbackSet
from dialer.errors import NotFound, TransitionRefused
from dialer.store.callbacks import CallbackChange, CallbackView

if TYPE_CHECKING:
    from .remote import ApiClient

__all__ = ["RemoteCallbacks"]


def _seconds(iso: str | None, ms: int | None) -> float:
    if ms is not None:
        return ms / 1000
    return datetime.fromisoformat(iso).timestamp() if iso else 0.0


def _source(value: object) -> CallbackSource | None:
    return None if value is None else CallbackSource(str(value))


def _change(d: Mapping[str, Any], before: str, due: str, source: str) -> CallbackChange:
    return CallbackChange(
        contact_id=int(d["contact_id"]),
        before=CallStatus(d.get(before) or d["status"]),
        after=CallStatus(d["status"]),
        due_ms=d.get(due),
        source_before=_source(d.get(source)),
    )


class RemoteCallbacks:
    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def schedule(
        self, cid: int, contact_id: int, at: object, *, only_move: bool = False
    ) -> CallbackSet:
        if only_move:
            await self._require_callback(cid, contact_id)
        path = f"/campaigns/{cid}/contacts/{contact_id}/callback"
        d = await self.client.call("POST", path, body={"at": at})
        plan = CallbackPlan(
            requested=_seconds(d.get("requested_at"), None),
            due=_seconds(d.get("due_at"), d.get("due_ms")),
            reason=str(d.get("reason") or ""),
        )
        return CallbackSet(plan, _change(d, "previous_status", "due_ms", "replaced"))

    async def _require_callback(self, cid: int, contact_id: int) -> None:
        params = {"after": str(contact_id - 1), "limit": "1"}
        page = await self.client.call("GET", f"/campaigns/{cid}/contacts", params=params)
        found = [c for c in page["contacts"] if int(c["id"]) == contact_id]
        if not found:
            raise NotFound(f"contact {contact_id} of campaign {cid} does not exist")
        status = CallStatus(found[0]["status"])
        if status is not CallStatus.RESCHEDULED:
            raise TransitionRefused(
                f"contact {contact_id} of campaign {cid} has no callback (it is {status.label})",
                status=status.value,
                command="callback",
            )

    async def cancel(self, cid: int, contact_id: int) -> CallbackChange:
        path = f"/campaigns/{cid}/contacts/{contact_id}/callback"
        d = await self.client.call("DELETE", path)
        return _change(d, "status", "next_due_ms", "cancelled")

    async def upcoming(
        self, cid: int, *, after_ms: int | None = None, limit: int = 100
    ) -> list[CallbackView]:
        params = {"limit": str(limit)} | ({"after": str(after_ms)} if after_ms else {})
        page = await self.client.call("GET", f"/campaigns/{cid}/callbacks", params=params)
        return [
            CallbackView(
                contact_id=int(v["contact_id"]),
                phone=str(v["phone"]),
                list_id=int(v["list_id"]),
                attempts=int(v["attempts"]),
                due_ms=int(v["due_ms"]),
                requested_ms=round(_seconds(v.get("requested_at"), None) * 1000),
                source=CallbackSource(v["source"]),
            )
            for v in page["callbacks"]
        ]
