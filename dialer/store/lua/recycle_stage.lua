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
then, last: KEYS[#KEYS - 1] source zone groups hash {ns}:c:{src}:zones and KEYS[#KEYS] target
zone groups hash {ns}:c:{cid}:zones (local hours: a copy's zg is its group's gid in the target
campaign, registered there as add_contacts.lua does when new)

ARGV[1]    new list id
ARGV[2]    source campaign id
then per contact three values: +1 old contact id, +2 its status when chosen,
+3 new member (zero-padded id)

Returns {staged, skipped_dnc, skipped_changed}.
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local staged, dnc, changed = 0, 0, 0
local SRC_ZONES, DST_ZONES = KEYS[#KEYS - 1], KEYS[#KEYS]
local zone_keys  -- source gid -> group key, read when first needed
local function target_gid(gid)
  if not gid or gid == '0' or SRC_ZONES == DST_ZONES then
    return gid
  end
  if not zone_keys then
    zone_keys = {}
    local all = redis.call('HGETALL', SRC_ZONES)
    for j = 1, #all, 2 do
      zone_keys[all[j + 1]] = all[j]
    end
  end
  local group = zone_keys[gid]
  if not group or group == '#' then
    return '0'
  end
  local mine = redis.call('HGET', DST_ZONES, group)
  if not mine then
    mine = tostring(redis.call('HINCRBY', DST_ZONES, '#', 1))
    redis.call('HSET', DST_ZONES, group, mine)
  end
  return mine
end
for i = 7, #KEYS - 2, 2 do
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
    h.zg = target_gid(h.zg)
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
