"""Why is a campaign not dialing? Every blocker, from one snapshot of the shared state.

:func:`why` is pure: it reads a :class:`WhySnapshot` (what ``dialer.store.why`` read from
Redis in one transaction, with the Redis server's clock) and names each thing holding the
campaign back right now, with a sentence and, when known, the time it is expected to clear
(epoch ms). When nothing holds it back the report says it is dialing, with its channels and
its rate.

Blockers (:class:`BlockerCode`), in the order they are listed:

================== =============================================================================
code               when
================== =============================================================================
finished           Completed, Cancelled or Cancelling: it will not dial again
not_started        Draft: never started
paused             Paused or Pausing by a person (or for invalid settings)
pbx_unavailable    paused by the engines while the PBX was unreachable, or while no PBX node of
                   its trunk group was up, or every live engine reports its PBX connection down
plan_limit         paused for its plan's limits, or its usage has reached them
before_start       Scheduled before its start date (clears at it)
window_closed      Scheduled outside its calling hours, or Running past its claim deadline
                   (clears at the next opening)
no_engine          no engine process has beaten its heartbeat lately: nobody dials
trunk_breaker      the trunk's circuit breaker is open or half-open, and no closed backup trunk
                   (clears at the end of the cool-down, or of the probe)
trunk_full         the trunk's channels (DIALER_TRUNKS, as the live engines publish it) are all
                   in use, by this campaign and others sharing the trunk
channels_full      the campaign's max_channels are all in use
local_hours        local hours: contacts are due, but every one of them is in a zone group outside
                   its local hours (or on a holiday there) (clears at the next opening)
nothing_due        contacts remain, but none is due: each waits for its retry or callback time
                   (pushed to the calling hours) (clears at the next due time)
no_contacts        no contact left to dial
================== =============================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from dialer.domain.breaker import BreakerState
from dialer.domain.campaign import CampaignSettings
from dialer.domain.hours import BEFORE_START
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.domain.zones import ZoneGroup, group_hours

__all__ = [
    "NODE_LOSS_REASON",
    "PBX_DOWN_REASON",
    "PLAN_LIMIT_REASON",
    "Blocker",
    "BlockerCode",
    "EngineBeat",
    "TrunkSnapshot",
    "WhyReport",
    "WhySnapshot",
    "ZoneQueue",
    "why",
]

# the status reasons the engines write (dialer.engine.control; a unit test pins them equal)
PBX_DOWN_REASON = "PBX unavailable"
NODE_LOSS_REASON = "no PBX node of its trunk group is up"
PLAN_LIMIT_REASON = "plan limit"


class BlockerCode(StrEnum):
    FINISHED = "finished"
    NOT_STARTED = "not_started"
    PAUSED = "paused"
    PBX_UNAVAILABLE = "pbx_unavailable"
    PLAN_LIMIT = "plan_limit"
    BEFORE_START = "before_start"
    WINDOW_CLOSED = "window_closed"
    NO_ENGINE = "no_engine"
    TRUNK_BREAKER = "trunk_breaker"
    TRUNK_FULL = "trunk_full"
    CHANNELS_FULL = "channels_full"
    LOCAL_HOURS = "local_hours"
    NOTHING_DUE = "nothing_due"
    NO_CONTACTS = "no_contacts"


@dataclass(frozen=True, slots=True)
class Blocker:
    code: BlockerCode
    message: str
    clears_at_ms: int | None = None  # when it is expected to clear, when known (epoch ms)

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code.value,
            "message": self.message,
            "clears_at_ms": self.clears_at_ms,
            "clears_at": _iso(self.clears_at_ms),
        }


@dataclass(frozen=True, slots=True)
class EngineBeat:
    """One live engine process, as its last heartbeat described it."""

    owner: str
    expires_ms: int
    pbx_connected: bool
    # trunk -> (max_channels, cps) of DIALER_TRUNKS on that engine (None: unlimited)
    trunks: Mapping[str, tuple[int | None, float | None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrunkSnapshot:
    name: str
    inflight: int  # leases held on the trunk, every campaign's
    breaker: BreakerState = BreakerState.CLOSED
    breaker_reason: str = ""
    retry_ms: int = 0  # open: end of the cool-down
    probe_until_ms: int = 0  # half-open: when another probe may go


@dataclass(frozen=True, slots=True)
class ZoneQueue:
    """Local hours: one zone group's queue (its size and first due time, stale entries
    included)."""

    gid: int
    group: ZoneGroup
    queued: int
    first_due_ms: int | None


@dataclass(frozen=True, slots=True)
class WhySnapshot:
    campaign_id: int
    now_ms: int  # the Redis server's clock
    status: CampaignStatus
    status_reason: str
    settings: CampaignSettings | None  # None: the stored settings are invalid
    counts: Mapping[CallStatus, int]
    pending: int  # contacts queued (fresh or retry)
    next_due_ms: int | None  # the earliest queued contact's due time
    inflight: int  # the campaign's leases
    started_last_s: int  # calls granted in the last second (the campaign's rate log)
    usage_attempts: int = 0
    usage_talk_seconds: float = 0.0
    opens_at_ms: int | None = None
    open_until_ms: int | None = None
    engines: Sequence[EngineBeat] = ()
    trunks: Sequence[TrunkSnapshot] = ()  # the trunk, then the backup trunk if any
    zones: Sequence[ZoneQueue] = ()  # local hours: the zone groups' queues


@dataclass(frozen=True, slots=True)
class WhyReport:
    campaign_id: int
    status: CampaignStatus
    dialing: bool
    summary: str
    blockers: tuple[Blocker, ...]
    inflight: int
    max_channels: int | None
    started_last_s: int
    cps: float | None
    engines_alive: int
    now_ms: int

    def to_dict(self) -> dict[str, object]:
        return {
            "campaign_id": self.campaign_id,
            "status": self.status.value,
            "dialing": self.dialing,
            "summary": self.summary,
            "blockers": [b.to_dict() for b in self.blockers],
            "inflight": self.inflight,
            "max_channels": self.max_channels,
            "started_last_second": self.started_last_s,
            "cps": self.cps,
            "engines_alive": self.engines_alive,
            "now_ms": self.now_ms,
        }


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _at(ms: int, now_ms: int) -> str:
    """``2026-12-06T12:00:00+00:00 (in 4 min 30 s)``."""
    left = max(0, round((ms - now_ms) / 1000))
    minutes, seconds = divmod(left, 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{hours} h"] if hours else []
    if minutes:
        parts.append(f"{minutes} min")
    if seconds or not parts:
        parts.append(f"{seconds} s")
    return f"{_iso(ms)} (in {' '.join(parts)})"


def _status_blockers(s: WhySnapshot) -> list[Blocker]:
    status, reason = s.status, s.status_reason
    because = f": {reason}" if reason else ""
    if status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
        return [Blocker(BlockerCode.FINISHED, f"the campaign is {status.label}{because}")]
    if status is CampaignStatus.CANCELLING:
        return [
            Blocker(
                BlockerCode.FINISHED,
                f"the campaign is being stopped{because}; {s.inflight} calls still draining",
            )
        ]
    if status is CampaignStatus.DRAFT:
        return [Blocker(BlockerCode.NOT_STARTED, "the campaign is a Draft: start it")]
    if status in (CampaignStatus.PAUSED, CampaignStatus.PAUSING):
        if reason == PBX_DOWN_REASON:
            return [
                Blocker(
                    BlockerCode.PBX_UNAVAILABLE,
                    "paused by the engines: the PBX was unreachable; it resumes by itself "
                    "when the PBX is back",
                )
            ]
        if reason == NODE_LOSS_REASON:
            trunk = "" if s.settings is None else f" {s.settings.trunk}"
            return [
                Blocker(
                    BlockerCode.PBX_UNAVAILABLE,
                    f"paused by the engines: no PBX node of its trunk{trunk}'s group was up; "
                    "it resumes by itself when one is back",
                )
            ]
        if reason == PLAN_LIMIT_REASON:
            return [Blocker(BlockerCode.PLAN_LIMIT, f"paused: {_plan_text(s)}")]
        return [Blocker(BlockerCode.PAUSED, f"the campaign is {status.label}{because}")]
    if status is CampaignStatus.SCHEDULED:
        code = BlockerCode.BEFORE_START if reason == BEFORE_START else BlockerCode.WINDOW_CLOSED
        what = "before its start date" if code is BlockerCode.BEFORE_START else "outside hours"
        if s.opens_at_ms is None:
            return [Blocker(code, f"Scheduled, {what}{because}")]
        return [
            Blocker(
                code,
                f"Scheduled, {what}: it opens at {_at(s.opens_at_ms, s.now_ms)}",
                s.opens_at_ms,
            )
        ]
    # Running
    if s.open_until_ms is not None and s.now_ms >= s.open_until_ms:
        opens = None
        if s.settings is not None:
            at = s.settings.availability(s.now_ms / 1000).opens_at
            opens = None if at is None else round(at * 1000)
        text = "its calling hours have closed (no call starts from then on)"
        if opens is not None:
            text += f"; they open again at {_at(opens, s.now_ms)}"
        return [Blocker(BlockerCode.WINDOW_CLOSED, text, opens)]
    return []


def _plan_text(s: WhySnapshot) -> str:
    limits = None if s.settings is None else s.settings.limits
    parts = []
    if limits is not None and limits.max_attempts_total is not None:
        parts.append(f"{s.usage_attempts} of {limits.max_attempts_total} attempts used")
    if limits is not None and limits.max_minutes is not None:
        parts.append(f"{s.usage_talk_seconds / 60:.1f} of {limits.max_minutes:g} minutes used")
    return "its plan limit is reached" + (f" ({', '.join(parts)})" if parts else "")


def _plan_used_up(s: WhySnapshot) -> bool:
    limits = None if s.settings is None else s.settings.limits
    if limits is None:
        return False
    if limits.max_attempts_total is not None and s.usage_attempts >= limits.max_attempts_total:
        return True
    return limits.max_minutes is not None and s.usage_talk_seconds >= limits.max_minutes * 60


def _engine_blockers(s: WhySnapshot, codes: set[BlockerCode]) -> list[Blocker]:
    alive = [e for e in s.engines if e.expires_ms > s.now_ms]
    if not alive:
        return [
            Blocker(
                BlockerCode.NO_ENGINE,
                "no engine is alive (no heartbeat): nothing dials; start 'dialer engine' "
                "or 'dialer run'",
            )
        ]
    if BlockerCode.PBX_UNAVAILABLE not in codes and not any(e.pbx_connected for e in alive):
        return [
            Blocker(
                BlockerCode.PBX_UNAVAILABLE,
                f"the PBX is unreachable from every live engine ({len(alive)})",
            )
        ]
    return []


def _trunk_limit(s: WhySnapshot, trunk: str) -> int | None:
    """The trunk's channel limit as the live engines publish it (the smallest when they
    disagree); None when unlimited or unknown."""
    limits = [
        e.trunks[trunk][0]
        for e in s.engines
        if e.expires_ms > s.now_ms and trunk in e.trunks and e.trunks[trunk][0] is not None
    ]
    return min(limits) if limits else None  # type: ignore[type-var]  # None filtered out


def _breaker_text(t: TrunkSnapshot, now_ms: int) -> tuple[str, int | None]:
    if t.breaker is BreakerState.OPEN:
        text = f"trunk {t.name} unavailable: breaker open"
        if t.breaker_reason:
            text += f" ({t.breaker_reason})"
        if t.retry_ms:
            text += f"; a probe call may go at {_at(t.retry_ms, now_ms)}"
        return text, t.retry_ms or None
    text = f"trunk {t.name} unavailable: breaker half-open, its probe call is out"
    if t.probe_until_ms:
        text += f" (another may go at {_at(t.probe_until_ms, now_ms)})"
    return text, t.probe_until_ms or None


def _trunk_blockers(s: WhySnapshot) -> tuple[list[Blocker], TrunkSnapshot | None]:
    """The blockers of the trunk dialed, and that trunk (the backup while the primary's
    breaker is open and the backup's closed)."""
    if not s.trunks:
        return [], None
    primary = s.trunks[0]
    if primary.breaker is BreakerState.CLOSED:
        return [], primary
    backup = s.trunks[1] if len(s.trunks) > 1 else None
    if backup is not None and backup.breaker is BreakerState.CLOSED:
        return [], backup
    text, clears = _breaker_text(primary, s.now_ms)
    if backup is not None:
        backup_text, backup_clears = _breaker_text(backup, s.now_ms)
        text += f"; backup {backup_text}"
        if clears is None or (backup_clears is not None and backup_clears < clears):
            clears = backup_clears
    return [Blocker(BlockerCode.TRUNK_BREAKER, text, clears)], None


def _capacity_blockers(s: WhySnapshot, trunk: TrunkSnapshot | None) -> list[Blocker]:
    out: list[Blocker] = []
    if trunk is not None:
        limit = _trunk_limit(s, trunk.name)
        if limit is not None and trunk.inflight >= limit:
            out.append(
                Blocker(
                    BlockerCode.TRUNK_FULL,
                    f"trunk {trunk.name} is full: {trunk.inflight} of its {limit} channels "
                    f"in use ({s.inflight} by this campaign); a call must end first",
                )
            )
    if s.settings is not None and s.inflight >= s.settings.max_channels:
        out.append(
            Blocker(
                BlockerCode.CHANNELS_FULL,
                f"all {s.settings.max_channels} channels of the campaign (max_channels) are "
                f"in use; a call must end first",
            )
        )
    return out


def _local_hours_blockers(s: WhySnapshot) -> list[Blocker] | None:
    """Local hours: a blocker when every due contact is in a closed zone group; [] when an
    open group has one due; None when none is due at all (then it is nothing_due's)."""
    settings = s.settings
    if settings is None or not settings.local_hours or not s.zones:
        return None
    now = s.now_ms / 1000
    due = [z for z in s.zones if z.queued and z.first_due_ms is not None]
    due = [z for z in due if z.first_due_ms is not None and z.first_due_ms <= s.now_ms]
    if not due:
        return None
    hours = {z.gid: group_hours(now, settings.window, z.group, settings.holidays) for z in due}
    if any(hours[z.gid].open for z in due):
        return []
    openings = [h.opens_at for h in hours.values() if h.opens_at is not None]
    clears = int(min(openings) * 1000) if openings else None
    shown = sorted(due, key=lambda z: -z.queued)
    names = ", ".join(f"{z.queued} in {z.group.label()}" for z in shown[:4])
    if len(shown) > 4:
        names += f" and {len(shown) - 4} more zone groups"
    when = f"next opening at {_at(clears, s.now_ms)}" if clears else "no opening within a week"
    return [
        Blocker(
            BlockerCode.LOCAL_HOURS,
            f"every contact due is waiting for its local hours ({names}); {when}",
            clears,
        )
    ]


def _queue_blockers(s: WhySnapshot) -> list[Blocker]:
    if s.pending == 0:
        tail = f"; {s.inflight} calls still in flight" if s.inflight else ""
        return [Blocker(BlockerCode.NO_CONTACTS, f"no contact left to dial{tail}")]
    local = _local_hours_blockers(s)
    if local is not None:
        return local
    if s.next_due_ms is None or s.next_due_ms <= s.now_ms:
        return []
    waiting = []
    for status, what in (
        (CallStatus.RETRY_SCHEDULED, "a retry"),
        (CallStatus.RESCHEDULED, "a callback"),
        (CallStatus.PENDING, "their first call"),
    ):
        n = s.counts.get(status, 0)
        if n:
            waiting.append(f"{n} for {what}")
    detail = f" ({', '.join(waiting)})" if waiting else ""
    return [
        Blocker(
            BlockerCode.NOTHING_DUE,
            f"every contact left is waiting{detail}; the next is due at "
            f"{_at(s.next_due_ms, s.now_ms)}",
            s.next_due_ms,
        )
    ]


def why(s: WhySnapshot) -> WhyReport:
    """Everything holding the campaign back at ``s.now_ms`` (none: it is dialing)."""
    blockers = _status_blockers(s)
    codes = {b.code for b in blockers}
    live = not s.status.is_final and s.status is not CampaignStatus.CANCELLING
    if live:
        blockers += _engine_blockers(s, codes)
    if (
        s.status in (CampaignStatus.RUNNING, CampaignStatus.SCHEDULED)
        and BlockerCode.PLAN_LIMIT not in codes
        and _plan_used_up(s)
    ):
        blockers.append(Blocker(BlockerCode.PLAN_LIMIT, _plan_text(s)))
    dialed = s.trunks[0] if s.trunks else None
    if s.status is CampaignStatus.RUNNING or s.status is CampaignStatus.SCHEDULED:
        trunk_blockers, dialed = _trunk_blockers(s)
        blockers += trunk_blockers
    if s.status is CampaignStatus.RUNNING:
        blockers += _capacity_blockers(s, dialed)
        blockers += _queue_blockers(s)
    max_channels = None if s.settings is None else s.settings.max_channels
    cps = None if s.settings is None else s.settings.cps
    alive = sum(1 for e in s.engines if e.expires_ms > s.now_ms)
    dialing = s.status is CampaignStatus.RUNNING and not blockers
    if dialing:
        via = ""
        if dialed is not None and s.trunks and dialed is not s.trunks[0]:
            via = f" on backup trunk {dialed.name} ({s.trunks[0].name}'s breaker is open)"
        summary = (
            f"dialing{via}: {s.inflight} of {max_channels} channels in use, "
            f"{s.started_last_s} calls started in the last second (cps {cps:g})"
        )
    else:
        summary = "not dialing: " + "; ".join(b.message for b in blockers)
    return WhyReport(
        campaign_id=s.campaign_id,
        status=s.status,
        dialing=dialing,
        summary=summary,
        blockers=tuple(blockers),
        inflight=s.inflight,
        max_channels=max_channels,
        started_last_s=s.started_last_s,
        cps=cps,
        engines_alive=alive,
        now_ms=s.now_ms,
    )
