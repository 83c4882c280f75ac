-- What became of a task whose result is asked for (Task.result). KEYS: its result key, its
-- payload key, its queue's error sorted set, its executions list. ARGV: prefix, task id, how
-- long (ms) the caller will wait for the result (0: it does not wait). Returns {the stored
-- result or false, 1 if the task's payload is stored else 0, its latest execution record if
-- it is in the error state else false}. A caller that will wait for a task still to finish
-- leaves RESULT_WAITING in the result key for at least that long, so that keep_result
-- publishes when it stores the result. A key of another type counts as missing.
local key, id, wait_ms = KEYS[1], ARGV[2], tonumber(ARGV[3])
local function read(...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then return false end
  return reply
end
local kept = read('get', key)
if kept and kept ~= RESULT_WAITING then return {kept, 0, false} end
local stored = redis.call('exists', KEYS[2])
local last = false
if read('zscore', KEYS[3], id) then last = read('lindex', KEYS[4], -1) end
if stored == 1 and not last and wait_ms > 0 then
  if not kept or redis.call('pttl', key) < wait_ms then
    redis.call('set', key, RESULT_WAITING, 'PX', wait_ms)
  end
end
return {false, stored, last}
