--[[ renew.lua -- extend the leases of the caller's live calls (never shortens one: ZADD GT).

call state: orphaned -> claimed, orphaned -> originated (dialer/domain/callstate.py)

Fenced by the owner, as redis-py's Lock.extend is by its token: a call whose owner is another
engine now (it adopted the call after this caller's lease expired) is not touched and is
reported lost; the caller must stop acting on it (no hang-up, no result: the adopter's).
A call whose hash is gone, or done under the caller's own ownership, is skipped. A live call
of the caller whose lease had expired (its owner stalled longer than the lease) but that no
engine adopted gets its leases back -- the channel is real -- leaves the orphans set, and is
reported retaken.

KEYS[1]    campaign inflight zset   {ns}:c:{cid}:inflight
KEYS[2]    trunk inflight zset      {ns}:t:{trunk}:inflight
KEYS[3]    orphans zset             {ns}:c:{cid}:orphans
KEYS[4]    claimed zset             {ns}:c:{cid}:claimed
KEYS[5..]  call hashes, in the order of the call ids

ARGV[1]    lease_ms
ARGV[2]    owner (the caller's lease owner token)
ARGV[3..]  call ids

Returns {retaken, lost}: the call ids whose lease had expired and were taken back, and those
another owner holds now.
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[1])
local owner = ARGV[2]
local retaken, lost = {}, {}
-- the leases are extended with one ZADD GT per set for the whole batch (luacost: 4 commands
-- a call before, ~2 now; ZMSCORE would save one more but is not in the dialer's ACL,
-- ops/redis/users.acl); a call id given twice is renewed once
local seen, extend = {}, {}
for i = 3, #ARGV do
  local call_id = ARGV[i]
  local c = redis.call('HMGET', KEYS[i + 2], 'state', 'claimed_ms', 'owner')
  if c[1] and c[3] and c[3] ~= owner then
    lost[#lost + 1] = call_id
  elseif c[1] and c[1] ~= 'done' and not seen[call_id] then
    seen[call_id] = true
    local held = tonumber(redis.call('ZSCORE', KEYS[1], call_id))
    if not held or held <= now then
      retaken[#retaken + 1] = call_id
      redis.call('ZREM', KEYS[3], call_id)
      if c[1] == 'claimed' then
        redis.call('ZADD', KEYS[4], c[2], call_id)
      end
    end
    extend[#extend + 1] = expiry
    extend[#extend + 1] = call_id
  end
end
for i = 1, #extend, 1000 do
  local last = math.min(i + 999, #extend)
  redis.call('ZADD', KEYS[1], 'GT', unpack(extend, i, last))
  redis.call('ZADD', KEYS[2], 'GT', unpack(extend, i, last))
end
return {retaken, lost}
