"""The outcome table gives the same attempt status on Asterisk and FreeSWITCH for the same callee.

Each row holds what each switch reported for one behaviour of the carrier simulator (observed on
Asterisk 22.10 and FreeSWITCH 1.10.12, tests/integration/test_carrier_sim.py; the table is in
pbx-config/README.md): the Asterisk facts as its correlator reads them (Hangup Cause,
TechCause), the FreeSWITCH ones as CHANNEL_HANGUP_COMPLETE headers, fed through the real
FreeSWITCH correlator so that the fallbacks it takes (sip_invite_failure_status when there is
no sip_term_status, the cause name when the q850 variable is not a Q.850 cause) are part of
what is checked.
"""

from __future__ import annotations

import pytest

from dialer.domain.calls import AmdStatus, DialplanResult, RawOutcome
from dialer.domain.outcome import classify
from dialer.domain.statuses import CallStatus
from dialer.pbx.base import CallEnded
from dialer.pbx.esl.codec import EslEvent
from dialer.pbx.freeswitch.correlate import CallCorrelator

S = CallStatus
CID = "dlr-0123"


def freeswitch(answered: bool = False, **headers: str) -> RawOutcome:
    """What the FreeSWITCH correlator makes of a CHANNEL_HANGUP_COMPLETE with ``headers``
    (``Hangup_Cause`` for ``Hangup-Cause``; other names get ``variable_``)."""
    pairs = [("Event-Name", "CHANNEL_HANGUP_COMPLETE"), ("Unique-ID", CID)]
    for name, value in headers.items():
        key = "Hangup-Cause" if name == "Hangup_Cause" else f"variable_{name}"
        pairs.append((key, value))
    if answered:
        pairs.append(("variable_answer_epoch", "1796550000"))
    correlator = CallCorrelator()
    correlator.follow(CID, 1.0)
    (ended,) = correlator.feed(EslEvent(headers=tuple(pairs)), 2.0)
    assert isinstance(ended, CallEnded)
    return ended.raw


def asterisk(answered: bool = False, cause: int = 16, sip: int | None = None) -> RawOutcome:
    return RawOutcome(answered=answered, q850_cause=cause, sip_code=sip)


def fs_refused(cause: str, q850: str, sip: str) -> RawOutcome:
    return freeswitch(
        Hangup_Cause=cause,
        hangup_cause_q850=q850,
        sip_term_status=sip,
        sip_invite_failure_status=sip,
        proto_specific_hangup_cause=f"sip:{sip}",
        sip_hangup_disposition="recv_refuse",
    )


SAME = [
    # callee behaviour, Asterisk raw, FreeSWITCH raw, status on both
    (
        "answers, we hang up (talk limit)",
        asterisk(True, 16),
        freeswitch(True, Hangup_Cause="NORMAL_CLEARING", hangup_cause_q850="16"),
        S.ANSWERED,
    ),
    (
        "answers, hangs up (BYE)",
        asterisk(True, 0),
        freeswitch(
            True, Hangup_Cause="NORMAL_CLEARING", hangup_cause_q850="16", sip_term_status="200"
        ),
        S.ANSWERED,
    ),
    (
        "rings past the originate timeout",
        asterisk(False, 19, 480),
        # no final response: no sip_term_status; 487 is the reply to our CANCEL
        freeswitch(
            Hangup_Cause="NO_ANSWER", hangup_cause_q850="19", sip_invite_failure_status="487"
        ),
        S.NO_ANSWER,
    ),
    (
        "rings, we hang up before the answer (stop --hangup)",
        asterisk(False, 0),
        freeswitch(
            Hangup_Cause="NORMAL_CLEARING", hangup_cause_q850="16", sip_invite_failure_status="487"
        ),
        S.NO_ANSWER,
    ),
    (
        "rings, cancelled (ORIGINATOR_CANCEL, FreeSWITCH's own cause 487, not Q.850)",
        asterisk(False, 0),
        freeswitch(
            Hangup_Cause="ORIGINATOR_CANCEL",
            hangup_cause_q850="487",
            sip_invite_failure_status="487",
        ),
        S.NO_ANSWER,
    ),
    (
        "ORIGINATOR_CANCEL and no SIP code at all",
        asterisk(False, 0),
        freeswitch(Hangup_Cause="ORIGINATOR_CANCEL", hangup_cause_q850="487"),
        S.NO_ANSWER,
    ),
    ("480", asterisk(False, 19, 480), fs_refused("NO_USER_RESPONSE", "18", "480"), S.NO_ANSWER),
    (
        "404",
        asterisk(False, 1, 404),
        fs_refused("UNALLOCATED_NUMBER", "1", "404"),
        S.INVALID_NUMBER,
    ),
    ("486", asterisk(False, 17, 486), fs_refused("USER_BUSY", "17", "486"), S.BUSY),
    (
        "484",
        asterisk(False, 28, 484),
        fs_refused("INVALID_NUMBER_FORMAT", "28", "484"),
        S.INVALID_NUMBER,
    ),
    ("603", asterisk(False, 21, 603), fs_refused("CALL_REJECTED", "21", "603"), S.REJECTED),
    (
        "503",
        asterisk(False, 34, 503),
        fs_refused("NORMAL_TEMPORARY_FAILURE", "41", "503"),
        S.TECHNICAL_ERROR,
    ),
    (
        "500 (outside the number plan)",
        asterisk(False, 38, 500),
        fs_refused("NORMAL_TEMPORARY_FAILURE", "41", "500"),
        S.TECHNICAL_ERROR,
    ),
    (
        "unknown endpoint / gateway: no channel",
        RawOutcome(answered=False, originate_failed=True, originate_reason=0),
        RawOutcome(answered=False, originate_failed=True),  # job -ERR INVALID_GATEWAY
        S.TECHNICAL_ERROR,
    ),
]


@pytest.mark.parametrize(("behaviour", "ast", "fs", "status"), SAME, ids=[r[0] for r in SAME])
def test_both_switches_give_the_same_status(
    behaviour: str, ast: RawOutcome, fs: RawOutcome, status: CallStatus
) -> None:
    assert classify(ast).status is status, behaviour
    assert classify(fs).status is status, behaviour
    assert classify(ast).consumes_attempt == classify(fs).consumes_attempt


def test_freeswitch_fallbacks_seen_on_the_real_switch() -> None:
    # Ring timeout: the SIP code comes from sip_invite_failure_status (no sip_term_status).
    assert freeswitch(
        Hangup_Cause="NO_ANSWER", hangup_cause_q850="19", sip_invite_failure_status="487"
    ) == RawOutcome(answered=False, q850_cause=19, sip_code=487)
    # 487 ORIGINATOR_CANCEL is FreeSWITCH's own cause, not a Q.850 one: no q850 cause.
    assert freeswitch(Hangup_Cause="ORIGINATOR_CANCEL", hangup_cause_q850="487") == RawOutcome(
        answered=False
    )


def test_dialplan_results_travel_in_the_freeswitch_hangup() -> None:
    """dialer.xml's variables give the same statuses as Asterisk's UserEvents."""
    common = {"Hangup_Cause": "NORMAL_CLEARING", "hangup_cause_q850": "16"}
    cases = [
        ({"dialer_amd_status": "MACHINE", "dialer_amd_cause": "LONGGREETING-1500"}, S.VOICEMAIL),
        ({"dialer_amd_status": "HUMAN", "dialer_amd_cause": "HUMAN-800"}, S.ANSWERED),
        ({"dialer_amd_status": "NOTSURE", "dialer_amd_cause": "UNDECIDED"}, S.ANSWERED),
        ({"dialer_amd_status": "HUMAN", "dialer_result": "dnc"}, S.DO_NOT_CALL),
        (
            {
                "dialer_amd_status": "HUMAN",
                "dialer_result": "callback",
                "dialer_callback_at": "1796553600",
            },
            S.RESCHEDULED,
        ),
    ]
    for variables, status in cases:
        raw = freeswitch(True, **common, **variables)
        assert classify(raw).status is status, variables
    raw = freeswitch(True, **common, dialer_result="callback", dialer_callback_at="1796553600")
    assert (raw.dialplan_result, raw.callback_at) == (DialplanResult.CALLBACK, 1796553600.0)
    asterisk_machine = RawOutcome(answered=True, q850_cause=16, amd_status=AmdStatus.MACHINE)
    assert classify(asterisk_machine).status is S.VOICEMAIL


def test_an_unreachable_trunk_is_where_the_switches_differ() -> None:
    """Asterisk waits the full timeout and reports 19/480 (No answer); FreeSWITCH gets the ICMP
    port-unreachable and reports a 503 at once (Technical error: retried without using up an
    attempt, capped by the technical retry limit). Documented in pbx-config/README.md."""
    assert classify(asterisk(False, 19, 480)).status is S.NO_ANSWER
    fs = fs_refused("NORMAL_TEMPORARY_FAILURE", "41", "503")
    assert classify(fs).status is S.TECHNICAL_ERROR
    assert not classify(fs).consumes_attempt
