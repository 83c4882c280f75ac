-- Prepended to every script. ARGV[1] is always the key prefix; every key a script derives
-- (per queue, per task id) is built from it, so a hash-tagged prefix keeps one cluster slot.
local P = ARGV[1]
local STATES = {'queued', 'active', 'scheduled', 'error'}

local function state_key(state, queue) return P .. ':' .. state .. ':' .. queue end
local function task_key(id) return P .. ':task:' .. id end
local function lock_key(lock_id) return P .. ':lockv2:' .. lock_id end

local function in_state(state, queue, id)
  return redis.call('zscore', state_key(state, queue), id) ~= false
end

-- ZADD into a state, keeping the per-state set of queue names in step.
-- mode: '' (set the score), 'nx' (keep an existing score), 'min' (keep the smaller).
local function file(state, queue, id, score, mode)
  local key = state_key(state, queue)
  if mode == 'nx' then
    redis.call('zadd', key, 'NX', score, id)
  elseif mode == 'min' then
    redis.call('zadd', key, 'LT', score, id)
  else
    redis.call('zadd', key, score, id)
  end
  redis.call('sadd', P .. ':' .. state, queue)
end

-- ZREM from a state; drops the queue from the state's set when its sorted set empties.
local function unfile(state, queue, id)
  local key = state_key(state, queue)
  local removed = redis.call('zrem', key, id)
  if removed == 1 and redis.call('exists', key) == 0 then
    redis.call('srem', P .. ':' .. state, queue)
  end
  return removed == 1
end

-- Delete a task's keys unless it is still filed in another state of its queue. The
-- executions (and the worker-loss counter) survive while the task is in the error state.
local function forget(queue, id)
  local base = task_key(id)
  if not in_state('error', queue, id) then
    redis.call('del', base .. ':executions', base .. ':executions_count', base .. ':worker_losses')
  end
  for _, state in ipairs(STATES) do
    if in_state(state, queue, id) then return end
  end
  redis.call('del', base)
end

local function record_execution(id, execution, max_stored)
  local key = task_key(id) .. ':executions'
  redis.call('incr', task_key(id) .. ':executions_count')
  redis.call('rpush', key, execution)
  if max_stored > 0 then redis.call('ltrim', key, -max_stored, -1) end
end

-- A lock value is "<holder task id>|<expiry>". A value of another form (a TaskTiger token)
-- is held until its key expires.
local function lock_free(key, now)
  local value = redis.call('get', key)
  if not value then return true end
  local expiry = tonumber(string.match(value, '|([^|]+)$') or '')
  return expiry ~= nil and expiry <= now
end

local function release_lock(lock_id, holder)
  local key = lock_key(lock_id)
  local value = redis.call('get', key)
  if value and string.sub(value, 1, #holder + 1) == holder .. '|' then
    redis.call('del', key)
  end
end

-- Garbage-collection backstop only: behaviour is decided by the expiry in the value.
local function backstop_ms(timeout) return math.ceil(timeout * 1000) * 10 + 3600000 end

-- The TTL of lock keys TaskTiger workers also read: they only look at whether the key exists,
-- so it must go when the lock expires (TaskTiger's own lock TTL is the same timeout).
local function lock_ttl_ms(timeout) return math.ceil(timeout * 1000) end

-- Finish successful tasks. From ARGV[first]: queue, n, n task ids, m, m pairs (task id, lock
-- id). Returns the index of the first ARGV after them.
local function complete_from(first)
  local queue, n = ARGV[first], tonumber(ARGV[first + 1])
  for i = first + 2, first + 1 + n do
    if unfile('active', queue, ARGV[i]) then forget(queue, ARGV[i]) end
  end
  local at = first + 2 + n
  local m = tonumber(ARGV[at])
  for i = at + 1, at + 2 * m, 2 do release_lock(ARGV[i + 1], ARGV[i]) end
  return at + 1 + 2 * m
end

-- Move up to `limit` queued tasks of a queue to active. From ARGV[first]: queue, now,
-- lock_retry, limit. A task that is already active (a unique task queued again while it runs)
-- is put back in scheduled at now + lock_retry instead. Nothing is claimed under a queue
-- system lock. Returns {tasks left queued, id, payload or false, executions count, ...}.
local function claim_from(first)
  local queue, now = ARGV[first], tonumber(ARGV[first + 1])
  local lock_retry, limit = tonumber(ARGV[first + 2]), tonumber(ARGV[first + 3])
  local system_lock = redis.call('zscore', P .. ':qslock:' .. queue, 'SYSTEM_LOCK')
  if system_lock and tonumber(system_lock) > now then return {-1} end
  local result = {0}
  for _, id in ipairs(redis.call('zrange', state_key('queued', queue), 0, limit - 1)) do
    unfile('queued', queue, id)
    if in_state('active', queue, id) then
      file('scheduled', queue, id, now + lock_retry, 'min')
    else
      file('active', queue, id, now, '')
      result[#result + 1] = id
      result[#result + 1] = redis.call('get', task_key(id))
      result[#result + 1] = tonumber(redis.call('get', task_key(id) .. ':executions_count') or '0')
    end
  end
  result[1] = redis.call('zcard', state_key('queued', queue))
  return result
end
