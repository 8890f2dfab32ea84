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

"failure" counts in both runs (a trunk failure is also a call that reached nobody).

KEYS[1]  breaker hash   {ns}:t:{trunk}:breaker
         fields: state (closed | open | half_open; absent: closed), fail_run, silent_run,
         opened_ms, retry_ms (end of the cool-down), probe (call id), probe_until_ms,
         probe_ms (how long a probe is waited for), reason, trips, changed_ms

ARGV[1]  failure run limit
ARGV[2]  silent run limit
ARGV[3]  cool-down ms
ARGV[4]  probe timeout ms
ARGV[5..] pairs: call id, signal (ok | failure | silent | neutral)

Returns {state, trips, closes, retry_ms}: the state after the last signal, how many times this
call opened the breaker from closed (a trip) and closed it, and the end of the cool-down (0
unless open).
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
local fail_limit, silent_limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local cooldown, probe_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local h = redis.call('HMGET', key, 'state', 'fail_run', 'silent_run', 'probe')
local state = h[1] or 'closed'
local fail_run, silent_run = tonumber(h[2]) or 0, tonumber(h[3]) or 0
local probe = h[4] or ''
local trips, closes = 0, 0

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

for i = 5, #ARGV - 1, 2 do
  local call, signal = ARGV[i], ARGV[i + 1]
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
    elseif state == 'closed' then
      silent_run = silent_run + 1
      if signal == 'failure' then
        fail_run = fail_run + 1
      end
      if fail_run >= fail_limit then
        open(fail_run .. ' trunk failures in a row')
        trips = trips + 1
        fail_run, silent_run = 0, 0
      elseif silent_run >= silent_limit then
        open(silent_run .. ' calls in a row reached nobody')
        trips = trips + 1
        fail_run, silent_run = 0, 0
      end
    end
  end
end
if trips > 0 then
  redis.call('HINCRBY', key, 'trips', trips)
end
redis.call('HSET', key, 'fail_run', fail_run, 'silent_run', silent_run)
local retry = 0
if state == 'open' then
  retry = tonumber(redis.call('HGET', key, 'retry_ms')) or 0
end
return {state, trips, closes, retry}
