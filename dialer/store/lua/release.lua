--[[ release.lua -- a claim that was never dialed goes back: no attempt consumed.

call state: claimed -> released, orphaned -> released (dialer/domain/callstate.py)

Leases released, call done (expires after ARGV[3] s), contact back to the status and due time
it had before the claim (or the stop status of its list, if the list was stopped meanwhile),
and the claim's dial number given back (the contact's `dials` counts calls that were made).
Idempotent. If the campaign is gone (deleted), only the leases and the call are handled.

KEYS[1]  call hash               {ns}:call:{call_id}
KEYS[2]  contact hash            {ns}:c:{cid}:k:{contact_id}
KEYS[3]  campaign hash           {ns}:c:{cid}
KEYS[4]  campaign inflight zset  {ns}:c:{cid}:inflight
KEYS[5]  trunk inflight zset     {ns}:t:{trunk}:inflight
KEYS[6]  claimed zset            {ns}:c:{cid}:claimed
KEYS[7]  orphans zset            {ns}:c:{cid}:orphans
KEYS[8]  pending zset            {ns}:c:{cid}:pending
KEYS[9]  counts hash             {ns}:c:{cid}:counts
KEYS[10] liststop hash           {ns}:c:{cid}:liststop
KEYS[11] retries zset            {ns}:c:{cid}:retries  (a retry goes back there too)
KEYS[12] zone queue PREFIX       {ns}:c:{cid}:z:  (local hours: back in the contact's zone
                                 group queue z:{gid}, a retry in z:{gid}:r too; gid = zg or 0)
KEYS[13] node key prefix         {ns}:n:   (+ node + ":inflight": claim.lua's node block)
KEYS[14] group key prefix        {ns}:g:   (+ group + ":inflight")
KEYS[15] global inflight zset    {ns}:all:inflight

ARGV[1]  call id
ARGV[2]  contact id
ARGV[3]  call hash TTL in seconds
ARGV[4]  contact member (zero-padded id) for the pending zset
ARGV[5]  owner (the caller's lease owner token; "" = not fenced: tools and tests)

Returns 1 when released, 0 when the call was already done or is unknown, -1 when another
owner holds the call (it adopted it: nothing is changed; fenced like redis-py's
Lock.release). Error when the call belongs to another contact.
]]

local call_id = ARGV[1]
local call = redis.call('HMGET', KEYS[1], 'state', 'contact', 'prev_status', 'prev_due', 'dial',
                       'owner')
local owner = ARGV[5] or ''
if owner ~= '' and call[1] and call[6] and call[6] ~= owner then
  return -1
end
if not call[1] or call[1] == 'done' then
  return 0
end
if call[2] ~= ARGV[2] then
  return redis.error_reply('call ' .. call_id .. ' belongs to contact ' .. tostring(call[2]))
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

redis.call('ZREM', KEYS[4], call_id)
redis.call('ZREM', KEYS[5], call_id)
redis.call('ZREM', KEYS[6], call_id)
redis.call('ZREM', KEYS[7], call_id)
-- the node block's leases: only a node claim gives a call a group (finish.lua)
local lease = redis.call('HMGET', KEYS[1], 'node', 'group')
if lease[1] and lease[2] then
  redis.call('ZREM', KEYS[13] .. lease[1] .. ':inflight', call_id)
  redis.call('ZREM', KEYS[14] .. (lease[2] or '') .. ':inflight', call_id)
  redis.call('ZREM', KEYS[15], call_id)
end
redis.call('HSET', KEYS[1], 'state', 'done', 'done_ms', now, 'released', '1')
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))

local c = redis.call('HMGET', KEYS[2], 'status', 'list', 'dials', 'zg')
if redis.call('EXISTS', KEYS[3]) == 1 and c[1] == 'in_progress' then
  if call[5] and c[3] == call[5] then  -- still the contact's last dial: not made after all
    redis.call('HINCRBY', KEYS[2], 'dials', -1)
  end
  local stop = c[2] and redis.call('HGET', KEYS[10], c[2])
  local new
  if stop then
    new = stop
    redis.call('HSET', KEYS[2], 'status', new, 'next_due_ms', '')
  else
    new = call[3] or 'pending'
    local due = call[4] or now
    redis.call('HSET', KEYS[2], 'status', new, 'next_due_ms', due)
    redis.call('ZADD', KEYS[8], tonumber(due), ARGV[4])
    local zq = KEYS[12] .. (c[4] or '0')  -- local hours: the zone group's queue
    redis.call('ZADD', zq, tonumber(due), ARGV[4])
    if new ~= 'pending' then  -- a retry or a callback, not a fresh contact
      redis.call('ZADD', KEYS[11], tonumber(due), ARGV[4])
      redis.call('ZADD', zq .. ':r', tonumber(due), ARGV[4])
    end
  end
  redis.call('HINCRBY', KEYS[9], 'in_progress', -1)
  redis.call('HINCRBY', KEYS[9], new, 1)
end
return 1
