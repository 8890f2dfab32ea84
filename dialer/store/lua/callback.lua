--[[ callback.lua -- set, move or cancel a contact's callback (an operator's, through the API or
the CLI), atomically with the claims: a contact being dialed (in_progress) is refused, and a
contact moved here can only be claimed at its new time (claim.lua takes due members only).

A callback is the contact in status rescheduled, queued in pending and in retries at its due
time (the dial order treats it as a retry). The fields cb_* of the contact hash remember who set
it and what the contact was before:
  cb_source       "operator" (a callback of the dialplan has none)
  cb_requested_ms the time asked for (due may be later: the calling hours moved it)
  cb_set_ms       when it was set or last moved (server clock)
  cb_dials        the contact's dials when it was set: a call made since makes the earlier
                  state stale (the callback dialed; a new one is the dialplan's). A claim
                  released undialed gives its dial back (release.lua), so it stays fresh.
  cb_prev_status  the contact's status before the operator's callback
  cb_prev_due     its queue time then ("" when it was not queued)

KEYS[1]  campaign hash            {ns}:c:{cid}
KEYS[2]  contact hash             {ns}:c:{cid}:k:{kid}
KEYS[3]  pending zset             {ns}:c:{cid}:pending
KEYS[4]  retries zset             {ns}:c:{cid}:retries
KEYS[5]  counts hash              {ns}:c:{cid}:counts
KEYS[6]  liststop hash            {ns}:c:{cid}:liststop
KEYS[7]  global do-not-call set   {ns}:dnc
KEYS[8]  campaign do-not-call set {ns}:c:{cid}:dnc
KEYS[9]  zone queue PREFIX        {ns}:c:{cid}:z:  (local hours: the contact's zone group
                                  queues z:{gid} and z:{gid}:r follow pending and retries)

ARGV[1]  "set" (set, or move one there is), "move" (only a callback there is) or "cancel"
ARGV[2]  contact member (zero-padded id)
ARGV[3]  set: due ms (when it may dial); cancel: ""
ARGV[4]  set: requested ms (what was asked for); cancel: ""
ARGV[5]  cancel: the status a dialplan callback ends in (it has no earlier state)
ARGV[6..] campaign statuses that allow the command

Returns {"ok", status before, status after, due ms after ("" when not queued), source before
("operator" / "dialplan" / "")}, or a refusal {code, detail}:
  "no_campaign"  ""             the campaign does not exist
  "campaign"     its status     the campaign's status refuses callbacks
  "no_contact"   ""             no such contact
  "in_call"      last_call      the contact is being dialed now
  "do_not_call"  phone          the contact is do-not-call (status, or its number listed)
  "list_stopped" list id        the contact's list was stopped
  "no_callback"  status         cancel or move: the contact has no callback
]]

local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {'no_campaign', ''}
end
local allowed = false
for i = 6, #ARGV do
  if ARGV[i] == status then
    allowed = true
  end
end
if not allowed then
  return {'campaign', status}
end
local c = redis.call('HMGET', KEYS[2], 'status', 'list', 'phone', 'next_due_ms', 'last_call',
                     'cb_source', 'cb_dials', 'cb_prev_status', 'cb_prev_due', 'dials', 'zg')
local old, list, phone, due_before, last = c[1], c[2], c[3] or '', c[4] or '', c[5] or ''
local dials = c[10] or '0'
local zq = KEYS[9] .. (c[11] or '0')  -- local hours: the contact's zone group queue
if not old then
  return {'no_contact', ''}
end
if old == 'in_progress' then
  return {'in_call', last}
end
-- the operator's earlier state holds only while no call was made since it was set
local fresh = c[6] == 'operator' and c[7] == dials
local source = ''
if old == 'rescheduled' then
  source = fresh and 'operator' or 'dialplan'
end
local member = ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function move_count(new)
  if new ~= old then
    redis.call('HINCRBY', KEYS[5], old, -1)
    redis.call('HINCRBY', KEYS[5], new, 1)
  end
end

if ARGV[1] == 'cancel' then
  if old ~= 'rescheduled' then
    return {'no_callback', old}
  end
  local new, due = ARGV[5], ''
  if fresh and c[8] then
    new, due = c[8], c[9] or ''
  end
  redis.call('ZREM', KEYS[3], member)
  redis.call('ZREM', KEYS[4], member)
  if due ~= '' then
    redis.call('ZADD', KEYS[3], tonumber(due), member)
    redis.call('ZADD', zq, tonumber(due), member)
    if new ~= 'pending' then
      redis.call('ZADD', KEYS[4], tonumber(due), member)
      redis.call('ZADD', zq .. ':r', tonumber(due), member)
    end
  end
  redis.call('HSET', KEYS[2], 'status', new, 'next_due_ms', due)
  redis.call('HDEL', KEYS[2], 'cb_source', 'cb_requested_ms', 'cb_set_ms', 'cb_dials',
             'cb_prev_status', 'cb_prev_due')
  move_count(new)
  return {'ok', old, new, due, source}
end

-- set or move
if ARGV[1] == 'move' and old ~= 'rescheduled' then
  return {'no_callback', old}
end
if old == 'do_not_call' or redis.call('SISMEMBER', KEYS[7], phone) == 1
    or redis.call('SISMEMBER', KEYS[8], phone) == 1 then
  return {'do_not_call', phone}
end
if list and redis.call('HGET', KEYS[6], list) then
  return {'list_stopped', list}
end
local due = tonumber(ARGV[3])
if not (old == 'rescheduled' and fresh) then
  -- a first callback of the operator: remember the state to go back to on cancel (a dialplan
  -- callback moved by an operator has none: its cancel ends as ARGV[5])
  if old == 'rescheduled' then
    redis.call('HDEL', KEYS[2], 'cb_prev_status', 'cb_prev_due')
  else
    local queued = redis.call('ZSCORE', KEYS[3], member)
    redis.call('HSET', KEYS[2], 'cb_prev_status', old,
               'cb_prev_due', queued and due_before or '')
  end
end
redis.call('HSET', KEYS[2], 'status', 'rescheduled', 'next_due_ms', due,
           'cb_source', 'operator', 'cb_requested_ms', ARGV[4], 'cb_set_ms', now,
           'cb_dials', dials)
redis.call('ZADD', KEYS[3], due, member)
redis.call('ZADD', KEYS[4], due, member)
redis.call('ZADD', zq, due, member)
redis.call('ZADD', zq .. ':r', due, member)
move_count('rescheduled')
return {'ok', old, 'rescheduled', due, source}
