--[[ originated.lua -- the PBX accepted these originates: the calls leave the claimed set.

KEYS[1]     claimed zset   {ns}:c:{cid}:claimed
KEYS[2..]   call hashes    {ns}:call:{call_id}, one per call id, in the order of ARGV

ARGV[1..]   call ids (all of campaign cid)

Returns how many calls went from claimed to originated (unknown, already originated or done
ones are left alone).
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local moved = 0
for i = 1, #ARGV do
  local key = KEYS[i + 1]
  if redis.call('HGET', key, 'state') == 'claimed' then
    redis.call('HSET', key, 'state', 'originated', 'originated_ms', now)
    redis.call('ZREM', KEYS[1], ARGV[i])
    moved = moved + 1
  end
end
return moved
