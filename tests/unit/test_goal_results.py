"""The goal result and the voicemail drop, as each switch's correlator reads them.

Asterisk: UserEvents ``DialerGoal`` (Goal) and ``DialerVoicemail`` (Drop); FreeSWITCH: the
hang-up's ``variable_dialer_goal`` / ``variable_dialer_vm_drop``. Only the exact enum values
count; anything else (case, padding, dialplan syntax) is ignored, never parsed.
"""

from __future__ import annotations

import pytest

from dialer.analytics import RecordTally, build_analytics
from dialer.domain.calls import AmdStatus, GoalResult, RawOutcome, VoicemailDrop
from dialer.domain.outcome import classify
from dialer.domain.statuses import CallStatus as S
from dialer.pbx.ami.codec import Message
from dialer.pbx.asterisk import record as ast_record
from dialer.pbx.asterisk.correlate import CallCorrelator as AstCorrelator
from dialer.pbx.base import CallEnded, PbxEvent
from dialer.pbx.esl.codec import EslEvent
from dialer.pbx.freeswitch import record as fs_record
from dialer.pbx.freeswitch.correlate import CallCorrelator as FsCorrelator
from dialer.store.models import QueueStats

CID = "dlr-goal-1"
HOSTILE = ["COMPLETED", " completed", "completed,failed", "${goal}", "failed)", "", "played\n"]


def ami(name: str, **fields: str) -> Message:
    return Message(headers=(("Event", name), ("Uniqueid", CID), *fields.items()))


def asterisk(*user_events: dict[str, str]) -> RawOutcome:
    c = AstCorrelator()
    c.follow(CID, 0.0)
    out: list[PbxEvent] = []
    events = [
        ami("OriginateResponse", Response="Success", Reason="4", Channel="PJSIP/t-1"),
        *(ami("UserEvent", **u) for u in user_events),
        ami("Hangup", Cause="16", ChannelState="6"),
    ]
    for event in events:
        out += c.feed(event, 1.0)
    return next(e for e in out if isinstance(e, CallEnded)).raw


def freeswitch(**variables: str) -> RawOutcome:
    c = FsCorrelator()
    c.follow(CID, 0.0)
    headers = {
        "Event-Name": "CHANNEL_HANGUP_COMPLETE",
        "Unique-ID": CID,
        "Hangup-Cause": "NORMAL_CLEARING",
        "variable_hangup_cause_q850": "16",
        "variable_answer_epoch": "1",
        **{f"variable_{k}": v for k, v in variables.items()},
    }
    out = c.feed(EslEvent(tuple(headers.items())), 2.0)
    return next(e for e in out if isinstance(e, CallEnded)).raw


@pytest.mark.parametrize("goal", list(GoalResult))
def test_both_switches_report_the_goal(goal: GoalResult) -> None:
    ast = asterisk({"UserEvent": "DialerGoal", "Goal": goal.value})
    fs = freeswitch(dialer_goal=goal.value)
    assert ast.goal is fs.goal is goal
    assert classify(ast).status is classify(fs).status is S(goal.value)


def test_a_voicemail_drop_is_kept_played_after_started() -> None:
    machine = {"UserEvent": "DialerAMD", "Status": "MACHINE", "Cause": "LONGGREETING"}
    started = {"UserEvent": "DialerVoicemail", "Drop": "started"}
    played = {"UserEvent": "DialerVoicemail", "Drop": "played"}
    assert asterisk(machine, started, played).voicemail_drop is VoicemailDrop.PLAYED
    cut = asterisk(machine, started)  # hung up during the message: no "played" came
    assert (cut.amd_status, cut.voicemail_drop) == (AmdStatus.MACHINE, VoicemailDrop.STARTED)
    fs = freeswitch(dialer_amd_status="MACHINE", dialer_vm_drop="played")
    assert fs.voicemail_drop is VoicemailDrop.PLAYED
    assert classify(fs).status is S.VOICEMAIL


@pytest.mark.parametrize("value", HOSTILE)
def test_values_outside_the_grammar_are_ignored(value: str) -> None:
    ast = asterisk(
        {"UserEvent": "DialerGoal", "Goal": value},
        {"UserEvent": "DialerVoicemail", "Drop": value},
    )
    fs = freeswitch(dialer_goal=value, dialer_vm_drop=value)
    for raw in (ast, fs):
        assert (raw.goal, raw.voicemail_drop) == (None, None)
        assert classify(raw).status is S.ANSWERED


def test_the_switch_records_keep_the_goal_and_the_drop() -> None:
    """The end of a call no engine saw: Asterisk's AstDB line, FreeSWITCH's global variable."""
    record = ast_record.SwitchRecord(
        answered=True,
        q850_cause=16,
        amd_status=AmdStatus.MACHINE,
        goal=GoalResult.FAILED,
        voicemail_drop=VoicemailDrop.PLAYED,
    )
    line = ast_record.encode_record(record)
    assert line.endswith(" goal=failed vm=played")
    assert ast_record.parse_record(line) == record
    fs = fs_record.parse_record(
        "v1;ans:1796546580;cause:16;goal:completed;vm:started;end:1796546590"
    )
    assert fs is not None
    assert (fs.goal, fs.voicemail_drop) == (GoalResult.COMPLETED, VoicemailDrop.STARTED)
    for value in HOSTILE:
        bad = ast_record.parse_record(f"v1 state=Up cause=16 goal={value} vm={value}")
        assert bad is not None
        assert (bad.goal, bad.voicemail_drop) == (None, None)


def test_analytics_count_a_goal_result_as_an_answer() -> None:
    """Completed and Failed contacts were answered by a person: the answer rate counts them."""
    counts = {S.COMPLETED: 2, S.FAILED: 1, S.ANSWERED: 1, S.VOICEMAIL: 4}
    tally = RecordTally()
    for status in ("completed", "failed", "answered", "voicemail"):
        tally.add({"status": status, "ended_ms": "1796546580000", "duration_s": "3.0"})
    a = build_analytics(1, counts, QueueStats(0, 0, None, 0, 0), tally)
    assert (a.contacts_answered, a.contacts_finished, a.success_rate) == (4, 8, 0.5)
    assert (a.human_answers, a.voicemail_answers, a.talk.count) == (3, 1, 3)
