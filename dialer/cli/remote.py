"""The CLI as a client of the HTTP API (as kubectl is of its cluster): the server's roles apply.

``--api URL`` (or ``DIALER_API_URL``) with a bearer token from ``--token``,
``DIALER_API_TOKEN`` or the file ``$XDG_CONFIG_HOME/dialer/token`` (default
``~/.config/dialer/token``; refused unless only its owner can read it, as ssh refuses a
private key others can read). Every command then goes through the API and its role check: a
viewer's ``dialer campaign pause`` is refused by the server (403), and the CLI says which
role it needs.

:class:`RemoteCommands` has the methods of :class:`dialer.commands.CampaignCommands` that the
CLI calls, with the same results, built back from the API's JSON; the CLI's handlers do not
know which they talk to. The API's errors come back as the dialer's own (404 NotFound, 409
TransitionRefused, 422 ValidationError or ImportRefused), so they are printed the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from dialer.analytics import CampaignAnalytics
from dialer.commands.campaigns import Created
from dialer.domain.callerid import CallerIdSource
from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CallStatus, CampaignStatus, ListStatus
from dialer.domain.why import WhyReport
from dialer.engine.control import CommandResult
from dialer.errors import (
    ConfigError,
    DialerError,
    NotFound,
    StoreError,
    TransitionRefused,
    ValidationError,
)
from dialer.importer import ColumnMapping, ImportRefused, ImportReport, LineError
from dialer.store.models import CampaignRecord
from dialer.store.recycle import RecycleReport, RemoveReport
from dialer.store.recycle import Target as RecycleTarget

from . import remote_reads
from .remote_callbacks import RemoteCallbacks
from .remote_dnc import RemoteDnc, RemoteTrunks
from .remote_nodes import RemoteNodes

__all__ = ["ApiClient", "ApiRefused", "RemoteCommands", "Target", "token_file"]

TIMEOUT_S = 120.0  # a delete waits for calls to drain (60 s on the server by default)


class ApiRefused(DialerError):
    """The API refused the request: 401 (no or unknown token) or 403 (the role is too low).
    ``required_role``: the role the command needs (403 only)."""

    def __init__(self, status: int, message: str, required_role: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.required_role = required_role


def token_file() -> Path:
    """``$XDG_CONFIG_HOME/dialer/token``, else ``~/.config/dialer/token``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dialer" / "token"


def read_token_file(path: Path) -> str | None:
    """The token in ``path`` (None when there is no such file); ConfigError when the group or
    others may read or write it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path}: the token file must be readable by its owner only (mode "
            f"{stat.S_IMODE(mode):04o}): chmod 600 {path}"
        )
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ConfigError(f"{path}: the token file is empty")
    return token


@dataclass(frozen=True, slots=True)
class Target:
    """Where the API is, and the token to present."""

    url: str
    token: str


class ApiClient:
    """JSON over httpx; the API's error body turned back into the dialer's exceptions."""

    def __init__(self, target: Target, *, transport: httpx.AsyncBaseTransport | None = None):
        self.url = target.url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {target.token}"},
            timeout=TIMEOUT_S,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, **options: Any) -> Any:
        """The reply's JSON (None for 204); ``options`` as :meth:`request`'s."""
        return (await self.request(method, path, **options))[1]

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "text/csv",
    ) -> tuple[int, Any]:
        """The reply's status and JSON (None for 204); an error reply raises (:func:`_error`).
        ``content``: a raw body (a file) of ``content_type``."""
        headers = {"Content-Type": content_type} if content is not None else None
        try:
            reply = await self._http.request(
                method, path, json=body, content=content, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if reply.status_code == 204:
            return 204, None
        try:
            data = reply.json()
        except ValueError:
            data = None
        if reply.is_success:
            return reply.status_code, data
        raise _error(reply.status_code, data)

    async def stream(self, path: str) -> AsyncIterator[str]:
        """A text reply (the CSV export) piece by piece, as it comes."""
        try:
            async with self._http.stream("GET", path) as reply:
                if not reply.is_success:
                    await reply.aread()
                    try:
                        data = reply.json()
                    except ValueError:
                        data = None
                    raise _error(reply.status_code, data)
                async for text in reply.aiter_text():
                    yield text
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: httpx.HTTPError) -> StoreError:
        return StoreError(
            f"cannot reach the API at {self.url} (--api, DIALER_API_URL): "
            f"{type(exc).__name__}: {exc}"
        )


def _error(status: int, data: object) -> DialerError:
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return DialerError(f"the API answered {status} without an error body")
    code, message = str(error.get("code")), str(error.get("message"))
    details = error.get("details") or {}
    if status == 401:
        return ApiRefused(
            401,
            f"{message} (give a token with --token, DIALER_API_TOKEN or {token_file()})",
        )
    if status == 403:
        needed = details.get("required_role")
        return ApiRefused(403, f"forbidden: {message}", needed)
    if status == 404:
        return NotFound(message)
    if status == 409:
        return TransitionRefused(
            message, status=details.get("status"), command=details.get("command")
        )
    if code == "import_refused":
        report = _report(details.get("report") or {})
        return ImportRefused(message, report)
    if status in (400, 413, 415, 422):
        return ValidationError(message)
    return StoreError(f"the API answered {status} {code}: {message}")


def _lines(items: Iterable[Mapping[str, Any]]) -> tuple[LineError, ...]:
    return tuple(LineError(int(e["line"]), str(e["reason"])) for e in items)


def _report(d: Mapping[str, Any]) -> ImportReport:
    return ImportReport(
        list_id=d.get("list_id"),
        rows=int(d.get("rows", 0)),
        imported=int(d.get("imported", 0)),
        invalid_numbers=int(d.get("invalid_numbers", 0)),
        dnc=int(d.get("dnc", 0)),
        duplicates=int(d.get("duplicates", 0)),
        errors=_lines(d.get("errors", ())),
        error_count=int(d.get("error_count", 0)),
        warnings=_lines(d.get("warnings", ())),
    )


def _result(d: Mapping[str, Any]) -> CommandResult:
    return CommandResult(int(d["id"]), CampaignStatus(d["status"]), int(d.get("draining", 0)))


def campaign_record(d: Mapping[str, Any]) -> CampaignRecord:
    """A campaign as the API shows it (``schemas.campaign_view``) as the store's record."""
    settings = d.get("settings")
    return CampaignRecord(
        id=int(d["id"]),
        name=str(d["name"]),
        status=CampaignStatus(d["status"]),
        status_reason=str(d.get("status_reason") or ""),
        trunk=str(d["trunk"]),
        settings_json="" if settings is None else json.dumps(settings),
        created_ms=int(d["created_ms"]),
        updated_ms=int(d["updated_ms"]),
        open_until_ms=d.get("open_until_ms"),
        opens_at_ms=d.get("opens_at_ms"),
    )


class RemoteCommands:
    """The campaign commands the CLI calls, over the API (see the module's docstring)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.callbacks = RemoteCallbacks(client)
        self.nodes = RemoteNodes(client)
        self.dnc = RemoteDnc(client)
        self.breakers = RemoteTrunks(client)

    async def why(self, cid: int) -> WhyReport:
        return await remote_reads.why(self.client, cid)

    async def analytics(self, cid: int) -> CampaignAnalytics:
        return await remote_reads.analytics(self.client, cid)

    async def _command(self, cid: int, verb: str, body: object = None) -> CommandResult:
        return _result(await self.client.call("POST", f"/campaigns/{cid}/{verb}", body=body))

    # -- reads -----------------------------------------------------------------------------

    async def campaigns(
        self, status: CampaignStatus | None = None, limit: int = 50
    ) -> list[CampaignRecord]:
        params = {"limit": str(limit)} | ({"status": status.value} if status else {})
        page = await self.client.call("GET", "/campaigns", params=params)
        return [campaign_record(c) for c in page["campaigns"]]

    async def campaign(
        self, cid: int
    ) -> tuple[CampaignRecord, dict[int, ListStatus], dict[CallStatus, int]]:
        """The campaign, its lists and its contacts per status."""
        view = await self.client.call("GET", f"/campaigns/{cid}")
        lists = await self.client.call("GET", f"/campaigns/{cid}/lists")
        counts = {s: int(view.get("contacts", {}).get(s.value, 0)) for s in CallStatus}
        by_list = {int(x["id"]): ListStatus(x["status"]) for x in lists["lists"]}
        return campaign_record(view), by_list, counts

    # -- commands (dialer.commands.CampaignCommands) ---------------------------------------

    async def create(
        self, settings: CampaignSettings, contacts: Path | None = None, *, region: str = "US"
    ) -> Created:
        view = await self.client.call("POST", "/campaigns", body=settings.to_dict())
        cid = int(view["id"])
        if contacts is None:
            return Created(cid, None)
        try:
            report = await self.upload(cid, contacts, region=region)
        except BaseException as refused:
            try:  # all or nothing, when this token may delete (the administrator role)
                await self.client.call("DELETE", f"/campaigns/{cid}")
            except DialerError as exc:
                refused.add_note(  # printed after the error (dialer.cli.main)
                    f"campaign {cid} was created without its contacts and stays Draft "
                    f"(not deleted: {exc}); upload them with 'dialer list upload {cid} FILE.csv'"
                )
            raise
        return Created(cid, report)

    async def edit(
        self, cid: int, changes: Mapping[str, object], *, merge: bool = True
    ) -> CampaignRecord:
        """PATCH: the fields given replace the stored ones (whole settings: every field)."""
        return campaign_record(await self.client.call("PATCH", f"/campaigns/{cid}", body=changes))

    async def upload(
        self,
        cid: int,
        source: Path,
        *,
        mapping: ColumnMapping | None = None,
        region: str = "US",
        caller_ids: CallerIdSource | None = None,
    ) -> ImportReport:
        params = {"default_region": region}
        m = mapping or ColumnMapping()
        for name, value in (
            ("phone_column", m.phone),
            ("name_column", m.name),
            ("timezone_column", m.timezone),
        ):
            if value is not None:
                params[name] = value
        if m.alt_phones is not None:
            params["alt_phone_columns"] = ",".join(m.alt_phones)
        pool = caller_ids.pool if caller_ids is not None else None
        if caller_ids is not None and caller_ids.caller_id is not None:
            params["caller_id"] = caller_ids.caller_id
        if pool is not None:
            params["caller_id_pool"] = ",".join(pool.numbers)
            params["caller_id_mode"] = pool.mode.value
            if pool.fallback:
                params["caller_id_fallback"] = pool.fallback
        content = await asyncio.to_thread(source.read_bytes)
        path = f"/campaigns/{cid}/lists"
        return _report(await self.client.call("POST", path, content=content, params=params))

    async def stop_list(self, cid: int, list_id: int) -> tuple[ListStatus, int]:
        reply = await self.client.call("POST", f"/campaigns/{cid}/lists/{list_id}/stop")
        return ListStatus(reply["status"]), int(reply["not_dialed"])

    async def list_caller_id(self, cid: int, list_id: int) -> CallerIdSource:
        reply = await self.client.call("GET", f"/campaigns/{cid}/lists/{list_id}/caller-id")
        return CallerIdSource.from_dict({k: v for k, v in reply.items() if k != "id"})

    async def set_list_caller_id(self, cid: int, list_id: int, source: CallerIdSource) -> None:
        path = f"/campaigns/{cid}/lists/{list_id}/caller-id"
        await self.client.call("PUT", path, body=source.to_dict())

    async def recycle(
        self, cid: int, list_id: int, statuses: Iterable[str], *, into: RecycleTarget = None
    ) -> RecycleReport:
        body = {"statuses": list(statuses), "into": into}
        reply = await self.client.call(
            "POST", f"/campaigns/{cid}/lists/{list_id}/recycle", body=body
        )
        return RecycleReport(**{**reply, "statuses": tuple(reply["statuses"])})

    async def remove(
        self, cid: int, ids: Iterable[int] = (), phones: Iterable[str] = (), region: str = "US"
    ) -> RemoveReport:
        body = {"ids": list(ids), "phones": list(phones), "default_region": region}
        return RemoveReport(
            **await self.client.call("POST", f"/campaigns/{cid}/contacts/remove", body=body)
        )

    async def start(self, cid: int) -> CommandResult:
        return await self._command(cid, "start")

    async def pause(self, cid: int) -> CommandResult:
        return await self._command(cid, "pause")

    async def resume(self, cid: int) -> CommandResult:
        return await self._command(cid, "resume")

    async def stop(self, cid: int, *, hangup: bool = False) -> CommandResult:
        return await self._command(cid, "stop", {"hangup": hangup})

    async def stop_all(self, *, hangup: bool = False) -> list[CommandResult]:
        reply = await self.client.call("POST", "/campaigns/stop-all", body={"hangup": hangup})
        return [_result(r) for r in reply["stopped"]]

    async def delete(self, cid: int, *, drain_timeout: float | None = None) -> None:
        """The server's drain timeout applies (DELETE waits for calls in flight)."""
        await self.client.call("DELETE", f"/campaigns/{cid}")
