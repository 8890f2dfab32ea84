"""``dialer campaign ...``: create, list, show, edit, start, pause, resume, stop, delete."""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml

from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CampaignStatus
from dialer.engine.control import CommandResult
from dialer.errors import InvalidSettings
from dialer.store.models import CampaignRecord

from . import why
from .common import Session, campaign_id, note, out, positive_float, positive_int, with_store
from .files import load_campaign_file
from .output import counts_lines, import_lines, plural, status_text, table, when
from .output import sentence as _sentence


def status_choice(text: str) -> CampaignStatus:
    """argparse type: a campaign status by value or label, any case."""
    for status in CampaignStatus:
        if text.strip().lower() in (status.value, status.label.lower()):
            return status
    names = ", ".join(s.value for s in CampaignStatus)
    raise argparse.ArgumentTypeError(f"unknown status {text!r}: one of {names}")


def settings_of(record: CampaignRecord) -> CampaignSettings:
    """The campaign's settings; InvalidSettings names the problem."""
    return CampaignSettings.from_json(record.settings_json)


def settings_error(record: CampaignRecord) -> str | None:
    """What makes the stored settings invalid, or None."""
    try:
        settings_of(record)
    except InvalidSettings as exc:
        return str(exc)
    return None


def _stored_settings(record: CampaignRecord) -> object:
    """The settings as stored, whatever they hold (None when not JSON)."""
    try:
        return json.loads(record.settings_json)
    except (ValueError, RecursionError):
        return None


def _name(record: CampaignRecord) -> str:
    try:
        return str(json.loads(record.settings_json).get("name") or record.name)
    except (ValueError, AttributeError):
        return record.name


def _status(record: CampaignRecord) -> str:
    return status_text(CampaignStatus(record.status), record.status_reason, record.opens_at_ms)


def _result(result: CommandResult, *, hangup: bool = False) -> str:
    line = f"campaign {result.campaign_id}: {result.status.label}"
    if result.draining:
        verb = "being hung up" if hangup else "in flight, ending normally"
        line += f", {plural(result.draining, 'call')} {verb}"
    return line


async def _create(args: argparse.Namespace, s: Session) -> int:
    """Create a Draft campaign from a YAML/TOML file (and import its contacts CSV)."""
    spec = load_campaign_file(args.file)
    created = await s.commands.create(spec.settings, spec.contacts, region=spec.default_region)
    cid = created.campaign_id
    if created.report is not None:
        for line in import_lines(cid, created.report):
            note(line)
    note(f"campaign {cid} created (Draft): {spec.settings.name}")
    out(str(cid))
    return 0


async def _list(args: argparse.Namespace, s: Session) -> int:
    records = await s.commands.campaigns(args.status, args.limit)
    if args.json:
        out(json.dumps([_summary(r) for r in records], indent=2))
        return 0
    if not records:
        note("no campaign" + (f" is {args.status.label}" if args.status else ""))
        return 0
    rows = [(r.id, _status(r), _name(r), r.trunk, when(r.created_ms)) for r in records]
    for line in table(("ID", "STATUS", "NAME", "TRUNK", "CREATED"), rows):
        out(line)
    return 0


def _summary(r: CampaignRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": _name(r),
        "status": r.status.value,
        "status_reason": r.status_reason,
        "trunk": r.trunk,
        "created_ms": r.created_ms,
        "updated_ms": r.updated_ms,
    }


async def _show(args: argparse.Namespace, s: Session) -> int:
    record, lists, counts = await s.commands.campaign(args.id)
    settings = _stored_settings(record)
    problem = settings_error(record)
    if args.json:
        doc = _summary(record) | {
            "settings": settings,
            "settings_error": problem,
            "lists": {str(k): v.value for k, v in lists.items()},
            "contacts": {k.value: v for k, v in counts.items()},
        }
        out(json.dumps(doc, indent=2))
        return 0
    listing = ", ".join(f"#{k} {v.value}" for k, v in lists.items()) or "none"
    out(f"campaign {record.id}: {_name(record)}")
    out(f"  status    {_status(record)}")
    out(f"  trunk     {record.trunk}")
    out(f"  created   {when(record.created_ms)}")
    out(f"  updated   {when(record.updated_ms)}")
    out(f"  lists     {listing}")
    out(f"contacts: {sum(counts.values())}")
    for line in counts_lines(counts):
        out(line)
    out("settings:" if problem is None else f"settings: {problem}")
    if settings is None:
        out(f"  (not JSON: {record.settings_json[:80]!r})")
        return 0
    dumped = yaml.safe_dump(settings, sort_keys=False, default_flow_style=False)
    for line in dumped.splitlines():
        out(f"  {line}")
    return 0


async def _edit(args: argparse.Namespace, s: Session) -> int:
    spec = load_campaign_file(args.file, settings_only=True)
    await s.commands.edit(args.id, spec.settings.to_dict(), merge=False)
    out(f"campaign {args.id}: settings replaced from {args.file}")
    return 0


async def _start(args: argparse.Namespace, s: Session) -> int:
    result = await s.commands.start(args.id)
    line = _result(result)
    if result.status is CampaignStatus.SCHEDULED:
        record, _, _ = await s.commands.campaign(args.id)
        line = f"campaign {args.id}: {_status(record)}"
    out(line)
    return 0


async def _pause(args: argparse.Namespace, s: Session) -> int:
    out(_result(await s.commands.pause(args.id)))
    return 0


async def _resume(args: argparse.Namespace, s: Session) -> int:
    out(_result(await s.commands.resume(args.id)))
    return 0


async def _stop(args: argparse.Namespace, s: Session) -> int:
    out(_result(await s.commands.stop(args.id, hangup=args.hangup), hangup=args.hangup))
    return 0


async def _stop_all(args: argparse.Namespace, s: Session) -> int:
    results = await s.commands.stop_all(hangup=args.hangup)
    if not results:
        note("no active campaign to stop")
    for result in results:
        out(_result(result, hangup=args.hangup))
    return 0


async def _delete(args: argparse.Namespace, s: Session) -> int:
    await s.commands.delete(args.id, drain_timeout=args.timeout)
    out(f"campaign {args.id} deleted (its call records stay: dialer records {args.id})")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``campaign`` and its subcommands to ``sub`` (the top-level subparsers)."""
    group = sub.add_parser(
        "campaign",
        parents=[common],
        help="create, inspect and control campaigns",
        description="Create, inspect and control campaigns (lifecycle: Draft -> Running -> "
        "Completed; pause/resume; stop cancels for good).",
    )
    cmds = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    def add(name: str, fn: Any, helptext: str, description: str | None = None) -> Any:
        p = cmds.add_parser(
            name, parents=[common], help=helptext, description=description or _sentence(helptext)
        )
        p.set_defaults(func=with_store(fn))
        return p

    def with_id(p: Any) -> Any:
        p.add_argument("id", type=campaign_id, metavar="ID", help="the campaign id")
        return p

    p = add(
        "create",
        _create,
        "create a Draft campaign from a YAML or TOML file; prints its id",
        "Create a Draft campaign from a YAML (.yaml/.yml) or TOML (.toml) file of campaign "
        "settings (name, trunk, max_channels, cps, ring_timeout, caller_id, context, "
        "extension, amd, retry, window, limits, variables, dial_order, new_every). Optional "
        "'contacts: file.csv' (relative to the file) is imported as the first list, with "
        "'default_region' (default US) for numbers without a country code. Prints the new id "
        "on stdout.",
    )
    p.add_argument("file", metavar="FILE", help="campaign file (.yaml, .yml or .toml)")

    p = add("list", _list, "list campaigns, newest first")
    p.add_argument(
        "--status",
        type=status_choice,
        metavar="STATUS",
        help="only campaigns in this status: " + ", ".join(s.value for s in CampaignStatus),
    )
    p.add_argument("--limit", type=positive_int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = with_id(add("show", _show, "show a campaign: status, lists, contact counts, settings"))
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = with_id(
        add(
            "edit",
            _edit,
            "replace a campaign's settings from a file (Draft or Paused only)",
            "Replace the settings of a Draft or Paused campaign with those of a YAML/TOML file "
            "(the whole settings; contacts are added with 'dialer list upload').",
        )
    )
    p.add_argument("file", metavar="FILE", help="campaign file (.yaml, .yml or .toml)")

    with_id(add("start", _start, "start dialing a Draft campaign"))
    with_id(add("pause", _pause, "pause: no new call; calls in flight end normally"))
    with_id(add("resume", _resume, "resume a paused (or pausing) campaign"))
    p = with_id(
        add(
            "stop",
            _stop,
            "cancel a campaign for good; contacts not dialed become Not dialed",
        )
    )
    p.add_argument(
        "--hangup", action="store_true", help="hang up calls in flight instead of letting them end"
    )
    p = with_id(
        add(
            "delete",
            _delete,
            "delete a campaign (a live one is cancelled first); call records are kept",
        )
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        metavar="S",
        help="seconds to wait for calls in flight to end before deleting (default 60)",
    )
    p = add("stop-all", _stop_all, "cancel every active campaign (an emergency stop)")
    p.add_argument(
        "--hangup", action="store_true", help="hang up calls in flight instead of letting them end"
    )
    why.add_command(cmds, common)
