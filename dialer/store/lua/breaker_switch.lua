--[[ breaker_switch.lua -- the switch's own view of a trunk feeds its circuit breaker.

A PBX node says a trunk is unreachable (Asterisk: its PJSIP contacts failed qualify; FreeSWITCH:
its gateway is DOWN) or reachable again. The moves are SWITCH_DOWN and SWITCH_UP of the table
in dialer/domain/breaker.py (BREAKER_TRANSITIONS; a unit test pins this script to it):

  state      event   move
  closed     down    open (a trip): reason ARGV[3], cool-down = the hold
  open       down    open: reason ARGV[3], the cool-down runs at least to now + the hold
  half_open  down    open: the probe is dropped (its result no longer decides anything)
  open       up      open: when no node says down any more and a node's down held it, the
                     cool-down ends now (the next claim is the half-open probe: claim.lua)
  closed     up      nothing
  half_open  up      nothing (the probe decides)

The nodes that say down are kept (field held, comma-separated): the breaker is held open while
any of them does, so one node's "up" does not release a trunk another node still finds dead.
"down" is said again by the engine while it lasts (every few seconds), so a hold nobody renews
(its engines gone) lapses into the ordinary cool-down and probe.

KEYS[1]  breaker hash   {ns}:t:{trunk}:breaker  (fields: breaker_report.lua's header; this
         script adds held)

ARGV[1]  node name (the PBX node that says it)
ARGV[2]  down | up
ARGV[3]  reason shown while open, e.g. "switch: contact Unreachable"
ARGV[4]  hold ms (how long one "down" holds the breaker open)
ARGV[5]  probe timeout ms (kept as probe_ms, as breaker_report.lua does when it opens)

Returns {state, trips, closes, retry_ms, refunded} as breaker_report.lua: trips is 1 when this
call opened a closed breaker; closes and refunded are always 0.
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
local node, event, reason = ARGV[1], ARGV[2], ARGV[3]
local hold, probe_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local h = redis.call('HMGET', key, 'state', 'held', 'retry_ms', 'opened_ms')
local state = h[1] or 'closed'
local retry = tonumber(h[3]) or 0
local held, others = {}, {}
for n in string.gmatch(h[2] or '', '[^,]+') do
  held[#held + 1] = n
  if n ~= node then
    others[#others + 1] = n
  end
end
local trips = 0

if event == 'down' then
  others[#others + 1] = node
  if state == 'closed' then
    trips = 1
    redis.call('HINCRBY', key, 'trips', 1)
  end
  local opened = now
  if state == 'open' then
    opened = tonumber(h[4]) or now
  end
  retry = math.max(retry, now + hold)
  if state ~= 'open' then
    retry = now + hold
  end
  state = 'open'
  redis.call('HSET', key, 'state', 'open', 'reason', reason, 'opened_ms', opened,
             'retry_ms', retry, 'probe', '', 'probe_until_ms', 0, 'probe_ms', probe_ms,
             'fail_run', 0, 'silent_run', 0, 'run', '', 'held', table.concat(others, ','),
             'changed_ms', now)
elseif event == 'up' then
  redis.call('HSET', key, 'held', table.concat(others, ','))
  if state == 'open' and #held > #others and #others == 0 then
    retry = now
    redis.call('HSET', key, 'retry_ms', now, 'reason', reason, 'changed_ms', now)
  end
else
  return redis.error_reply('breaker_switch: event must be down or up, not ' .. tostring(event))
end
if state ~= 'open' then
  retry = 0
end
return {state, trips, 0, retry, 0}
