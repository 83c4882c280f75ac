-- Refresh running tasks. ARGV: prefix, queue, now, lock timeout, n, n task ids, then pairs
-- task id, lock id. Only tasks still active are touched; locks only while still held.
local queue, now, timeout, n = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local scored = {}
for i = 6, 5 + n do
  scored[#scored + 1] = now
  scored[#scored + 1] = ARGV[i]
end
call_in_chunks('zadd', state_key('active', queue), scored, 'XX')
for i = 6 + n, #ARGV, 2 do
  local id, lkey = ARGV[i], lock_key(ARGV[i + 1])
  local value = redis.call('get', lkey)
  if value and string.sub(value, 1, #id + 1) == id .. '|' then
    redis.call('set', lkey, id .. '|' .. tostring(now + timeout), 'PX', lock_ttl_ms(timeout))
  end
end
return n
