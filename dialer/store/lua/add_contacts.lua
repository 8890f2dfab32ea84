--[[ add_contacts.lua -- add one batch of contacts to an active list.

Each contact hash is created only if absent (a replayed batch adds nothing twice). Pending
contacts are queued due now; others (invalid_number, do_not_call) are stored, not queued.

KEYS[1]    pending zset   {ns}:c:{cid}:pending
KEYS[2]    counts hash    {ns}:c:{cid}:counts
KEYS[3]    list set       {ns}:c:{cid}:list:{lid}
KEYS[4]    lists hash     {ns}:c:{cid}:lists
KEYS[5]    zone groups hash     {ns}:c:{cid}:zones  (local hours: group key -> gid)
KEYS[6]    zone queue PREFIX    {ns}:c:{cid}:z:     (+ gid: the group's queue)
KEYS[7..]  contact hashes, one per contact

ARGV[1]    list id
ARGV[2..]  per contact, 6 values: member (zero-padded id), phone, vars JSON, status, zone
           group key (dialer.domain.zones.ZoneGroup.key; "" = no zone known, gid 0), numbers:
           "" (one number) or JSON [[number, label, zone group key], ...] of all its numbers,
           the main one (= phone) first (dialer.domain.altnumbers)

Several numbers: the contact hash gets numbers (JSON [[number, label, zone group key], ...]:
keys, not gids, so that a recycled copy stays right in its new campaign; each group is
registered here all the same) and nstate
(JSON {"i": 0, "t": [0, ...], "s": ["", ...]}: the number dialed next, calls and last result
per number), which finish.lua keeps (see its header).

Local hours: each contact gets the gid of its zone group (field zg; a new group gets the next
number: the hash's field "#" counts them), and a pending contact is queued in its group's queue too (KEYS[6] .. gid,
same member and score as in pending), from which claim.lua takes while the group is open.

Returns {1, added} or {0, list_status} when the list is not active ("" if it does not exist).
]]

local list_status = redis.call('HGET', KEYS[4], ARGV[1])
if list_status ~= 'active' then
  return {0, list_status or ''}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = 0
local gids = {}  -- group key -> gid, for this batch
local function gid_of(group)
  if group == '' then
    return '0'
  end
  local gid = gids[group]
  if not gid then
    gid = redis.call('HGET', KEYS[5], group)
    if not gid then
      gid = tostring(redis.call('HINCRBY', KEYS[5], '#', 1))
      redis.call('HSET', KEYS[5], group, gid)
    end
    gids[group] = gid
  end
  return gid
end
for i = 7, #KEYS do
  local a = 2 + (i - 7) * 6
  local member, phone, vars, status = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local gid = gid_of(ARGV[a + 4])
    local due = ''
    if status == 'pending' then
      due = now
      redis.call('ZADD', KEYS[1], now, member)
      redis.call('ZADD', KEYS[6] .. gid, now, member)
    end
    redis.call('HSET', KEYS[i], 'phone', phone, 'vars', vars, 'list', ARGV[1], 'status', status,
               'attempts', 0, 'tech_failures', 0, 'last_call', '', 'next_due_ms', due,
               'zg', gid)
    if ARGV[a + 5] ~= '' then
      local nums, tries, last = cjson.decode(ARGV[a + 5]), {}, {}
      for j = 1, #nums do
        gid_of(nums[j][3])  -- every number's group known from the start (local hours)
        tries[j], last[j] = 0, ''
      end
      redis.call('HSET', KEYS[i], 'numbers', ARGV[a + 5],
                 'nstate', cjson.encode({i = 0, t = tries, s = last}))
    end
    redis.call('SADD', KEYS[3], member)
    redis.call('HINCRBY', KEYS[2], status, 1)
    added = added + 1
  end
end
return {1, added}
