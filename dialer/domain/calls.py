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


@dataclass(frozen=True, slots=True)
class RawOutcome:
    """The raw facts of one attempt, exactly as the PBX reported them.

    ``q850_cause`` is the Q.850 hangup cause (Asterisk ``Cause``, FreeSWITCH
    ``variable_hangup_cause_q850``); ``sip_code`` the final SIP response to our INVITE when there
    was one (Asterisk ``TechCause`` / HANGUPCAUSE, FreeSWITCH ``sip_term_status``).
    ``originate_failed`` means the PBX refused or failed the originate before any channel
    existed (unknown endpoint, PBX overloaded, action error).
    """

    answered: bool
    q850_cause: int | None = None
    sip_code: int | None = None
    amd_status: AmdStatus | None = None
    amd_cause: str | None = None
    dialplan_result: DialplanResult | None = None
    callback_at: float | None = None  # epoch seconds, with DialplanResult.CALLBACK
    originate_failed: bool = False
    originate_reason: int | None = None  # Asterisk OriginateResponse Reason (0, 3, 4, 5, 8)
    dial_status: str | None = None  # Asterisk DialEnd DialStatus, when seen
    invalid_number: bool = False  # refused before dialing: not a dialable number
