--[[ dnc_discard_import.lua -- undo one batch of an import that failed half-way (rollback).

A contact is removed only if it was never claimed (last_call empty) and still has the status it
was imported with (pending, invalid_number, do_not_call): it leaves the pending queue, the list
set, the counts and, unless it was an invalid number, the campaign's phone ledger. A contact an
engine already claimed is kept (the caller then stops the list).

KEYS[1]    pending zset   {ns}:c:{cid}:pending
KEYS[2]    counts hash    {ns}:c:{cid}:counts
KEYS[3]    list set       {ns}:c:{cid}:list:{lid}
KEYS[4]    phones set     {ns}:c:{cid}:phones
KEYS[5..]  contact hashes, in the order of the members
KEYS[#KEYS] zone queue PREFIX {ns}:c:{cid}:z:  (local hours: + the contact's zg, 0 if none)

ARGV[1..]  contact members (zero-padded ids) of the list

Returns {removed, kept}.
]]

local removed, kept = 0, 0
for i = 1, #ARGV do
  local member, key = ARGV[i], KEYS[i + 4]
  local c = redis.call('HMGET', key, 'status', 'phone', 'last_call', 'zg')
  local status, phone, last_call = c[1], c[2], c[3]
  if not status then
    redis.call('SREM', KEYS[3], member)
  elseif (last_call or '') == '' and (status == 'pending' or status == 'invalid_number'
                                      or status == 'do_not_call') then
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZREM', KEYS[#KEYS] .. (c[4] or '0'), member)  -- local hours: its group's queue
    if status ~= 'invalid_number' and phone then
      redis.call('SREM', KEYS[4], phone)
    end
    if redis.call('HINCRBY', KEYS[2], status, -1) == 0 then
      redis.call('HDEL', KEYS[2], status)
    end
    redis.call('DEL', key)
    redis.call('SREM', KEYS[3], member)
    removed = removed + 1
  else
    kept = kept + 1
  end
end
return {removed, kept}
