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
                                      cool-down end, probe call, reason, trips, the
                                      nodes whose switch says it is down (breaker_report.lua,
                                      breaker_switch.lua, claim.lua; domain/breaker.py)
``{ns}:nodes``                 hash   node id -> its configuration (JSON, dialer.domain.nodes
                                      Node: kind, max_channels, cps, enabled)
``{ns}:trunkgroups``           hash   group name -> its configuration (JSON, TrunkGroup:
                                      trunks -> node ids, backup, max_channels, cps)
``{ns}:cap``                   string the global cap (JSON, GlobalCap: max_channels, cps)
``{ns}:n:{node}:up``           zset   engine owner -> ms (Redis clock) until which that engine
                                      sees the node's PBX connected; the node is up while one
                                      score is in the future (dialer.store.nodes)
``{ns}:n:{node}:inflight``     zset   call -> lease expiry ms at the claim (not renewed: the
                                      count is the cap): the node's channel leases, held
                                      until the call is settled (finish/release.lua)
``{ns}:n:{node}:rate``         zset   sliding log of originate grants on the node
``{ns}:g:{group}:inflight``    zset   call -> lease expiry ms: the trunk group's leases
``{ns}:g:{group}:rate``        zset   sliding log of the group's grants
``{ns}:all:inflight``          zset   call -> lease expiry ms: every call of a node claim
``{ns}:all:rate``              zset   sliding log of every node claim's grants
``{ns}:engines``               hash   engine owner token -> its heartbeat (JSON: expires_ms by
                                      the Redis clock, PBX connected, its trunk limits),
                                      written every few s by each engine (dialer.store.engines);
                                      an entry past its expiry is a dead engine
``{ns}:call:{call}``           hash   cid, contact, trunk, phone, state (claimed | originated |
                                      done), owner (the lease owner token of the engine
                                      process holding it: renew, originated, release and finish
                                      refuse any other), adopted_ms, claimed_ms,
                                      originated_ms, prev_status, prev_due, dial (the
                                      contact's ``dials`` at the claim), node and group (a
                                      node claim: whose leases finish/release give back);
                                      expires one day after
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

Redis Cluster (``Keys(slot_groups=N)``, :data:`CLUSTER_SLOT_GROUPS` = 16; the store sets it for
a ``redis+cluster://`` URL; 0, single-node Redis, names every key exactly as in the table):

- Every claim, finish, renewal, adoption, release, reap, transition, callback, recycle and
  do-not-call script stays ONE atomic script on ONE slot. The unit of co-location is a *slot
  group* ``K`` (0..N-1): its keys carry the hash tag ``{gK}`` right after the namespace
  (``dialer:{g5}:c:37:pending``, ``dialer:{g5}:t:carrier:inflight``,
  ``dialer:{g5}:call:<id>``, ``dialer:{g5}:records:37``).
- A trunk's group is ``crc32(trunk) % N`` (:func:`trunk_group`). A campaign takes its trunk's
  group at creation, and its id carries it: ``cid = seq * N + group`` (:meth:`campaign_id`;
  :meth:`group_of` is ``cid % N``), so every key of a campaign is named from its id alone, as on
  a single node. Its contacts, calls (the call hashes: claim.lua derives them from the group's
  call prefix), records, and its trunk's leases, rate log, pacing slot and breaker are in that
  slot. A campaign's trunk and backup trunk must therefore be trunks of its group: the store
  refuses another (create, settings, identity: ValidationError); moving a campaign to a trunk of
  another group means a new campaign (its keys do not move).
- Global keys keep their own slots: the id counter, the campaign listing, the engines' beats,
  the records index is per group (``{ns}:{gK}:records:index``, written by claim/finish), the
  active index is per group (``{ns}:{gK}:campaigns:active``: transition.lua writes it with the
  campaign hash; the supervisor reads the N of them, active.lua each). The global do-not-call
  list ``{ns}:dnc`` is the list people edit; DncStore writes each change also to one copy per
  group (``{ns}:{gK}:dnc``), which the claim screens against atomically. A caps crossing groups
  (a global cap) cannot be one script: it would be a per-group allotment.
- Multi-key commands and MULTI only ever join keys of one group; the store's pipelines that mix
  groups are non-transactional (redis-py splits them per node); TIME, which names no key, is
  asked on its own.
"""

from __future__ import annotations

import re
import zlib
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


#: Slot groups of a store on Redis Cluster (``Keys(slot_groups=...)``): the most shards the
#: dialing keys spread over. 0 (single-node Redis) tags nothing.
CLUSTER_SLOT_GROUPS = 16


def trunk_group(trunk: str, slot_groups: int) -> int:
    """The slot group of a trunk: a stable hash of its name (CRC-32), modulo ``slot_groups``."""
    return zlib.crc32(_check_name("trunk", trunk).encode()) % slot_groups


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one namespace."""

    ns: str = "dialer"
    #: 0: single-node Redis, keys exactly as in the table above. N > 0: Redis Cluster, the
    #: campaign, trunk and call keys carry the hash tag of one of N slot groups
    #: (``{ns}:{gK}:c:{cid}:pending``; see "Redis Cluster" above).
    slot_groups: int = 0

    def __post_init__(self) -> None:
        if not self.ns or any(c.isspace() for c in self.ns):
            raise ValueError(f"namespace {self.ns!r} must be non-empty, without whitespace")
        if "{" in self.ns or "}" in self.ns:
            raise ValueError(f"namespace {self.ns!r} must not contain a hash tag brace")
        if self.slot_groups < 0:
            raise ValueError("slot_groups must be 0 (single node) or more")

    # slot groups (Redis Cluster)
    @property
    def cluster(self) -> bool:
        return self.slot_groups > 0

    def group_of(self, cid: int) -> int:
        """The slot group of campaign ``cid`` (its id modulo the groups; 0 on a single node)."""
        return cid % self.slot_groups if self.slot_groups else 0

    def group_of_trunk(self, trunk: str) -> int:
        return trunk_group(trunk, self.slot_groups) if self.slot_groups else 0

    def campaign_id(self, seq: int, trunk: str) -> int:
        """The id of the ``seq``-th campaign created, dialing on ``trunk``: ``seq`` itself on a
        single node; on Cluster ``seq * slot_groups + group_of_trunk(trunk)``, so that the
        campaign's keys and its trunk's share one slot (:meth:`group_of` gives it back)."""
        if not self.slot_groups:
            return seq
        return seq * self.slot_groups + self.group_of_trunk(trunk)

    def check_trunk_group(self, group: int, trunk: str) -> None:
        """ValueError when ``trunk``'s keys are not in slot group ``group`` (on Cluster a
        campaign's claims touch its own keys and its trunks' in one script: one slot)."""
        if self.slot_groups and self.group_of_trunk(trunk) != group:
            raise ValueError(
                f"on Redis Cluster, trunk {trunk!r} (slot group {self.group_of_trunk(trunk)}) "
                f"cannot serve a campaign of slot group {group}: pick a trunk of that group"
            )

    def _tag(self, group: int) -> str:
        """``{ns}`` on a single node; ``{ns}:{gK}`` (a hash tag) on Cluster."""
        return f"{self.ns}:{{g{group}}}" if self.slot_groups else self.ns

    def _c(self, cid: int) -> str:
        return f"{self._tag(self.group_of(cid))}:c:{cid}"

    def _t(self, trunk: str) -> str:
        return f"{self._tag(self.group_of_trunk(trunk))}:t:{_check_name('trunk', trunk)}"

    def groups(self) -> range:
        """Every slot group (one, 0, on a single node)."""
        return range(max(self.slot_groups, 1))

    def active_in(self, group: int) -> str:
        """The active index of one slot group (``active_campaigns`` on a single node)."""
        return f"{self._tag(group)}:campaigns:active"

    def active_of(self, cid: int) -> str:
        return self.active_in(self.group_of(cid))

    def records_index_of(self, cid: int) -> str:
        """Where claim.lua / finish.lua note campaign ``cid``'s last record (one per group)."""
        return f"{self._tag(self.group_of(cid))}:records:index"

    def global_dnc_in(self, group: int) -> str:
        """The global do-not-call set a script of ``group`` reads: ``global_dnc`` itself on a
        single node; on Cluster the group's copy (DncStore writes the set and every copy)."""
        return f"{self._tag(group)}:dnc"

    def global_dnc_of(self, cid: int) -> str:
        return self.global_dnc_in(self.group_of(cid))

    @property
    def global_dnc_copies(self) -> tuple[str, ...]:
        """``global_dnc`` and its per-group copies (only itself on a single node)."""
        if not self.slot_groups:
            return (self.global_dnc,)
        return (self.global_dnc, *(self.global_dnc_in(g) for g in self.groups()))

    def campaign_prefix_in(self, group: int) -> str:
        """:attr:`campaign_prefix` of one slot group."""
        return f"{self._tag(group)}:c:"

    def call_prefix_in(self, group: int) -> str:
        """:attr:`call_prefix` of one slot group."""
        return f"{self._tag(group)}:call:"

    def call_prefix_of(self, cid: int) -> str:
        return self.call_prefix_in(self.group_of(cid))

    def _untagged(self, what: str) -> None:
        if self.slot_groups:
            raise ValueError(f"{what} has no slot group on Redis Cluster: use its *_of / *_in")

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
        return f"{self._c(cid)}"

    @property
    def campaign_prefix(self) -> str:
        """``campaign(cid)`` without the id (for scripts that derive the key)."""
        self._untagged("campaign_prefix")
        return f"{self.ns}:c:"

    def list_seq(self, cid: int) -> str:
        return f"{self._c(cid)}:seq:list"

    def lists(self, cid: int) -> str:
        return f"{self._c(cid)}:lists"

    def list_stop(self, cid: int) -> str:
        return f"{self._c(cid)}:liststop"

    def list_members(self, cid: int, list_id: int) -> str:
        return f"{self._c(cid)}:list:{list_id}"

    def list_staged(self, cid: int, list_id: int) -> str:
        return f"{self._c(cid)}:list:{list_id}:staged"

    def recycled(self, cid: int) -> str:
        return f"{self._c(cid)}:recycled"

    def list_caller_ids(self, cid: int) -> str:
        return f"{self._c(cid)}:listcid"

    def caller_id_turns(self, cid: int) -> str:
        return f"{self._c(cid)}:cidturns"

    def contact_seq(self, cid: int) -> str:
        return f"{self._c(cid)}:seq:contact"

    def contact_prefix(self, cid: int) -> str:
        return f"{self._c(cid)}:k:"

    def contact(self, cid: int, contact_id: int) -> str:
        return f"{self.contact_prefix(cid)}{contact_id}"

    def pending(self, cid: int) -> str:
        return f"{self._c(cid)}:pending"

    def retries(self, cid: int) -> str:
        return f"{self._c(cid)}:retries"

    def zones(self, cid: int) -> str:
        return f"{self._c(cid)}:zones"

    def zone_prefix(self, cid: int) -> str:
        """``zone_queue`` without the gid (scripts derive the group's keys from the contact)."""
        return f"{self._c(cid)}:z:"

    def zone_queue(self, cid: int, gid: int) -> str:
        return f"{self.zone_prefix(cid)}{gid}"

    def zone_retries(self, cid: int, gid: int) -> str:
        return f"{self.zone_prefix(cid)}{gid}:r"

    def counts(self, cid: int) -> str:
        return f"{self._c(cid)}:counts"

    def inflight(self, cid: int) -> str:
        return f"{self._c(cid)}:inflight"

    def claimed(self, cid: int) -> str:
        return f"{self._c(cid)}:claimed"

    def orphans(self, cid: int) -> str:
        return f"{self._c(cid)}:orphans"

    def rate(self, cid: int) -> str:
        return f"{self._c(cid)}:rate"

    def pace(self, cid: int) -> str:
        return f"{self._c(cid)}:pace"

    def usage(self, cid: int) -> str:
        return f"{self._c(cid)}:usage"

    def records(self, cid: int) -> str:
        return f"{self._tag(self.group_of(cid))}:records:{cid}"

    def phones(self, cid: int) -> str:
        return f"{self._c(cid)}:phones"

    def campaign_dnc(self, cid: int) -> str:
        return f"{self._c(cid)}:dnc"

    # do-not-call
    @property
    def global_dnc(self) -> str:
        return f"{self.ns}:dnc"

    # trunk
    def trunk_inflight(self, trunk: str) -> str:
        return f"{self._t(trunk)}:inflight"

    def trunk_rate(self, trunk: str) -> str:
        return f"{self._t(trunk)}:rate"

    def trunk_pace(self, trunk: str) -> str:
        return f"{self._t(trunk)}:pace"

    def trunk_breaker(self, trunk: str) -> str:
        return f"{self._t(trunk)}:breaker"

    # nodes, trunk groups and the global cap (dialer.store.nodes; claim.lua's node block)
    @property
    def nodes(self) -> str:
        return f"{self.ns}:nodes"

    @property
    def trunk_groups(self) -> str:
        return f"{self.ns}:trunkgroups"

    @property
    def global_cap(self) -> str:
        return f"{self.ns}:cap"

    @property
    def node_prefix(self) -> str:
        """``{ns}:n:``: finish.lua and release.lua derive a call's node lease key from it."""
        return f"{self.ns}:n:"

    @property
    def group_prefix(self) -> str:
        return f"{self.ns}:g:"

    def node_up(self, node: str) -> str:
        return f"{self.node_prefix}{_check_name('node', node)}:up"

    def node_inflight(self, node: str) -> str:
        return f"{self.node_prefix}{_check_name('node', node)}:inflight"

    def node_rate(self, node: str) -> str:
        return f"{self.node_prefix}{_check_name('node', node)}:rate"

    def group_inflight(self, group: str) -> str:
        return f"{self.group_prefix}{_check_name('trunk group', group)}:inflight"

    def group_rate(self, group: str) -> str:
        return f"{self.group_prefix}{_check_name('trunk group', group)}:rate"

    def node_lease_prefixes(self, cid: int) -> tuple[str, str, str]:
        """The node prefix, the group prefix and the global inflight zset, which finish.lua and
        release.lua take last to give back a node claim's leases. On Cluster, where the node
        block is not offered (dialer.store.nodes), the same names under campaign ``cid``'s
        slot-group tag: never touched there, but declared in the script's one slot."""
        if not self.cluster:
            return (self.node_prefix, self.group_prefix, self.global_inflight)
        tag = self._tag(self.group_of(cid))
        return (f"{tag}:n:", f"{tag}:g:", f"{tag}:all:inflight")

    @property
    def global_inflight(self) -> str:
        return f"{self.ns}:all:inflight"

    @property
    def global_rate(self) -> str:
        return f"{self.ns}:all:rate"

    # engines
    @property
    def engines(self) -> str:
        return f"{self.ns}:engines"

    # call
    def call(self, call_id: str, cid: int | None = None) -> str:
        """The call's hash; on Cluster in its campaign's slot group (``cid`` required)."""
        if cid is None:
            self._untagged("call without its campaign")
            cid = 0
        return f"{self.call_prefix_of(cid)}{_check_name('call id', call_id)}"

    @property
    def call_prefix(self) -> str:
        self._untagged("call_prefix")
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
