--[[ stats.lua -- a campaign's hash, queue sizes and contact counts, at one instant.

Read once a second by every engine for its gauges, and by queue_stats: one round trip instead
of five (the clock, the queue sizes, the existence check, the counts, the hash).

KEYS[1]   campaign hash            {ns}:c:{cid}
KEYS[2]   pending zset             {ns}:c:{cid}:pending   (score: due time, ms)
KEYS[3]   campaign inflight zset   {ns}:c:{cid}:inflight
KEYS[4]   claimed zset             {ns}:c:{cid}:claimed
KEYS[5]   counts hash              {ns}:c:{cid}:counts

No ARGV. Returns {campaign hash {field, value, ...}, due now, pending, first due ms (-1: none),
inflight, claimed, counts {status, n, ...}}; the campaign hash is empty when the campaign does
not exist. "Now" is Redis's clock (TIME), as for the due times.
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {
  redis.call('HGETALL', KEYS[1]),
  redis.call('ZCOUNT', KEYS[2], '-inf', now),
  redis.call('ZCARD', KEYS[2]),
  #first > 0 and tonumber(first[2]) or -1,
  redis.call('ZCARD', KEYS[3]),
  redis.call('ZCARD', KEYS[4]),
  redis.call('HGETALL', KEYS[5]),
}
