-- Move due scheduled tasks to queued, at most ARGV[4] per queue. ARGV: prefix, now, publish,
-- limit. A task already queued just leaves the scheduled set. A queue whose keys hold another
-- type is skipped. Returns {how many moved, then the reason each queue was skipped}.
local now, publish, limit = tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4])
local moved, skipped = 0, {}
local bad = type_problem(P .. ':scheduled', 'set')
if bad then return wrong_type_reply(bad) end
for _, queue in ipairs(redis.call('smembers', P .. ':scheduled')) do
  local bad = queue_keys_problem(queue, {'scheduled', 'queued'})
  if bad then
    skipped[#skipped + 1] = bad
  else
    local ids = redis.call('zrangebyscore', state_key('scheduled', queue), '-inf', now,
      'LIMIT', 0, limit)
    for _, id in ipairs(ids) do
      unfile('scheduled', queue, id)
      file('queued', queue, id, now, 'nx')
    end
    if #ids > 0 then
      moved = moved + #ids
      if publish then redis.call('publish', P .. ':activity', queue) end
    end
  end
end
return {moved, unpack(skipped)}
