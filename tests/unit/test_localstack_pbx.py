"""The local stack's choice of switches: StackInfo for each, the env it exports, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.localstack import stack
from ops.localstack.__main__ import _parser
from ops.localstack.stack import StackError, StackInfo

COMMON = dict(
    name="s",
    workdir=Path("/tmp/s"),
    redis_url="redis://dialer:x@127.0.0.1:20413/0",
    redis_port=20413,
    sipp_port=20401,
    sipp_media_port=20402,
    sipp_control_port=20408,
    dead_port=20411,
    redis_pid=11,
    sipp_pid=12,
)
ASTERISK = dict(
    root=Path("/var/cache/dialer/asterisk-root"),
    conf_dir="/etc/dialer-s",
    asterisk_version="Asterisk 22.10.1",
    ami_host="127.0.0.1",
    ami_port=20410,
    ami_username="dialer",
    ami_secret="a" * 32,
    sip_port=20400,
    http_port=20412,
    rtp_start=20000,
    rtp_end=20399,
    asterisk_pid=13,
)
NO_ASTERISK = dict(
    root=Path(),
    conf_dir="",
    asterisk_version="",
    ami_host="",
    ami_port=0,
    ami_username="",
    ami_secret="",
    sip_port=0,
    http_port=0,
    rtp_start=0,
    rtp_end=0,
    asterisk_pid=0,
)
FREESWITCH = dict(
    freeswitch_pid=14,
    freeswitch_prefix="/var/cache/dialer/freeswitch-k",
    freeswitch_sip_port=20414,
    esl_port=20415,
    esl_password="e" * 32,
    freeswitch_rtp_start=20416,
    freeswitch_rtp_end=20815,
)


def info(pbx: str) -> StackInfo:
    fields: dict[str, object] = {**COMMON, **(NO_ASTERISK if pbx == "freeswitch" else ASTERISK)}
    if pbx != "asterisk":
        fields |= FREESWITCH
    return StackInfo(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("pbx", stack.PBXES)
def test_what_runs_follows_the_switches(pbx: str) -> None:
    s = info(pbx)
    assert s.pbx == pbx
    switches = {"asterisk": ["asterisk"], "freeswitch": ["freeswitch"]}.get(
        pbx, ["asterisk", "freeswitch"]
    )
    assert list(s.components) == ["redis", "sipp", *switches]
    assert set(s.pids) == set(s.components)
    assert StackInfo.from_json(s.to_json()) == s


def test_a_freeswitch_stack_has_no_asterisk_anywhere() -> None:
    s = info("freeswitch")
    assert '"root": ""' in s.to_json()
    assert 0 not in s.pids.values()
    env = s.env()
    assert env["DIALER_ESL_URL"] == f"esl://:{'e' * 32}@127.0.0.1:20415"
    assert env["DIALER_STACK_PBX"] == "freeswitch"
    assert not any("AMI" in k or "ASTERISK" in k for k in env)
    for call in (lambda: s.env("asterisk"), lambda: s.ami_url, lambda: s.cli_command("x")):
        with pytest.raises(StackError, match="runs no Asterisk"):
            call()
    assert s.fs_cli_command("sofia status").endswith(
        "-P 20415 -p " + "e" * 32 + " -x 'sofia status'"
    )
    # its block: the 16 service ports and FreeSWITCH's RTP range, no Asterisk RTP range
    assert stack._block(s) == (20400, 20816)


def test_env_points_the_dialer_at_the_switch_asked_for() -> None:
    both = info("both")
    assert {"DIALER_AMI_URL", "DIALER_ESL_URL"} & set(both.env()) == {"DIALER_AMI_URL"}
    on_fs = both.env("freeswitch")
    assert {"DIALER_AMI_URL", "DIALER_ESL_URL"} & set(on_fs) == {"DIALER_ESL_URL"}
    assert both.env("freeswitch")["DIALER_ASTERISK_ROOT"] == str(ASTERISK["root"])
    with pytest.raises(StackError, match="runs no FreeSWITCH"):
        info("asterisk").env("freeswitch")
    assert stack._block(both) == (20000, 20816)
    assert stack._block(info("asterisk")) == (20000, 20416)


@pytest.mark.parametrize(
    ("pbx", "with_freeswitch", "wanted"),
    [
        (None, False, None),
        (None, True, "both"),
        ("both", True, "both"),
        ("freeswitch", False, "freeswitch"),
        ("asterisk", False, "asterisk"),
    ],
)
def test_with_freeswitch_is_both(pbx: str | None, with_freeswitch: bool, wanted: str) -> None:
    assert stack._wanted_pbx(pbx, with_freeswitch) == wanted


@pytest.mark.parametrize(("pbx", "with_freeswitch"), [("asterisk", True), ("sip", False)])
def test_contradictions_and_unknown_switches_are_refused(pbx: str, with_freeswitch: bool) -> None:
    with pytest.raises(StackError, match="pbx"):
        stack.up("s", Path("/tmp/s"), pbx=pbx, with_freeswitch=with_freeswitch)


@pytest.mark.parametrize(
    ("argv", "pbx"),
    [
        ([], None),
        (["--pbx", "freeswitch"], "freeswitch"),
        (["--pbx", "both"], "both"),
        (["--with-freeswitch"], "both"),
        (["--pbx", "asterisk"], "asterisk"),
    ],
)
def test_cli_up_takes_the_switches(argv: list[str], pbx: str | None) -> None:
    assert _parser().parse_args(["up", *argv]).pbx == pbx


def test_cli_env_defaults_to_the_stacks_own_switch() -> None:
    assert _parser().parse_args(["env"]).pbx is None
    with pytest.raises(SystemExit):
        _parser().parse_args(["up", "--pbx", "yate"])
