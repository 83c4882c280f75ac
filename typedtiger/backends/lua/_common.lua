-- Prepended to every script. ARGV[1] is always the key prefix P.
--
-- KEYS declares every key the script touches; the caller names them (backends/_redis_keys.py),
-- and a script reaches a key only through the functions below, which refuse one that is not
-- declared (an UNDECLARED error: a bug, never data). Two kinds of keys a script learns only
-- while it runs are admitted by name instead, each derived from the prefix so that it shares
-- the declared keys' hash tag (one Redis Cluster slot): the task keys of ids read from a sorted
-- set (found_task: claim, requeue_expired, purge_errors) and the keys of queues read from a set
-- of queue names (found_queue: the walks of move_due and requeue_expired). A task's bookkeeping
-- keys (<task key>:executions, :executions_count, :worker_losses) are its task key's suffixes.
local P = ARGV[1]
local STATES = {'queued', 'active', 'scheduled', 'error'}

local declared = {}
for _, name in ipairs(KEYS) do declared[name] = true end

local function key(name)
  if not declared[name] then error('UNDECLARED key ' .. name .. ' (not in KEYS)') end
  return name
end

local function state_key(state, queue) return key(P .. ':' .. state .. ':' .. queue) end
-- The set of the names of the queues that hold tasks in a state.
local function names_key(state) return key(P .. ':' .. state) end
local function task_key(id) return key(P .. ':task:' .. id) end
local function lock_key(lock_id) return key(P .. ':lockv2:' .. lock_id) end
local function qslock_key(queue) return key(P .. ':qslock:' .. queue) end
local function claim_key(claimant) return key(P .. ':claim:' .. claimant) end

-- Admit the task key of an id the script read from a sorted set (see above).
local function found_task(id) declared[P .. ':task:' .. id] = true end

-- Admit the sorted sets of a queue whose name the script read from a set of queue names.
local function found_queue(queue)
  for _, state in ipairs(STATES) do declared[P .. ':' .. state .. ':' .. queue] = true end
end

-- Priorities (typedtiger/_priorities.py): a queued task's score is the time it was queued less
-- PRIORITY_STEP seconds per priority level, so the lowest scores (claimed first) are the
-- highest priorities, in the order they were queued.
local PRIORITY_STEP, MIN_PRIORITY, MAX_PRIORITY = 2592000, -10, 10

-- The priority a stored payload names (0 when it names none, or none in the range: a payload
-- is decoded only when it holds the word).
local function priority_of(payload)
  if type(payload) ~= 'string' or not string.find(payload, '"priority"', 1, true) then return 0 end
  local ok, data = pcall(cjson.decode, payload)
  local priority = ok and type(data) == 'table' and data.priority
  if type(priority) ~= 'number' or priority ~= math.floor(priority)
    or priority < MIN_PRIORITY or priority > MAX_PRIORITY then
    return 0
  end
  return priority
end

-- A score as ZADD and a reply take it (a Lua number in a reply would lose its fraction).
local function score_text(score) return string.format('%.17g', score) end

-- The queued score of a task of `priority` queued at `now` (a number).
local function queued_score(now, priority) return score_text(now - priority * PRIORITY_STEP) end

-- Scores and ids, as ZADD takes them, of `ids` becoming queued at `now`, each scored by the
-- priority of its payload (one MGET per 1000; a key of another type reads as no payload).
local function queued_scores(ids, now)
  local scored = {}
  for at = 1, #ids, 1000 do
    local last = math.min(at + 999, #ids)
    local keys = {}
    for i = at, last do keys[#keys + 1] = task_key(ids[i]) end
    local payloads = redis.call('mget', unpack(keys))
    for i = at, last do
      scored[#scored + 1] = queued_score(now, priority_of(payloads[i - at + 1]))
      scored[#scored + 1] = ids[i]
    end
  end
  return scored
end

-- Keys a command of this script has shown to be of their type (or missing): a read or write
-- of that type that did not fail. Their type checks are not repeated.
local proven = {}

-- Sorted sets a task left without the emptiness check (see unfile): settle_names does it.
local maybe_emptied = {}

local function in_state(state, queue, id)
  local key = state_key(state, queue)
  local found = redis.call('zscore', key, id) ~= false
  proven[key] = true
  return found
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
  proven[key] = true
  maybe_emptied[key] = nil
  redis.call('sadd', names_key(state), queue)
end

-- ZREM from a state; drops the queue from the state's set when its sorted set empties: at
-- once, or with `later` when the script calls settle_names (a task filed there in between
-- spares the check).
local function unfile(state, queue, id, later)
  local key = state_key(state, queue)
  local removed = redis.call('zrem', key, id) == 1
  proven[key] = true
  if removed then
    if later then
      maybe_emptied[key] = {state, queue}
    elseif redis.call('exists', key) == 0 then
      redis.call('srem', names_key(state), queue)
    end
  end
  return removed
end

local function settle_names()
  for key, named in pairs(maybe_emptied) do
    if redis.call('exists', key) == 0 then redis.call('srem', names_key(named[1]), named[2]) end
  end
  maybe_emptied = {}
end

-- Delete a task's keys unless it is still filed in another state of its queue (`gone`: the
-- state it has just left). The executions (and the worker-loss counter) survive while the
-- task is in the error state.
--
-- Tasks waiting for it (see _dependencies.lua) are told through `departed`: its marker key
-- P:task:<id>:awaited goes with the same DEL, whose count says whether there was more than
-- the payload to delete; only then is the task listed (no command more for the others).
local departed = {}

local function forget(queue, id, gone)
  local base = task_key(id)
  if gone ~= 'error' and in_state('error', queue, id) then return end
  local filed = false
  for _, state in ipairs(STATES) do
    if state ~= gone and state ~= 'error' and in_state(state, queue, id) then
      filed = true
      break
    end
  end
  local bookkeeping = {base .. ':executions', base .. ':executions_count', base .. ':worker_losses',
    base .. ':awaited'}
  if not filed then
    bookkeeping[5] = base .. ':after'  -- (what it waited for: a task filed elsewhere still waits)
    bookkeeping[6] = base
  end
  if redis.call('del', unpack(bookkeeping)) > (filed and 0 or 1) then
    departed[#departed + 1] = id
  end
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
      or type_problem(names_key(state), 'set')
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

-- Whether `text` is valid UTF-8 (only short strings are checked so, task ids: a scan of
-- payloads in Lua would cost the server too much; the worker checks those).
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

-- Why a task's executions list or count cannot be written (INCR, RPUSH), or nil and the count.
local function bookkeeping_problem(id)
  local base = task_key(id)
  local count = 0
  local kind = key_type(base .. ':executions_count')
  if kind == 'string' then
    local stored = redis.call('get', base .. ':executions_count')
    -- (a count INCR takes and Lua's numbers hold exactly)
    if stored ~= '0' and not string.match(stored, '^[1-9]' .. string.rep('%d?', 14) .. '$') then
      return 'executions_count holds "' .. escaped(stored) .. '", not a count'
    end
    count = tonumber(stored)
  elseif kind ~= 'none' then
    return 'executions_count is a Redis ' .. kind .. ', not a string'
  end
  kind = key_type(base .. ':executions')
  if kind ~= 'list' and kind ~= 'none' then
    return 'executions is a Redis ' .. kind .. ', not a list'
  end
  return nil, count
end

-- Why a task cannot run (its id, its key, its bookkeeping: see bookkeeping_problem), or nil,
-- its payload (false if missing: the worker reports that, and whatever else is wrong with it)
-- and its executions count.
local function task_problem(id)
  if not valid_utf8(id) then return 'the task id is not valid UTF-8' end  -- (no reader of a
  local base = task_key(id)                                               -- reply could take it)
  local payload = redis.pcall('get', base)
  if type(payload) == 'table' then  -- (GET failed: a key of another type)
    return 'the task key is a Redis ' .. key_type(base) .. ', not a string'
  end
  if redis.call('exists', base .. ':executions_count', base .. ':executions') == 0 then
    return nil, payload, 0  -- (never failed: nothing to check)
  end
  local problem, count = bookkeeping_problem(id)
  return problem, payload, count
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

-- Move a task whose stored data is unusable from `from` (nil: it has left its state already)
-- to error, at `at_s` (a time as sent), with a PayloadError execution record saying why (its
-- bookkeeping repaired first).
local function quarantine(queue, from, id, at_s, reason)
  local base = task_key(id)
  repair_bookkeeping(id)
  if from then unfile(from, queue, id) end
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
local function lock_free(key, now, value)
  if value == nil then value = redis.call('get', key) end
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

-- What a client waiting for a task's result (result.lua) leaves in the task's result key: the
-- script that stores the result finds it there and publishes on the channel of the key's name.
local RESULT_WAITING = 'waiting'

local function result_key(id) return task_key(id) .. ':result' end

-- Keep a task's outcome (`text`, see typedtiger/_results.py) for `ms` milliseconds. One
-- command, SET ... GET, whose reply tells whether a client waits for it (then a PUBLISH).
local function keep_result(id, text, ms)
  local key = result_key(id)
  local previous = redis.pcall('set', key, text, 'PX', ms, 'GET')
  if type(previous) == 'table' and previous.err then  -- (a key of another type: replaced)
    redis.call('set', key, text, 'PX', ms)
  elseif previous == RESULT_WAITING then
    redis.call('publish', key, 'kept')
  end
end

-- Finish successful tasks. From ARGV[first]: queue, n, n task ids, m, m pairs (task id, lock
-- id), r, r triples (task id, result text, ms to keep it: see keep_result). Returns the index
-- of the first ARGV after them. A result is kept only for a task this removes from active.
-- The queue's name stays in P:active until the script calls settle_names (a claim that
-- follows may file a task there).
local function complete_from(first)
  local queue, n = ARGV[first], tonumber(ARGV[first + 1])
  local finished = {}
  for i = first + 2, first + 1 + n do
    if unfile('active', queue, ARGV[i], true) then
      forget(queue, ARGV[i], 'active')
      finished[ARGV[i]] = true
    end
  end
  local at = first + 2 + n
  local m = tonumber(ARGV[at])
  for i = at + 1, at + 2 * m, 2 do release_lock(ARGV[i + 1], ARGV[i]) end
  at = at + 1 + 2 * m
  local r = tonumber(ARGV[at])
  for i = at + 1, at + 3 * r, 3 do
    if finished[ARGV[i]] then keep_result(ARGV[i], ARGV[i + 1], ARGV[i + 2]) end
  end
  return at + 1 + 3 * r
end

-- `command` on `key` with `args` (after `flag` if given), in calls of at most 1000 of them
-- (unpack's limit is ~8000).
local function call_in_chunks(command, key, args, flag)
  for at = 1, #args, 1000 do
    local last = math.min(at + 999, #args)
    if flag then
      redis.call(command, key, flag, unpack(args, at, last))
    else
      redis.call(command, key, unpack(args, at, last))
    end
  end
end

-- Whether a reply of redis.pcall is the error of a key of another type.
local function wrong_type(reply)
  return type(reply) == 'table' and reply.err ~= nil
    and string.find(tostring(reply.err), 'WRONGTYPE', 1, true) ~= nil
end

-- A read of `key`, which must be a `want` or missing: its reply, or nil and the script's
-- refusal naming the key when it holds another type.
local function read_checked(want, command, key, ...)
  local reply = redis.pcall(command, key, ...)
  if type(reply) == 'table' and reply.err then
    local problem = wrong_type(reply) and type_problem(key, want)
    return nil, problem and wrong_type_reply(problem) or reply
  end
  proven[key] = true
  return reply
end

-- Whether the set of a state's queue names lists `queue` (a read that checks its type: nil
-- and the refusal when it holds another type).
local function listed(state, queue)
  local reply, refused = read_checked('set', 'sismember', names_key(state), queue)
  if refused then return nil, refused end
  return reply == 1
end

-- A claim's memo (see claim_from): its fields (token, queue, task ids) as one string, each
-- as <length>:<bytes>.
local function memo_text(fields)
  local parts = {}
  for i, field in ipairs(fields) do parts[i] = #field .. ':' .. field end
  return table.concat(parts)
end

local function memo_fields(text)
  local fields, at = {}, 1
  while at <= #text do
    local colon = string.find(text, ':', at, true)
    local length = colon and tonumber(string.sub(text, at, colon - 1))
    if not length then return {} end
    fields[#fields + 1] = string.sub(text, colon + 1, colon + length)
    at = colon + length + 1
  end
  return fields
end

-- Move a task of `queue` from `from` to active at `now` (or, if its stored data is unusable,
-- quarantine it: see quarantine) and add it to a claim's reply: id, payload, executions count;
-- for a quarantined task: id, false, the reason (a string).
local function take(result, queue, from, id, now, now_s)
  local problem, payload, count = task_problem(id)
  result[#result + 1] = id
  if problem then
    quarantine(queue, from, id, now_s, problem)
    result[#result + 1] = false
    result[#result + 1] = problem
    return
  end
  if from ~= 'active' then unfile(from, queue, id) end
  file('active', queue, id, now, '')
  result[#result + 1] = payload
  result[#result + 1] = count
end

-- Whether a claim is sent again because its reply was lost (same owner, token and queue; see
-- claim_from), `memo` what the claimant's memo held (false if nothing; a string, else an
-- error): the memo's fields (token, queue, task ids) if so.
local function resend_of(memo, token, queue)
  if token == '' or type(memo) ~= 'string' then return nil end
  local saved = memo_fields(memo)
  if saved[1] ~= token or saved[2] ~= queue then return nil end
  return saved
end

-- The reply to a resent claim (see resend_of), read again: the tasks the first one moved to
-- active that still are (their active time renewed), or nil when this claim is not a resend.
local function resent_claim(memo, token, queue, now, now_s)
  local saved = resend_of(memo, token, queue)
  if not saved then return nil end
  local bad = queue_keys_problem(queue, STATES)
  if bad then return wrong_type_reply(bad) end
  local result = {0}
  for i = 3, #saved do
    found_task(saved[i])
    if in_state('active', queue, saved[i]) then take(result, queue, 'active', saved[i], now, now_s) end
  end
  result[1] = redis.call('zcard', state_key('queued', queue))
  return result
end

-- Move up to `limit` queued tasks of a queue to active. From ARGV[first]: queue, now,
-- lock_retry, limit, then optionally the claimant's id, the claim's token and how long (ms) to
-- remember it. A task that is already active (a unique task queued again while it runs) is put
-- back in scheduled at now + lock_retry instead, and one whose stored data is unusable is
-- quarantined (see take). Nothing is claimed under a queue system lock. Returns {1 if tasks
-- stay queued, else 0 (-1: the queue is paused), then three items per task (see take)}.
--
-- With a claimant, the ids claimed are remembered in P:claim:<claimant> with the token, so that
-- the same claim sent again (its reply lost to a dropped connection) gets the same tasks
-- instead of leaving them active with nobody running them; the claimant's next claim, with a
-- new token, replaces them.
--
-- Everything is read and decided before the first write, and every key the claim writes is
-- of its type by then (read, or checked), so a claim either happens whole or not at all.
local function claim_from(first)
  local queue, now_s = ARGV[first], ARGV[first + 1]
  local now = tonumber(now_s)
  local lock_retry, limit = tonumber(ARGV[first + 2]), tonumber(ARGV[first + 3])
  local claimant, token = ARGV[first + 4] or '', ARGV[first + 5] or ''
  local queued_key, active_key = state_key('queued', queue), state_key('active', queue)
  for _, state in ipairs({'scheduled', 'error'}) do  -- (the others are read below)
    local key = state_key(state, queue)
    if not proven[key] then
      local problem = type_problem(key, 'zset')
      if problem then return wrong_type_reply(problem) end
      proven[key] = true
    end
  end
  -- One more than the limit: whether any stay queued.
  local ids, refused = read_checked('zset', 'zrange', queued_key, 0, limit)
  if refused then return refused end
  local left = 0
  if #ids > limit then
    left = 1
    ids[#ids] = nil
  end
  for _, id in ipairs(ids) do found_task(id) end
  -- Which are active already (a unique task queued again while it runs). A lone task is found
  -- out by the ZADD NX that moves it (below): one command instead of two.
  local active, single = {}, #ids == 1
  if #ids > 1 then
    for at = 1, #ids, 1000 do
      local scores
      scores, refused = read_checked('zset', 'zmscore', active_key,
        unpack(ids, at, math.min(at + 999, #ids)))
      if refused then return refused end
      for i = at, math.min(at + 999, #ids) do active[i] = scores[i - at + 1] end
    end
  end
  local memo = claimant ~= '' and claim_key(claimant) or nil
  local system_lock = redis.call('zscore', qslock_key(queue), 'SYSTEM_LOCK')
  local paused = system_lock and tonumber(system_lock) > now
  if paused or #ids == 0 then  -- nothing to claim: only a resend has tasks to give
    local resent = memo and resent_claim(redis.pcall('get', memo), token, queue, now, now_s)
    if resent then return resent end
    return {paused and -1 or 0}
  end

  -- What becomes of each task: to active (its payload and count kept), back to scheduled, or
  -- quarantined (the reason kept).
  local plan, taken, back, broken = {}, {}, {}, false
  for i, id in ipairs(ids) do
    local problem, payload, count
    if not active[i] then
      problem, payload, count = task_problem(id)
      if problem and single then  -- (it is not moved: looked up)
        active[i], refused = read_checked('zset', 'zscore', active_key, id)
        if refused then return refused end
      end
    end
    if active[i] then
      back[#back + 1] = id
    else
      plan[i] = {problem = problem, payload = payload, count = count}
      if problem then broken = true else taken[#taken + 1] = id end
    end
  end
  -- The sets of queue names this claim writes to.
  local active_listed, queued_listed = true, false
  if #taken > 0 then
    active_listed, refused = listed('active', queue)
    if refused then return refused end
  end
  if left == 0 then
    queued_listed, refused = listed('queued', queue)
    if refused then return refused end
  end
  local named = {}
  if #back > 0 then named[#named + 1] = 'scheduled' end
  if broken then named[#named + 1] = 'error' end
  for _, state in ipairs(named) do
    local problem = type_problem(names_key(state), 'set')
    if problem then return wrong_type_reply(problem) end
  end
  -- A lone task to take is moved now, its active check in the same command: ZADD NX leaves a
  -- task that is active already alone (nothing written: it goes back to scheduled instead).
  local moved = false
  if single and #taken == 1 then
    local added = redis.pcall('zadd', active_key, 'NX', now, taken[1])
    if type(added) == 'table' then  -- (any error: nothing was written)
      local problem = wrong_type(added) and type_problem(active_key, 'zset')
      return problem and wrong_type_reply(problem) or added
    end
    proven[active_key] = true
    if added == 1 then
      moved = true
    else
      back, plan, taken = {taken[1]}, {}, {}
      local problem = type_problem(names_key('scheduled'), 'set')
      if problem then return wrong_type_reply(problem) end
    end
  end

  if memo then
    local remember_ms = tonumber(ARGV[first + 6])
    local previous
    if #taken > 0 then  -- (the memo written and the previous one read in one command)
      local text = memo_text({token, queue, unpack(taken)})
      previous = redis.pcall('set', memo, text, 'GET', 'PX', remember_ms)
      if type(previous) == 'table' then
        -- Only a memo of another type (not this claimant's) is replaced; any other error (a
        -- full Redis: the claim's first write) is the script's reply, nothing written.
        if not wrong_type(previous) then return previous end
        redis.call('del', memo)
        redis.call('set', memo, text, 'PX', remember_ms)
      end
    else
      previous = redis.pcall('get', memo)
    end
    if resend_of(previous, token, queue) then  -- (what this claim wrote is undone)
      if #taken > 0 then redis.call('set', memo, previous, 'PX', remember_ms) end
      if moved then redis.call('zrem', active_key, taken[1]) end
      return resent_claim(previous, token, queue, now, now_s)
    end
  end

  local result = {left}
  call_in_chunks('zrem', queued_key, ids)
  if #taken > 0 then
    local scored = {}
    for _, id in ipairs(moved and {} or taken) do
      scored[#scored + 1] = now
      scored[#scored + 1] = id
    end
    call_in_chunks('zadd', active_key, scored)
    if not active_listed then redis.call('sadd', names_key('active'), queue) end
    maybe_emptied[active_key] = nil
  end
  for i, id in ipairs(ids) do
    local step = plan[i]
    if step then
      result[#result + 1] = id
      if step.problem then
        quarantine(queue, nil, id, now_s, step.problem)
        result[#result + 1] = false
        result[#result + 1] = step.problem
      else
        result[#result + 1] = step.payload
        result[#result + 1] = step.count
      end
    else
      file('scheduled', queue, id, now + lock_retry, 'min')
    end
  end
  if left == 0 and queued_listed then redis.call('srem', names_key('queued'), queue) end
  return result
end
