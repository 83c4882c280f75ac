-- Delete errored tasks of a queue that failed at or before a time. ARGV: prefix, queue,
-- before ('+inf' for all), limit. Entries whose payload is gone go too. Returns the count.
-- Tasks still waiting for one (it went to error by another program's hand: typedtiger cancels
-- them then) are cancelled as of its failure.
local queue, before, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local scored = redis.call('zrangebyscore', state_key('error', queue), '-inf', before,
  'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #scored, 2 do
  found_task(scored[i])
  unfile('error', queue, scored[i])
  forget(queue, scored[i], 'error')
  settle_departed(false, 'failed for good', scored[i + 1])
end
return #scored / 2
