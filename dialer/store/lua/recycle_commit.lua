--[[ recycle_commit.lua -- publish a recycled list, then queue its staged contacts in chunks.

The first call (the list is not yet in the lists hash) is the commit point: it checks that the
target campaign is Draft or Paused (no engine claims from it) and that none of the source
list's statuses was recycled already, then records them, makes the list active and counts its
contacts as pending. Every call moves up to ARGV[3] contacts from the staging zset to pending
(due now), so no single call is O(list size). Until the commit nothing of the new list is
visible to claims, counts or the lists; a refused commit leaves the staging for the caller to
discard.

KEYS[1]  target campaign hash       {ns}:c:{cid}
KEYS[2]  lists hash                 {ns}:c:{cid}:lists
KEYS[3]  staging zset               {ns}:c:{cid}:list:{lid}:staged
KEYS[4]  pending zset               {ns}:c:{cid}:pending
KEYS[5]  counts hash                {ns}:c:{cid}:counts
KEYS[6]  source recycled hash       {ns}:c:{src}:recycled  (field "{list}:{status}" -> the
                                    target "{cid}:{lid}")
KEYS[7]  contact key PREFIX         {ns}:c:{cid}:k:  (local hours: + id, for the contact's zg)
KEYS[8]  zone queue PREFIX          {ns}:c:{cid}:z:  (local hours: + gid, its group's queue)

ARGV[1]  new list id
ARGV[2]  the target "{cid}:{lid}"
ARGV[3]  chunk size
ARGV[4]  how many contacts were staged (counted as pending at the commit)
ARGV[5..] the "{source list}:{status}" fields recycled

Returns {1, remaining in the staging zset} or {0, reason, detail}: reason "status" (detail: the
campaign's status, "" if gone) or "recycled" (detail: the field already recycled, and where).
]]

local first = not redis.call('HGET', KEYS[2], ARGV[1])
if first then
  local status = redis.call('HGET', KEYS[1], 'status')
  if status ~= 'draft' and status ~= 'paused' then
    return {0, 'status', status or ''}
  end
  for i = 5, #ARGV do
    local into = redis.call('HGET', KEYS[6], ARGV[i])
    if into then
      return {0, 'recycled', ARGV[i] .. ' -> ' .. into}
    end
  end
  for i = 5, #ARGV do
    redis.call('HSET', KEYS[6], ARGV[i], ARGV[2])
  end
  redis.call('HSET', KEYS[2], ARGV[1], 'active')
  redis.call('HINCRBY', KEYS[5], 'pending', tonumber(ARGV[4]))
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local chunk = redis.call('ZRANGE', KEYS[3], 0, tonumber(ARGV[3]) - 1)
for i = 1, #chunk do
  redis.call('ZADD', KEYS[4], now, chunk[i])
  local zg = redis.call('HGET', KEYS[7] .. tonumber(chunk[i]), 'zg') or '0'
  redis.call('ZADD', KEYS[8] .. zg, now, chunk[i])  -- local hours: its zone group's queue
  redis.call('ZREM', KEYS[3], chunk[i])
end
return {1, redis.call('ZCARD', KEYS[3])}
