"""Every Redis key name of the dialer, built in one place.

The schema, documented once (``{ns}`` is the namespace, ``"dialer"`` by default; ``cid`` a
campaign id, ``lid`` a list id, ``kid`` a contact id, ``call`` a call id, ``trunk`` a trunk name):

============================== ====== ==========================================================
key                            type   content
============================== ====== ==========================================================
``{ns}:seq:campaign``          string INCR counter giving campaign ids
``{ns}:campaigns``             zset   cid -> created_ms (listing, newest first)
``{ns}:campaigns:active``      zset   cid -> cid: campaigns engines act on (Running, Pausing,
                                      Cancelling, Scheduled), kept by transition.lua
``{ns}:c:{cid}``               hash   name, status, status_reason, settings (JSON), trunk,
                                      created_ms, updated_ms, order_turn (claim.lua's count of
                                      the claims made while a retry was due: interleave)
``{ns}:c:{cid}:seq:list``      string INCR counter giving list ids
``{ns}:c:{cid}:lists``         hash   lid -> ListStatus value
``{ns}:c:{cid}:liststop``      hash   lid -> CallStatus given to the undialed contacts of a
                                      stopped list (claim/finish/release apply it on sight)
``{ns}:c:{cid}:list:{lid}``    set    contact members of the list (to stop a list)
``{ns}:c:{cid}:list:{lid}:staged`` zset  a recycled list's copies not queued yet (recycle_stage
                                      .lua writes, recycle_commit.lua moves them to pending)
``{ns}:c:{cid}:recycled``      hash   ``{lid}:{status}`` -> ``{cid}:{lid}``: which statuses of
                                      which list were recycled, and into which list (once each)
``{ns}:c:{cid}:listcid``       hash   lid -> the list's caller id settings (JSON,
                                      dialer.domain.callerid.CallerIdSource)
``{ns}:c:{cid}:cidturns``      hash   ``campaign`` / ``list:{lid}`` -> turns taken of that
                                      caller-ID pool (rotation, HINCRBY by every engine)
``{ns}:c:{cid}:seq:contact``   string INCR counter giving contact ids
``{ns}:c:{cid}:k:{kid}``       hash   phone, vars (JSON), list, zg (its zone group's gid),
                                      status (CallStatus), attempts,
                                      tech_failures, last_call, next_due_ms, dials (calls
                                      made: claim.lua adds one per claim, release.lua gives
                                      it back); an operator's callback adds cb_source,
                                      cb_requested_ms, cb_set_ms, cb_dials, cb_prev_status,
                                      cb_prev_due (callback.lua's header)
``{ns}:c:{cid}:pending``       zset   contact member -> due_ms: the only dial queue (fresh
                                      contacts due at upload time, retries at their retry time)
``{ns}:c:{cid}:retries``       zset   contact member -> due_ms: the retries and callbacks among
                                      ``pending`` (same member, same score), so that claim.lua
                                      finds a due retry without passing every due fresh
                                      contact (the campaign's ``dial_order``). Written by
                                      finish.lua and release.lua with ``pending``; an entry
                                      whose contact left ``pending`` another way is dropped by
                                      claim.lua when it meets it.
``{ns}:c:{cid}:zones``         hash   zone group key (``US|America/Chicago``: region and the
                                      contact's zones, dialer.domain.zones) -> gid, a small
                                      number given by add_contacts.lua (field ``#``: the last
                                      one given); gid 0: no zone known
``{ns}:c:{cid}:z:{gid}``       zset   contact member -> due_ms: the contacts of zone group
                                      ``gid`` among ``pending`` (same member, same score), so
                                      that claim.lua takes only from open groups (local
                                      hours). Written with ``pending`` by add_contacts,
                                      finish, release and callback; an entry whose contact
                                      left ``pending`` another way is dropped by claim.lua
``{ns}:c:{cid}:z:{gid}:r``     zset   the retries and callbacks among ``z:{gid}`` (as
                                      ``retries`` is to ``pending``)
``{ns}:c:{cid}:counts``        hash   CallStatus -> number of contacts in that status (exact)
``{ns}:c:{cid}:inflight``      zset   call -> lease expiry ms (campaign channel leases); an
                                      expired lease stays (its slot held) until its call is
                                      settled: finished, released, adopted or renewed
``{ns}:c:{cid}:claimed``       zset   call -> claimed_ms, claimed but not yet originated
``{ns}:c:{cid}:orphans``       zset   call -> expiry ms of a lease that expired before its call
                                      was finished or released (the owner died or stalled),
                                      marked by reap.lua; the lease is still in ``inflight``
``{ns}:c:{cid}:rate``          zset   sliding log of originate grants (member call, score ms)
``{ns}:c:{cid}:pace``          string pacing: ms of the next grant's slot (expires when idle)
``{ns}:c:{cid}:usage``         hash   attempts, talk_seconds: what the campaign used of its plan
``{ns}:c:{cid}:phones``        set    E.164 numbers imported into the campaign by the CSV
                                      importer (its dedupe set, across every imported list)
``{ns}:c:{cid}:dnc``           set    the campaign's do-not-call list (E.164 numbers)
``{ns}:dnc``                   set    the global do-not-call list (E.164 numbers)
``{ns}:t:{trunk}:inflight``    zset   call -> lease expiry ms (trunk channel leases; held like
                                      the campaign's until the call is settled)
``{ns}:t:{trunk}:rate``        zset   sliding log of originate grants on the trunk
``{ns}:t:{trunk}:pace``        string pacing slot of the trunk
``{ns}:t:{trunk}:breaker``     hash   the trunk's circuit breaker: state (closed | open |
                                      half_open), runs (and the run's charged call ids),
                                      cool-down end, probe call, reason, trips
                                      (breaker_report.lua, claim.lua; domain/breaker.py)
``{ns}:engines``               hash   engine owner token -> its heartbeat (JSON: expires_ms by
                                      the Redis clock, PBX connected, its trunk limits),
                                      written every few s by each engine (dialer.store.engines);
                                      an entry past its expiry is a dead engine
``{ns}:call:{call}``           hash   cid, contact, trunk, phone, state (claimed | originated |
                                      done), owner (the lease owner token of the engine
                                      process holding it: renew, originated, release and finish
                                      refuse any other), adopted_ms, claimed_ms,
                                      originated_ms, prev_status, prev_due, dial (the
                                      contact's ``dials`` at the claim); expires one day after
                                      ``done``
``{ns}:records:{cid}``         stream one entry per call (README: Call records); outlives the
                                      campaign
``{ns}:records:index``         zset   cid -> ms of its last record
``{ns}:control``               pubsub channel (not a key): ``"{cid}:{command}"`` messages
============================== ====== ==========================================================

Lease states of a call (who moves them):

============ ================================================ ===================================
state        in Redis                                         moved by
============ ================================================ ===================================
held         in both ``inflight`` zsets, expiry > now,         claim.lua (owner = the claimer);
             ``owner`` = the claiming engine process          renew.lua extends it
orphaned     still in both ``inflight`` zsets (slot held),    time, then reap.lua (an engine's
             expiry <= now, listed in ``orphans``             reconciliation) lists it
adopted      held again, ``owner`` = the adopter              adopt.lua, by an engine that has
                                                              just read the PBX's channel list
retaken      held again by the same owner                     renew.lua (the owner was slow,
                                                              nobody had adopted it)
settled      out of ``inflight``/``claimed``/``orphans``;     finish.lua / release.lua, by the
             call ``done``                                    owner only
============ ================================================ ===================================

Contact members (in ``pending`` and ``list:{lid}``) are the contact id zero-padded to
:data:`MEMBER_DIGITS` digits, so that contacts due at the same millisecond are dialed in upload
order (a sorted set orders equal scores by member bytes).

Scripts receive every key in ``KEYS``. The one exception is ``claim.lua``: it picks the contacts
inside the script, so it receives the contact key *prefix* (``{ns}:c:{cid}:k:``) and appends the
chosen ids, as BullMQ's scripts do with their job keys, and the call key prefix (``{ns}:call:``)
for the call ids of a batch, whose count it decides; with the zone prefix (``{ns}:c:{cid}:z:``)
it, add_contacts, finish, release and callback derive a contact's zone-group queues from its
``zg`` field. ``breaker_report.lua`` does the same (the
call and campaign prefixes) for the contacts of the calls whose attempts a trip gives back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MEMBER_DIGITS = 12
CALL_TTL_S = 86_400  # a finished call's hash lives one more day (duplicate Hangup events)


def contact_member(contact_id: int) -> str:
    """The sorted-set / set member naming a contact."""
    return f"{contact_id:0{MEMBER_DIGITS}d}"


def contact_id_of(member: bytes | str) -> int:
    return int(member)


_BAD_NAME = re.compile(r"[:\s]")


def _check_name(kind: str, value: str) -> str:
    if not value or _BAD_NAME.search(value):
        raise ValueError(f"{kind} {value!r} must be non-empty, without ':' or whitespace")
    return value


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one namespace."""

    ns: str = "dialer"

    def __post_init__(self) -> None:
        if not self.ns or any(c.isspace() for c in self.ns):
            raise ValueError(f"namespace {self.ns!r} must be non-empty, without whitespace")

    # global
    @property
    def campaign_seq(self) -> str:
        return f"{self.ns}:seq:campaign"

    @property
    def campaigns(self) -> str:
        return f"{self.ns}:campaigns"

    @property
    def active_campaigns(self) -> str:
        return f"{self.ns}:campaigns:active"

    @property
    def records_index(self) -> str:
        return f"{self.ns}:records:index"

    @property
    def control(self) -> str:
        return f"{self.ns}:control"

    # campaign
    def campaign(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}"

    @property
    def campaign_prefix(self) -> str:
        """``campaign(cid)`` without the id (for scripts that derive the key)."""
        return f"{self.ns}:c:"

    def list_seq(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:seq:list"

    def lists(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:lists"

    def list_stop(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:liststop"

    def list_members(self, cid: int, list_id: int) -> str:
        return f"{self.ns}:c:{cid}:list:{list_id}"

    def list_staged(self, cid: int, list_id: int) -> str:
        return f"{self.ns}:c:{cid}:list:{list_id}:staged"

    def recycled(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:recycled"

    def list_caller_ids(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:listcid"

    def caller_id_turns(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:cidturns"

    def contact_seq(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:seq:contact"

    def contact_prefix(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:k:"

    def contact(self, cid: int, contact_id: int) -> str:
        return f"{self.contact_prefix(cid)}{contact_id}"

    def pending(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:pending"

    def retries(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:retries"

    def zones(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:zones"

    def zone_prefix(self, cid: int) -> str:
        """``zone_queue`` without the gid (scripts derive the group's keys from the contact)."""
        return f"{self.ns}:c:{cid}:z:"

    def zone_queue(self, cid: int, gid: int) -> str:
        return f"{self.zone_prefix(cid)}{gid}"

    def zone_retries(self, cid: int, gid: int) -> str:
        return f"{self.zone_prefix(cid)}{gid}:r"

    def counts(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:counts"

    def inflight(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:inflight"

    def claimed(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:claimed"

    def orphans(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:orphans"

    def rate(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:rate"

    def pace(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:pace"

    def usage(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:usage"

    def records(self, cid: int) -> str:
        return f"{self.ns}:records:{cid}"

    def phones(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:phones"

    def campaign_dnc(self, cid: int) -> str:
        return f"{self.ns}:c:{cid}:dnc"

    # do-not-call
    @property
    def global_dnc(self) -> str:
        return f"{self.ns}:dnc"

    # trunk
    def trunk_inflight(self, trunk: str) -> str:
        return f"{self.ns}:t:{_check_name('trunk', trunk)}:inflight"

    def trunk_rate(self, trunk: str) -> str:
        return f"{self.ns}:t:{_check_name('trunk', trunk)}:rate"

    def trunk_pace(self, trunk: str) -> str:
        return f"{self.ns}:t:{_check_name('trunk', trunk)}:pace"

    def trunk_breaker(self, trunk: str) -> str:
        return f"{self.ns}:t:{_check_name('trunk', trunk)}:breaker"

    # engines
    @property
    def engines(self) -> str:
        return f"{self.ns}:engines"

    # call
    def call(self, call_id: str) -> str:
        return f"{self.ns}:call:{_check_name('call id', call_id)}"

    @property
    def call_prefix(self) -> str:
        return f"{self.ns}:call:"

    def campaign_fixed(self, cid: int) -> tuple[str, ...]:
        """The campaign's keys other than contacts and list sets (records excluded)."""
        return (
            self.campaign(cid),
            self.list_seq(cid),
            self.lists(cid),
            self.list_stop(cid),
            self.pending(cid),
            self.retries(cid),
            self.counts(cid),
            self.inflight(cid),
            self.claimed(cid),
            self.orphans(cid),
            self.rate(cid),
            self.pace(cid),
            self.contact_seq(cid),
            self.usage(cid),
            self.list_caller_ids(cid),
            self.caller_id_turns(cid),
            self.recycled(cid),
            self.zones(cid),
        )
