--[[ dnc_screen.lua -- screen one batch of imported numbers: dedupe, then do-not-call.

Each number is added to the campaign's phone ledger; a number already there (an earlier list,
an earlier row of this file, another import running at the same time) is a duplicate. A new
number is then looked up on the global and the campaign do-not-call lists.

KEYS[1]  phones set           {ns}:c:{cid}:phones
KEYS[2]  global dnc set       {ns}:dnc
KEYS[3]  campaign dnc set     {ns}:c:{cid}:dnc

ARGV[1]  the E.164 numbers in file order, joined by "\n" (one argument: cheaper to send)

Returns one character per number, in order: "0" duplicate (dropped), "1" new,
"2" new and on a do-not-call list.
]]

local out = {}
for n in string.gmatch(ARGV[1], '[^\n]+') do
  if redis.call('SADD', KEYS[1], n) == 0 then
    out[#out + 1] = '0'
  elseif redis.call('SISMEMBER', KEYS[2], n) == 1 or redis.call('SISMEMBER', KEYS[3], n) == 1 then
    out[#out + 1] = '2'
  else
    out[#out + 1] = '1'
  end
end
return table.concat(out)
