"""The FreeSWITCH adapter: originate through ESL, follow calls, report PBX-neutral events.

Written from FreeSWITCH's source, tested against recorded ESL transcripts and an in-test fake
server, and checked against a real FreeSWITCH 1.10.12 with the carrier simulator
(tests/integration/test_carrier_sim.py, test_freeswitch_stack.py). pbx-config/freeswitch/README.md
holds the contract; pbx-config/README.md the raw values seen on both switches.

A call is ``bgapi originate {origination_uuid=<call id>,...}<endpoint> <exten> XML <context>``
(or ``&park()``) with ``Job-UUID: <call id>``: every event of the channel and the job's
``BACKGROUND_JOB`` carry the call id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from dialer.domain.calls import RawOutcome
from dialer.errors import ActionFailed, DialerError, PbxUnavailable, ValidationError
from dialer.pbx.adapter import SwitchAdapter
from dialer.pbx.base import CallEnded, EndSource, OriginateRequest, PbxEvent
from dialer.pbx.esl.client import EslClient, EslSettings
from dialer.pbx.esl.codec import EslEvent
from dialer.pbx.freeswitch import record
from dialer.pbx.freeswitch.correlate import (
    FOLLOWED_EVENTS,
    CallCorrelator,
    answered_in_show_channels,
)
from dialer.pbx.freeswitch.gateways import GATEWAY_EVENTS, GatewayView

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"\+?[0-9*#]{1,32}")
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_EXTEN = re.compile(r"[A-Za-z0-9_.+*#\-]{1,64}")
# FreeSWITCH copies origination_uuid into a 36-character buffer (SWITCH_UUID_FORMATTED_LENGTH).
_CALL_ID = re.compile(r"[A-Za-z0-9\-]{1,36}")
_SWEEP_MAX = 2000  # records deleted per sweep at most
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_CALLER = re.compile(r'\s*"?([^"<>]*?)"?\s*<(\+?[0-9*#]{1,32})>\s*')
# Characters kept as they are in a {var=value} block; everything else is percent-encoded (UTF-8)
# so that no value can end the block (}), split it (, = ' space), escape (\) or expand (${),
# nor split the dial string into more legs: ``:_:`` (so ``:`` is encoded), ``|`` and ``,``.
# FreeSWITCH keeps the encoded text in the channel variable (read it with ${url_decode()}).
# A caller id name is encoded too, so a name with a space shows as %20 in the From header.
_SAFE_VALUE_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-+@/"
)
_RESERVED = frozenset(
    {
        "origination_uuid",
        "originate_timeout",
        "ignore_early_media",
        "origination_caller_id_number",
        "origination_caller_id_name",
        "origination_nested_vars",
        "api_hangup_hook",
    }
)


@dataclass(frozen=True, slots=True)
class FreeSwitchSettings:
    esl: EslSettings
    endpoint_template: str = "sofia/gateway/{trunk}/{number}"
    dialplan: str = "XML"
    park: bool = False  # "&park()" instead of "<exten> XML <context>"
    ignore_early_media: bool = True  # originate waits for the answer, not for a 183
    failure_grace: float = 5.0  # wait this long for the hang-up that follows a failed job
    call_id_variable: str = "dialer_call_id"
    # the switch's own record of each call's end (record.py): True sets api_hangup_hook on
    # every originate; records of calls no engine settled from their events live this long
    end_records: bool = True
    end_record_ttl: float = record.DEFAULT_TTL
    end_record_sweep: float = 300.0  # s between sweeps of the expired records
    # the records of calls that ended by their events are deleted in groups: when this many
    # wait, when the oldest waited this long (checked as events come, and by live_calls), and
    # on close: one write of many commands instead of one write per call
    end_record_drop_batch: int = 50
    end_record_drop_delay: float = 1.0

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> FreeSwitchSettings:
        """``esl://:password@host:port``; subscribes to the events the correlator reads and
        to the gateways' state changes (the switch view's)."""
        esl = replace(EslSettings.from_url(url), events=(*FOLLOWED_EVENTS, *GATEWAY_EVENTS))
        return cls(esl=esl, **kwargs)


def encode_value(value: str) -> str:
    """``value`` percent-encoded for a ``{var=value}`` block. FreeSWITCH keeps the encoded text
    in the channel variable (seen with ``uuid_getvar``): ``${url_decode()}`` gives it back."""
    return "".join(
        ch if ch in _SAFE_VALUE_CHARS else "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
        for ch in value.encode("utf-8", "replace").decode("utf-8")
    )


def originate_args(request: OriginateRequest, settings: FreeSwitchSettings) -> list[str]:
    """The arguments of ``originate`` for ``request`` (checked; ValidationError if unusable)."""
    if not _CALL_ID.fullmatch(request.call_id):
        raise ValidationError(f"call id not usable as a FreeSWITCH uuid: {request.call_id[:40]!r}")
    if not _NUMBER.fullmatch(request.number):
        raise ValidationError(f"not a dialable number: {request.number[:40]!r}")
    if not _NAME.fullmatch(request.trunk):
        raise ValidationError(f"not a trunk name: {request.trunk[:40]!r}")
    timeout = max(1, math.ceil(request.ring_timeout))
    pairs = [
        ("origination_uuid", request.call_id),
        (settings.call_id_variable, request.call_id),
        ("originate_timeout", str(timeout)),
    ]
    if settings.ignore_early_media:
        pairs.append(("ignore_early_media", "true"))
    pairs += _caller_id(request.caller_id)
    pairs += _user_variables(request.variables, settings.call_id_variable)
    encoded = [f"{name}={encode_value(value)}" for name, value in pairs]
    if settings.end_records:
        # The hook is the adapter's own text with ${...} expanded at the hang-up: FreeSWITCH
        # refuses a value with "${" in it unless origination_nested_vars is set. No other value
        # can hold "${" (every other value is percent-encoded), so nothing else is affected.
        encoded += ["origination_nested_vars=true", f"api_hangup_hook={record.hangup_hook()}"]
    block = ",".join(encoded)
    endpoint = settings.endpoint_template.format(trunk=request.trunk, number=request.number)
    if settings.park:
        return [f"{{{block}}}{endpoint}", "&park()"]
    for label, value in (("extension", request.exten), ("context", request.context)):
        if not _EXTEN.fullmatch(value):
            raise ValidationError(f"not a dialplan {label}: {value[:40]!r}")
    return [f"{{{block}}}{endpoint}", request.exten, settings.dialplan, request.context]


def _caller_id(caller_id: str | None) -> list[tuple[str, str]]:
    if not caller_id:
        return []
    if _NUMBER.fullmatch(caller_id):
        return [("origination_caller_id_number", caller_id)]
    match = _CALLER.fullmatch(caller_id)
    if match is None:
        return [("origination_caller_id_name", caller_id)]
    name, number = match.groups()
    pairs = [("origination_caller_id_number", number)]
    return pairs + ([("origination_caller_id_name", name)] if name else [])


def _user_variables(variables: Mapping[str, str], call_id_variable: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    reserved = _RESERVED | {call_id_variable.lower()}
    for name, value in variables.items():
        if not _VARIABLE.fullmatch(name):
            raise ValidationError(f"channel variable name not allowed: {name[:40]!r}")
        if name.lower() in reserved:
            log.warning(
                "channel variable %s is set by the adapter; the given value is dropped", name
            )
            continue
        out.append((name, value))
    return out


def parse_show_channels(body: str) -> dict[str, bool]:
    """``api show channels as json`` output -> unique id -> answered."""
    try:
        data = json.loads(body)
    except ValueError:
        raise ActionFailed(f"unexpected output of show channels: {body[:80]!r}") from None
    if not isinstance(data, dict):
        raise ActionFailed("unexpected output of show channels: not an object")
    rows = data.get("rows") or []  # FreeSWITCH leaves "rows" out when there are none
    if not isinstance(rows, list):
        raise ActionFailed("unexpected output of show channels: rows is not a list")
    return {
        row["uuid"]: answered_in_show_channels(row.get("callstate"))
        for row in rows
        if isinstance(row, dict) and isinstance(row.get("uuid"), str) and row["uuid"]
    }


class FreeSwitchAdapter(SwitchAdapter[EslEvent]):
    """:class:`dialer.pbx.base.PbxAdapter` for FreeSWITCH over ESL."""

    name = "freeswitch"

    def __init__(
        self, settings: FreeSwitchSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._settings = settings
        self._esl = EslClient(settings.esl)
        # the switch's own view of its gateways (pings): dialer.engine.switchview
        self.gateways = GatewayView()
        self._correlator: CallCorrelator = CallCorrelator(
            failure_grace=settings.failure_grace, other=self._trunk_item
        )
        super().__init__(
            self._esl,
            self._correlator,
            failure_grace=settings.failure_grace,
            clock=clock,
            trunks=self.gateways,
        )
        self._swept_at = 0.0  # never: the first reconciliation sweeps
        self._to_drop: list[str] = []  # calls ended by their events whose record still exists
        self._to_drop_since = 0.0  # when the oldest of them ended

    async def refresh_trunks(self, trunks: Iterable[str]) -> None:
        """Each gateway's ping status now (``api sofia xmlstatus gateway <name>``)."""
        changed = False
        for trunk in trunks:
            if _NAME.fullmatch(trunk):
                body = await self._esl.api("sofia", "xmlstatus", "gateway", trunk, check=False)
                changed |= self.gateways.load(body)
        self._trunks_read(changed)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._to_drop and self._esl.connected:
                with contextlib.suppress(DialerError, TimeoutError):
                    async with asyncio.timeout(self._settings.esl.command_timeout):
                        await self.drop_pending_records()
        finally:
            await super().__aexit__(exc_type, exc, tb)

    @property
    def esl(self) -> EslClient:
        return self._esl

    async def call_record(self, call_id: str, *, started_at: float) -> RawOutcome | None:
        """The call's end as its hang-up hook stored it on the switch (``global_getvar``,
        :mod:`dialer.pbx.freeswitch.record`); None when there is none (records off, a call id
        FreeSWITCH could not have, FreeSWITCH restarted since, or the record expired)."""
        if not self._settings.end_records or not _CALL_ID.fullmatch(call_id):
            return None
        value = await self._esl.api("global_getvar", record.variable(call_id), check=False)
        return record.parse_record(value) if value else None

    async def drop_records(self, call_ids: Sequence[str]) -> None:
        """Delete the switch's records of calls settled from their own events (pipelined;
        a failure only leaves them to the sweep)."""
        if not self._settings.end_records or not call_ids:
            return
        commands = [
            self._esl.api("global_setvar", f"{record.variable(call_id)}=", check=False)
            for call_id in call_ids
            if _CALL_ID.fullmatch(call_id)
        ]
        for result in await asyncio.gather(*commands, return_exceptions=True):
            if isinstance(result, DialerError):
                log.debug("record not deleted (the sweep will): %s", result)
            elif isinstance(result, BaseException):
                raise result

    async def sweep_records(self) -> int:
        """Delete the records older than ``end_record_ttl`` (FreeSWITCH's clock); how many."""
        listing = await self._esl.api("global_getvar", check=False)
        horizon = self._clock() - self._settings.end_record_ttl
        expired = []
        for line in listing.splitlines():
            name, sep, value = line.partition("=")
            if not (sep and name.startswith(record.PREFIX)):
                continue
            end = record.ended_at(value)
            if end is None or end < horizon:
                expired.append(name.removeprefix(record.PREFIX))
            if len(expired) >= _SWEEP_MAX:
                break  # the rest at the next sweep: one burst of commands stays small
        await self.drop_records(expired)
        self._swept_at = self._clock()
        return len(expired)

    async def events(self) -> AsyncGenerator[PbxEvent, None]:
        """The shared event stream; the switch's record of a call that ended is deleted once
        its end was taken (it came from the events), with others (``end_record_drop_*``)."""
        async with aclosing(super().events()) as events:
            async for event in events:
                yield event
                await self._ended([event])

    async def event_batches(self) -> AsyncGenerator[list[PbxEvent], None]:
        """The shared event stream; the switch's records of the calls that ended in a batch
        are deleted once the batch was taken (their ends came from the events), in groups."""
        async with aclosing(super().event_batches()) as batches:
            async for batch in batches:
                yield batch
                await self._ended(batch)

    async def _ended(self, batch: Sequence[PbxEvent]) -> None:
        ended = _ended_by_events(batch)
        if ended and self._settings.end_records:
            if not self._to_drop:
                self._to_drop_since = self._clock()
            self._to_drop += ended
        await self._drop_due_records()

    async def _drop_due_records(self) -> None:
        if self._to_drop and (
            len(self._to_drop) >= self._settings.end_record_drop_batch
            or self._clock() - self._to_drop_since >= self._settings.end_record_drop_delay
        ):
            await self.drop_pending_records()

    async def drop_pending_records(self) -> None:
        """Delete now the records of the calls that ended by their events (in one write)."""
        pending, self._to_drop = self._to_drop, []
        await self.drop_records(pending)

    async def originate(self, request: OriginateRequest) -> None:
        args = originate_args(request, self._settings)
        # Follow before sending: events may arrive before the reply.
        self._correlator.follow(request.call_id, self._clock())
        try:
            job = await self._esl.bgapi("originate", *args, job_uuid=request.call_id)
        except PbxUnavailable:
            # The connection dropped: FreeSWITCH may or may not have the call. Keep following
            # it; reconciliation against the channel list settles it. Never re-send.
            raise
        except Exception:
            self._correlator.forget(request.call_id)
            raise
        self._correlator.bind_job(job, request.call_id)

    async def originate_many(
        self, requests: Sequence[OriginateRequest]
    ) -> list[DialerError | None]:
        """:meth:`originate` for each request, concurrently (ESL answers each bgapi in turn)."""

        async def one(request: OriginateRequest) -> DialerError | None:
            try:
                await self.originate(request)
            except DialerError as exc:
                return exc
            return None

        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def hangup(self, call_id: str) -> None:
        if not _CALL_ID.fullmatch(call_id):
            return  # never a channel of ours
        body = await self._esl.api("uuid_kill", call_id, check=False)
        if body.startswith("-ERR"):  # the channel ended meanwhile: "-ERR No such channel!"
            log.debug("hangup of %s: %s", call_id, body.strip())

    async def live_calls(self) -> dict[str, bool]:
        """``show channels``; also sweeps the expired end records every ``end_record_sweep``
        seconds (reconciliation asks for the list that often or more)."""
        live = parse_show_channels(await self._esl.api("show", "channels", "as", "json"))
        await self._drop_due_records()
        if self._settings.end_records and (
            self._clock() - self._swept_at >= self._settings.end_record_sweep
        ):
            swept = await self.sweep_records()
            if swept:
                log.info("deleted %d expired end records from FreeSWITCH", swept)
        return live


def _ended_by_events(batch: Sequence[PbxEvent]) -> list[str]:
    return [e.call_id for e in batch if isinstance(e, CallEnded) and e.source is EndSource.EVENTS]
