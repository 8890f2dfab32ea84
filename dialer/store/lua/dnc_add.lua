--[[ dnc_add.lua -- add numbers to a campaign's do-not-call list, if the campaign exists.

The existence check and the SADD are one step, so a campaign being deleted never gets its
list re-created behind the delete.

KEYS[1]  campaign dnc set    {ns}:c:{cid}:dnc
KEYS[2]  campaign hash       {ns}:c:{cid}

ARGV[1..] E.164 numbers (already normalised by the caller)

Returns how many numbers were new on the list, or -1 when the campaign does not exist.
]]

if redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
local added = 0
for i = 1, #ARGV do
  added = added + redis.call('SADD', KEYS[1], ARGV[i])
end
return added
