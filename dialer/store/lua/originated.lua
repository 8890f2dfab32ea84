--[[ originated.lua -- the PBX accepted these originates: the calls leave the claimed set.

call state: claimed -> originated (dialer/domain/callstate.py)

Fenced by the owner: a call another engine owns now (it adopted it) is not moved and is
reported lost.

KEYS[1]     claimed zset   {ns}:c:{cid}:claimed
KEYS[2..]   call hashes    {ns}:call:{call_id}, one per call id, in the order of ARGV

ARGV[1]     owner (the caller's lease owner token; "" = not fenced: tools and tests)
ARGV[2..]   call ids (all of campaign cid)

Returns {moved, lost call ids...}: moved = how many calls went from claimed to originated
(unknown, already originated or done ones are left alone).
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local owner = ARGV[1]
local out = {0}
local moved = {}  -- left the claimed set: one ZREM for the batch (luacost: 3 -> 2 commands a call)
for i = 2, #ARGV do
  local key = KEYS[i]
  local c = redis.call('HMGET', key, 'state', 'owner')
  if owner ~= '' and c[1] and c[2] and c[2] ~= owner then
    out[#out + 1] = ARGV[i]
  elseif c[1] == 'claimed' then
    redis.call('HSET', key, 'state', 'originated', 'originated_ms', now)
    moved[#moved + 1] = ARGV[i]
    out[1] = out[1] + 1
  end
end
for i = 1, #moved, 500 do
  redis.call('ZREM', KEYS[1], unpack(moved, i, math.min(i + 499, #moved)))
end
return out
