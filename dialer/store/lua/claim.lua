--[[ claim.lua -- take one due contact for a new call, within the channel and rate limits.

Atomic: campaign status check, lease purge, channel limits, sliding-window rate, then the
first due contact of the pending queue becomes in_progress under a lease held by call id.

KEYS[1]  campaign hash            {ns}:c:{cid}
KEYS[2]  pending zset             {ns}:c:{cid}:pending
KEYS[3]  campaign inflight zset   {ns}:c:{cid}:inflight
KEYS[4]  trunk inflight zset      {ns}:t:{trunk}:inflight
KEYS[5]  campaign rate zset       {ns}:c:{cid}:rate
KEYS[6]  trunk rate zset          {ns}:t:{trunk}:rate
KEYS[7]  claimed zset             {ns}:c:{cid}:claimed
KEYS[8]  orphans zset             {ns}:c:{cid}:orphans
KEYS[9]  counts hash              {ns}:c:{cid}:counts
KEYS[10] liststop hash            {ns}:c:{cid}:liststop
KEYS[11] call hash                {ns}:call:{call_id}
KEYS[12] contact key PREFIX       {ns}:c:{cid}:k:   (the script appends the chosen contact id:
                                  the one key derived inside Lua, as the contact is chosen here)

ARGV[1]  call id (unique; a replay with the same id returns the same claim)
ARGV[2]  owner (engine id)
ARGV[3]  campaign id
ARGV[4]  trunk name
ARGV[5]  lease_ms
ARGV[6]  campaign max channels        (<= 0: no limit)
ARGV[7]  trunk max channels           (<= 0: no limit)
ARGV[8]  campaign rate limit L        (<= 0: no limit)
ARGV[9]  campaign rate window W ms
ARGV[10] trunk rate limit L           (<= 0: no limit)
ARGV[11] trunk rate window W ms
ARGV[12] how many contacts of stopped lists may be settled in this call before giving up

Rate: at most L grants in any W ms (sliding log, one member per grant). The caller derives
L = ceil(cps) and W = ceil(L * 1000 / cps) >= 1000: no 1-second window holds more than
ceil(cps) originates and the long-run rate is at most cps (0.5 cps -> 1 per 2000 ms,
2.5 cps -> 3 per 1200 ms, 5 cps -> 5 per 1000 ms).

Returns (now = server ms from TIME):
  {"status", now, status}    campaign not running (status "" if the campaign does not exist)
  {"full", now, wait_ms}     a channel limit is reached; wait_ms until the first lease expires
  {"rate", now, wait_ms}     a rate window is full; wait_ms until a grant leaves it
  {"empty", now, next_due}   nothing due; next_due = -1 when pending is empty, = now when
                             only stopped-list contacts were settled (call again at once)
  {"ok", now, contact_id, phone, vars_json, attempts, tech_failures}
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local call_id = ARGV[1]

-- replay of a claim whose reply was lost: answer it again, take nothing more
local prior = redis.call('HMGET', KEYS[11], 'state', 'contact')
if prior[1] then
  if prior[1] ~= 'claimed' then
    return redis.error_reply('call id already used: ' .. call_id)
  end
  local c = redis.call('HMGET', KEYS[12] .. prior[2], 'phone', 'vars', 'attempts', 'tech_failures')
  return {'ok', now, tonumber(prior[2]), c[1] or '', c[2] or '{}',
          tonumber(c[3]) or 0, tonumber(c[4]) or 0}
end

-- (a) campaign status
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then
  return {'status', now, status or ''}
end

-- (b) expired leases: campaign ones become orphans (their calls were never finished)
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'WITHSCORES')
for i = 1, #expired, 2 do
  redis.call('ZADD', KEYS[8], expired[i + 1], expired[i])
  redis.call('ZREM', KEYS[7], expired[i])
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)

-- (c) channel limits
local function full_wait(key, limit)
  if limit <= 0 or redis.call('ZCARD', key) < limit then
    return nil
  end
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(first[2]) - now)
end
local fw = full_wait(KEYS[3], tonumber(ARGV[6])) or full_wait(KEYS[4], tonumber(ARGV[7]))
if fw then
  return {'full', now, fw}
end

-- (d) sliding-window rate
local function rate_wait(key, limit, window)
  if limit <= 0 then
    return 0
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  if n < limit then
    return 0
  end
  -- a place frees when the (n - limit + 1)-th oldest grant leaves the window
  local g = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
  return math.max(1, tonumber(g[2]) + window - now)
end
local c_limit, t_limit = tonumber(ARGV[8]), tonumber(ARGV[10])
local rw = math.max(rate_wait(KEYS[5], c_limit, tonumber(ARGV[9])),
                    rate_wait(KEYS[6], t_limit, tonumber(ARGV[11])))
if rw > 0 then
  return {'rate', now, rw}
end

-- (e) first due contact; (f) claim it
for _ = 1, tonumber(ARGV[12]) do
  local first = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1)
  if #first == 0 then
    local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    if #nxt == 0 then
      return {'empty', now, -1}
    end
    return {'empty', now, tonumber(nxt[2])}
  end
  local member, due = first[1], first[2]
  local kid = tonumber(member)
  local ckey = KEYS[12] .. kid
  redis.call('ZREM', KEYS[2], member)
  local c = redis.call('HMGET', ckey, 'status', 'list', 'phone', 'vars', 'attempts', 'tech_failures')
  local old = c[1]
  if old then  -- (a queue entry without its contact hash is dropped: campaign being deleted)
    local stop = c[2] and redis.call('HGET', KEYS[10], c[2])
    if stop then
      redis.call('HSET', ckey, 'status', stop, 'next_due_ms', '')
      redis.call('HINCRBY', KEYS[9], old, -1)
      redis.call('HINCRBY', KEYS[9], stop, 1)
    else
      redis.call('HSET', ckey, 'status', 'in_progress', 'last_call', call_id)
      redis.call('HINCRBY', KEYS[9], old, -1)
      redis.call('HINCRBY', KEYS[9], 'in_progress', 1)
      redis.call('HSET', KEYS[11], 'cid', ARGV[3], 'contact', kid, 'trunk', ARGV[4],
                 'phone', c[3] or '', 'state', 'claimed', 'owner', ARGV[2],
                 'claimed_ms', now, 'prev_status', old, 'prev_due', due)
      local expiry = now + tonumber(ARGV[5])
      redis.call('ZADD', KEYS[3], expiry, call_id)
      redis.call('ZADD', KEYS[4], expiry, call_id)
      redis.call('ZADD', KEYS[7], now, call_id)
      if c_limit > 0 then
        redis.call('ZADD', KEYS[5], now, call_id)
      end
      if t_limit > 0 then
        redis.call('ZADD', KEYS[6], now, call_id)
      end
      return {'ok', now, kid, c[3] or '', c[4] or '{}', tonumber(c[5]) or 0, tonumber(c[6]) or 0}
    end
  end
end
return {'empty', now, now}
