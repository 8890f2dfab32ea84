--[[ breaker_report.lua -- feed finished calls' signals to their trunk's circuit breaker.

The breaker of one trunk is one hash, shared by every engine; its states and moves are the
table of dialer/domain/breaker.py (BREAKER_TRANSITIONS; a unit test pins this script to it).
Signals are applied in order:

  state      signal                        move (event)
  closed     ok                            runs reset (OK)
  closed     failure / silent              runs count (FAILURE / SILENT); a run at its limit
                                           opens the breaker (TRIP): retry_ms = now + cool-down
  open       ok                            closed (OK: a call in flight reached a callee)
  open       failure / silent              nothing (FAILURE / SILENT)
  half_open  ok / failure / silent of the  closed (PROBE_OK) / open again with a new cool-down
             probe call                    (PROBE_FAILED)
  half_open  ok of another call            closed (OK)
  half_open  failure / silent of another   nothing (FAILURE / SILENT)
  any        neutral                       nothing (the call says nothing about the trunk)

"failure" counts in both runs (a trunk failure is also a call that reached nobody). The caller
reports each call once (the engine whose result was written; an answered probe also at its
answer: a second ok changes nothing).

The run's charged calls are kept (field run: the last ARGV[2] call ids, comma-separated); a
trip gives their contacts the attempt back: the dead trunk, not the callee, made them fail, as
the calls in flight at the trip (which the engine classifies as technical errors, using no
attempt). For each call of the run, once (the call hash gets refunded = 1), when its campaign
is not final: the contact's attempts -1; if that call was its last and left it
completed_no_answer, it goes back to retry_scheduled, due at now + cool-down (not when its list
was stopped); if it left it retry_scheduled, its due time moves to now + cool-down when that is
sooner. The call records keep what was seen then. (Contact and campaign keys are derived from
the call hash here, as claim.lua derives them: KEYS[2] and KEYS[3] are prefixes. On Redis
Cluster all three are the trunk's slot group's, {ns}:{gK}:..., the group of every campaign that
dials on the trunk, its backup trunk included: dialer/store/keys.py.)

Cost: one HMGET and one HSET per call of this script; per signal only Lua (a trip adds a few
commands per call of its run).

KEYS[1]  breaker hash   {ns}:t:{trunk}:breaker
         fields: state (closed | open | half_open; absent: closed), fail_run, silent_run, run,
         opened_ms, retry_ms (end of the cool-down), probe (call id), probe_until_ms,
         probe_ms (how long a probe is waited for), reason, trips, changed_ms
KEYS[2]  call key PREFIX        {ns}:call:        (+ call id)
KEYS[3]  campaign key PREFIX    {ns}:c:           (+ cid, + cid:k:kid, cid:counts, ...)

ARGV[1]  failure run limit
ARGV[2]  silent run limit
ARGV[3]  cool-down ms
ARGV[4]  probe timeout ms
ARGV[5]  digits of a contact member (zero-padded contact id in the pending zset)
ARGV[6..] triples: call id, signal (ok | failure | silent | neutral), charged (1: the call used
         one of its contact's attempts; only such calls are given their attempt back)

Returns {state, trips, closes, retry_ms, refunded}: the state after the last signal, how many
times this call opened the breaker from closed (a trip) and closed it, the end of the
cool-down (0 unless open), and how many attempts the trips gave back.
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
local fail_limit, silent_limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local cooldown, probe_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local h = redis.call('HMGET', key, 'state', 'fail_run', 'silent_run', 'probe', 'run')
local state = h[1] or 'closed'
local fail_run, silent_run = tonumber(h[2]) or 0, tonumber(h[3]) or 0
local probe = h[4] or ''
local trips, closes, refunded = 0, 0, 0
local CALL, CAMPAIGN = KEYS[2], KEYS[3]
-- the run: run[first..last] (a window that slides without moving the table)
local run, first, last = {}, 1, 0
for id in string.gmatch(h[5] or '', '[^,]+') do
  last = last + 1
  run[last] = id
end
local member_format = '%0' .. tonumber(ARGV[5]) .. 'd'
local LIVE = {running = true, scheduled = true, pausing = true, paused = true}

local function refund(call_id, due)
  local call = CALL .. call_id
  local c = redis.call('HMGET', call, 'cid', 'contact', 'refunded', 'state')
  if not c[1] or c[3] or c[4] ~= 'done' then
    return
  end
  redis.call('HSET', call, 'refunded', 1)
  local camp = CAMPAIGN .. c[1]
  if not LIVE[redis.call('HGET', camp, 'status') or ''] then
    return
  end
  local ckey = camp .. ':k:' .. c[2]
  local k = redis.call('HMGET', ckey, 'status', 'attempts', 'last_call', 'list', 'next_due_ms')
  if (tonumber(k[2]) or 0) <= 0 then
    return
  end
  redis.call('HINCRBY', ckey, 'attempts', -1)
  refunded = refunded + 1
  if k[3] ~= call_id then
    return  -- dialed again since: only the attempt comes back
  end
  local member = string.format(member_format, tonumber(c[2]))
  if k[1] == 'completed_no_answer' then
    if k[4] and redis.call('HGET', camp .. ':liststop', k[4]) then
      return
    end
    redis.call('HSET', ckey, 'status', 'retry_scheduled', 'next_due_ms', due)
    redis.call('ZADD', camp .. ':pending', due, member)
    redis.call('HINCRBY', camp .. ':counts', 'completed_no_answer', -1)
    redis.call('HINCRBY', camp .. ':counts', 'retry_scheduled', 1)
  elseif k[1] == 'retry_scheduled' and (tonumber(k[5]) or 0) > due then
    redis.call('HSET', ckey, 'next_due_ms', due)
    redis.call('ZADD', camp .. ':pending', 'XX', 'LT', due, member)
  end
end

local function open(reason)
  state = 'open'
  redis.call('HSET', key, 'state', 'open', 'opened_ms', now, 'retry_ms', now + cooldown,
             'reason', reason, 'probe', '', 'probe_until_ms', 0, 'probe_ms', probe_ms,
             'changed_ms', now)
  probe = ''
end

local function close()
  state = 'closed'
  fail_run, silent_run = 0, 0
  closes = closes + 1
  redis.call('HSET', key, 'state', 'closed', 'reason', '', 'probe', '', 'probe_until_ms', 0,
             'retry_ms', 0, 'changed_ms', now)
  probe = ''
end

for i = 6, #ARGV - 2, 3 do
  local call, signal, charged = ARGV[i], ARGV[i + 1], ARGV[i + 2] == '1'
  if signal ~= 'neutral' then
    if state == 'half_open' and call == probe then
      if signal == 'ok' then
        close()
      else
        open('probe call ' .. signal .. ' (' .. call .. ')')
      end
    elseif signal == 'ok' then
      if state ~= 'closed' then
        close()
      else
        fail_run, silent_run = 0, 0
      end
      run, first, last = {}, 1, 0
    elseif state == 'closed' then
      silent_run = silent_run + 1
      if signal == 'failure' then
        fail_run = fail_run + 1
      end
      if charged then  -- the run's last silent_limit calls, in order
        last = last + 1
        run[last] = call
        if last - first + 1 > silent_limit then
          run[first] = nil
          first = first + 1
        end
      end
      local why = nil
      if fail_run >= fail_limit then
        why = fail_run .. ' trunk failures in a row'
      elseif silent_run >= silent_limit then
        why = silent_run .. ' calls in a row reached nobody'
      end
      if why then
        open(why)
        trips = trips + 1
        fail_run, silent_run = 0, 0
        for j = first, last do
          refund(run[j], now + cooldown)
        end
        run, first, last = {}, 1, 0
      end
    end
  end
end
if trips > 0 then
  redis.call('HINCRBY', key, 'trips', trips)
end
local kept = {}
for j = math.max(first, last - silent_limit + 1), last do
  kept[#kept + 1] = run[j]
end
redis.call('HSET', key, 'fail_run', fail_run, 'silent_run', silent_run,
           'run', table.concat(kept, ','))
local retry = 0
if state == 'open' then
  retry = tonumber(redis.call('HGET', key, 'retry_ms')) or 0
end
return {state, trips, closes, retry, refunded}
