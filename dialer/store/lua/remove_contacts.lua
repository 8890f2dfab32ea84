--[[ remove_contacts.lua -- mark contacts of a Draft or Paused campaign Removed.

A removed contact leaves the dial queue (pending and retries) and becomes "removed": claim.lua
only takes contacts from pending, and release.lua / finish.lua only requeue a contact that was
in a call, which a removal refuses (status in_progress: reported, left as it is). Its hash and
its call records stay.

KEYS[1]   campaign hash   {ns}:c:{cid}
KEYS[2]   pending zset    {ns}:c:{cid}:pending
KEYS[3]   retries zset    {ns}:c:{cid}:retries
KEYS[4]   counts hash     {ns}:c:{cid}:counts
KEYS[5..] contact hashes, one per contact

ARGV[1..] per contact: its member (zero-padded id), in the order of KEYS[5..]

Returns {0, status} when the campaign is not Draft or Paused ("" if gone; nothing changed),
else {1, then per contact a code: 1 removed, 0 already removed, -1 no such contact, -2 in a
call (in_progress)}.
]]

local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'draft' and status ~= 'paused' then
  return {0, status or ''}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {1}
for i = 5, #KEYS do
  local member = ARGV[i - 4]
  local old = redis.call('HGET', KEYS[i], 'status')
  if not old then
    out[#out + 1] = -1
  elseif old == 'removed' then
    out[#out + 1] = 0
  elseif old == 'in_progress' then
    out[#out + 1] = -2
  else
    redis.call('ZREM', KEYS[2], member)
    redis.call('ZREM', KEYS[3], member)
    redis.call('HSET', KEYS[i], 'status', 'removed', 'next_due_ms', '', 'removed_ms', now,
               'removed_from', old)
    redis.call('HINCRBY', KEYS[4], old, -1)
    redis.call('HINCRBY', KEYS[4], 'removed', 1)
    out[#out + 1] = 1
  end
end
return out
