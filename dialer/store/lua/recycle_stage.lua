--[[ recycle_stage.lua -- copy one batch of chosen contacts into a new list, staged (not queued).

The copies are new contact hashes of the target campaign: every field of the old contact (phone,
vars and any other) with list, status pending, attempts, tech_failures, dials from zero, and
recycled_from = "{source campaign}:{old contact id}". They are added to the new list's member
set and to its staging zset, never to pending: recycle_commit.lua queues them. A contact whose
status changed since the caller chose it, or whose phone is on a do-not-call list (global,
source or target campaign), is skipped. Bounded: one batch (the caller's size) per call.

KEYS[1]    global do-not-call set          {ns}:dnc
KEYS[2]    source campaign do-not-call set {ns}:c:{src}:dnc
KEYS[3]    target campaign do-not-call set {ns}:c:{cid}:dnc
KEYS[4]    new list member set             {ns}:c:{cid}:list:{lid}
KEYS[5]    staging zset                    {ns}:c:{cid}:list:{lid}:staged
KEYS[6]    target phones set               {ns}:c:{cid}:phones (the importer's dedupe set)
then per contact two keys: +1 the old contact hash, +2 the new contact hash

ARGV[1]    new list id
ARGV[2]    source campaign id
then per contact three values: +1 old contact id, +2 its status when chosen,
+3 new member (zero-padded id)

Returns {staged, skipped_dnc, skipped_changed}.
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local staged, dnc, changed = 0, 0, 0
for i = 7, #KEYS, 2 do
  local a = 3 + (i - 7) / 2 * 3
  local old_id, chosen_status, member = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local fields = redis.call('HGETALL', KEYS[i])
  local h = {}
  for j = 1, #fields, 2 do
    h[fields[j]] = fields[j + 1]
  end
  if h.status ~= chosen_status or redis.call('EXISTS', KEYS[i + 1]) == 1 then
    changed = changed + 1
  elseif redis.call('SISMEMBER', KEYS[1], h.phone or '') == 1
      or redis.call('SISMEMBER', KEYS[2], h.phone or '') == 1
      or redis.call('SISMEMBER', KEYS[3], h.phone or '') == 1 then
    dnc = dnc + 1
  else
    h.list, h.status, h.attempts, h.tech_failures, h.dials = ARGV[1], 'pending', 0, 0, 0
    h.last_call, h.next_due_ms, h.recycled_from = '', now, ARGV[2] .. ':' .. old_id
    local flat = {}
    for k, v in pairs(h) do
      flat[#flat + 1] = k
      flat[#flat + 1] = v
    end
    redis.call('HSET', KEYS[i + 1], unpack(flat))
    redis.call('SADD', KEYS[4], member)
    redis.call('ZADD', KEYS[5], now, member)
    if h.phone then
      redis.call('SADD', KEYS[6], h.phone)
    end
    staged = staged + 1
  end
end
return {staged, dnc, changed}
