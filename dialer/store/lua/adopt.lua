--[[ adopt.lua -- take over a call whose lease expired: the caller becomes its owner.

call state: orphaned -> claimed, orphaned -> originated (dialer/domain/callstate.py)

Only an engine that has just seen the PBX's channel list calls this, for an orphan (reap.lua):
with the call's lease under its own owner it then follows the call (still on the PBX), or
releases or finishes it (gone). A lease still held by another owner is not taken (two engines
reconciling at once: the first adopts, the second is told "held"); the former owner's renew,
originated, release and finish are refused from now on (it learns that it lost the lease).

KEYS[1]  campaign inflight zset  {ns}:c:{cid}:inflight
KEYS[2]  trunk inflight zset     {ns}:t:{trunk}:inflight
KEYS[3]  orphans zset            {ns}:c:{cid}:orphans
KEYS[4]  call hash               {ns}:call:{call_id}

ARGV[1]  owner (the adopting engine's lease owner token)
ARGV[2]  lease_ms
ARGV[3]  call id
ARGV[4]  node the call is live on, as the caller's channel list showed ("" or absent: not
         said); written only into a call hash that has no node yet (claimed before nodes
         were kept), never over another

Returns {verdict, state, previous owner}: verdict "adopted" (the caller owns it now), "mine"
(it already did; the lease is extended), "held" (another owner's lease has not expired: left
alone) or "gone" (unknown or done: nothing to do); state is the call's (claimed | originated |
done | "").
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local call_id, owner = ARGV[3], ARGV[1]
local call = redis.call('HMGET', KEYS[4], 'state', 'owner')
local state, previous = call[1], call[2] or ''
if not state or state == 'done' then
  return {'gone', state or '', previous}
end
local expiry = now + tonumber(ARGV[2])
local verdict = 'mine'
if previous ~= owner then
  local held = tonumber(redis.call('ZSCORE', KEYS[1], call_id))
  if held and held > now then
    return {'held', state, previous}
  end
  verdict = 'adopted'
  redis.call('HSET', KEYS[4], 'owner', owner, 'adopted_ms', now)
end
redis.call('ZADD', KEYS[1], expiry, call_id)
redis.call('ZADD', KEYS[2], expiry, call_id)
redis.call('ZREM', KEYS[3], call_id)
local node = ARGV[4] or ''
if node ~= '' and (redis.call('HGET', KEYS[4], 'node') or '') == '' then
  redis.call('HSET', KEYS[4], 'node', node)
end
return {verdict, state, previous}
