"""The switch's own record of a call's end on FreeSWITCH (dialer/pbx/freeswitch/record.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dialer.domain.calls import AmdStatus, DialplanResult, RawOutcome
from dialer.pbx.base import OriginateRequest
from dialer.pbx.esl.client import EslSettings
from dialer.pbx.freeswitch.adapter import FreeSwitchSettings, originate_args
from dialer.pbx.freeswitch.record import ended_at, hangup_hook, parse_record, variable

# values written by FreeSWITCH 1.10.12's hang-up hook on the local stack (answered, 486)
ANSWERED = (
    "v1;ans:1796552576;cause:16;sip:200;fail:;proto:;amd:;amdcause:;result:;at:;end:1796552577"
)
BUSY = "v1;ans:0;cause:17;sip:486;fail:;proto:sip:486;amd:;amdcause:;result:;at:;end:1796552579"


def test_the_hook_is_one_command_without_block_syntax() -> None:
    hook = hangup_hook()
    assert hook.startswith("global_setvar::dialer_end_${uuid}=v1;")
    assert hook.count("=") == 1  # global_setvar splits name=value[=condition]
    for bad in (" ", ",", "'", '"', ":_:", "|", "^^", "[", "\n"):
        assert bad not in hook
    assert hook.count("${") == hook.count("{") == hook.count("}")  # balanced: the block holds


def test_records_parse() -> None:
    assert parse_record(ANSWERED) == RawOutcome(answered=True, q850_cause=16, sip_code=200)
    assert parse_record(BUSY) == RawOutcome(answered=False, q850_cause=17, sip_code=486)
    assert ended_at(BUSY) == 1796552579
    machine = "v1;ans:5;cause:16;sip:;amd:MACHINE;amdcause:avmd-beep;result:callback;at:99;end:7"
    assert parse_record(machine) == RawOutcome(
        answered=True,
        q850_cause=16,
        amd_status=AmdStatus.MACHINE,
        amd_cause="avmd-beep",
        dialplan_result=DialplanResult.CALLBACK,
        callback_at=99.0,
    )
    timeout = "v1;ans:0;cause:19;sip:;fail:487;proto:;end:1"
    assert parse_record(timeout) == RawOutcome(answered=False, q850_cause=19, sip_code=487)


def test_what_is_not_a_record() -> None:
    for value in ("", "v2;ans:1", "ans:1;cause:16", "x" * 600, "v1" + ";cause:16" * 100):
        assert parse_record(value) is None
    odd = parse_record("v1;ans:x;cause:999;sip:42;amd:ROBOT;amdcause:a b;result:pwn;at:1")
    assert odd == RawOutcome(answered=False)


@given(st.text(max_size=200))
def test_parse_record_never_raises(value: str) -> None:
    parse_record(value)
    ended_at(value)


def test_the_hook_is_the_only_expansion_in_the_block() -> None:
    request = OriginateRequest(
        call_id="dlr-rec-1",
        trunk="carrier",
        number="+12015550100",
        context="dialer-outbound",
        variables={
            "api_hangup_hook": "system::rm -rf /",
            "ORIGINATION_NESTED_VARS": "true",
            "DIALER_VAR_x": "${system(id)}",
        },
    )
    endpoint = originate_args(request, FreeSwitchSettings(esl=EslSettings()))[0]
    block = endpoint[1 : endpoint.rindex("}")]
    before, _, hook = block.partition(",api_hangup_hook=")
    assert hook == hangup_hook()
    assert before.endswith(",origination_nested_vars=true")
    assert "$" not in before
    assert "{" not in before
    assert block.count("api_hangup_hook") == 1
    assert block.lower().count("origination_nested_vars") == 1
    assert variable("dlr-rec-1") == "dialer_end_dlr-rec-1"
    off = originate_args(request, FreeSwitchSettings(esl=EslSettings(), end_records=False))[0]
    assert "api_hangup_hook" not in off
    assert "origination_nested_vars" not in off
