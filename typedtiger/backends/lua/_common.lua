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

-- Checks of a task's stored data, made before a script changes anything about the task: Redis
-- does not undo the writes of a script that stops half way, so a read that would fail (a key
-- of another type, INCR on a non-integer) must be known to fail before the first write.
local function key_type(key) return redis.call('type', key)['ok'] end

-- The same for the keys of a queue: a key of another type under the prefix (planted, or left
-- by another program) costs its queue, which is skipped and reported, never a half-done
-- move. The first of the queue's keys in `states` (its sorted set, and the set of the
-- state's queue names) that holds another type, as a reason naming it; nil if none does.
local function type_problem(key, want)
  local kind = key_type(key)
  if kind == want or kind == 'none' then return nil end
  return key .. ' is a Redis ' .. kind .. ', not a ' .. want
end

local function queue_keys_problem(queue, states)
  for _, state in ipairs(states) do
    local problem = type_problem(state_key(state, queue), 'zset')
      or type_problem(P .. ':' .. state, 'set')
    if problem then return problem end
  end
  return nil
end

-- A script's refusal of a queue whose keys are bad (or of a key all queues share), before any
-- write of its own: the worker sees a StorageDataError naming the key.
local function wrong_type_reply(problem) return redis.error_reply('WRONGTYPE ' .. problem) end

-- Printable ASCII but for quotes and backslashes as is, any other byte as \xNN, at most 40
-- bytes: a reason says what it found without carrying arbitrary bytes into JSON.
local function escaped(value)
  local shown = string.gsub(string.sub(value, 1, 40), '.', function(char)
    local byte = string.byte(char)
    if byte < 32 or byte > 126 or char == '"' or char == '\\' then
      return string.format('\\x%02x', byte)
    end
  end)
  if #value > 40 then shown = shown .. '...' end
  return shown
end

-- Whether `text` is valid UTF-8 (only short strings are checked so, task ids: a scan in Lua
-- costs ~9 ms per MB, too much for payloads, which the worker checks).
local function valid_utf8(text)
  local at = string.find(text, '[\128-\255]')
  while at do
    local lead, length, low, high = string.byte(text, at), 0, 128, 191
    if lead >= 194 and lead <= 223 then
      length = 2
    elseif lead >= 224 and lead <= 239 then
      length = 3
      if lead == 224 then low = 160 elseif lead == 237 then high = 159 end -- overlong; surrogate
    elseif lead >= 240 and lead <= 244 then
      length = 4
      if lead == 240 then low = 144 elseif lead == 244 then high = 143 end -- overlong; > U+10FFFF
    else
      return false
    end
    for k = 1, length - 1 do
      local byte = string.byte(text, at + k)
      if not byte or byte < low or byte > high then return false end
      low, high = 128, 191
    end
    at = string.find(text, '[\128-\255]', at + length)
  end
  return true
end

-- Why a task's executions list or count cannot be written (INCR, RPUSH), or nil.
local function bookkeeping_problem(id)
  local base = task_key(id)
  local kind = key_type(base .. ':executions_count')
  if kind == 'string' then
    local count = redis.call('get', base .. ':executions_count')
    -- (a count INCR takes and Lua's numbers hold exactly)
    if count ~= '0' and not string.match(count, '^[1-9]' .. string.rep('%d?', 14) .. '$') then
      return 'executions_count holds "' .. escaped(count) .. '", not a count'
    end
  elseif kind ~= 'none' then
    return 'executions_count is a Redis ' .. kind .. ', not a string'
  end
  kind = key_type(base .. ':executions')
  if kind ~= 'list' and kind ~= 'none' then
    return 'executions is a Redis ' .. kind .. ', not a list'
  end
  return nil
end

-- Why a task's payload cannot be read (a key GET fails on), or nil and the payload (false if
-- missing: the worker reports that, and whatever else is wrong with it).
local function payload_problem(id)
  local kind = key_type(task_key(id))
  if kind == 'none' then return nil, false end
  if kind ~= 'string' then return 'the task key is a Redis ' .. kind .. ', not a string' end
  return nil, redis.call('get', task_key(id))
end

-- Rebuild a task's broken bookkeeping (see bookkeeping_problem; the reason a quarantine
-- records says what it held): an executions key of another type is dropped, a bad count
-- recounted from the records kept.
local function repair_bookkeeping(id)
  local base = task_key(id)
  local kind = key_type(base .. ':executions')
  if kind ~= 'list' and kind ~= 'none' then redis.call('del', base .. ':executions') end
  if bookkeeping_problem(id) then
    redis.call('set', base .. ':executions_count', redis.call('llen', base .. ':executions'))
  end
end

-- Move a task whose stored data is unusable from `from` to error, at `at_s` (a time as sent),
-- with a PayloadError execution record saying why (its bookkeeping repaired first).
local function quarantine(queue, from, id, at_s, reason)
  local base = task_key(id)
  repair_bookkeeping(id)
  unfile(from, queue, id)
  file('error', queue, id, at_s, '')
  if key_type(base) ~= 'none' then -- (no record for a task with no payload: it would linger)
    local record = '{"success":false,"time_failed":' .. at_s .. ',"exception_name":'
      .. '"typedtiger.exceptions:PayloadError","exception":"'
      .. string.gsub(reason, '[\\"]', '\\%0') .. '"}'
    record_execution(id, record, 0)
  end
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

-- Move a task of `queue` from `from` to active at `now` (or, if its stored data is unusable,
-- quarantine it: see quarantine) and add it to a claim's reply: id, payload, executions count;
-- for a quarantined task: id, false, the reason (a string). Whether it went to active.
local function take(result, queue, from, id, now, now_s)
  local problem, payload = nil, false
  if valid_utf8(id) then
    problem, payload = payload_problem(id)
    problem = problem or bookkeeping_problem(id)
  else  -- (no reader of a decoded reply could take it)
    problem = 'the task id is not valid UTF-8'
  end
  result[#result + 1] = id
  if problem then
    quarantine(queue, from, id, now_s, problem)
    result[#result + 1] = false
    result[#result + 1] = problem
    return false
  end
  if from ~= 'active' then unfile(from, queue, id) end
  file('active', queue, id, now, '')
  result[#result + 1] = payload
  result[#result + 1] = tonumber(redis.call('get', task_key(id) .. ':executions_count') or '0')
  return true
end

-- A claim sent again because its reply was lost (same owner, token and queue; see claim_from):
-- the reply to the first one, read again: the tasks it moved to active that still are (their
-- active time renewed), or nil when this claim is not a resend.
local function resent_claim(memo, token, queue, now, now_s)
  if token == '' or key_type(memo) ~= 'list' then return nil end
  local saved = redis.call('lrange', memo, 0, -1)
  if saved[1] ~= token or saved[2] ~= queue then return nil end
  local result = {0}
  for i = 3, #saved do
    if in_state('active', queue, saved[i]) then take(result, queue, 'active', saved[i], now, now_s) end
  end
  result[1] = redis.call('zcard', state_key('queued', queue))
  return result
end

-- Move up to `limit` queued tasks of a queue to active. From ARGV[first]: queue, now,
-- lock_retry, limit, then optionally the claimant's id, the claim's token and how long (ms) to
-- remember it. A task that is already active (a unique task queued again while it runs) is put
-- back in scheduled at now + lock_retry instead, and one whose stored data is unusable is
-- quarantined (see take). Nothing is claimed under a queue system lock. Returns {tasks left
-- queued, then three items per task (see take)}.
--
-- With a claimant, the ids claimed are remembered in P:claim:<claimant> with the token, so that
-- the same claim sent again (its reply lost to a dropped connection) gets the same tasks
-- instead of leaving them active with nobody running them; the claimant's next claim, with a
-- new token, replaces them.
local function claim_from(first)
  local queue, now_s = ARGV[first], ARGV[first + 1]
  local now = tonumber(now_s)
  local lock_retry, limit = tonumber(ARGV[first + 2]), tonumber(ARGV[first + 3])
  local claimant, token = ARGV[first + 4] or '', ARGV[first + 5] or ''
  local bad = queue_keys_problem(queue, STATES)
  if bad then return wrong_type_reply(bad) end
  local memo = P .. ':claim:' .. claimant
  if claimant ~= '' then
    local resent = resent_claim(memo, token, queue, now, now_s)
    if resent then return resent end
  end
  local system_lock = redis.call('zscore', P .. ':qslock:' .. queue, 'SYSTEM_LOCK')
  if system_lock and tonumber(system_lock) > now then return {-1} end
  local result, claimed = {0}, {}
  for _, id in ipairs(redis.call('zrange', state_key('queued', queue), 0, limit - 1)) do
    if in_state('active', queue, id) then
      unfile('queued', queue, id)
      file('scheduled', queue, id, now + lock_retry, 'min')
    elseif take(result, queue, 'queued', id, now, now_s) then
      claimed[#claimed + 1] = id
    end
  end
  if claimant ~= '' and #claimed > 0 then
    redis.call('del', memo)
    redis.call('rpush', memo, token, queue, unpack(claimed))
    redis.call('pexpire', memo, tonumber(ARGV[first + 6]))
  end
  result[1] = redis.call('zcard', state_key('queued', queue))
  return result
end
