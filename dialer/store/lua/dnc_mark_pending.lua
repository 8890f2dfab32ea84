--[[ dnc_mark_pending.lua -- queued contacts whose number is on a do-not-call list -> do_not_call.

Only contacts still in the pending queue are looked at (a claimed or finished one is left
alone), so the caller can feed candidates from a ZSCAN while engines keep dialing. One batch per
call: the caller loops.

Several numbers (finish.lua's header: the contact hash's numbers and nstate): a contact whose
current number (its phone) is listed but which has another usable number (not known invalid,
on no list: finish.lua's rule) is left as it is, queued: claim.lua skips the listed number when
the contact's turn comes and dials the next usable one (it moves the phone, the zone group and
nstate, and keeps the contact waiting if that number's zone is closed). Moving it here would
repeat that work (zone groups' queues, retries) for the same result; leaving it is enough
because the claim screens the number it dials in the same atomic step. A contact with no usable
number left becomes do_not_call here, its listed numbers marked do_not_call in nstate.

KEYS[1]    pending zset       {ns}:c:{cid}:pending
KEYS[2]    counts hash        {ns}:c:{cid}:counts
KEYS[3]    global dnc set     {ns}:dnc
KEYS[4]    campaign dnc set   {ns}:c:{cid}:dnc
KEYS[5..]  contact hashes, in the order of the members

ARGV[1..]  contact members (zero-padded ids)

Returns how many contacts were moved to do_not_call.
]]

local function listed(number)
  return redis.call('SISMEMBER', KEYS[3], number) == 1
      or redis.call('SISMEMBER', KEYS[4], number) == 1
end
-- several numbers: true when another number is usable (the contact waits for its claim), else
-- its nstate with the listed numbers marked (the contact ends do_not_call)
local function goes_on(key)
  local h = redis.call('HMGET', key, 'numbers', 'nstate')
  if not h[1] then
    return false
  end
  local nums, st = cjson.decode(h[1]), cjson.decode(h[2] or '{}')
  local i = (tonumber(st.i) or 0) + 1
  st.s[i] = 'do_not_call'
  for j = 1, #nums do
    if j ~= i and st.s[j] ~= 'invalid_number' then
      if not listed(nums[j][1]) then
        return true
      end
      st.s[j] = 'do_not_call'
    end
  end
  redis.call('HSET', key, 'nstate', cjson.encode(st))
  return false
end

local moved = 0
for i = 1, #ARGV do
  local member, key = ARGV[i], KEYS[i + 4]
  if redis.call('ZSCORE', KEYS[1], member) then
    local c = redis.call('HMGET', key, 'status', 'phone')
    local old, phone = c[1], c[2]
    if old and phone and listed(phone) and not goes_on(key) then
      redis.call('ZREM', KEYS[1], member)
      redis.call('HSET', key, 'status', 'do_not_call', 'next_due_ms', '')
      redis.call('HINCRBY', KEYS[2], old, -1)
      redis.call('HINCRBY', KEYS[2], 'do_not_call', 1)
      moved = moved + 1
    end
  end
end
return moved
