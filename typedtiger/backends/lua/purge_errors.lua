-- Delete errored tasks of a queue that failed at or before a time. ARGV: prefix, queue,
-- before ('+inf' for all), limit. Entries whose payload is gone go too. Returns the count.
local queue, before, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local ids = redis.call('zrangebyscore', state_key('error', queue), '-inf', before,
  'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  unfile('error', queue, id)
  forget(queue, id, 'error')
end
return #ids
