"""The switch's own record of a call (the AstDB value of the hangup handler) and the bounded
memory of call ends an adapter saw but did not follow.

* parse_record is total: any text gives a record or None, never an exception; only values of
  the right shape come out (a hostile field is dropped, not passed on).
* What the dialplan writes (encode_record) comes back exactly; the values recorded on the real
  stack (Asterisk 22.10, the carrier simulator) classify as the events would.
* EndMemory keeps the newest ``capacity`` ends, none older than ``ttl``.
"""

from __future__ import annotations

import calendar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.domain.calls import AmdStatus, DialplanResult, RawOutcome
from dialer.domain.outcome import classify
from dialer.domain.statuses import CallStatus
from dialer.pbx.asterisk.record import (
    FAMILY,
    KEPT_DAYS,
    MAX_VALUE,
    SwitchRecord,
    encode_record,
    parse_record,
    record_families,
    valid_call_id,
)
from dialer.pbx.base import CallEnded
from dialer.pbx.ends import EndMemory

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
S = CallStatus

# AstDB values written by the hangup handler on the real stack (database show dialer)
RECORDED = {
    "v1 state=Up cause=0 sip=200 amd=HANGUP amdcause= result= at= end=1796546848": S.ANSWERED,
    "v1 state=Down cause=17 sip=486 amd= amdcause= result= at= end=1796546846": S.BUSY,
    "v1 state=Ringing cause=19 sip=180 amd= amdcause= result= at= end=1796546849": S.NO_ANSWER,
    "v1 state=Down cause=1 sip=404 amd= amdcause= result= at= end=1796546846": S.INVALID_NUMBER,
    "v1 state=Up cause=16 sip=200 amd=HUMAN amdcause=HUMAN-800-800 result=dnc at= "
    "end=1796546849": S.DO_NOT_CALL,
    "v1 state=Up cause=16 sip=200 amd=HUMAN amdcause=HUMAN-800-800 result=callback "
    "at=1796550449 end=1796546849": S.RESCHEDULED,
    "v1 state=Up cause=16 sip=200 amd=MACHINE amdcause=LONGGREETING-1500-1500 result= at= "
    "end=1796546847": S.VOICEMAIL,
    "v1 state=Down cause=34 sip=503 amd= amdcause= result= at= end=1796546846": S.TECHNICAL_ERROR,
}


@pytest.mark.parametrize(("value", "status"), RECORDED.items())
def test_values_recorded_on_the_real_stack_classify_as_the_events_would(
    value: str, status: CallStatus
) -> None:
    record = parse_record(value)
    assert record is not None
    assert classify(record.outcome()).status is status


def test_a_callback_keeps_its_time_and_provisional_sip_codes_are_dropped() -> None:
    record = parse_record(
        "v1 state=Up cause=16 sip=200 amd=HUMAN amdcause=HUMAN-800-800 result=callback "
        "at=1796550449 end=1796546849"
    )
    assert record == SwitchRecord(
        answered=True,
        q850_cause=16,
        amd_status=AmdStatus.HUMAN,
        amd_cause="HUMAN-800-800",
        dialplan_result=DialplanResult.CALLBACK,
        callback_at=1796550449,
        ended_at=1796546849,
    )
    assert record.outcome().callback_at == 1796550449.0


@pytest.mark.parametrize(
    "value",
    [
        "",
        "v1",
        "v2 state=Up cause=16",  # another version
        "state=Up cause=16",
        "v1 cause=16",  # no state
        "v1 state=Up) cause=16",
        "v1 state=" + "U" * 17,
        "v1 state=Up " + "x" * MAX_VALUE,
    ],
)
def test_what_is_not_a_record_of_ours_is_none(value: str) -> None:
    assert parse_record(value) is None


def test_hostile_fields_are_dropped_not_passed_on() -> None:
    record = parse_record(
        "v1 state=Up cause=16x sip=48a amd=human amdcause=HUMAN-1);Set(x) result=DNC at=1 "
        "end=-5 cause=17"
    )
    assert record == SwitchRecord(answered=True)
    assert parse_record("v1 state=Down cause=999 sip=9999") == SwitchRecord(answered=False)
    # an AMD cause without its status, a callback time without the callback: dropped
    assert parse_record("v1 state=Up amdcause=HUMAN-1 at=5") == SwitchRecord(answered=True)


records = st.builds(
    SwitchRecord,
    answered=st.booleans(),
    q850_cause=st.none() | st.integers(0, 127),
    sip_code=st.none() | st.integers(300, 699),
    amd_status=st.none() | st.sampled_from(AmdStatus),
    amd_cause=st.none() | st.from_regex(r"[A-Z]{1,20}(-[0-9]{1,6}){0,3}", fullmatch=True),
    dialplan_result=st.none() | st.sampled_from(DialplanResult),
    callback_at=st.none() | st.integers(0, 2**40),
    ended_at=st.none() | st.integers(0, 2**40),
)


@FUZZ
@given(records)
def test_what_the_dialplan_writes_comes_back_exactly(record: SwitchRecord) -> None:
    expected = record
    if record.amd_status is None:
        expected = _replace(expected, amd_cause=None)
    if record.dialplan_result is not DialplanResult.CALLBACK:
        expected = _replace(expected, callback_at=None)
    assert parse_record(encode_record(record)) == expected


def _replace(record: SwitchRecord, **changes: object) -> SwitchRecord:
    fields = {name: getattr(record, name) for name in SwitchRecord.__slots__}
    fields.update(changes)
    return SwitchRecord(**fields)


TOKENS = st.sampled_from(
    [
        "v1",
        "state=Up",
        "state=Down",
        "cause=16",
        "sip=486",
        "amd=HUMAN",
        "result=dnc",
        "at=9",
        "=",
        " ",
        "==",
        "state=",
        "v1 ",
        "\x00",
        "é",
        ")",
        ";",
        ",",
    ]  # fmt: skip
)


@FUZZ
@given(st.text(max_size=600) | st.lists(TOKENS | st.text(max_size=8), max_size=40).map("".join))
def test_parse_record_is_total_and_only_shaped_values_come_out(value: str) -> None:
    record = parse_record(value)
    if record is None:
        return
    raw = record.outcome()
    assert isinstance(raw, RawOutcome)
    assert raw.q850_cause is None or 0 <= raw.q850_cause <= 127
    assert raw.sip_code is None or 300 <= raw.sip_code <= 699
    assert raw.amd_cause is None or raw.amd_cause.replace("-", "").isalnum()
    classify(raw)  # every record classifies


def test_record_families_cover_the_days_from_the_start_to_now() -> None:
    day = calendar.timegm((2026, 12, 6, 23, 59, 0))
    assert record_families(day, day + 30) == [f"{FAMILY}/20261206"]
    assert record_families(day, day + 120) == [f"{FAMILY}/20261206", f"{FAMILY}/20261207"]
    assert len(record_families(day, day + 30 * 86400)) == KEPT_DAYS
    assert record_families(day + 60, day) == [f"{FAMILY}/20261206"]  # clocks apart


def test_only_plain_call_ids_are_looked_up() -> None:
    assert valid_call_id("dlr-0123abcd-1f")
    assert not valid_call_id("dlr/../x")
    assert not valid_call_id("")


# -- the memory of ends ---------------------------------------------------------------------------


def end(call_id: str, at: float) -> CallEnded:
    return CallEnded(call_id, RawOutcome(True, q850_cause=16), at, at - 1)


def test_the_memory_keeps_the_newest_ends_up_to_its_capacity() -> None:
    memory = EndMemory(capacity=3, ttl=100.0)
    for i in range(5):
        memory.remember(end(f"dlr-{i}", float(i)))
    assert [c for c in ("dlr-0", "dlr-1", "dlr-2", "dlr-3", "dlr-4") if c in memory] == [
        "dlr-2",
        "dlr-3",
        "dlr-4",
    ]
    memory.remember(end("dlr-2", 5.0))  # stored again: the newest now
    memory.remember(end("dlr-5", 6.0))
    assert "dlr-2" in memory
    assert "dlr-3" not in memory
    stats = memory.statistics()
    assert (stats.size, stats.capacity, stats.stored, stats.evicted) == (3, 3, 7, 3)


def test_the_memory_forgets_ends_older_than_its_ttl() -> None:
    memory = EndMemory(capacity=10, ttl=60.0)
    memory.remember(end("dlr-old", 0.0))
    memory.remember(end("dlr-new", 50.0))
    got = memory.get("dlr-old", 59.0)
    assert got is not None
    assert got.ended_at == 0.0
    assert memory.get("dlr-old", 61.0) is None
    assert memory.get("dlr-new", 61.0) is not None
    assert memory.pop("dlr-new") is not None
    assert len(memory) == 0


@pytest.mark.parametrize(("capacity", "ttl"), [(0, 1.0), (1, 0.0), (1, float("nan"))])
def test_the_memory_refuses_nonsense_bounds(capacity: int, ttl: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        EndMemory(capacity=capacity, ttl=ttl)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 20), st.floats(0, 1000)), max_size=200))
def test_the_memory_never_holds_more_than_its_capacity(items: list[tuple[int, float]]) -> None:
    memory = EndMemory(capacity=7, ttl=1e9)
    for n, at in items:
        memory.remember(end(f"dlr-{n}", at))
        assert len(memory) <= 7
    if items:
        n, at = items[-1]
        assert memory.get(f"dlr-{n}", at) is not None  # the newest is always there
