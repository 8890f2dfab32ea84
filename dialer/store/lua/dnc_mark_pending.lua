--[[ dnc_mark_pending.lua -- queued contacts whose number is on a do-not-call list -> do_not_call.

Only contacts still in the pending queue are looked at (a claimed or finished one is left
alone), so the caller can feed candidates from a ZSCAN while engines keep dialing. One batch per
call: the caller loops.

KEYS[1]    pending zset       {ns}:c:{cid}:pending
KEYS[2]    counts hash        {ns}:c:{cid}:counts
KEYS[3]    global dnc set     {ns}:dnc
KEYS[4]    campaign dnc set   {ns}:c:{cid}:dnc
KEYS[5..]  contact hashes, in the order of the members

ARGV[1..]  contact members (zero-padded ids)

Returns how many contacts were moved to do_not_call.
]]

local moved = 0
for i = 1, #ARGV do
  local member, key = ARGV[i], KEYS[i + 4]
  if redis.call('ZSCORE', KEYS[1], member) then
    local c = redis.call('HMGET', key, 'status', 'phone')
    local old, phone = c[1], c[2]
    if old and phone and (redis.call('SISMEMBER', KEYS[3], phone) == 1
                          or redis.call('SISMEMBER', KEYS[4], phone) == 1) then
      redis.call('ZREM', KEYS[1], member)
      redis.call('HSET', key, 'status', 'do_not_call', 'next_due_ms', '')
      redis.call('HINCRBY', KEYS[2], old, -1)
      redis.call('HINCRBY', KEYS[2], 'do_not_call', 1)
      moved = moved + 1
    end
  end
end
return moved
