--[[ reap.lua -- expired campaign leases become orphans; list the orphans.

An orphan is a call whose lease expired before it was finished or released: its owner died
or stalled. The engine decides its fate (release if never originated, else finish).

KEYS[1] campaign inflight zset   {ns}:c:{cid}:inflight
KEYS[2] claimed zset             {ns}:c:{cid}:claimed
KEYS[3] orphans zset             {ns}:c:{cid}:orphans

Returns the orphan call ids, oldest expiry first.
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES')
for i = 1, #expired, 2 do
  redis.call('ZADD', KEYS[3], expired[i + 1], expired[i])
  redis.call('ZREM', KEYS[2], expired[i])
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
end
return redis.call('ZRANGE', KEYS[3], 0, -1)
