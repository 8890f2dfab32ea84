"""What a PBX adapter reports about one finished call attempt, PBX-neutral."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AmdStatus(StrEnum):
    """Asterisk AMD() AMDSTATUS values (FreeSWITCH mod_avmd/mod_amd are mapped onto these)."""

    HUMAN = "HUMAN"
    MACHINE = "MACHINE"
    NOTSURE = "NOTSURE"
    HANGUP = "HANGUP"


class DialplanResult(StrEnum):
    """A result the dialplan sets during the call (an IVR opt-out, a callback request)."""

    DO_NOT_CALL = "dnc"
    CALLBACK = "callback"


class GoalResult(StrEnum):
    """Whether the answered call achieved the campaign's goal, as the dialplan reports it
    (Asterisk ``Gosub(dialer-goal,completed|failed,1)``, FreeSWITCH ``dialer_goal``)."""

    COMPLETED = "completed"
    FAILED = "failed"  # connected, but the goal was not achieved


class VoicemailDrop(StrEnum):
    """The voicemail drop: DIALER_VM_MESSAGE played to an answering machine after its greeting."""

    STARTED = "started"  # the message began but did not play to its end (cut, or no such file)
    PLAYED = "played"  # the message played to its end


@dataclass(frozen=True, slots=True)
class RawOutcome:
    """The raw facts of one attempt, exactly as the PBX reported them.

    ``q850_cause`` is the Q.850 hangup cause (Asterisk ``Cause``, FreeSWITCH
    ``variable_hangup_cause_q850``); ``sip_code`` the final SIP response to our INVITE when there
    was one (Asterisk ``TechCause`` / HANGUPCAUSE, FreeSWITCH ``sip_term_status``).
    ``originate_failed`` means the PBX refused or failed the originate before any channel
    existed (unknown endpoint, PBX overloaded, action error). ``lost``: the call had a channel
    but the switch never reported its end (the PBX crashed or restarted under it); ``answered``
    then says whether it had reported an answer. ``outcome_unknown``: nobody knows how the call
    went (it ended while no engine followed it, and the switch kept no record of it).
    """

    answered: bool
    q850_cause: int | None = None
    sip_code: int | None = None
    amd_status: AmdStatus | None = None
    amd_cause: str | None = None
    dialplan_result: DialplanResult | None = None
    callback_at: float | None = None  # epoch seconds, with DialplanResult.CALLBACK
    goal: GoalResult | None = None  # the dialplan's goal result
    voicemail_drop: VoicemailDrop | None = None  # a message left on an answering machine
    originate_failed: bool = False
    originate_reason: int | None = None  # Asterisk Reason; FreeSWITCH -ERR cause code
    dial_status: str | None = None  # Asterisk DialEnd DialStatus, when seen
    invalid_number: bool = False  # refused before dialing: not a dialable number
    lost: bool = False  # cut by a PBX failure: its end never reported
    outcome_unknown: bool = False  # no engine saw its end, no switch record of it
