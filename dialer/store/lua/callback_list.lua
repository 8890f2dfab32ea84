--[[ callback_list.lua -- one slice of the upcoming callbacks: the rescheduled contacts among
the retries queue, read in due order, filtered here (one round trip per slice instead of one
HMGET per queued retry on the wire).

KEYS[1]  retries zset             {ns}:c:{cid}:retries
KEYS[2]  contact key PREFIX       {ns}:c:{cid}:k:   (+ contact id; the contacts are found here,
                                   as in claim.lua. The store is single-node Redis.)

ARGV[1]  lowest score: "-inf", or "(<ms>" for the callbacks due after <ms>
ARGV[2]  offset: entries of that range already scanned by earlier slices
ARGV[3]  how many entries to scan at most (bounds the time the script holds Redis)
ARGV[4]  how many callbacks to return at most

Returns {scanned, then per callback: member, due ms, phone, list, attempts, cb_source,
cb_requested_ms}. An entry is a callback when its contact is rescheduled at that very time
(a stale entry, whose contact left pending or moved, is skipped: claim.lua drops those).
Scanning stops at the first entry past the wanted count, so the next slice starts there.
]]

local entries = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'WITHSCORES',
                           'LIMIT', tonumber(ARGV[2]), tonumber(ARGV[3]))
local want = tonumber(ARGV[4])
local out = {0}
local found = 0
local scanned = 0
for i = 1, #entries, 2 do
  if found >= want then
    break
  end
  scanned = scanned + 1
  local member, score = entries[i], entries[i + 1]
  local c = redis.call('HMGET', KEYS[2] .. tonumber(member), 'status', 'next_due_ms', 'phone',
                       'list', 'attempts', 'cb_source', 'cb_requested_ms')
  if c[1] == 'rescheduled' and tonumber(c[2]) == tonumber(score) then
    found = found + 1
    local n = #out
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = member, score, c[3] or '', c[4] or '0'
    out[n + 5], out[n + 6], out[n + 7] = c[5] or '0', c[6] or '', c[7] or ''
  end
end
out[1] = scanned
return out
