"""The ``dialer`` command tree: help everywhere, one-line usage errors, exit codes."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialer.cli import build_parser, main
from dialer.cli.common import redacted, settings_from
from ops.localstack.ports import free_port

ROOT = Path(__file__).resolve().parents[2]

#: The command tree (every leaf), as the report describes it.
TREE = {
    ("engine",),
    ("run",),
    ("campaign", "create"),
    ("campaign", "list"),
    ("campaign", "show"),
    ("campaign", "edit"),
    ("campaign", "start"),
    ("campaign", "pause"),
    ("campaign", "resume"),
    ("campaign", "stop"),
    ("campaign", "delete"),
    ("campaign", "stop-all"),
    ("campaign", "why"),
    ("list", "upload"),
    ("list", "stop"),
    ("list", "caller-id"),
    ("list", "recycle"),
    ("contact", "remove"),
    ("status",),
    ("records",),
    ("analytics",),
    ("dnc", "add"),
    ("dnc", "remove"),
    ("dnc", "check"),
    ("dnc", "import"),
    ("trunk", "show"),
    ("trunk", "reset"),
    ("callback", "add"),
    ("callback", "move"),
    ("callback", "cancel"),
    ("callback", "list"),
    ("node", "list"),
    ("node", "set"),
    ("node", "remove"),
    ("node", "cap"),
    ("trunkgroup", "list"),
    ("trunkgroup", "set"),
    ("trunkgroup", "remove"),
}


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, bool]]:
    """(path, parser, is_leaf) for the parser and every subparser below it."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    yield path, parser, not subs
    for action in subs:
        for name, child in action.choices.items():
            yield from walk(child, (*path, name))


def test_the_command_tree() -> None:
    leaves = {path for path, _, leaf in walk(build_parser()) if leaf}
    assert leaves == TREE


def test_every_command_and_option_has_help() -> None:
    for path, parser, _ in walk(build_parser()):
        assert parser.description, f"{path}: no description"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{path} {choice.dest}: no help"
                continue
            where = f"{' '.join(path) or 'dialer'} {action.option_strings or action.dest}"
            assert action.help, f"{where}: no help"
            assert action.help != argparse.SUPPRESS, f"{where}: hidden"


GROUPS = {(), ("campaign",), ("list",), ("dnc",), ("trunk",)}


@pytest.mark.parametrize("path", sorted(TREE | GROUPS))
def test_help_of_every_command(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*path, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: {' '.join(('dialer', *path))}")
    assert "--redis-url" in text
    assert "--namespace" in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("dialer 0.")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND (see 'dialer --help')"),
        (["campaign"], "required: ACTION (see 'dialer campaign --help')"),
        (["campaign", "show", "abc"], "argument ID: an id (a positive whole number) expected"),
        (["campaign", "show", "0"], "an id (a positive whole number) expected, got '0'"),
        (["status", "1", "--interval", "-1"], "a positive number of seconds expected"),
        (["campaign", "list", "--status", "sleeping"], "unknown status 'sleeping': one of"),
        (["dnc", "add"], "the following arguments are required: NUMBER"),
        (["fly"], "invalid choice: 'fly'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("dialer: ")
    assert message in lines[0]


def test_status_accepts_labels_and_values() -> None:
    parser = build_parser()
    assert parser.parse_args(["campaign", "list", "--status", "Paused"]).status == "paused"
    assert parser.parse_args(["campaign", "list", "--status", "draft"]).status == "draft"


def test_global_options_before_or_after_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALER_REDIS_URL", "redis://env:1/0")
    monkeypatch.setenv("DIALER_NAMESPACE", "envns")
    parser = build_parser()
    before = parser.parse_args(["--namespace", "a", "campaign", "list"])
    after = parser.parse_args(["campaign", "list", "--namespace", "b", "--redis-url", "redis://x"])
    neither = parser.parse_args(["campaign", "list"])
    assert settings_from(before).namespace == "a"
    assert settings_from(before).redis_url == "redis://env:1/0"
    assert (settings_from(after).namespace, settings_from(after).redis_url) == ("b", "redis://x")
    assert (settings_from(neither).namespace, settings_from(neither).redis_url) == (
        "envns",
        "redis://env:1/0",
    )


def test_unreachable_redis_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://:hunter2secret@127.0.0.1:{free_port()}/0"
    assert main(["--redis-url", url, "campaign", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dialer: cannot reach Redis at redis://:***@127.0.0.1:")
    assert "hunter2secret" not in err
    assert len(err.splitlines()) == 1


def test_bad_environment_is_a_user_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DIALER_LEASE_MS", "soon")
    assert main(["campaign", "list"]) == 2
    assert capsys.readouterr().err == "dialer: DIALER_LEASE_MS must be a whole number, not 'soon'\n"


def test_engine_without_pbx_is_a_user_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DIALER_AMI_URL", raising=False)
    assert main(["engine"]) == 2
    assert "dialer: no PBX configured: set DIALER_AMI_URL" in capsys.readouterr().err


_BAD_TRUNKS = "DIALER_TRUNKS: trunk 'carrier': max_channels must be a whole number of channels"


@pytest.mark.parametrize("command", ["engine", "run"])
@pytest.mark.parametrize("trunks", ["carrier=0/0", "carrier=-5/0", "carrier=nan/10"])
def test_engine_refuses_to_start_with_a_bad_trunk_limit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str, trunks: str
) -> None:
    monkeypatch.setenv("DIALER_AMI_URL", "ami://u:secret@127.0.0.1:1")
    monkeypatch.setenv("DIALER_API_TOKENS", "admin:" + "a" * 20)
    monkeypatch.setenv("DIALER_TRUNKS", f"backup=10/2,{trunks}")
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dialer: {_BAD_TRUNKS}"), err
    assert len(err.splitlines()) == 1


def test_engine_process_with_a_bad_trunk_limit_exits_without_traceback() -> None:
    env = {**os.environ, "DIALER_TRUNKS": "carrier=10/0", "DIALER_AMI_URL": "ami://u:p@h:1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dialer", "engine"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "dialer: DIALER_TRUNKS: trunk 'carrier': cps must be a number of calls per second "
        "above 0 and up to 10000, or 'unlimited', got 0.0\n"
    )


def test_run_without_api_tokens_is_a_user_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DIALER_API_TOKENS", raising=False)
    assert main(["run"]) == 2
    assert capsys.readouterr().err.startswith("dialer: DIALER_API_TOKENS is not set")


def test_unexpected_errors_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("wires crossed")

    parser = build_parser()
    original = parser.parse_args

    def parse(argv: list[str] | None = None) -> argparse.Namespace:
        args = original(argv)
        args.func = broken
        return args

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr("dialer.cli.build_parser", lambda: parser)
    assert main(["status", "1"]) == 1
    assert capsys.readouterr().err == (
        "dialer: unexpected error: RuntimeError: wires crossed (run with -v for the traceback)\n"
    )
    assert main(["-v", "status", "1"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.endswith("dialer: unexpected error: RuntimeError: wires crossed\n")


def test_redacted() -> None:
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redacted("redis://u:p@h:1/2") == "redis://u:***@h:1/2"
    assert redacted("rediss://:p@h/0") == "rediss://:***@h/0"


def test_python_dash_m_and_console_script_entry() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dialer", "campaign", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0
    assert "stop-all" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "dialer", "campaign", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("dialer: argument ACTION: invalid choice: 'nope'")
