--[[ mark_undialed.lua -- give a batch of queued contacts a final status (stop campaign/list).

Only contacts still in the pending queue are moved (a claimed or finished one is left alone),
so the caller can feed candidates from a scan while engines keep working. One batch per call:
the caller loops, so a million contacts never block Redis for long.

KEYS[1]    pending zset   {ns}:c:{cid}:pending
KEYS[2]    counts hash    {ns}:c:{cid}:counts
KEYS[3..]  contact hashes, in the order of the members

ARGV[1]    final status (e.g. not_dialed, plan_limit_exceeded)
ARGV[2..]  contact members (zero-padded ids)

Returns how many contacts were moved.
]]

local status = ARGV[1]
local moved = 0
for i = 2, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    local key = KEYS[i + 1]
    local old = redis.call('HGET', key, 'status')
    if old then
      redis.call('HSET', key, 'status', status, 'next_due_ms', '')
      redis.call('HINCRBY', KEYS[2], old, -1)
      redis.call('HINCRBY', KEYS[2], status, 1)
      moved = moved + 1
    end
  end
end
return moved
