"""The dialplan's knobs (issue 15): only they may be campaign variables, each in its grammar."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dialer.config import EngineSettings, parse_contexts
from dialer.domain.campaign import CampaignSettings
from dialer.domain.dialplan import CONTACT_PREFIX, KNOBS, RESERVED, check_context
from dialer.engine.control import CampaignControl
from dialer.errors import ConfigError, ValidationError
from dialer.pbx.sanitize import channel_variables

HOSTILE = [
    '" & 0 & "x):Set(FILE(/tmp/x)=pwned)',
    "x):Dial(PJSIP/+12015000000@carrier)",
    "x):UserEvent(DialerAMD,Status: HUMAN,Cause: forged)",
    "a/b):0:1&/tmp/z",
    "../../etc/x",
    "/var/lib/asterisk/sounds/x",
    "beep,noanswer",
    "beep&beep",
    "beep|x",
    "${FILE(/tmp/x)}",
    "$[1+1]",
    "x;comment",
    "x.wav",
    "",
    " beep",
    "a//b",
    "-x",
    "x" * 129,
    "1e3",
    "0",
    "-5",
    "+5",
    "05",
    "５",
]
ROOT = Path(__file__).resolve().parents[2]


def _settings(**variables: object) -> CampaignSettings:
    return CampaignSettings.from_dict(
        {"name": "n", "trunk": "carrier", "max_channels": 1, "cps": 1, "variables": variables}
    )


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("name", sorted(KNOBS))
def test_hostile_values_are_refused_naming_the_variable(name: str, value: str) -> None:
    if name == "DIALER_VM_MESSAGE" and value in ("0", "05", "1e3"):
        return  # sound names in the grammar
    with pytest.raises(ValidationError, match=f"^variables.{name} must be "):
        _settings(**{name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DIALER_MAX_TALK", "1"),
        ("DIALER_MAX_TALK", "86400"),
        ("DIALER_IVR_TIMEOUT", "60"),
        ("DIALER_VM_MESSAGE", "beep"),
        ("DIALER_VM_MESSAGE", "custom/voicemail-offer_2"),
        ("DIALER_VM_MESSAGE", "x" * 128),
    ],
)
def test_the_grammar_accepts_plain_values(name: str, value: str) -> None:
    assert _settings(**{name: value}).variables == {name: value}


def test_out_of_range_numbers_and_yaml_integers() -> None:
    assert _settings(DIALER_MAX_TALK=120).variables == {"DIALER_MAX_TALK": "120"}
    for name, value in (("DIALER_MAX_TALK", "86401"), ("DIALER_IVR_TIMEOUT", "61")):
        with pytest.raises(ValidationError, match=f"variables.{name} must be a whole number"):
            _settings(**{name: value})
    with pytest.raises(ValidationError, match="DIALER_MAX_TALK must be"):
        _settings(DIALER_MAX_TALK=True)


@pytest.mark.parametrize(
    "name", [*RESERVED, "DIALER_VAR_NOTE", "FOO", "AMDSTATUS", "DIALER_OK_VM", "__DIALER_X"]
)
def test_only_the_knobs_may_be_set(name: str) -> None:
    with pytest.raises(ValidationError, match=f"^variables.{name} "):
        _settings(**{name: "1"})


def test_no_contact_field_can_set_a_knob() -> None:
    fields = {name: "1" for name in [*KNOBS, *RESERVED]} | {"x,DIALER_AMD=0": "v"}
    channel = channel_variables(fields)
    assert all(name.startswith(CONTACT_PREFIX) for name in channel)
    assert not any(name.startswith(CONTACT_PREFIX) for name in [*KNOBS, *RESERVED])


def test_the_dialplan_reads_only_the_knobs_and_never_parses_a_value() -> None:
    """The shipped extensions.conf: every DIALER_ variable it reads is a knob, one the engine
    sets, or its own copy; no ExecIf/Exec/EVAL, and no $[...] holds a variable but EPOCH."""
    text = (ROOT / "pbx-config/asterisk/extensions.conf").read_text()
    plan = "\n".join(line.split(";", 1)[0] for line in text.splitlines())
    read = set(re.findall(r"\$\{(DIALER_[A-Z_]+)\}", plan))
    own = {"DIALER_OK_TALK", "DIALER_OK_WAIT", "DIALER_OK_VM", "DIALER_DIGIT"}
    record = {
        "DIALER_REC_DAY",
        "DIALER_REC_TECH",
        "DIALER_REC_SIP",
        "DIALER_REC_RESULT",
        "DIALER_REC_AT",
        "DIALER_REC_GOAL",  # set only to the literals completed / failed (dialer-goal)
        "DIALER_REC_VM",  # set only to the literals started / played (the voicemail drop)
    }
    assert read <= set(KNOBS) | {"DIALER_AMD"} | own | record, read
    assert not re.search(r"ExecIf\(|Exec\(|EVAL\(|IF\(", plan)
    for expression in re.findall(r"\$\[[^\]]*\]", plan):  # EPOCH and a constant only
        assert re.fullmatch(r"\$\[\$\{EPOCH\} [-+] [0-9]+\]", expression), expression
    for knob in [*KNOBS, "DIALER_AMD"]:  # a knob's value only as the last argument of these
        for use in re.findall(rf"(.{{0,12}})\$\{{{knob}\}}(.)", plan):
            assert use[0].endswith(("FILTER(0-9,", "/_0-9A-Za-z,", '$" ')), use
            assert use[1] == ")", use


def test_contexts_are_configured_names() -> None:
    assert EngineSettings().contexts == frozenset({"dialer-outbound"})
    settings = EngineSettings.from_env({"DIALER_CONTEXTS": "dialer-outbound, survey"})
    assert settings.contexts == frozenset({"dialer-outbound", "survey"})
    for bad in ("x,y z", ",", "a(b)"):
        with pytest.raises(ConfigError, match="DIALER_CONTEXTS"):
            parse_contexts(bad)
    check_context("survey", settings.contexts)
    with pytest.raises(ValidationError, match="^context 'default' is not a configured"):
        check_context("default", settings.contexts)


async def test_create_refuses_a_context_that_is_not_configured() -> None:
    control = CampaignControl(store=None, contexts={"dialer-outbound"})  # type: ignore[arg-type]
    settings = CampaignSettings(
        name="n", trunk="carrier", max_channels=1, cps=1.0, context="default"
    )
    with pytest.raises(ValidationError, match="DIALER_CONTEXTS"):
        await control.create(settings)
    assert control.check(CampaignSettings(name="n", trunk="t", max_channels=1, cps=1.0))


def test_the_talk_limit_extension_is_in_the_outbound_context() -> None:
    """TIMEOUT(absolute) jumps to the ``T`` extension of the call's own context: a ``T`` in any
    other context leaves the limit's hang-up to Asterisk with cause 0 instead of 16 (a context
    added above it once captured it)."""
    context = None
    t_contexts = []
    for line in (ROOT / "pbx-config/asterisk/extensions.conf").read_text().splitlines():
        if line.startswith("["):
            context = line.strip("[]")
        elif line.startswith("exten => T,"):
            t_contexts.append(context)
    assert t_contexts == ["dialer-outbound"]
