--[[ finish.lua -- end of an attempt, applied once (two engines may both see one Hangup).

The caller decides the statuses; the script applies them atomically: leases released, call
done (expires after ARGV[8] s), contact updated, counts moved, retry queued, record appended.
If the contact's list was stopped meanwhile, a retry becomes the list's stop status instead.
If the campaign is gone (deleted), only the leases, the call and the record are handled.

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
KEYS[11] records stream          {ns}:records:{cid}
KEYS[12] records index zset      {ns}:records:index

ARGV[1]  call id
ARGV[2]  contact id
ARGV[3]  campaign id
ARGV[4]  new contact status (CallStatus value)
ARGV[5]  attempts used by this call (added to attempts)
ARGV[6]  tech_failures: the contact's new value (absolute)
ARGV[7]  retry_at_ms, or "" for none (then the contact is not queued again)
ARGV[8]  call hash TTL in seconds
ARGV[9]  contact member (zero-padded id) for the pending zset
ARGV[10..] record fields as name, value pairs (none: no record)

Returns 1 when applied, 0 when the call was already done or is unknown.
Error when the call belongs to another contact.
]]

local call_id = ARGV[1]
local call = redis.call('HMGET', KEYS[1], 'state', 'contact')
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
redis.call('HSET', KEYS[1], 'state', 'done', 'done_ms', now)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[8]))

local c = redis.call('HMGET', KEYS[2], 'status', 'list')
if redis.call('EXISTS', KEYS[3]) == 1 and c[1] then
  local new, retry = ARGV[4], ARGV[7]
  if retry ~= '' and c[2] then
    local stop = redis.call('HGET', KEYS[10], c[2])
    if stop then
      new, retry = stop, ''
    end
  end
  redis.call('HINCRBY', KEYS[2], 'attempts', tonumber(ARGV[5]))
  redis.call('HSET', KEYS[2], 'status', new, 'tech_failures', ARGV[6],
             'last_call', call_id, 'next_due_ms', retry)
  if retry ~= '' then
    redis.call('ZADD', KEYS[8], tonumber(retry), ARGV[9])
  end
  redis.call('HINCRBY', KEYS[9], c[1], -1)
  redis.call('HINCRBY', KEYS[9], new, 1)
end

if #ARGV >= 11 then
  local fields = {}
  for i = 10, #ARGV do
    fields[#fields + 1] = ARGV[i]
  end
  redis.call('XADD', KEYS[11], '*', unpack(fields))
  redis.call('ZADD', KEYS[12], now, ARGV[3])
end
return 1
