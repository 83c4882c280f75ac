-- Move due scheduled tasks to queued, at most ARGV[4] per queue. ARGV: prefix, now, publish,
-- limit. Each is queued at now with its priority (read from its payload: see queued_scores);
-- a task already queued just leaves the scheduled set. A queue whose keys hold another
-- type is skipped (the keys a move writes are checked when it has tasks due). Returns {how
-- many moved, then the reason each queue was skipped}.
local now, publish, limit = tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4])
local moved, skipped = 0, {}
local queues, refused = read_checked('set', 'smembers', names_key('scheduled'))
if refused then return refused end
for _, queue in ipairs(queues) do
  found_queue(queue)
  local key = state_key('scheduled', queue)
  local ids = redis.pcall('zrangebyscore', key, '-inf', now, 'LIMIT', 0, limit)
  local bad = nil
  if ids.err then
    bad = type_problem(key, 'zset') or tostring(ids.err)
  elseif #ids > 0 then
    bad = queue_keys_problem(queue, {'queued'})
  end
  if bad then
    skipped[#skipped + 1] = bad
  elseif #ids > 0 then
    for _, id in ipairs(ids) do found_task(id) end  -- (their payloads give their priorities)
    call_in_chunks('zrem', key, ids)
    if redis.call('exists', key) == 0 then redis.call('srem', names_key('scheduled'), queue) end
    call_in_chunks('zadd', state_key('queued', queue), queued_scores(ids, now), 'NX')
    redis.call('sadd', names_key('queued'), queue)
    moved = moved + #ids
    if publish then redis.call('publish', P .. ':activity', queue) end
  end
end
return {moved, unpack(skipped)}
