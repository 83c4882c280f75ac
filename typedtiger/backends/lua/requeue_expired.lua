-- Requeue active tasks whose heartbeat is older than the timeout (their worker is lost).
-- ARGV: prefix, now, timeout, limit, max losses, lost execution JSON, lock seconds, publish,
-- the exception name that marks lost-worker records. Runs under the lock
-- P:lockv2:queue_expired_tasks. Each loss appends the lost execution record (so the count
-- lives in keys every TaskTiger-compatible reader cleans up); a task lost more than max
-- losses times goes to error instead. Returns {requeued, failed, busy (0/1)}.
local now, timeout, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local max_losses, lost_execution = tonumber(ARGV[5]), ARGV[6]
local lock_for, publish, lost_marker = tonumber(ARGV[7]), ARGV[8] == '1', ARGV[9]

local function losses_of(id)
  local losses = 0
  for _, record in ipairs(redis.call('lrange', task_key(id) .. ':executions', 0, -1)) do
    if string.find(record, lost_marker, 1, true) then losses = losses + 1 end
  end
  return losses
end

local lkey = P .. ':lockv2:queue_expired_tasks'
if not lock_free(lkey, now) then return {0, 0, 1} end
redis.call('set', lkey, 'requeue|' .. tostring(now + lock_for), 'PX', lock_ttl_ms(lock_for))

local requeued, failed = 0, 0
for _, queue in ipairs(redis.call('smembers', P .. ':active')) do
  local budget = limit - requeued - failed
  if budget <= 0 then break end
  local ids = redis.call('zrangebyscore', state_key('active', queue), '-inf', now - timeout,
    'LIMIT', 0, budget)
  for _, id in ipairs(ids) do
    unfile('active', queue, id)
    local stored = redis.call('exists', task_key(id)) == 1  -- else the claim quarantines it
    local losses = stored and losses_of(id) + 1 or 0
    if stored then record_execution(id, lost_execution, 0) end
    if losses > max_losses then
      file('error', queue, id, now, '')
      failed = failed + 1
    else
      file('queued', queue, id, now, 'nx')
      requeued = requeued + 1
      if publish then redis.call('publish', P .. ':activity', queue) end
    end
  end
end
if requeued + failed < limit then redis.call('del', lkey) end
return {requeued, failed, 0}
