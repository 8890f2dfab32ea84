--[[ transition.lua -- compare-and-set of a campaign's status, announced on the control channel.

KEYS[1]   campaign hash            {ns}:c:{cid}
KEYS[2]   active campaigns zset    {ns}:campaigns:active  (what engines supervise)

ARGV[1]   new status
ARGV[2]   reason (status_reason)
ARGV[3]   control channel name (a pub/sub channel, not a key)
ARGV[4]   message to publish ("{cid}:{new status}")
ARGV[5]   campaign id
ARGV[6]   "1" when the new status is one engines act on (Running, Pausing, Cancelling,
          Scheduled): the campaign joins the active index; "0": it leaves it
ARGV[7]   claim deadline (server ms) written as field open_until_ms: claim.lua refuses every
          claim from then on (the calling hours close, less a guard); "" for none
ARGV[8]   next opening (ms) written as field opens_at_ms: when a Scheduled campaign may dial
          again (shown to people); "" for none
ARGV[9..] expected statuses (at least one)

Both fields are written on every transition: a deadline belongs to the Running period that
the transition opens, and is never left over from an earlier one.

Returns {1, new} when set; {0, current} when the current status is not expected
({0, ""} when the campaign does not exist).
]]

local current = redis.call('HGET', KEYS[1], 'status')
if not current then
  return {0, ''}
end
for i = 9, #ARGV do
  if current == ARGV[i] then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('HSET', KEYS[1], 'status', ARGV[1], 'status_reason', ARGV[2], 'updated_ms', now,
               'open_until_ms', ARGV[7], 'opens_at_ms', ARGV[8])
    if ARGV[6] == '1' then
      redis.call('ZADD', KEYS[2], tonumber(ARGV[5]), ARGV[5])
    else
      redis.call('ZREM', KEYS[2], ARGV[5])
    end
    redis.call('PUBLISH', ARGV[3], ARGV[4])
    return {1, ARGV[1]}
  end
end
return {0, current}
