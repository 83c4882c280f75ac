-- Move up to ARGV[5] queued tasks of a queue to active. ARGV: prefix, queue, now, lock_retry,
-- limit. A task that is already active (a unique task queued again while it runs) is put back
-- in scheduled at now + lock_retry instead. Nothing is claimed under a queue system lock.
-- Returns {id, payload or false, executions count, ...}.
local queue, now = ARGV[2], tonumber(ARGV[3])
local lock_retry, limit = tonumber(ARGV[4]), tonumber(ARGV[5])

local system_lock = redis.call('zscore', P .. ':qslock:' .. queue, 'SYSTEM_LOCK')
if system_lock and tonumber(system_lock) > now then return {} end

local result = {}
local ids = redis.call('zrange', state_key('queued', queue), 0, limit - 1)
for _, id in ipairs(ids) do
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
return result
