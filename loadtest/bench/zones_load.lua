--[[ zones_load.lua -- the local-hours benchmark's bulk load (not the dialer's: the CSV importer
and add_contacts.lua are the real path). Creates contacts first .. first + count - 1 of a
campaign in one call, as add_contacts.lua leaves them, each in zone group (id % groups) + 1.

KEYS[1]  pending zset          {ns}:c:{cid}:pending
KEYS[2]  counts hash           {ns}:c:{cid}:counts
KEYS[3]  zone queue PREFIX     {ns}:c:{cid}:z:   (+ gid)
KEYS[4]  contact key PREFIX    {ns}:c:{cid}:k:   (+ contact id)

ARGV[1]  first contact id
ARGV[2]  count
ARGV[3]  zone groups (gids 1 .. groups)
ARGV[4]  due ms

Returns the number created.
]]
local first, count, groups, due = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                                  tonumber(ARGV[4])
for i = first, first + count - 1 do
  local member = string.format('%012d', i)
  local gid = (i % groups) + 1
  redis.call('HSET', KEYS[4] .. i, 'phone', '+1555' .. string.format('%07d', i % 10000000),
             'vars', '{}', 'list', 1, 'status', 'pending', 'attempts', 0, 'tech_failures', 0,
             'last_call', '', 'next_due_ms', due, 'zg', gid)
  redis.call('ZADD', KEYS[1], due, member)
  redis.call('ZADD', KEYS[3] .. gid, due, member)
end
redis.call('HINCRBY', KEYS[2], 'pending', count)
return count
