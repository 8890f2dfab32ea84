"""Values the store reads and writes, and the rule turning a CPS into a rate window."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

from dialer.domain.altnumbers import ContactNumber
from dialer.domain.statuses import CallStatus, CampaignStatus

ClaimKind = Literal["ok", "full", "rate", "empty", "status", "closed", "trunk", "node"]

#: Statuses a contact may have when it is added (the others are reached by dialing).
INITIAL_STATUSES = frozenset(
    {CallStatus.PENDING, CallStatus.INVALID_NUMBER, CallStatus.DO_NOT_CALL}
)


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    id: int
    name: str
    status: CampaignStatus
    status_reason: str
    trunk: str
    settings_json: str
    created_ms: int
    updated_ms: int
    open_until_ms: int | None = None  # Running: the claim deadline (calling hours close)
    opens_at_ms: int | None = None  # Scheduled: when it may dial next


@dataclass(frozen=True, slots=True)
class ContactInput:
    """A contact to add. Only ``PENDING`` contacts are queued for dialing."""

    phone: str
    vars: Mapping[str, str] = field(default_factory=dict)
    status: CallStatus = CallStatus.PENDING
    # local hours: the contact's ZoneGroup.key (dialer.domain.zones); None: from the number
    zone_group: str | None = None
    # several numbers (dialer.domain.altnumbers): the main number's label, and the contact's
    # other numbers in dialing order (none: the contact has one number, as before)
    label: str = ""
    alternates: tuple[AltNumber, ...] = ()


@dataclass(frozen=True, slots=True)
class AltNumber:
    """A contact's alternate number (E.164), its label, its zone group (None: from the number)."""

    number: str
    label: str
    zone_group: str | None = None


@dataclass(frozen=True, slots=True)
class ContactRecord:
    id: int
    phone: str
    vars: dict[str, str]
    list_id: int
    status: CallStatus
    attempts: int
    tech_failures: int
    last_call: str  # "" before the first attempt
    next_due_ms: int | None  # set while queued (fresh or retry), None otherwise
    dials: int = 0  # calls made to the contact (each claim counts one; a release gives it back)
    recycled_from: str = ""  # "{campaign}:{contact}" this one was recycled from (or "")
    # several numbers: each with its label, calls and last result, the next one marked
    # current (empty: the contact has one number)
    numbers: tuple[ContactNumber, ...] = ()


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """What :meth:`RedisStore.claim` decided.

    ``ok``: the contact is yours under a lease (contact fields set).
    ``full``: a channel limit is reached; ``wait_ms`` until the first lease expires (a finish
    usually frees a place sooner). ``rate``: ``wait_ms`` until the rate window frees a place.
    ``empty``: nothing due; ``next_due_ms`` is the next due time (None: queue empty) and
    ``wait_ms`` the time until it (-1: queue empty). ``status``: the campaign is not running;
    ``status`` holds its status. ``closed``: it is Running but its calling hours closed
    (the claim deadline passed). ``server_ms`` is Redis' clock at the decision.
    """

    kind: ClaimKind
    contact_id: int = 0
    phone: str = ""
    vars: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    tech_failures: int = 0
    wait_ms: int = 0
    status: CampaignStatus | None = None
    next_due_ms: int | None = None
    server_ms: int = 0
    dial: int = 0  # with ``ok``: the contact's dial number of this call (1 for its first)


@dataclass(frozen=True, slots=True)
class Claim:
    """One contact claimed for one call id (under a lease, not yet originated).

    ``attempts``: the contact's attempts used before this call (counted against its
    ``max_attempts``; technical errors use none). ``dial``: this call's number among the
    contact's calls, 1 for its first: every call gets its own, technical-error redials too.
    """

    call_id: str
    contact_id: int
    phone: str
    vars: dict[str, str]
    attempts: int
    tech_failures: int
    dial: int = 0
    node: str = ""  # the PBX node to dial it on ("" without nodes: the engine's one PBX)


ClaimStop = Literal["max", "full", "rate", "empty", "status", "closed", "trunk", "node"]


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    """What :meth:`RedisStore.claim_batch` decided: the claims, and why it took no more.

    ``stop``: ``max`` every call id was used (call again at once); ``full`` a channel limit is
    reached (wait for a hang-up; ``wait_ms`` until the first lease expires when nothing was
    claimed, else 0); ``rate`` a rate or pacing window is used up: ``wait_ms`` until the next
    grant; ``empty`` nothing (more) is due: ``next_due_ms`` and ``wait_ms`` as in
    :class:`ClaimResult`; ``status`` the campaign is not running (``status``; no claims);
    ``closed`` its calling hours closed (``wait_ms`` 0; no claims); ``trunk`` the trunk's
    circuit breaker refuses claims (``wait_ms`` until a probe may go; with a claim: it is the
    probe); ``node`` no PBX node of the trunk is up (no claims: the PBX is unavailable).
    ``blocked``: contacts settled as do not call instead of being claimed (a contact whose
    listed number gave way to its next number is not counted: it is claimed, or queued again).
    """

    claims: list[Claim]
    stop: ClaimStop
    wait_ms: int = 0
    status: CampaignStatus | None = None
    next_due_ms: int | None = None
    blocked: int = 0
    server_ms: int = 0


@dataclass(frozen=True, slots=True)
class ZoneClaim:
    """Local hours, as claim.lua's ARGV[18] takes them: the zone groups open now, each with
    its claim deadline (Redis-clock ms: the close less the guard), and when the next closed
    group opens (ms; None: not known). The script gets the first deadline for all of them
    (the caller sends a new set by then) and the open gids as a string of 0/1 by gid."""

    open: tuple[tuple[int, int], ...]
    next_ms: int | None = None

    def to_arg(self) -> str:
        deadline = min((d for _, d in self.open), default=0)
        gids = {g for g, _ in self.open}
        bits = "".join("1" if g in gids else "0" for g in range(max(gids, default=-1) + 1))
        return f"{max(0, deadline)}:{-1 if self.next_ms is None else self.next_ms}:{bits}"


@dataclass(frozen=True, slots=True)
class ClaimCommand:
    """A claim.lua call built and checked by :meth:`RedisStore.claim_command`, not yet sent:
    :meth:`RedisStore.settle_and_claim` runs it in the round trip of marks and results."""

    cid: int
    keys: list[str]
    args: list[str | int]


@dataclass(frozen=True, slots=True)
class Renewal:
    """What :meth:`RedisStore.renew` did: ``retaken``, calls whose lease had expired and came
    back to the caller (nobody had adopted them); ``lost``, calls another engine owns now."""

    retaken: list[str]
    lost: list[str]


AdoptVerdict = Literal["adopted", "mine", "held", "gone"]


@dataclass(frozen=True, slots=True)
class Adoption:
    """adopt.lua's answer: ``verdict``, the call's ``state`` and its ``previous`` owner."""

    verdict: AdoptVerdict
    state: str
    previous: str

    @property
    def owned(self) -> bool:
        return self.verdict in ("adopted", "mine")


@dataclass(frozen=True, slots=True)
class SettleReply:
    """What :meth:`RedisStore.settle_and_claim` did: calls moved from claimed to originated,
    per finished item what ``finish_batch`` returns, per claim command its batch or the error
    it alone met (NotFound, ScriptError). ``error``: the marks and results were not written
    (the claims may still have run). ``lost``: calls whose "originated" mark was refused, as
    another engine owns them now."""

    moved: int
    written: list[Written]
    claims: list[ClaimBatch | Exception]
    error: Exception | None = None
    lost: list[str] = field(default_factory=list)  # marks refused: another owner holds them
    scripts: list[Any] = field(default_factory=list)  # the ``scripts`` calls' raw replies


@dataclass(frozen=True, slots=True)
class FinishItem:
    """One attempt's end, as :meth:`RedisStore.finish_batch` writes it (see ``finish``)."""

    cid: int
    trunk: str
    call_id: str
    contact_id: int
    contact_status: CallStatus
    attempts_used: int
    tech_failures: int
    retry_at_ms: int | None
    record: Mapping[str, str]
    usage_attempts: int = 0  # added to the campaign's usage when applied
    talk_seconds: float = 0.0
    owner: str = ""  # the writer's lease owner token: refused if another owns the call
    # several numbers (finish.lua, dialer.domain.altnumbers): when the contact's next number
    # is due after this no-contact outcome, when its first is due once the list is done, and
    # the outcome status the dialed number keeps as its last result
    next_at_ms: int | None = None
    wrap_at_ms: int | None = None
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class CallRef:
    call_id: str
    cid: int
    contact: int
    trunk: str
    state: str  # claimed | originated | done
    owner: str
    phone: str
    claimed_ms: int
    originated_ms: int | None
    dial: int = 0  # the contact's dial number of this call (0: claimed before dials were kept)
    node: str = ""  # the PBX node it was dialed on ("": claimed before nodes were kept)


@dataclass(frozen=True, slots=True)
class QueueStats:
    pending_due_now: int
    pending_total: int
    next_due_ms: int | None
    inflight: int
    claimed: int


@dataclass(frozen=True, slots=True)
class RateWindow:
    """At most ``limit`` grants in any ``window_ms`` (limit 0: no limit, claim.lua's value)."""

    limit: int
    window_ms: int

    @classmethod
    def for_cps(cls, cps: float | None, margin_ms: int = 0) -> RateWindow:
        """``limit = ceil(cps)`` per ``window = ceil(limit * 1000 / cps)`` ms.

        The window is never shorter than one second, so no 1-second window holds more than
        ``ceil(cps)`` originates, and the long-run rate is ``limit / window <= cps``:
        0.5 -> 1 per 2000 ms, 2.5 -> 3 per 1200 ms, 5 -> 5 per 1000 ms. ``None``: no limit;
        a cps of 0 or less, NaN or infinite is a ValueError (it never means "no limit").

        ``margin_ms`` lengthens the window: a grant reaches the PBX a few milliseconds later,
        and by a varying amount, so a window of exactly one second at grant time could hold
        ``limit + 1`` channels in one second as the PBX sees them. The margin absorbs that jitter
        at the cost of ``margin / window`` of the rate (40 ms: 4 % at 1 s windows).
        """
        if cps is None:
            return cls(0, 0)
        _check_cps(cps)
        limit = math.ceil(cps)
        return cls(limit, math.ceil(limit * 1000 / cps) + max(0, margin_ms))


@dataclass(frozen=True, slots=True)
class Pacing:
    """Grants spread evenly: one every ``interval_ms``, about ``burst`` at a time (``step_ms``
    worth), on a schedule that may fall behind by ``catch_up_ms``: a claim that comes late
    still gets the slots it missed, so the long-run rate is the cps. Interval 0: no pacing
    (no cps limit, or ``step_ms`` 0).

    ``Pacing.for_cps(340, 20)``: one grant per 2.94 ms, 7 at a time; a claim up to 20 ms late
    catches up (at most 13 at once, :attr:`most`). ``Pacing.for_cps(20, 20)``: one per 50 ms.
    """

    interval_ms: float
    catch_up_ms: float
    burst: int  # grants one claim takes in the steady state (0: no pacing)

    @property
    def most(self) -> int:
        """The most grants one claim can get: a steady step plus what a late claim catches up
        (ask for this many, and a claim that comes late needs no second round trip)."""
        if self.interval_ms <= 0:
            return 0
        return math.floor(self.catch_up_ms / self.interval_ms) + 1

    @classmethod
    def for_cps(cls, cps: float | None, step_ms: int) -> Pacing:
        """``cps`` None: no limit, no pacing; 0 or less, NaN or infinite: ValueError."""
        if cps is not None:
            _check_cps(cps)
        if cps is None or step_ms <= 0:
            return cls(0.0, 0.0, 0)
        interval = 1000 / cps
        burst = max(1, math.ceil(cps * step_ms / 1000))
        return cls(interval, (burst - 1) * interval + step_ms, burst)


def _check_cps(cps: float) -> None:
    if isinstance(cps, bool) or not math.isfinite(cps) or cps <= 0:
        raise ValueError(f"cps must be a finite number above 0 (None: no limit), got {cps!r}")


@dataclass(frozen=True, slots=True)
class Usage:
    """What a campaign used of its plan: attempts made and answered talk time."""

    attempts: int
    talk_seconds: float


#: ``finish_batch``'s answer per item: the campaign's usage after it (applied), False (already
#: finished or unknown), None (the call belongs to another contact) or LOST (another engine
#: owns the call now: the result is the adopter's to write).
LOST: Final = "lost"
Written: TypeAlias = Usage | bool | None | Literal["lost"]
