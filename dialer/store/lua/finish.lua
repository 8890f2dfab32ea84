--[[ finish.lua -- the end of one or more attempts, each applied once (two engines may both see
one Hangup). One round trip writes a whole batch of results.

call state: originated -> done, claimed -> done, orphaned -> done (dialer/domain/callstate.py)

The caller decides the statuses; the script applies them atomically per call: leases released,
call done (expires after ARGV[1] s), contact updated, counts moved, retry queued, record
appended, the campaign's usage counted. If the contact's list was stopped meanwhile, a retry
becomes the list's stop status instead. If the campaign is gone (deleted), only the leases,
the call and the record are handled.

KEYS[1]  records index zset      {ns}:records:index
then 17 keys per call, in the order of the calls in ARGV:
  +1  call hash               {ns}:call:{call_id}
  +2  contact hash            {ns}:c:{cid}:k:{contact_id}
  +3  campaign hash           {ns}:c:{cid}
  +4  campaign inflight zset  {ns}:c:{cid}:inflight
  +5  trunk inflight zset     {ns}:t:{trunk}:inflight
  +6  claimed zset            {ns}:c:{cid}:claimed
  +7  orphans zset            {ns}:c:{cid}:orphans
  +8  pending zset            {ns}:c:{cid}:pending
  +9  counts hash             {ns}:c:{cid}:counts
  +10 liststop hash           {ns}:c:{cid}:liststop
  +11 records stream          {ns}:records:{cid}
  +12 usage hash              {ns}:c:{cid}:usage
  +13 retries zset            {ns}:c:{cid}:retries  (a retry is queued in pending and here)
  +14 zone queue PREFIX       {ns}:c:{cid}:z:  (local hours: a retry is queued in its zone
                              group's queue z:{gid} and its retries z:{gid}:r too; gid = the
                              contact's zg, 0 when it has none)
  +15 global do-not-call set  {ns}:dnc (its slot group's copy on Cluster)
  +16 campaign do-not-call set {ns}:c:{cid}:dnc  (+15/+16: a listed number is skipped when the
                              contact moves on to its next number)
  +17 zone groups hash        {ns}:c:{cid}:zones  (group key -> gid: the next number's group)

then, after every call's keys, the node leases' keys (claim.lua's node block: a call with a
node in its hash gives back its node, trunk group and global leases):
  #KEYS-2  node key prefix       {ns}:n:   (+ node + ":inflight")
  #KEYS-1  group key prefix      {ns}:g:   (+ group + ":inflight")
  #KEYS    global inflight zset  {ns}:all:inflight

ARGV[1]  call hash TTL in seconds
then per call, 15 values:
  +1  call id
  +2  contact id
  +3  campaign id
  +4  new contact status (CallStatus value)
  +5  attempts used by this call (added to the contact's attempts)
  +6  tech_failures: the contact's new value (absolute)
  +7  retry_at_ms, or "" for none (then the contact is not queued again)
  +8  contact member (zero-padded id) for the pending zset
  +9  attempts to add to the campaign's usage (0 or 1)
  +10 talk seconds to add to the campaign's usage
  +11 the record: a JSON array of names and values, [name1, value1, name2, ...] (one argument
      instead of dozens: the client packs it once; [] writes no record)
  +12 owner: the caller's lease owner token ("" = not fenced: tools and tests)
  +13 next_at_ms: "" (the contact stays on its number), or when its next number is due after
      this no-contact outcome (dialer.domain.altnumbers.next_number)
  +14 wrap_at_ms: when the first usable number is due again once the list is done ("" none)
  +15 this attempt's outcome status: the dialed number's last result

Several numbers (dialer.domain.altnumbers; only a contact whose hash has the field numbers:
JSON [[number, label, zone group key], ...], the main number first, and nstate: JSON
{"i": index of the number dialed next (0-based), "t": [calls per number], "s": [last result
per number], "w": wrap_at_ms of the call that moved on to a later number, absent otherwise:
claim.lua waits for it should it have to go back to an earlier one}; add_contacts.lua writes
both): the
call counts against the number at i, which gets the outcome as its last result, and the record
gets that number's label (phone_label). With next_at_ms the next attempt moves on: to the first
usable number after i, due next_at_ms, else back to the first usable one, due wrap_at_ms
(none: the contact stays as decided). Usable: not known invalid (last result invalid_number)
and on no do-not-call list (a listed one gets last result do_not_call and is skipped). No usable
number left: the contact ends do_not_call if one was listed, else invalid_number. Moving on sets
the contact's phone and zone group (zg) to the new number's, and the record's next_phone,
contact_status and retry_at_ms to what was applied.

Returns, per call, three values: applied (1; 0 when the call was already done or is unknown;
-1 when it belongs to another contact; -2 when another owner holds it, having adopted it: its
result is the adopter's to write; nothing is changed for it with -1 or -2), then the campaign's usage
totals after it (attempts, talk seconds as a string), or 0, "0" when not applied.
]]

local ttl = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local NODE, GROUP, ALL = KEYS[#KEYS - 2], KEYS[#KEYS - 1], KEYS[#KEYS]
-- Writes that many calls of a batch repeat on the same keys are gathered and made once at the
-- end (loadtest/bench/luacost.py: 20 commands per call before, the batch's lanes share most):
-- the sets a call leaves (one ZREM per key), the campaign counts (one HINCRBY per key and
-- status, net), the records index (one ZADD per campaign). Nothing in the loop reads them, so
-- the outcome is the same as one write per call.
local leaving, leaving_keys = {}, {}  -- key -> call ids to ZREM
local function leave(key, member)
  local m = leaving[key]
  if not m then
    m = {}
    leaving[key] = m
    leaving_keys[#leaving_keys + 1] = key
  end
  m[#m + 1] = member
end
local counts, count_keys = {}, {}  -- counts key -> {status -> delta, order = {statuses}}
local function count(key, status, delta)
  local c = counts[key]
  if not c then
    c = {order = {}, delta = {}}
    counts[key] = c
    count_keys[#count_keys + 1] = key
  end
  if c.delta[status] == nil then
    c.delta[status] = 0
    c.order[#c.order + 1] = status
  end
  c.delta[status] = c.delta[status] + delta
end
local campaign_exists, indexed = {}, {}  -- campaign key -> 0/1; cid -> records index written

-- several numbers (see the header): the number at i is usable
local function usable(K, nums, st, j)
  if st.s[j] == 'invalid_number' then
    return false
  end
  local number = nums[j][1]
  if redis.call('SISMEMBER', K(15), number) == 1 or redis.call('SISMEMBER', K(16), number) == 1 then
    st.s[j] = 'do_not_call'
    return false
  end
  return true
end
local function first_usable(K, nums, st, from)
  for j = from, #nums do
    if usable(K, nums, st, j) then
      return j
    end
  end
  return nil
end
local function gid_of(zones, group)  -- as add_contacts.lua's (recycled contacts' groups)
  if group == '' then
    return '0'
  end
  local gid = redis.call('HGET', zones, group)
  if not gid then
    gid = tostring(redis.call('HINCRBY', zones, '#', 1))
    redis.call('HSET', zones, group, gid)
  end
  return gid
end
-- the contact's status, retry time and zone group after this call, and the record's notes
local function move_on(K, a, c, new, retry)
  local nums, st = cjson.decode(c[4]), cjson.decode(c[5] or '{}')
  local i = (tonumber(st.i) or 0) + 1
  st.t[i] = (tonumber(st.t[i]) or 0) + 1
  st.s[i] = ARGV[a + 14]
  local notes = {phone_label = nums[i][2]}
  local zg = c[3]
  st.w = nil
  if ARGV[a + 12] ~= '' then
    local j = first_usable(K, nums, st, i + 1)
    if j then
      new, retry = 'retry_scheduled', ARGV[a + 12]
      if ARGV[a + 13] ~= '' then  -- claim.lua: not back to an earlier number before this
        st.w = ARGV[a + 13]
      end
    elseif ARGV[a + 13] ~= '' then
      j = first_usable(K, nums, st, 1)
      if j then
        new, retry = 'retry_scheduled', ARGV[a + 13]
      end
    end
    if not j then  -- no number left to call
      new, retry = 'invalid_number', ''
      for x = 1, #nums do
        if st.s[x] == 'do_not_call' then
          new = 'do_not_call'
        end
      end
    elseif j ~= i then
      st.i = j - 1
      zg = gid_of(K(17), nums[j][3])
      redis.call('HSET', K(2), 'phone', nums[j][1], 'zg', zg)
      notes.next_phone = nums[j][1]
    end
    notes.contact_status = new  -- both set again after the list's stop status (below)
  end
  redis.call('HSET', K(2), 'nstate', cjson.encode(st))
  return new, retry, zg, notes
end
-- a record's fields (a flat array of names and values) set or added
local function note(record, notes)
  for x = 1, #record - 1, 2 do
    local v = notes[record[x]]
    if v then
      record[x + 1] = v
      notes[record[x]] = nil
    end
  end
  for _, name in ipairs({'phone_label', 'next_phone', 'contact_status', 'retry_at_ms'}) do
    if notes[name] then
      record[#record + 1] = name
      record[#record + 1] = notes[name]
    end
  end
end
local k, a = 2, 2
while a <= #ARGV do
  local call_id, contact, cid = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local K = function(i) return KEYS[k + i - 1] end
  local call = redis.call('HMGET', K(1), 'state', 'contact', 'owner')
  local owner = ARGV[a + 11]
  local n = #out
  if owner ~= '' and call[1] and call[3] and call[3] ~= owner then
    out[n + 1], out[n + 2], out[n + 3] = -2, 0, '0'
  elseif not call[1] or call[1] == 'done' then
    out[n + 1], out[n + 2], out[n + 3] = 0, 0, '0'
  elseif call[2] ~= contact then
    out[n + 1], out[n + 2], out[n + 3] = -1, 0, '0'
  else
    leave(K(4), call_id)
    leave(K(5), call_id)
    leave(K(6), call_id)
    leave(K(7), call_id)
    -- the node block's leases: a call with a group has them (every call has a node: the
    -- claiming engine's, dialer/domain/callstate.py; only a node claim gives it a group)
    local lease = redis.call('HMGET', K(1), 'node', 'group')
    if lease[1] and lease[2] then
      leave(NODE .. lease[1] .. ':inflight', call_id)
      leave(GROUP .. lease[2] .. ':inflight', call_id)
      leave(ALL, call_id)
    end
    redis.call('HSET', K(1), 'state', 'done', 'done_ms', now)
    redis.call('EXPIRE', K(1), ttl)

    local c = redis.call('HMGET', K(2), 'status', 'list', 'zg', 'numbers', 'nstate')
    local used, talk = 0, '0'
    local exists = campaign_exists[K(3)]
    if exists == nil then
      exists = redis.call('EXISTS', K(3))
      campaign_exists[K(3)] = exists
    end
    local notes  -- several numbers: the record's fields to add or set
    if exists == 1 and c[1] then
      local new, retry = ARGV[a + 3], ARGV[a + 6]
      if c[4] then
        new, retry, c[3], notes = move_on(K, a, c, new, retry)
      end
      if retry ~= '' and c[2] then
        local stop = redis.call('HGET', K(10), c[2])
        if stop then
          new, retry = stop, ''
        end
      end
      if notes and notes.contact_status then
        notes.contact_status, notes.retry_at_ms = new, retry
      end
      redis.call('HINCRBY', K(2), 'attempts', tonumber(ARGV[a + 4]))
      redis.call('HSET', K(2), 'status', new, 'tech_failures', ARGV[a + 5],
                 'last_call', call_id, 'next_due_ms', retry)
      if retry ~= '' then
        redis.call('ZADD', K(8), tonumber(retry), ARGV[a + 7])
        redis.call('ZADD', K(13), tonumber(retry), ARGV[a + 7])
        -- local hours: the zone group's queues too (claim.lua takes from open groups only)
        local zq = K(14) .. (c[3] or '0')
        redis.call('ZADD', zq, tonumber(retry), ARGV[a + 7])
        redis.call('ZADD', zq .. ':r', tonumber(retry), ARGV[a + 7])
      end
      count(K(9), c[1], -1)
      count(K(9), new, 1)
      used = redis.call('HINCRBY', K(12), 'attempts', tonumber(ARGV[a + 8]))
      talk = redis.call('HINCRBYFLOAT', K(12), 'talk_seconds', ARGV[a + 9])
    end

    local record = cjson.decode(ARGV[a + 10])
    if notes and #record > 0 then
      note(record, notes)
    end
    if #record > 0 then
      redis.call('XADD', K(11), '*', unpack(record))
      indexed[cid] = true
    end
    out[n + 1], out[n + 2], out[n + 3] = 1, used, talk
  end
  k = k + 17
  a = a + 15
end

local CHUNK = 500  -- members per command (unpack's stack)
for _, key in ipairs(leaving_keys) do
  local m = leaving[key]
  for i = 1, #m, CHUNK do
    redis.call('ZREM', key, unpack(m, i, math.min(i + CHUNK - 1, #m)))
  end
end
for _, key in ipairs(count_keys) do
  local c = counts[key]
  for _, status in ipairs(c.order) do
    redis.call('HINCRBY', key, status, c.delta[status])
  end
end
local index = {}
for cid in pairs(indexed) do
  index[#index + 1] = cid
end
table.sort(index)
for _, cid in ipairs(index) do
  redis.call('ZADD', KEYS[1], now, cid)
end
return out
