--[[ originated.lua -- the PBX accepted the originate: the call leaves the claimed set.

KEYS[1] call hash      {ns}:call:{call_id}
KEYS[2] claimed zset   {ns}:c:{cid}:claimed

ARGV[1] call id

Returns 1 when the call went from claimed to originated, 0 otherwise (unknown, already
originated or done).
]]

if redis.call('HGET', KEYS[1], 'state') ~= 'claimed' then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'state', 'originated', 'originated_ms', now)
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
