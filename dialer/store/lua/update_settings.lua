--[[ update_settings.lua -- replace a campaign's settings if its status allows it.

KEYS[1]   campaign hash   {ns}:c:{cid}

ARGV[1]   settings (JSON text, opaque here)
ARGV[2..] statuses in which the change is allowed

Returns {1, current} when replaced; {0, current} when refused ({0, ""}: no such campaign).
]]

local current = redis.call('HGET', KEYS[1], 'status')
if not current then
  return {0, ''}
end
for i = 2, #ARGV do
  if current == ARGV[i] then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('HSET', KEYS[1], 'settings', ARGV[1], 'updated_ms', now)
    return {1, current}
  end
end
return {0, current}
