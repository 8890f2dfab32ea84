--[[ active.lua -- a page of the active campaigns with their hashes, in one round trip.

The supervisor of every engine reads this every 250 ms: without the script it is two round
trips (the index, then the hashes), as the hashes' keys come from the index.

KEYS[1]   active campaigns zset    {ns}:campaigns:active
KEYS[2]   campaign hash PREFIX     {ns}:c:   (+ campaign id: the campaign hashes; on Redis
          Cluster both keys are a slot group's, {ns}:{gK}:..., and the store calls this once
          per group: dialer/store/keys.py)

ARGV[1]   first rank (0-based), newest first
ARGV[2]   last rank (inclusive)

Returns {id, {field, value, ...}, id, {...}, ...} for the page, newest first; a campaign being
deleted (hash already gone) comes with an empty list.
]]

local ids = redis.call('ZREVRANGE', KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
local out = {}
for i = 1, #ids do
  out[#out + 1] = ids[i]
  out[#out + 1] = redis.call('HGETALL', KEYS[2] .. ids[i])
end
return out
