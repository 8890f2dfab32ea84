--[[ renew.lua -- extend the leases of live calls (never shortens one: ZADD GT).

A call whose hash is gone or done is skipped. A live call whose campaign lease had already
expired (its owner stalled longer than the lease) gets its leases back -- the channel is real --
leaves the orphans set, and is reported.

KEYS[1]    campaign inflight zset   {ns}:c:{cid}:inflight
KEYS[2]    trunk inflight zset      {ns}:t:{trunk}:inflight
KEYS[3]    orphans zset             {ns}:c:{cid}:orphans
KEYS[4]    claimed zset             {ns}:c:{cid}:claimed
KEYS[5..]  call hashes, in the order of the call ids

ARGV[1]    lease_ms
ARGV[2..]  call ids

Returns the call ids whose campaign lease had expired (empty when all were still held).
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV do
  local call_id = ARGV[i]
  local c = redis.call('HMGET', KEYS[i + 3], 'state', 'claimed_ms')
  if c[1] and c[1] ~= 'done' then
    local held = tonumber(redis.call('ZSCORE', KEYS[1], call_id))
    if not held or held <= now then
      lost[#lost + 1] = call_id
      redis.call('ZREM', KEYS[3], call_id)
      if c[1] == 'claimed' then
        redis.call('ZADD', KEYS[4], c[2], call_id)
      end
    end
    redis.call('ZADD', KEYS[1], 'GT', expiry, call_id)
    redis.call('ZADD', KEYS[2], 'GT', expiry, call_id)
  end
end
return lost
