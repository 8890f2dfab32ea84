"""The switch's own record of a call's end on FreeSWITCH: a global variable its hang-up writes.

The adapter originates every call with ``api_hangup_hook`` set (so that it runs for calls that
never answered too): FreeSWITCH runs the hook in the channel's hang-up state, before it sends
CHANNEL_HANGUP_COMPLETE, with the channel's variables expanded::

    global_setvar::dialer_end_<call id>=v1;ans:${answer_epoch};cause:${hangup_cause_q850};...

so the end of a call no engine saw stays on the switch (``global_getvar dialer_end_<call id>``)
until it is deleted (``global_setvar dialer_end_<call id>=``). FreeSWITCH keeps its global
variables in one list that every lookup of a variable a channel lacks walks, so records must
not pile up: the engine that follows a call deletes its record as soon as it has the end from
the events, and the adapter deletes records older than a TTL now and then (those of calls no
engine settled through their events). Global variables live in FreeSWITCH's memory only: a
restart (or a crash) of FreeSWITCH forgets them all (an Asterisk's AstDB survives one).

Every value comes from FreeSWITCH itself (the channel's answer time, its Q.850 cause and SIP
codes, the dialplan's ``dialer_*`` result variables, the end time); the hook is the adapter's
own text, never data. Values are checked again here: a field without its shape is dropped, a
value without the version is no record at all. Sans-IO and total: :func:`parse_record` never
raises.

Why these commands: mod_commands (``global_setvar``, ``global_getvar``) is built and loaded
(ops/localstack/fsbuild.py); mod_db and mod_hash, which keep key/value data, are not.
"""

from __future__ import annotations

import re

from dialer.domain.calls import AmdStatus, DialplanResult, GoalResult, RawOutcome, VoicemailDrop

PREFIX = "dialer_end_"  # the global variable of a call: dialer_end_<call id>
VERSION = "v1"
MAX_VALUE = 512  # characters: a longer value is no record of ours
DEFAULT_TTL = 86400.0  # s: a record no engine settled is deleted after a day

# name -> the channel variable FreeSWITCH expands into it when the hook runs
FIELDS = (
    ("ans", "answer_epoch"),
    ("cause", "hangup_cause_q850"),
    ("sip", "sip_term_status"),
    ("fail", "sip_invite_failure_status"),
    ("proto", "proto_specific_hangup_cause"),
    ("amd", "dialer_amd_status"),
    ("amdcause", "dialer_amd_cause"),
    ("result", "dialer_result"),
    ("at", "dialer_callback_at"),
    ("end", "end_epoch"),
    ("goal", "dialer_goal"),
    ("vm", "dialer_vm_drop"),
)
_INT = re.compile(r"[0-9]{1,13}")
_AMD_CAUSE = re.compile(r"[A-Za-z0-9_.\-]{1,40}")


def variable(call_id: str) -> str:
    """The global variable that holds ``call_id``'s record (``call_id`` already checked)."""
    return f"{PREFIX}{call_id}"


def hangup_hook() -> str:
    """The ``api_hangup_hook`` value (``cmd::args``: no space, so no quoting in the block;
    no ``,``, ``=`` but the one after the name, no ``:_:``)."""
    fields = ";".join(f"{name}:${{{var}}}" for name, var in FIELDS)
    return f"global_setvar::{PREFIX}${{uuid}}={VERSION};{fields}"


def _int(value: str | None, low: int, high: int) -> int | None:
    if value is None or not _INT.fullmatch(value):
        return None
    n = int(value)
    return n if low <= n <= high else None


def parse_fields(value: str) -> dict[str, str] | None:
    """The fields of a record value (the first of a repeated name counts), None if not one."""
    if len(value) > MAX_VALUE:
        return None
    tokens = value.strip().split(";")
    if not tokens or tokens[0] != VERSION:
        return None
    fields: dict[str, str] = {}
    for token in tokens[1:]:
        name, sep, val = token.partition(":")
        if sep and name not in fields:
            fields[name] = val
    return fields


def ended_at(value: str) -> int | None:
    """The record's end time (epoch seconds, FreeSWITCH's clock), None if it has none."""
    fields = parse_fields(value)
    return None if fields is None else _int(fields.get("end"), 0, 2**40)


def parse_record(value: str) -> RawOutcome | None:
    """The outcome in a record value, or None when it is not one of ours (never raises)."""
    fields = parse_fields(value)
    if fields is None:
        return None
    answer = _int(fields.get("ans"), 0, 2**40)
    sip = _int(fields.get("sip"), 100, 699) or _int(fields.get("fail"), 100, 699)
    proto = fields.get("proto", "")
    if sip is None and proto.startswith("sip:"):
        sip = _int(proto[4:], 100, 699)
    amd = fields.get("amd", "").strip().upper()
    amd_status = AmdStatus(amd) if amd in AmdStatus.__members__ else None
    amd_cause = fields.get("amdcause", "")
    result = fields.get("result", "").strip().lower()
    dialplan_result = (
        DialplanResult(result) if result in {r.value for r in DialplanResult} else None
    )
    at = _int(fields.get("at"), 0, 2**40)
    cause = _int(fields.get("cause"), 0, 127)
    return RawOutcome(
        answered=bool(answer),
        q850_cause=cause if cause else None,
        sip_code=sip,
        amd_status=amd_status,
        amd_cause=amd_cause if amd_status and _AMD_CAUSE.fullmatch(amd_cause) else None,
        dialplan_result=dialplan_result,
        callback_at=float(at) if at is not None and dialplan_result is not None else None,
        goal=next((g for g in GoalResult if g.value == fields.get("goal")), None),
        voicemail_drop=next((v for v in VoicemailDrop if v.value == fields.get("vm")), None),
    )
