"""What the engine remembers about each call it originated, and the call record it writes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from dialer.domain.calls import RawOutcome
from dialer.domain.callstate import CallState
from dialer.domain.outcome import OUTCOME_TABLE_VERSION, Classification
from dialer.domain.retry import Decision
from dialer.pbx.base import CallEnded


@dataclass(slots=True)
class LiveCall:
    call_id: str
    campaign_id: int
    trunk: str
    contact_id: int
    phone: str
    attempts: int  # attempts used before this one (technical errors use none)
    tech_failures: int
    claimed_at: float
    dial: int = 0  # the contact's dial number of this call (1 for its first, every call its own)
    answered_at: float | None = None
    engine_id: str = ""
    caller_id: str = ""  # presented to the callee ("": the trunk's own)
    extra: dict[str, str] = field(default_factory=dict)
    node: str = ""  # the PBX node it is dialed on ("": recorded before nodes were kept)
    # where it is in dialer.domain.callstate's table, as this engine knows it (LiveCalls)
    state: CallState = CallState.NEW
    granted_ms: int = 0  # the claim's grant by Redis's clock (0: unknown): the CPS margin's start


def lost_outcome(seen: RawOutcome | None, *, answered: bool) -> RawOutcome:
    """The end of a call cut by a PBX failure (its end never reported, no switch record):
    ``lost``, answered or not as this engine knew it, with whatever the PBX did report of it
    first (``seen``: the OriginateResponse's reason, AMD, a dialplan result), so that the record
    keeps it. Answered -> Answered, cut; not answered -> a technical error that uses no
    attempt; a dialplan result seen before the loss still decides (its rows come first)."""
    return replace(
        seen or RawOutcome(answered), answered=answered, lost=True, originate_failed=False
    )


def unknown_outcome() -> RawOutcome:
    """The end of a call nobody saw end and the switch kept no record of: Outcome unknown
    (final; never redialed on its own)."""
    return RawOutcome(answered=False, outcome_unknown=True)


def _ms(t: float | None) -> str:
    return "" if t is None else str(int(t * 1000))


def _s(v: object | None) -> str:
    return "" if v is None else str(v)


def call_record(
    call: LiveCall, ended: CallEnded, outcome: Classification, decision: Decision
) -> dict[str, str]:
    """One record per call: flat strings (a Redis stream entry, a CSV row).

    ``attempt`` is the attempt this call counts as against the contact's ``max_attempts``
    (attempts used before it + 1): a technical error uses none, so its redial repeats it.
    ``dial`` tells the calls apart: the contact's n-th call has dial n. ``end_source`` says
    where the end came from (:class:`~dialer.pbx.base.EndSource`: the owner's events, another
    engine's memory of them, the switch's own record, a PBX failure, or nowhere).
    """
    raw = ended.raw
    answered_at = ended.answered_at
    duration = ended.ended_at - answered_at if answered_at is not None else 0.0
    return {
        "call_id": call.call_id,
        "campaign": str(call.campaign_id),
        "contact": str(call.contact_id),
        "phone": call.phone,
        "trunk": call.trunk,
        "caller_id": call.caller_id,
        "attempt": str(call.attempts + 1),
        "dial": str(call.dial),
        "status": outcome.status.value,
        "contact_status": decision.contact_status.value,
        "rule": outcome.reason,
        "q850_cause": _s(raw.q850_cause),
        "sip_code": _s(raw.sip_code),
        "amd_status": _s(raw.amd_status.value if raw.amd_status else None),
        "amd_cause": _s(raw.amd_cause),
        "dialplan_result": _s(raw.dialplan_result.value if raw.dialplan_result else None),
        "goal": _s(raw.goal.value if raw.goal else None),
        "voicemail_drop": _s(raw.voicemail_drop.value if raw.voicemail_drop else None),
        "dial_status": _s(raw.dial_status),
        "originate_reason": _s(raw.originate_reason),
        "originate_failed": "1" if raw.originate_failed else "0",
        "end_source": ended.source.value,
        "claimed_ms": _ms(call.claimed_at),
        "answered_ms": _ms(answered_at),
        "ended_ms": _ms(ended.ended_at),
        "duration_s": f"{duration:.3f}",
        "retry_at_ms": _ms(decision.retry_at),
        "engine": call.engine_id,
        "outcome_table": str(OUTCOME_TABLE_VERSION),
    }
