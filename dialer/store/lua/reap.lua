--[[ reap.lua -- mark the campaign's expired leases as orphans; list the orphans.

call state: claimed -> orphaned, originated -> orphaned (dialer/domain/callstate.py)

An orphan is a call whose lease expired before it was finished or released: its owner died
or stalled. Its lease stays in the inflight zsets (campaign and trunk) and keeps its slot:
only an engine that has checked the PBX's channel list settles it (adopt.lua, then follow it,
release it or finish it), or its owner takes it back by renewing (renew.lua). Called by the
engines' reconciliation (every lease renewal round, and before a campaign's first claim),
never on the claim path; its cost follows the expired leases, not the live ones.

KEYS[1] campaign inflight zset   {ns}:c:{cid}:inflight
KEYS[2] claimed zset             {ns}:c:{cid}:claimed
KEYS[3] orphans zset             {ns}:c:{cid}:orphans

Returns the orphan call ids, oldest expiry first.
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES')
for i = 1, #expired, 2 do
  redis.call('ZADD', KEYS[3], 'NX', expired[i + 1], expired[i])
  redis.call('ZREM', KEYS[2], expired[i])
end
return redis.call('ZRANGE', KEYS[3], 0, -1)
