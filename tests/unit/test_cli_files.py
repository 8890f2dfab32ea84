"""Campaign files (YAML and TOML): what is read, and errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.cli.files import load_campaign_file, read_document
from dialer.domain.statuses import CallStatus
from dialer.errors import ConfigError
from tests.unit.cli_helpers import campaign_file, write

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_examples_yaml_and_toml_are_the_same_campaign() -> None:
    yaml_file = load_campaign_file(EXAMPLES / "campaign.yaml")
    toml_file = load_campaign_file(EXAMPLES / "campaign.toml")
    assert yaml_file.settings == toml_file.settings
    s = yaml_file.settings
    assert (s.name, s.trunk, s.max_channels, s.cps) == ("Spring reminders", "carrier", 20, 2.5)
    assert s.caller_id == '"Reminders" <+33123456789>'
    assert s.retry.delays[CallStatus.BUSY] == 300.0
    assert s.retry.max_attempts_for == {CallStatus.VOICEMAIL: 2}
    assert s.window is not None
    assert s.window.days == frozenset(range(6))
    assert s.limits is not None
    assert s.limits.max_attempts_total == 10_000
    assert s.variables == {"DIALER_MAX_TALK": "120"}
    assert yaml_file.contacts is None
    assert yaml_file.default_region == "US"


def test_minimal_files_and_defaults(tmp_path: Path) -> None:
    f = load_campaign_file(campaign_file(tmp_path))
    assert f.settings.context == "dialer-outbound"
    assert f.settings.window is None
    t = write(
        tmp_path / "c.toml",
        """
        name = "t"
        trunk = "carrier"
        max_channels = 1
        cps = 0.5
        """,
    )
    assert load_campaign_file(t).settings.cps == 0.5
    assert load_campaign_file(
        write(tmp_path / "c.yml", "name: y\ntrunk: t\nmax_channels: 1\ncps: 1\n")
    )


def test_yaml_times_stay_text_not_base_60(tmp_path: Path) -> None:
    # YAML 1.1 reads 10:30 as 630 and 1:30.5 as 90.5; a calling window needs the text.
    path = campaign_file(tmp_path, "window: {timezone: UTC, start: 10:30, end: 18:45}\n")
    window = load_campaign_file(path).settings.window
    assert window is not None
    assert (f"{window.start:%H:%M}", f"{window.end:%H:%M}") == ("10:30", "18:45")
    assert read_document(write(tmp_path / "n.yaml", "a: 1:30.5\nb: 12\nc: 1.5\n")) == {
        "a": "1:30.5",
        "b": 12,
        "c": 1.5,
    }


def test_toml_local_times_become_hh_mm(tmp_path: Path) -> None:
    path = write(
        tmp_path / "w.toml",
        """
        name = "t"
        trunk = "carrier"
        max_channels = 1
        cps = 1
        [window]
        timezone = "Europe/Paris"
        start = 09:00:00
        end = 17:30:00
        """,
    )
    window = load_campaign_file(path).settings.window
    assert window is not None
    assert f"{window.start:%H:%M}-{window.end:%H:%M}" == "09:00-17:30"


def test_contacts_path_is_relative_to_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub / "people.csv", "phone\n+12125550100\n")
    f = load_campaign_file(campaign_file(sub, "contacts: people.csv\ndefault_region: fr\n"))
    assert f.contacts == sub / "people.csv"
    assert f.default_region == "FR"


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("cps: 0\n", "cps must be a number > 0"),
        ("cps: .nan\n", "cps must be a number > 0 and <= 10000, got nan"),
        ("cps: .inf\n", "cps must be a number > 0 and <= 10000, got inf"),
        ("cps: -2\n", "cps must be a number > 0"),
        ("max_channels: 0\n", "max_channels must be an integer between 1 and 100000, got 0"),
        ("max_channels: -1\n", "max_channels must be an integer"),
        ("max_channels: true\n", "max_channels must be an integer"),
        ("max_channels: 2.5\n", "max_channels must be an integer"),
        ("ring_timeout: .nan\n", "ring_timeout must be a number"),
        ("limits: {max_attempts_total: 0}\n", "limits.max_attempts_total must be an integer"),
        ("limits: {max_minutes: .inf}\n", "limits.max_minutes must be a number"),
        ("max_channels: many\n", "max_channels must be an integer"),
        ("cpss: 3\n", "unknown field 'cpss'"),
        ("retry: {delays: {busy: -1}}\n", "retry.delays.busy must be a number"),
        ("retry: {delays: {answered: 5}}\n", "delays: 'answered' is not one of"),
        ("retry: {max_attempts: 0}\n", "retry.max_attempts must be an integer"),
        ("window: {timezone: Mars/Base, start: '09:00', end: '18:00'}\n", "Mars/Base"),
        ("window: {timezone: UTC, start: '25:00', end: '18:00'}\n", "window.start must be"),
        ("limits: {max_minutes: -3}\n", "limits.max_minutes must be"),
        ("variables: {lower: x}\n", "variables.lower is not a variable of the dialplan"),
        ("variables: {DIALER_MAX_TALK: 0}\n", "variables.DIALER_MAX_TALK must be a whole number"),
        ("caller_id: +3312345\n", 'write caller_id in quotes: caller_id: "..."'),
        ("trunk: 'bad trunk'\n", "trunk must be a trunk name"),
        ("contacts: missing.csv\n", "contacts: no such file"),
        ("contacts: 12\n", "contacts must be the path of a CSV file"),
        ("default_region: XX\n", "default_region must be a region code"),
    ],
)
def test_bad_yaml_fields_are_named(tmp_path: Path, extra: str, fragment: str) -> None:
    path = campaign_file(tmp_path, extra)
    with pytest.raises(ConfigError) as info:
        load_campaign_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert fragment in message, message


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'name = "x"\ntrunk = "carrier"\nmax_channels = 2\n')
    with pytest.raises(ConfigError, match=r"c\.toml: campaign settings: missing field 'cps'"):
        load_campaign_file(path)


@pytest.mark.parametrize(
    ("name", "text", "pattern"),
    [
        ("c.json", "{}", r"unknown file type '\.json': use \.yaml or \.toml"),
        ("c.yaml", "", "the file is empty"),
        ("c.yaml", "- a\n- b\n", "expected a table of campaign settings, got list"),
        ("c.yaml", "name: x\n trunk: [\n", r"not valid YAML: line 2, column 7"),
        ("c.toml", 'name = "x"\ntrunk = \n', r"not valid TOML: .*line 2"),
        ("c.yaml", "name: x\n1: y\n", "expected a table of campaign settings"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, text: str, pattern: str) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(ConfigError, match=pattern):
        load_campaign_file(path)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file"):
        load_campaign_file(tmp_path / "nope.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_campaign_file(tmp_path / "bin.yaml")


def test_yaml_refuses_python_tags(tmp_path: Path) -> None:
    path = write(tmp_path / "evil.yaml", "name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_campaign_file(path)


def test_settings_only_refuses_contacts(tmp_path: Path) -> None:
    write(tmp_path / "p.csv", "phone\n+12125550100\n")
    path = campaign_file(tmp_path, "contacts: p.csv\n")
    with pytest.raises(ConfigError, match="'contacts' is not a setting: upload contacts with"):
        load_campaign_file(path, settings_only=True)
