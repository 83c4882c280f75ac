-- Requeue active tasks whose heartbeat is older than the timeout (their worker is lost), with
-- their priority (read from the payload).
-- ARGV: prefix, now, timeout, limit, max losses, lost execution JSON, lock seconds, publish.
-- Runs under the lock P:lockv2:queue_expired_tasks. Each loss appends the lost execution
-- record and counts in P:task:<id>:worker_losses (a counter, not the records: those may be
-- trimmed by max_stored_executions); a task lost more than max losses times goes to error
-- instead. A queue whose keys hold another type is skipped. Returns {requeued, failed, busy
-- (0/1), then the reason each queue was skipped}.
local now, timeout, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local max_losses, lost_execution = tonumber(ARGV[5]), ARGV[6]
local lock_for, publish = tonumber(ARGV[7]), ARGV[8] == '1'

-- typedtiger deletes the counter with the task; a TaskTiger worker that finishes the task
-- does not, so it also expires a week after the last loss.
local LOSSES_TTL = 7 * 24 * 3600

local function count_loss(id)
  local key = task_key(id) .. ':worker_losses'
  -- GET/SET rather than INCR: a value that is not a number restarts the count, not the script.
  local losses = (tonumber(redis.call('get', key) or '0') or 0) + 1
  redis.call('set', key, losses, 'EX', LOSSES_TTL)
  return losses
end

local queues, refused = read_checked('set', 'smembers', names_key('active'))
if refused then return refused end
-- The lock is written only if this pass leaves work for the next (it is released at the end
-- otherwise): the script is atomic, so nobody could see it in between.
local lkey = lock_key('queue_expired_tasks')
local held = redis.call('get', lkey)
if held and not lock_free(lkey, now, held) then return {0, 0, 1} end

-- Why a lost task cannot be requeued (checked before it leaves active: an error half way
-- would leave it in no state), or nil; a losses key of another type is dropped on the way.
local function problem_of(id)
  local kind = key_type(task_key(id) .. ':worker_losses')
  if kind ~= 'string' and kind ~= 'none' then
    redis.call('del', task_key(id) .. ':worker_losses')
    return 'worker_losses is a Redis ' .. kind .. ', not a string'
  end
  return bookkeeping_problem(id)
end

local requeued, failed, skipped = 0, 0, {}
for _, queue in ipairs(queues) do
  found_queue(queue)
  local budget = limit - requeued - failed
  if budget <= 0 then break end
  local key = state_key('active', queue)
  local ids = redis.pcall('zrangebyscore', key, '-inf', now - timeout, 'LIMIT', 0, budget)
  local bad = nil
  if ids.err then
    bad = type_problem(key, 'zset') or tostring(ids.err)
  elseif #ids > 0 then
    bad = queue_keys_problem(queue, STATES)
  end
  if bad then
    skipped[#skipped + 1] = bad
    ids = {}
  end
  for _, id in ipairs(ids) do
    found_task(id)
    local problem = problem_of(id)
    if problem then
      quarantine(queue, 'active', id, ARGV[2], problem)
      cancel_dependents(id, 'failed for good', ARGV[2])
      failed = failed + 1
    else
      unfile('active', queue, id)
      -- (a key of another type counts as stored: the claim quarantines it, as a missing one)
      local payload = redis.pcall('get', task_key(id))
      local stored = payload ~= false
      local losses = stored and count_loss(id) or 0
      if stored then record_execution(id, lost_execution, 0) end
      if losses > max_losses then
        file('error', queue, id, now, '')
        if redis.call('del', awaited_key(id)) == 1 then
          cancel_dependents(id, 'failed for good (its worker was lost too often)', ARGV[2])
        end
        failed = failed + 1
      else
        file('queued', queue, id, queued_score(now, priority_of(payload)), 'nx')
        requeued = requeued + 1
        if publish then redis.call('publish', P .. ':activity', queue) end
      end
    end
  end
end
if requeued + failed >= limit then
  redis.call('set', lkey, 'requeue|' .. tostring(now + lock_for), 'PX', lock_ttl_ms(lock_for))
elseif held then
  redis.call('del', lkey)  -- (an expired lock's key)
end
return {requeued, failed, 0, unpack(skipped)}
