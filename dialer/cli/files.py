"""Campaign files: YAML (``.yaml``/``.yml``) or TOML (``.toml``), chosen by the extension.

The file holds :class:`~dialer.domain.campaign.CampaignSettings` fields (as ``from_dict`` reads
them) and, for ``dialer campaign create``, optionally ``contacts`` (a CSV path, relative to the
file's own folder) and ``default_region`` (for numbers without a country code). Every problem
is a :class:`~dialer.errors.ConfigError` whose message starts with the file name and names the
field (``campaign.yaml: retry.delays.busy must be a number ...``).

YAML is read with the safe loader, except that ``10:30`` stays the text ``"10:30"`` (YAML 1.1
would read it as the base-60 number 630); TOML times (``start = 09:00:00``) become ``"09:00"``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from pathlib import Path

import yaml

from dialer.domain.campaign import CampaignSettings
from dialer.domain.phones import check_region
from dialer.errors import ConfigError, ValidationError

__all__ = ["CampaignFile", "load_campaign_file", "read_document"]

EXTRA_FIELDS = ("contacts", "default_region")
_TEXT_FIELDS = ("name", "trunk", "caller_id", "context", "extension")
DEFAULT_REGION = "US"


class _Loader(yaml.SafeLoader):
    """The safe loader without YAML 1.1's base-60 numbers (``10:30`` is text, not 630)."""


def _int_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    if ":" in str(node.value):
        return str(node.value)
    return loader.construct_yaml_int(node)


def _float_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    if ":" in str(node.value):
        return str(node.value)
    return loader.construct_yaml_float(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _int_or_text)
_Loader.add_constructor("tag:yaml.org,2002:float", _float_or_text)


@dataclass(frozen=True, slots=True)
class CampaignFile:
    path: Path
    settings: CampaignSettings
    contacts: Path | None  # a CSV to import as the first list
    default_region: str


def _plain(value: object) -> object:
    """TOML times as ``HH:MM`` text, containers walked."""
    if isinstance(value, time):
        return f"{value:%H:%M}" if not (value.second or value.microsecond) else value.isoformat()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def read_document(path: str | Path) -> dict[str, object]:
    """The top-level table of a YAML or TOML file; ConfigError naming the file otherwise."""
    p = Path(path)
    kind = p.suffix.lower()
    if kind not in (".yaml", ".yml", ".toml"):
        raise ConfigError(f"{p}: unknown file type {p.suffix or '(none)'!r}: use .yaml or .toml")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if kind == ".toml":
        try:
            data: object = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    else:
        try:
            data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {_yaml_problem(exc)}") from None
    if data is None:
        raise ConfigError(f"{p}: the file is empty")
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ConfigError(f"{p}: expected a table of campaign settings, got {type(data).__name__}")
    return {k: _plain(v) for k, v in data.items()}


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return str(problem)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _settings(p: Path, data: Mapping[str, object]) -> CampaignSettings:
    try:
        return CampaignSettings.from_dict(data)
    except ValidationError as exc:
        hint = ""
        for name in _TEXT_FIELDS:
            value = data.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                hint = f' (write {name} in quotes: {name}: "...")'
                break
        raise ConfigError(f"{p}: {exc}{hint}") from None


def load_campaign_file(path: str | Path, *, settings_only: bool = False) -> CampaignFile:
    """Read and check a campaign file; ``settings_only`` refuses ``contacts``/``default_region``."""
    p = Path(path)
    data = read_document(p)
    extras = {k: data.pop(k) for k in EXTRA_FIELDS if k in data}
    if settings_only and extras:
        raise ConfigError(
            f"{p}: {next(iter(extras))!r} is not a setting: upload contacts with "
            "'dialer list upload ID FILE.csv'"
        )
    contacts: Path | None = None
    raw_contacts = extras.get("contacts")
    if raw_contacts is not None:
        if not isinstance(raw_contacts, str) or not raw_contacts.strip():
            raise ConfigError(f"{p}: contacts must be the path of a CSV file, got {raw_contacts!r}")
        contacts = p.parent / Path(raw_contacts).expanduser()
        if not contacts.is_file():
            raise ConfigError(f"{p}: contacts: no such file {str(contacts)!r}")
    region = extras.get("default_region", DEFAULT_REGION)
    try:
        region = check_region(region)  # type: ignore[arg-type]  # checked here
    except ValidationError:
        raise ConfigError(
            f"{p}: default_region must be a region code like FR, got {region!r}"
        ) from None
    return CampaignFile(p, _settings(p, data), contacts, region)
