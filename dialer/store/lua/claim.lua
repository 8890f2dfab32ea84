--[[ claim.lua -- take up to N due contacts for new calls, within the channel and rate limits.

call state: new -> claimed (dialer/domain/callstate.py)

Atomic: campaign status check, channel limits (every lease counts, an expired one too, until
its call is settled: see reap.lua), sliding-window rate and pacing,
do-not-call screening, then the first due contacts of the pending queue become in_progress,
each under a lease held by its call id. One round trip claims a whole burst, and its cost is
mostly per burst: the queue heads are read in runs, and the writes every claim repeats on the
same keys (queues left, leases, rate logs, counts) are made once at the end ((e0), (g)).

KEYS[1]  campaign hash            {ns}:c:{cid}
KEYS[2]  pending zset             {ns}:c:{cid}:pending
KEYS[3]  campaign inflight zset   {ns}:c:{cid}:inflight
KEYS[4]  trunk inflight zset      {ns}:t:{trunk}:inflight
KEYS[5]  campaign rate zset       {ns}:c:{cid}:rate
KEYS[6]  trunk rate zset          {ns}:t:{trunk}:rate
KEYS[7]  claimed zset             {ns}:c:{cid}:claimed
KEYS[8]  orphans zset             {ns}:c:{cid}:orphans  (not used here any more: reap.lua)
KEYS[9]  counts hash              {ns}:c:{cid}:counts
KEYS[10] liststop hash            {ns}:c:{cid}:liststop
KEYS[11] call key PREFIX          {ns}:call:        (+ call id: the call hashes)
KEYS[12] contact key PREFIX       {ns}:c:{cid}:k:   (+ contact id)
KEYS[13] global do-not-call set   {ns}:dnc
KEYS[14] campaign do-not-call set {ns}:c:{cid}:dnc
KEYS[15] records stream           {ns}:records:{cid}
KEYS[16] records index zset       {ns}:records:index
KEYS[17] campaign pacing slot      {ns}:c:{cid}:pace   (string: ms of the next grant's slot)
KEYS[18] trunk pacing slot         {ns}:t:{trunk}:pace
KEYS[19] retries zset             {ns}:c:{cid}:retries  (the retries among pending: dial order)
KEYS[20] trunk breaker hash        {ns}:t:{trunk}:breaker  (breaker_report.lua)
KEYS[21] zone queue PREFIX         {ns}:c:{cid}:z:  (local hours: + gid = a zone group's queue,
                                   + gid .. ':r' its retries; see "Local hours" below)
KEYS[22] zone groups hash         {ns}:c:{cid}:zones  (group key -> gid: a contact's next
                                   number's group, see "Several numbers" below)
KEYS[23..] the node block (only with ARGV[18]; its first index is ARGV[18]'s "k"):
  +0  global inflight zset       {ns}:all:inflight
  +1  global rate zset           {ns}:all:rate
  +2  trunk group inflight zset  {ns}:g:{group}:inflight
  +3  trunk group rate zset      {ns}:g:{group}:rate
  then 3 per candidate node i (i = 0, 1, ...; +4 + 3i):
  +0  node up zset               {ns}:n:{node}:up   (engine -> ms until which it sees the PBX)
  +1  node inflight zset         {ns}:n:{node}:inflight
  +2  node rate zset             {ns}:n:{node}:rate
(KEYS[11] and KEYS[12] are prefixes: the call and contact hashes are derived inside the
script, as the contacts are chosen here. On Redis Cluster every key and both prefixes carry
the campaign's slot-group hash tag ({ns}:{gK}:...; dialer/store/keys.py): one slot.)

ARGV[1]  owner (engine id)
ARGV[2]  campaign id
ARGV[3]  trunk name
ARGV[4]  lease_ms
ARGV[5]  campaign max channels        (0: no limit, see below)
ARGV[6]  trunk max channels           (0: no limit)
ARGV[7]  campaign rate limit L        (0: no limit)
ARGV[8]  campaign rate window W ms
ARGV[9]  campaign pacing interval T ms  (1000 / cps; 0: no pacing)
ARGV[10] campaign pacing catch-up C ms  (a burst is at most C / T + 1 grants)
ARGV[11] trunk rate limit L           (0: no limit)
ARGV[12] trunk rate window W ms
ARGV[13] trunk pacing interval T ms     (0: no pacing)
ARGV[14] trunk pacing catch-up C ms
ARGV[15] how many contacts of stopped lists or on a do-not-call list may be settled (or queued
         again: "Several numbers" below) in this call without dialing before it gives up
ARGV[16] campaign pacing step B         (grants one claim takes in the steady state)
ARGV[17] trunk pacing step B
ARGV[18] the node claim (dialer.store.nodes.NodeClaim): "" for none (the engine's one PBX,
         as before: no node, group or global cap), else JSON
         {"k": index of the node block's first key, "g": trunk group name,
          "gc": group max channels, "gl": group rate limit L, "gw": its window W ms,
          "ac": global max channels, "al": global rate limit L, "aw": its window W ms,
          "n": [[node id, max channels, rate limit L, window W ms, check up 0|1], ...]}
         (0: no limit), the candidate nodes: those of the trunk the engine is attached to,
         enabled. A node with "check up" 1 is a candidate only while its up zset has a score
         in the future (an engine attached to it sees its PBX connected).
ARGV[19] node: the PBX node of the engine that claims, kept in each call hash unless the node
         block chose another ("": not said; dialer.engine.leases treats such a call as any
         node's)
ARGV[20] local hours: "" (every due contact may be called) or "deadline:next:bits": see
         "Local hours" below
ARGV[21..] call ids, one per claim wanted (N = #ARGV - 20); a replay of ids whose reply was
         lost returns the same claims and takes nothing more

No limit: a channel or rate limit of 0 (ARGV 5-7, 11) means no limit on that axis (the
pacing interval, ARGV 9 or 13, is then 0 too; it is also 0 when DIALER_PACE_MS is 0). The
caller (RedisStore.claim_command) sends 0 only for a limit that is None in Python: a trunk
spelled out as "unlimited" in DIALER_TRUNKS, or not listed there (campaign limits are always
numbers). It refuses 0, negative, NaN and infinite limits before they get here, so no typo
reads as "no limit". (The script itself takes any value <= 0 as no limit.)

Rate: at most L grants in any W ms (a sliding log, one member per grant: the hard limit), and
pacing: one grant per T ms on a schedule of slots that may fall behind by C ms at most (a burst
of ceil(cps) at the top of each second would queue the PBX; pacing spreads the grants evenly
at the cps, and a caller that wakes late catches up without losing rate). After a paced claim
the reply says how long until B more grants are due, so a caller that asks for up to
C / T + 1 ids makes one claim per step: it takes what its lateness added, and never needs a
second round trip to catch up. The caller derives L = ceil(cps), W = ceil(L * 1000 / cps)
(+ a margin) >= 1000, T = 1000 / cps, C and B.

Dial order (the campaign's settings field dial_order, read from KEYS[1] only when a retry is
due; dialer.domain.dialorder): "retries_first" (default, also for a missing or unknown value)
takes the first due retry of KEYS[19] before the head of pending; "due_time" takes the head of
pending (oldest due first, fresh or retry); "interleave" takes the head of pending once in
every new_every claims made while a retry is due (the campaign hash's order_turn counts them),
a due retry otherwise. An entry of KEYS[19] whose contact left pending another way (do-not-call
import, stopped list) is dropped when met, one moved in pending is moved here too.

Local hours (dialer.domain.zones; the caller computes which zone groups are open): with
ARGV[20] set, "deadline:next:bits" (dialer.store.models.ZoneClaim), the due contacts are
taken only from the zone groups whose character in bits is "1" (bits[gid + 1]: one character
per gid, so that the test is one string.byte), and only while now < deadline (ms: the first
close among the open groups, less a guard; the caller sends a new set by then); "next" is
when the next closed group opens (ms, -1: not known). A contact's group is its field zg (0
when absent). KEYS[21] .. gid mirrors pending for the group's contacts (same member, same
score) and KEYS[21] .. gid .. ':r' mirrors retries: the first due entry of pending (of
retries) is taken when its group is open, else the first due entries of one open group's
queue after the other (each group in due order, the first group chosen by the clock; see
(e1)), so a due retry of an open group still goes before fresh contacts (retries_first). A contact of a closed group waits in
pending without holding up the others, a due retry of a closed group too. A mirror entry whose
contact left pending (or moved in it) is dropped (or moved) when met, as in KEYS[19]. With no
open group, or nothing due in them, the stop is "empty" with the earliest of their next due
time and "next". Every claim removes its contact from its group's queues, with ARGV[20] set
or not.

A contact whose phone is on a do-not-call list is not dialed: it becomes do_not_call, its
call id gets a record with rule dnc:blocked and no attempt is used (no lease, no rate grant);
the record's dial is 0.

Several numbers (finish.lua's header: the contact hash's numbers and nstate; read only when the
phone is listed, so a claim of a number not listed costs what it did): a listed phone gives way
to the contact's next usable number, chosen as finish.lua chooses it (the first usable after
the current one, then from the first; usable: not known invalid, on no list). Going back to a
number before the current one waits, as finish.lua would have had the number been listed
before its move, until the wrap time of the call that moved on (nstate's "w", finish.lua's
wrap_at_ms): the contact is queued again at that time, as for a closed zone group below. The
listed number gets last result do_not_call in nstate, and a dnc:blocked record as above (phone and
phone_label of the listed number, next_phone the new one, contact_status what the contact is
after the skip; its call_id is the claim's with "-dnc" added when the claim dials the next
number, so that a call id still names one call); the contact's phone, zone group (zg, from KEYS[22]) and nstate's
"i" move to the next number, and the same call id dials it in this claim: one claim, one dial
(the skip uses no attempt, dial, lease or rate grant; the reply's blocked does not count it).
With local hours, when the next number's zone group is closed the contact is not dialed: it
is queued again, due as it was (or at the wrap time above, and next_due_ms says so), in its
new group's queues (and pending, and retries for a retry, as release.lua puts a contact
back), its status unchanged; the record's call id is
then used by no call (it is spent as a blocked contact's is). No usable number left: the
contact ends do_not_call as a one-number contact does (every listed number marked so).

Each claim counts one more dial of its contact (the contact's `dials`, kept in the call hash
as `dial`): the contact's n-th call gets dial n whatever its outcome, technical errors
included, on whichever engine. A replay answers the dial the first reply carried.

Node block (PBX nodes, trunk groups, the global cap; issue 17): the global, group and node
caps are leases too (every claim's call id in the global, group and node inflight zsets,
given back by finish.lua / release.lua from the call hash's node and group fields), and
sliding-window rates (the hard limit L in W ms; no pacing on these axes). Each claim goes to
the up candidate node with free capacity that is least loaded (leases / max channels, then
fewest leases, then the order given); the call hash and the reply carry its node.

Returns {stop, now, value, blocked, [call id, contact id, phone, vars_json, attempts,
tech_failures, dial, node] per claim...} (node "" without a node block): now = server ms from TIME; stop tells why the script
claimed no more than it did:
  "max"     every call id was used (value 0)
  "status"  campaign not running (value = its status, "" if it does not exist); no claims
  "trunk"   the trunk's circuit breaker is open (its cool-down runs) or half-open (its probe
            call is out); value = ms until a probe may go; no claims, no contact touched.
            Once the cool-down is over the claim is the probe: one call at most (stop
            "trunk" when more were asked), and the breaker goes half-open with this claim's
            call as its probe (PROBE_GRANTED of dialer/domain/breaker.py), only if a contact
            was claimed.
  "node"    no candidate node is up (or none is given): the PBX is unavailable for this
            trunk; value 0; no claims, no contact touched
  "closed"  the campaign is Running but its claim deadline (field open_until_ms, written by
            transition.lua: the calling hours' close less a guard, or the end date) has
            passed by this server's clock (value = the deadline); no claims. A slow or stale
            engine cannot dial late: the deadline is checked here, atomically with the grant.
  "full"    a channel limit is reached; value = ms until the first lease expires (1 when it
            has expired: a slot of an expired lease frees once an engine settles its call)
  "rate"    a rate or pacing window is full; value = ms until a grant leaves it
  "empty"   nothing due; value = the next due time (ms), -1 when pending is empty, = now when
            the settle budget ran out (call again at once)
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local CALL, CONTACT = KEYS[11], KEYS[12]
local first_id = 21

-- replay of a claim whose reply was lost: answer it again, take nothing more
local prior = redis.call('HGET', CALL .. ARGV[first_id], 'state')
if prior then
  local out = {'max', now, 0, 0}
  for i = first_id, #ARGV do
    local call = redis.call('HMGET', CALL .. ARGV[i], 'state', 'contact', 'dial', 'node')
    if call[1] and call[1] ~= 'claimed' then
      return redis.error_reply('call id already used: ' .. ARGV[i])
    end
    if call[1] then
      local c = redis.call('HMGET', CONTACT .. call[2], 'phone', 'vars', 'attempts', 'tech_failures')
      local n = #out
      out[n + 1], out[n + 2], out[n + 3] = ARGV[i], tonumber(call[2]), c[1] or ''
      out[n + 4], out[n + 5], out[n + 6] = c[2] or '{}', tonumber(c[3]) or 0, tonumber(c[4]) or 0
      out[n + 7], out[n + 8] = tonumber(call[3]) or 0, call[4] or ''
    end
  end
  return out
end

-- (a) campaign status, and its calling hours
local campaign = redis.call('HMGET', KEYS[1], 'status', 'open_until_ms')
local status, deadline = campaign[1], tonumber(campaign[2])
if status ~= 'running' then
  return {'status', now, status or '', 0}
end
if deadline and now >= deadline then
  return {'closed', now, deadline, 0}
end

-- (a1) local hours: the open zone groups (ARGV[20]); none open: nothing to claim
local ZQ = KEYS[21]
local zbits, znext = nil, -1  -- zbits: one "0"/"1" per gid (nil: no local hours)
local zopen                   -- the open gids (strings), listed when first needed
if ARGV[20] ~= '' then
  local deadline, nxt, bits = string.match(ARGV[20], '^(%d+):(-?%d+):([01]*)$')
  if not bits then
    return redis.error_reply('ARGV[20] is not "deadline:next:bits": ' .. ARGV[20])
  end
  znext = tonumber(nxt)
  zbits = now < tonumber(deadline) and bits or ''
end
local function zopen_list()
  if not zopen then
    zopen = {}
    local bytes = {string.byte(zbits, 1, -1)}
    for i = 1, #bytes do
      if bytes[i] == 49 then  -- "1"
        zopen[#zopen + 1] = tostring(i - 1)
      end
    end
  end
  return zopen
end
local function zone_wait()  -- "empty"'s value in local-hours mode
  if redis.call('ZCARD', KEYS[2]) == 0 then
    return -1
  end
  local at = znext >= 0 and znext or now + 60000
  for _, gid in ipairs(zopen_list()) do
    local nxt = redis.call('ZRANGE', ZQ .. gid, 0, 0, 'WITHSCORES')
    if #nxt > 0 then
      at = math.min(at, math.max(now, tonumber(nxt[2])))
    end
  end
  return at
end
if zbits and not string.find(zbits, '1', 1, true) then
  return {'empty', now, zone_wait(), 0}
end

-- (a2) the trunk's circuit breaker: open (cool-down) or half-open (probe out) refuses
local probing = false
local br = redis.call('HMGET', KEYS[20], 'state', 'retry_ms', 'probe_until_ms', 'probe_ms')
if br[1] == 'open' or br[1] == 'half_open' then
  local until_ms = tonumber(br[1] == 'open' and br[2] or br[3]) or 0
  if now < until_ms then
    return {'trunk', now, until_ms - now, 0}
  end
  probing = true
end

-- ==== node block (1/3): the candidate nodes that are up, their room (ARGV[18]) ====
local huge = 2 ^ 53
local function channels_free(key, limit)
  if limit <= 0 then
    return huge, 0
  end
  local free = limit - redis.call('ZCARD', key)
  if free > 0 then
    return free, 0
  end
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return 0, math.max(1, tonumber(first[2]) - now)
end
local function rate_room(key, limit, window)
  if limit <= 0 then
    return huge, 0
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  if n >= limit then
    -- a place frees when the (n - limit + 1)-th oldest grant leaves the window
    local g = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    return 0, math.max(1, tonumber(g[2]) + window - now)
  end
  local oldest = now
  if n > 0 then
    oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
  end
  return limit - n, math.max(1, oldest + window - now)
end
local spec = ARGV[18] ~= '' and cjson.decode(ARGV[18]) or nil
local nodes = {}  -- the up candidates (node_of): {id, inflight key, rate key, rate limit,
                  -- channels free, rate room, leases, max channels, their two waits}
local n_chan, n_chan_wait, n_rate, n_rate_wait = huge, 0, huge, 0
local a_chan, a_wait, a_rate, a_rate_wait, g_chan, g_wait, g_rate, g_rate_wait
local function node_of(n, base)  -- an up candidate's room, in as few commands as it needs
  local used = redis.call('ZCARD', KEYS[base + 1])
  local cap = n[2] > 0 and n[2] or huge
  local free, fwait = math.max(0, cap - used), 0
  if free == 0 then
    local first = redis.call('ZRANGE', KEYS[base + 1], 0, 0, 'WITHSCORES')
    fwait = math.max(1, (tonumber(first[2]) or now) - now)
  end
  local rroom, rwait = huge, 0
  if n[3] > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[base + 2], '-inf', now - n[4])
    local g = redis.call('ZCARD', KEYS[base + 2])
    rroom, rwait = math.max(0, n[3] - g), 1  -- (binding after this claim: the next one
    if rroom == 0 then                       -- measures the wait)
      local e = redis.call('ZRANGE', KEYS[base + 2], g - n[3], g - n[3], 'WITHSCORES')
      rwait = math.max(1, tonumber(e[2]) + n[4] - now)
    end
  end
  return {n[1], KEYS[base + 1], KEYS[base + 2], n[3], free, rroom, used, cap, fwait, rwait}
end
if spec then
  local k = spec.k
  for i, n in ipairs(spec.n) do
    local base = k + 4 + 3 * (i - 1)
    if n[5] == 0 or redis.call('ZCOUNT', KEYS[base], '(' .. now, '+inf') > 0 then
      nodes[#nodes + 1] = node_of(n, base)
    end
  end
  if #nodes == 0 then
    return {'node', now, 0, 0}
  end
  -- the nodes' room: channels (sum of the free channels), and with their rates (sum of
  -- min(free, rate room), counted as a rate limit only where it binds before the channels)
  local chan, both, cw, rw = 0, 0, huge, huge
  for _, n in ipairs(nodes) do
    chan = math.min(huge, chan + n[5])
    both = math.min(huge, both + math.min(n[5], n[6]))
    if n[5] == 0 then cw = math.min(cw, n[9]) end
    if n[6] < n[5] then rw = math.min(rw, n[10]) end
  end
  n_chan, n_chan_wait = chan, cw < huge and cw or 1
  if both < chan then
    n_rate, n_rate_wait = both, rw < huge and rw or 1
  end
  a_chan, a_wait = channels_free(KEYS[k], tonumber(spec.ac))
  a_rate, a_rate_wait = rate_room(KEYS[k + 1], tonumber(spec.al), tonumber(spec.aw))
  g_chan, g_wait = channels_free(KEYS[k + 2], tonumber(spec.gc))
  g_rate, g_rate_wait = rate_room(KEYS[k + 3], tonumber(spec.gl), tonumber(spec.gw))
end
-- ==== end of node block (1/3) ====

-- (b) expired leases are not purged here: a lease keeps its slot until its call is settled
-- (finished, released, or adopted by an engine that saw it on the PBX: reap.lua, adopt.lua),
-- so the caps hold while a dead engine's calls are still up. Nothing to scan per claim.

-- (c) channel limits: how many channels are free (channels_free: above, in the node block)
local room, wait = channels_free(KEYS[3], tonumber(ARGV[5]))
if room > 0 then
  local trunk_room
  trunk_room, wait = channels_free(KEYS[4], tonumber(ARGV[6]))
  room = math.min(room, trunk_room)
end
if spec and room > 0 then  -- node block (2/3): the global, group and node channels
  for _, axis in ipairs({{a_chan, a_wait}, {g_chan, g_wait}, {n_chan, n_chan_wait}}) do
    if axis[1] < room then
      room, wait = axis[1], axis[2]
    end
  end
end
if room <= 0 then
  return {'full', now, wait, 0}
end
local stop = room < #ARGV - first_id + 1 and 'full' or 'max'
local stop_value = 0  -- with 'full' after some claims: 0 = call again when a channel frees

-- (d) sliding-window rate: how many grants fit now. rate_room (above, in the node block)
-- returns the room and the wait until the next grant once that room is used up (with room 0:
-- from now).

-- pacing: the next grant's slot S (ms) advances by T per grant; a slot may be late by C at
-- most (S >= now - C), so a late caller catches up with a burst of at most C / T + 1 grants
-- and the long-run rate is exactly 1000 / T per second.
local want = #ARGV - first_id + 1
local function pace_room(key, interval, catch_up)
  if interval <= 0 then
    return huge, nil
  end
  local slot = math.max(tonumber(redis.call('GET', key)) or now, now - catch_up)
  if slot > now then
    return 0, slot
  end
  return math.floor((now - slot) / interval) + 1, slot
end
local function pace_wait(slot, interval, step)
  -- until the caller's next step is due (B grants, or as many as it asked for if fewer)
  local k = math.max(1, math.min(want, step))
  return math.max(1, math.ceil(slot + (k - 1) * interval - now))
end
local c_limit, t_limit = tonumber(ARGV[7]), tonumber(ARGV[11])
local c_pace, c_catch = tonumber(ARGV[9]), tonumber(ARGV[10])
local t_pace, t_catch = tonumber(ARGV[13]), tonumber(ARGV[14])
local c_step, t_step = tonumber(ARGV[16]), tonumber(ARGV[17])
local c_room, c_wait = rate_room(KEYS[5], c_limit, tonumber(ARGV[8]))
local t_room, t_wait = rate_room(KEYS[6], t_limit, tonumber(ARGV[12]))
local cp_room, c_slot = pace_room(KEYS[17], c_pace, c_catch)
local tp_room, t_slot = pace_room(KEYS[18], t_pace, t_catch)
local grants = math.min(c_room, t_room, cp_room, tp_room)
local x_rate, x_wait = huge, 0  -- node block (2/3): the global, group and nodes' rates
if spec then
  for _, axis in ipairs({{a_rate, a_rate_wait}, {g_rate, g_rate_wait}, {n_rate, n_rate_wait}}) do
    if axis[1] < x_rate then
      x_rate, x_wait = axis[1], axis[2]
    elseif axis[1] == x_rate then
      x_wait = math.max(x_wait, axis[2])
    end
  end
  grants = math.min(grants, x_rate)
end
if grants <= 0 then
  local w = 1
  if x_rate == 0 then w = math.max(w, x_wait) end
  if c_room == 0 then w = math.max(w, c_wait) end
  if t_room == 0 then w = math.max(w, t_wait) end
  if cp_room == 0 then w = math.max(w, pace_wait(c_slot, c_pace, c_step)) end
  if tp_room == 0 then w = math.max(w, pace_wait(t_slot, t_pace, t_step)) end
  return {'rate', now, w, 0}
end
if grants < huge and grants <= room then
  -- the rate binds before the channels: after this burst, wait for the windows
  room = grants
  stop = 'rate'
  stop_value = 1
  if c_room == grants then stop_value = math.max(stop_value, c_wait) end
  if x_rate == grants then stop_value = math.max(stop_value, x_wait) end
  if t_room == grants then stop_value = math.max(stop_value, t_wait) end
  if c_slot and cp_room == grants then
    stop_value = math.max(stop_value, pace_wait(c_slot + grants * c_pace, c_pace, c_step))
  end
  if t_slot and tp_room == grants then
    stop_value = math.max(stop_value, pace_wait(t_slot + grants * t_pace, t_pace, t_step))
  end
end

if probing and room > 1 then  -- the probe: one call
  room = 1
  stop = 'trunk'
  stop_value = tonumber(br[4]) or 1
end

-- (e0) gathered writes (loadtest/bench/luacost.py; as finish.lua does): what every claim of a
-- batch repeats on the same keys is made once at the end, one command per key: the queues a
-- contact leaves (ZREM), the leases and rate logs (ZADD), the campaign counts (HINCRBY, net).
-- Nothing in the loop reads the leases, rate logs or counts. The queues it does read: a
-- contact taken in this call is "gone" (every reader skips it), and a queue's removals are made
-- before the queue is read again, so each read sees what one write per claim would have left.
local gone = {}                       -- contact member -> true: left the queues in this call
local removing, removing_keys = {}, {}  -- key -> members to ZREM
local adding, adding_keys = {}, {}      -- key -> {score, member, ...} to ZADD
local deltas, delta_order = {}, {}      -- counts field -> net HINCRBY (every field touched)
local function remove(key, member)
  local m = removing[key]
  if not m then
    m = {}
    removing[key] = m
    removing_keys[#removing_keys + 1] = key
  end
  m[#m + 1] = member
end
local function add(key, score, member)
  local m = adding[key]
  if not m then
    m = {}
    adding[key] = m
    adding_keys[#adding_keys + 1] = key
  end
  m[#m + 1], m[#m + 2] = score, member
end
local function count(status, delta)
  if deltas[status] == nil then
    deltas[status] = 0
    delta_order[#delta_order + 1] = status
  end
  deltas[status] = deltas[status] + delta
end
local CHUNK = 500  -- arguments per command (unpack's stack)
local function flush(key)  -- this key's gathered ZREMs, now (before it is read again)
  local m = removing[key]
  if m and #m > 0 then
    for i = 1, #m, CHUNK do
      redis.call('ZREM', key, unpack(m, i, math.min(i + CHUNK - 1, #m)))
    end
    removing[key] = {}
  end
end
local function due_run(key, limit)  -- the first due entries of a queue (its removals made)
  flush(key)
  local r = redis.call('ZRANGEBYSCORE', key, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
  return {r = r, i = 1, n = #r, all = #r < 2 * limit}
end
local dnc_sets, stops  -- read once a script call: the do-not-call sets holding numbers, any stop
local function on_dnc(phone)
  if not dnc_sets then
    dnc_sets = {}
    for _, key in ipairs({KEYS[13], KEYS[14]}) do
      if redis.call('SCARD', key) > 0 then
        dnc_sets[#dnc_sets + 1] = key
      end
    end
  end
  for _, key in ipairs(dnc_sets) do
    if redis.call('SISMEMBER', key, phone) == 1 then
      return true
    end
  end
  return false
end
-- (f2) several numbers: the next usable number of a contact whose current one is listed
local function usable(nums, st, j)  -- finish.lua's: not known invalid, on no list
  if st.s[j] == 'invalid_number' then
    return false
  end
  if on_dnc(nums[j][1]) then
    st.s[j] = 'do_not_call'
    return false
  end
  return true
end
local function next_usable(ckey)
  -- nil for a one-number contact; else its numbers, nstate (the listed current number i marked
  -- do_not_call, "i" moved to j), i and j (nil: no usable number left)
  local h = redis.call('HMGET', ckey, 'numbers', 'nstate')
  if not h[1] then
    return nil
  end
  local nums, st = cjson.decode(h[1]), cjson.decode(h[2] or '{}')
  local i, n = (tonumber(st.i) or 0) + 1, #nums
  st.s[i] = 'do_not_call'
  local wrap = tonumber(st.w)
  st.w = nil
  for x = i, i + n - 2 do  -- after i, then from the first (finish.lua's move_on)
    local j = x % n + 1
    if usable(nums, st, j) then
      st.i = j - 1
      -- back to an earlier number: not before the wrap time of the call that moved on
      return nums, st, i, j, (j < i and wrap and wrap > now) and wrap or nil
    end
  end
  return nums, st, i, nil
end
local function gid_of(group)  -- as finish.lua's (a recycled contact's group may be new here)
  if group == '' then
    return '0'
  end
  local gid = redis.call('HGET', KEYS[22], group)
  if not gid then
    gid = tostring(redis.call('HINCRBY', KEYS[22], '#', 1))
    redis.call('HSET', KEYS[22], group, gid)
  end
  return gid
end
local function list_stop(list)
  if stops == nil then
    stops = redis.call('EXISTS', KEYS[10]) == 1
  end
  return stops and redis.call('HGET', KEYS[10], list)
end

-- (e) the next due contact in the campaign's dial order; (f) claim them. The heads of pending
-- and of KEYS[19] are read in runs of up to the ids left (due_run), not one read per claim.
local order, new_every  -- read once, when a retry is first seen due
local stale = 1000      -- at most this many stale entries of KEYS[19] dropped per call
local zwant = 1         -- how many entries a run reads (the ids left)
local runs = {}         -- key -> the run of due entries being read (due_run)
local function run_of(key)  -- the run of a queue being read, read again once used up
  local v = runs[key]
  if not v or (v.i > v.n and not v.all) then
    v = due_run(key, zwant)
    runs[key] = v
  end
  return v
end
local function due_retry()
  while stale > 0 do
    local v = run_of(KEYS[19])
    if v.i > v.n then
      return {}
    end
    local member, due = v.r[v.i], v.r[v.i + 1]
    if gone[member] then  -- taken in this call (from pending, or this entry itself)
      v.i, v.ok = v.i + 2, false
    elseif v.ok then
      return {member, due}
    else
      local score = tonumber(redis.call('ZSCORE', KEYS[2], member))
      if score == tonumber(due) then
        v.ok = true
        return {member, due}
      end
      stale = stale - 1
      v.i = v.i + 2
      if score then  -- queued again at another time: follow pending
        redis.call('ZADD', KEYS[19], score, member)
        if score <= now then  -- due at its new place: read the queue again
          runs[KEYS[19]] = nil
        end
      else  -- left pending without a claim
        redis.call('ZREM', KEYS[19], member)
      end
    end
  end
  return {}
end
local function head()
  while true do
    local v = run_of(KEYS[2])
    if v.i > v.n then
      return {}
    end
    if not gone[v.r[v.i]] then
      return {v.r[v.i], v.r[v.i + 1]}
    end
    v.i = v.i + 2
  end
end

-- (e1) local hours: head() and due_retry() within the open groups. The first due entry of
-- pending (or of retries) is taken when its group is open (one HGET more than without local
-- hours). Once it is seen in a closed group (it stays there for this call: claims only take
-- open groups' contacts), the picks come from one open group's queue at a time, in its due
-- order, starting from a group chosen by the clock (now % the open groups) and going on to
-- the next once it has nothing due: one read per call in the common case, where the earliest
-- due among all the open groups would read every open group's queue on every call (2.1x the
-- one-zone cost at one id per claim, measured). Each queue's due entries are read in runs of
-- up to the ids left. A head of a retries queue is checked against pending (ZSCORE) when it
-- becomes the head; a head of a group's queue by the claim's own ZREM from pending (f0).
local zcache = {[''] = {}, [':r'] = {}}  -- suffix -> gid -> {r = entries, i = head, ok} | false
local zskip = {}       -- suffix -> true: the global head is in a closed group (this call)
local function zfirst(gid, suffix)
  local cache = zcache[suffix]
  local v = cache[gid]
  while v ~= false and stale > 0 do
    local key = ZQ .. gid .. suffix
    if v == nil or v.i > v.n then
      flush(key)
      local r = redis.call('ZRANGEBYSCORE', key, '-inf', now, 'WITHSCORES', 'LIMIT', 0,
                           math.min(64, zwant))
      v = #r > 0 and {r = r, i = 1, n = #r, ok = false} or false
      cache[gid] = v
    elseif gone[v.r[v.i]] then  -- taken in this call (its removal from here is gathered)
      stale = stale - 1
      v.i, v.ok = v.i + 2, false
    elseif v.ok then
      return v
    elseif suffix == '' then  -- checked by the claim's ZREM from pending (f0)
      v.ok, v.member, v.due, v.score = true, v.r[v.i], v.r[v.i + 1], tonumber(v.r[v.i + 1])
      return v
    else
      local member, due = v.r[v.i], v.r[v.i + 1]
      local score = tonumber(redis.call('ZSCORE', KEYS[2], member))
      if score == tonumber(due) then
        v.ok, v.member, v.due, v.score = true, member, due, score
        return v
      end
      stale = stale - 1
      if score then  -- queued again at another time: follow pending
        redis.call('ZADD', key, score, member)
      else  -- left pending (or was just claimed from the other queue of its group)
        redis.call('ZREM', key, member)
      end
      v.i = v.i + 2
    end
  end
  return false
end
local zpicked_suffix, zpicked_gid  -- the queue of the last entry picked from the groups'
local zturn = {}  -- suffix -> the index in zopen of the group this call takes from
local function zbest(suffix)
  local cache = zcache[suffix]
  local zopen = zopen_list()
  local n = #zopen
  local start = zturn[suffix] or (now % n) + 1
  for k = 0, n - 1 do
    local idx = (start + k - 1) % n + 1
    local gid = zopen[idx]
    local v = cache[gid]
    if v == nil or (v and not v.ok) then
      v = zfirst(gid, suffix)
    end
    if v then
      zturn[suffix] = idx
      zpicked_suffix, zpicked_gid = suffix, gid
      return {v.member, v.due}
    end
  end
  return {}
end
local function zpicked_out(zg)
  -- the contact just taken leaves its group's run: the picked queue moves on; the group's
  -- other queue checks its head again (it may be the same contact: a retry is in both)
  if zpicked_gid then
    local v = zcache[zpicked_suffix][zpicked_gid]
    if v then
      v.i, v.ok = v.i + 2, false
    end
    zpicked_gid = nil
  end
  local v = zcache[''][zg]
  if v then
    v.ok = false
  end
  v = zcache[':r'][zg]
  if v then
    v.ok = false
  end
end
if zbits then
  local function within(global, suffix)
    if not zskip[suffix] then
      local first = global()
      if #first == 0 then
        return first
      end
      local gid = tonumber(redis.call('HGET', CONTACT .. tonumber(first[1]), 'zg')) or 0
      if string.byte(zbits, gid + 1) == 49 then
        return first
      end
      zskip[suffix] = true
    end
    return zbest(suffix)
  end
  local pending_head, any_retry = head, due_retry
  head = function() return within(pending_head, '') end
  due_retry = function() return within(any_retry, ':r') end
end
local function pick_due()
  if order == 'due_time' then
    return head()
  end
  local retry = due_retry()
  if #retry == 0 then
    return head()
  end
  if not order then
    local ok, s = pcall(cjson.decode, redis.call('HGET', KEYS[1], 'settings') or '{}')
    s = ok and type(s) == 'table' and s or {}
    order = s.dial_order or 'retries_first'
    new_every = math.max(2, math.floor(tonumber(s.new_every) or 3))
    if order == 'due_time' then
      return head()
    end
  end
  if order == 'interleave'
      and redis.call('HINCRBY', KEYS[1], 'order_turn', 1) % new_every == 0 then
    return head()
  end
  return retry
end
-- ==== node block (3/3): the node of each claim, its leases ====
local function pick_node()
  local best, best_load
  for _, n in ipairs(nodes) do
    if n[5] > 0 and n[6] > 0 then
      local load = n[7] / n[8]
      if not best or load < best_load or (load == best_load and n[7] < best[7]) then
        best, best_load = n, load
      end
    end
  end
  return best
end
local function lease_node(call_id, expiry)
  -- the node of the claim ('' without a node block) and its trunk group; the leases and rate
  -- logs gathered (e0)
  if not spec then
    return '', nil
  end
  local n = pick_node()  -- never nil: the room above is within the nodes' room
  n[5], n[6], n[7] = n[5] - 1, n[6] - 1, n[7] + 1
  add(n[2], expiry, call_id)
  if n[4] > 0 then add(n[3], now, call_id) end
  local k = spec.k
  add(KEYS[k], expiry, call_id)
  add(KEYS[k + 2], expiry, call_id)
  if tonumber(spec.al) > 0 then add(KEYS[k + 1], now, call_id) end
  if tonumber(spec.gl) > 0 then add(KEYS[k + 3], now, call_id) end
  return n[1], spec.g
end
-- ==== end of node block (3/3) ====

local out = {stop, now, stop_value, 0}
local blocked = 0
local settle = tonumber(ARGV[15])
local expiry = now + tonumber(ARGV[4])
local next_id = first_id
local claimed = 0
local empty = false  -- nothing due: "empty"'s value is read once the queues are written
while claimed < room and next_id <= #ARGV do
  zwant = math.min(room - claimed, #ARGV - next_id + 1)
  local first = pick_due()
  if #first == 0 then
    empty = true
    break
  end
  local member, due = first[1], first[2]
  local kid = tonumber(member)
  local ckey = CONTACT .. kid
  gone[member] = true
  remove(KEYS[19], member)
  local c, zg
  if zpicked_suffix == '' and zpicked_gid
      and redis.call('ZREM', KEYS[2], member) == 0 then
    -- (f0) local hours: an entry of a group's queue whose contact left pending another way
    -- (the queue follows every move in pending: only removals leave such entries)
    c, zg = {}, zpicked_gid
    stale = stale - 1
  else
    if not (zpicked_suffix == '' and zpicked_gid) then
      remove(KEYS[2], member)
    end
    c = redis.call('HMGET', ckey, 'status', 'list', 'phone', 'vars', 'attempts', 'tech_failures',
                   'zg', 'dials')
    zg = c[7] or '0'
  end
  -- (f1) local hours: out of its zone group's queues (and of this call's runs of them)
  remove(ZQ .. zg, member)
  remove(ZQ .. zg .. ':r', member)
  zpicked_out(zg)
  local old, phone = c[1], c[3] or ''
  if old then  -- (a queue entry without its contact hash is dropped: campaign being deleted)
    local settled = c[2] and list_stop(c[2])
    local call_id = ARGV[next_id]
    local requeue = false  -- (f2) moved to a number that waits (wrap, zone group): queued again
    if not settled and on_dnc(phone) then
      local nums, st, i, j, wrap = next_usable(ckey)
      local after, notes = 'do_not_call', {}
      if j then  -- (f2) the next usable number, dialed now unless it waits (wrap, zone group)
        local gid = gid_of(nums[j][3])
        requeue = wrap ~= nil or (zbits ~= nil and string.byte(zbits, tonumber(gid) + 1) ~= 49)
        after = requeue and old or 'in_progress'
        redis.call('HSET', ckey, 'phone', nums[j][1], 'zg', gid, 'nstate', cjson.encode(st))
        notes = {'phone_label', nums[i][2], 'next_phone', nums[j][1]}
        if requeue then
          local at = math.max(tonumber(due), wrap or 0)
          if wrap then
            redis.call('HSET', ckey, 'next_due_ms', at)
            notes[#notes + 1], notes[#notes + 2] = 'retry_at_ms', at
          end
          add(KEYS[2], at, member)
          add(ZQ .. gid, at, member)
          if old ~= 'pending' then  -- a retry or a callback, not a fresh contact
            add(KEYS[19], at, member)
            add(ZQ .. gid .. ':r', at, member)
          end
        end
      else
        settled = 'do_not_call'
        blocked = blocked + 1
        if nums then
          redis.call('HSET', ckey, 'nstate', cjson.encode(st))
          notes = {'phone_label', nums[i][2]}
        end
      end
      if settled or requeue then
        next_id = next_id + 1
      end
      -- a call id names one call: the listed number's record of a skip dialed in this claim
      -- gets the id with '-dnc' (the call to the next number has the id itself)
      local record_id = (j and not requeue) and (call_id .. '-dnc') or call_id
      redis.call('XADD', KEYS[15], '*', 'call_id', record_id, 'campaign', ARGV[2],
                 'contact', kid, 'phone', phone, 'trunk', ARGV[3],
                 'attempt', tonumber(c[5]) or 0, 'dial', 0, 'status', 'do_not_call',
                 'contact_status', after, 'rule', 'dnc:blocked', 'contact_id', kid,
                 unpack(notes))
      add(KEYS[16], now, ARGV[2])
      if j then
        phone = nums[j][1]
      end
    end
    if settled or requeue then  -- not dialed: settled, or queued again (f2)
      if settled == 'do_not_call' then
        redis.call('HSET', ckey, 'status', settled, 'next_due_ms', '', 'last_call', call_id)
      elseif settled then
        redis.call('HSET', ckey, 'status', settled, 'next_due_ms', '')
      end
      if settled then
        count(old, -1)
        count(settled, 1)
      end
      settle = settle - 1
      if settle <= 0 then
        out[1], out[3] = 'empty', now
        break
      end
    else
      next_id = next_id + 1
      claimed = claimed + 1
      local dial = (tonumber(c[8]) or 0) + 1  -- the contact's dials (HINCRBY's count, no read)
      redis.call('HSET', ckey, 'status', 'in_progress', 'last_call', call_id, 'dials', dial)
      count(old, -1)
      count('in_progress', 1)
      local node, group = lease_node(call_id, expiry)
      redis.call('HSET', CALL .. call_id, 'cid', ARGV[2], 'contact', kid, 'trunk', ARGV[3],
                 'phone', phone, 'state', 'claimed', 'owner', ARGV[1],
                 'claimed_ms', now, 'prev_status', old, 'prev_due', due, 'dial', dial,
                 'node', group and node or ARGV[19], unpack(group and {'group', group} or {}))
      add(KEYS[3], expiry, call_id)
      add(KEYS[4], expiry, call_id)
      add(KEYS[7], now, call_id)
      if c_limit > 0 then
        add(KEYS[5], now, call_id)
      end
      if t_limit > 0 then
        add(KEYS[6], now, call_id)
      end
      local n = #out
      out[n + 1], out[n + 2], out[n + 3] = call_id, kid, phone
      out[n + 4], out[n + 5], out[n + 6] = c[4] or '{}', tonumber(c[5]) or 0, tonumber(c[6]) or 0
      out[n + 7], out[n + 8] = dial, node
    end
  end
end
-- (g) the gathered writes (e0): the queues left, the leases and rate logs, the counts
for _, key in ipairs(removing_keys) do
  flush(key)
end
for _, key in ipairs(adding_keys) do
  local m = adding[key]
  for i = 1, #m, CHUNK do
    redis.call('ZADD', key, unpack(m, i, math.min(i + CHUNK - 1, #m)))
  end
end
for _, status in ipairs(delta_order) do
  redis.call('HINCRBY', KEYS[9], status, deltas[status])
end
if empty then
  if zbits then
    out[1], out[3] = 'empty', zone_wait()
  else
    local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    out[1], out[3] = 'empty', #nxt == 0 and -1 or tonumber(nxt[2])
  end
end
if out[1] ~= 'empty' and claimed < room then  -- call ids ran out (do-not-call contacts)
  out[1], out[3] = 'max', 0
end
-- the pacing slots advance by the grants made (kept a little longer than they matter)
if claimed > 0 and c_slot then
  redis.call('SET', KEYS[17], c_slot + claimed * c_pace, 'PX',
             math.ceil(c_catch + claimed * c_pace) + 1000)
end
if claimed > 0 and t_slot then
  redis.call('SET', KEYS[18], t_slot + claimed * t_pace, 'PX',
             math.ceil(t_catch + claimed * t_pace) + 1000)
end
if probing and claimed > 0 then  -- PROBE_GRANTED: the first call claimed is the probe
  redis.call('HSET', KEYS[20], 'state', 'half_open', 'probe', out[5],
             'probe_until_ms', now + (tonumber(br[4]) or 0), 'changed_ms', now)
end
out[4] = blocked
return out
