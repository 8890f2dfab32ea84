--[[ add_contacts.lua -- add one batch of contacts to an active list.

Each contact hash is created only if absent (a replayed batch adds nothing twice). Pending
contacts are queued due now; others (invalid_number, do_not_call) are stored, not queued.

KEYS[1]    pending zset   {ns}:c:{cid}:pending
KEYS[2]    counts hash    {ns}:c:{cid}:counts
KEYS[3]    list set       {ns}:c:{cid}:list:{lid}
KEYS[4]    lists hash     {ns}:c:{cid}:lists
KEYS[5..]  contact hashes, one per contact

ARGV[1]    list id
ARGV[2..]  per contact, 4 values: member (zero-padded id), phone, vars JSON, status

Returns {1, added} or {0, list_status} when the list is not active ("" if it does not exist).
]]

local list_status = redis.call('HGET', KEYS[4], ARGV[1])
if list_status ~= 'active' then
  return {0, list_status or ''}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = 0
for i = 5, #KEYS do
  local a = 2 + (i - 5) * 4
  local member, phone, vars, status = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local due = ''
    if status == 'pending' then
      due = now
      redis.call('ZADD', KEYS[1], now, member)
    end
    redis.call('HSET', KEYS[i], 'phone', phone, 'vars', vars, 'list', ARGV[1], 'status', status,
               'attempts', 0, 'tech_failures', 0, 'last_call', '', 'next_due_ms', due)
    redis.call('SADD', KEYS[3], member)
    redis.call('HINCRBY', KEYS[2], status, 1)
    added = added + 1
  end
end
return {1, added}
