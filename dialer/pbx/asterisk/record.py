"""The switch's own record of a call's end: the AstDB entry of the dialplan's hangup handler.

The dialer pushes the hangup handler ``dialer-record,s,1`` on every call it originates (an
Originate variable, so that it runs for calls that never answered too); it stores one line per
call in AstDB, which survives an Asterisk restart (pbx-config/asterisk/extensions.conf,
README "The switch's own record of a call")::

    family dialer/<yyyymmdd>   (the UTC day of the hang-up)
    key    <call id>           (the Originate ChannelId = the channel's linkedid)
    value  v1 state=Up cause=16 sip= amd=HUMAN amdcause=HUMAN-800-800 result=dnc at= end=1796546581
           goal=completed vm=    (goal: completed|failed; vm, the voicemail drop: started|played)

Every value is produced by the switch itself (the channel's state, ``HANGUPCAUSE``, the SIP
code of ``HANGUPCAUSE(<channel>,tech)``, ``AMDSTATUS``/``AMDCAUSE``, the dialplan's own result,
``EPOCH``), each passed through ``FILTER()`` there, and checked again here: a field that does
not have its shape is dropped, a value without the version or the state is no record at all.
Sans-IO and total: :func:`parse_record` never raises.

The dialplan deletes the days older than :data:`KEPT_DAYS` once a day (the first hang-up of a
UTC day does it), so a record lives at least two full days after its day.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from dialer.domain.calls import AmdStatus, DialplanResult, GoalResult, RawOutcome, VoicemailDrop

FAMILY = "dialer"
_E = TypeVar("_E", bound=StrEnum)
VERSION = "v1"
KEPT_DAYS = 3  # today and the two days before are kept; older days are deleted
MAX_VALUE = 512  # characters: a longer value is no record of ours
HANDLER = "dialer-record,s,1"  # the hangup handler the adapter pushes (extensions.conf)

_UP = "Up"
_STATE = re.compile(r"[A-Za-z]{1,16}")
_INT = re.compile(r"[0-9]{1,13}")
_AMD_CAUSE = re.compile(r"[A-Z]{1,20}(-[0-9]{1,6}){0,3}")
_CALL_ID = re.compile(r"[-0-9A-Za-z_.]{1,64}")


@dataclass(frozen=True, slots=True)
class SwitchRecord:
    """One parsed AstDB value."""

    answered: bool
    q850_cause: int | None = None
    sip_code: int | None = None
    amd_status: AmdStatus | None = None
    amd_cause: str | None = None
    dialplan_result: DialplanResult | None = None
    callback_at: int | None = None  # epoch seconds (callback)
    ended_at: int | None = None  # epoch seconds, the switch's clock
    goal: GoalResult | None = None
    voicemail_drop: VoicemailDrop | None = None

    def outcome(self) -> RawOutcome:
        return RawOutcome(
            answered=self.answered,
            q850_cause=self.q850_cause,
            sip_code=self.sip_code,
            amd_status=self.amd_status,
            amd_cause=self.amd_cause,
            dialplan_result=self.dialplan_result,
            callback_at=float(self.callback_at) if self.callback_at is not None else None,
            goal=self.goal,
            voicemail_drop=self.voicemail_drop,
        )


def day_of(t: float) -> str:
    """The UTC day of epoch seconds ``t`` as the dialplan writes it (``%Y%m%d``)."""
    return time.strftime("%Y%m%d", time.gmtime(t))


def record_families(started_at: float, now: float) -> list[str]:
    """The families a call placed at ``started_at`` may be recorded under: the days from its
    start to ``now`` (its hang-up came later), at most :data:`KEPT_DAYS` (older ones are gone)."""
    days: list[str] = []
    t = min(started_at, now)
    while len(days) < KEPT_DAYS:
        day = day_of(t)
        if day not in days:
            days.append(day)
        if day == day_of(now):
            break
        t += 86400.0
    return [f"{FAMILY}/{day}" for day in days]


def valid_call_id(call_id: str) -> bool:
    """A call id that can be an AstDB key as given (the dialplan records only such ids)."""
    return _CALL_ID.fullmatch(call_id) is not None


def _int(value: str, low: int, high: int) -> int | None:
    if not _INT.fullmatch(value):
        return None
    n = int(value)
    return n if low <= n <= high else None


def _enum(kind: type[_E], value: str) -> _E | None:
    """``value`` as a member of ``kind`` when it is exactly one of its values, else None."""
    return next((m for m in kind if m.value == value), None)


def parse_record(value: str) -> SwitchRecord | None:
    """The record in an AstDB value, or None when it is not one of ours (never raises)."""
    if len(value) > MAX_VALUE:
        return None
    tokens = value.split(" ")
    if not tokens or tokens[0] != VERSION:
        return None
    fields: dict[str, str] = {}
    for token in tokens[1:]:
        key, sep, val = token.partition("=")
        if sep and key not in fields:  # the first of a repeated key counts
            fields[key] = val
    state = fields.get("state", "")
    if not _STATE.fullmatch(state):
        return None
    amd = fields.get("amd", "")
    amd_status = AmdStatus(amd) if amd in AmdStatus.__members__ else None
    amd_cause = fields.get("amdcause", "")
    result = fields.get("result", "")
    dialplan_result = (
        DialplanResult(result) if result in {r.value for r in DialplanResult} else None
    )
    sip = _int(fields.get("sip", ""), 100, 699)
    return SwitchRecord(
        answered=state == _UP,
        q850_cause=_int(fields.get("cause", ""), 0, 127),
        sip_code=sip if sip is not None and sip >= 300 else None,  # a final failure only
        amd_status=amd_status,
        amd_cause=amd_cause if amd_status and _AMD_CAUSE.fullmatch(amd_cause) else None,
        dialplan_result=dialplan_result,
        callback_at=_int(fields.get("at", ""), 0, 2**40)
        if dialplan_result is DialplanResult.CALLBACK
        else None,
        ended_at=_int(fields.get("end", ""), 0, 2**40),
        goal=_enum(GoalResult, fields.get("goal", "")),
        voicemail_drop=_enum(VoicemailDrop, fields.get("vm", "")),
    )


def encode_record(record: SwitchRecord, *, state: str | None = None) -> str:
    """The value the dialplan writes for ``record`` (tests, documentation). ``state`` is the
    channel state's name (default ``Up`` when answered, else ``Down``)."""

    def s(v: object | None) -> str:
        return "" if v is None else str(v)

    return " ".join(
        (
            VERSION,
            f"state={state or (_UP if record.answered else 'Down')}",
            f"cause={s(record.q850_cause)}",
            f"sip={s(record.sip_code)}",
            f"amd={s(record.amd_status.value if record.amd_status else None)}",
            f"amdcause={s(record.amd_cause)}",
            f"result={s(record.dialplan_result.value if record.dialplan_result else None)}",
            f"at={s(record.callback_at)}",
            f"end={s(record.ended_at)}",
            f"goal={s(record.goal.value if record.goal else None)}",
            f"vm={s(record.voicemail_drop.value if record.voicemail_drop else None)}",
        )
    )
