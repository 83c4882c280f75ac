-- Store tasks: all of them or, when one is refused, none. ARGV: prefix, now, publish (0/1),
-- then groups of tasks sharing their options: queue, due, mode, max queue size (0: none),
-- priority, n, n pairs (queue, id) of the tasks they wait for (see _dependencies.lua), count,
-- then count pairs (id, payload). Tasks are numbered from 1 across the groups.
-- A task due by now is queued with score now (less its priority's head start: see
-- queued_score), else scheduled with score due (written exactly as sent). Modes: 'plain'
-- stores; 'unique' (TaskTiger's) writes the payload (the last arguments win) and files the
-- task in its state unless it is filed there already (keeping that score; queued: keeping
-- its queued time, scored with the priority written); 'if_absent' and
-- 'next_run' write nothing when an equal task is queued or scheduled (if_absent: or active). Returns {'ok', ...} followed, for each task
-- that was already filed, by its number, the state and score it is filed under, and the stored
-- payload that was kept (false when ours was written). When nothing was written at all:
-- {'full', task number, size} or {'wrongtype', task number, key}. A task enqueued after others
-- is listed too, filed or not: it waits (scheduled at WAITING) while one of them is queued,
-- active or scheduled (or enqueued earlier in this batch), goes to error with a
-- DependencyFailed record when one is in error, and is filed as usual when they are all gone
-- (succeeded).
local now_s, publish = ARGV[2], ARGV[3] == '1'
local now = tonumber(now_s)

-- SET replaces a value of any type; the sorted set and the set of queue names must be right
-- before anything is written (checked once per key and batch). The first sorted set to check
-- (of a queue without a size limit, whose ZCARD would fail first) is checked by the first
-- write instead, its task's ZADD (see below): `deferred`.
local checked, deferred = {}, nil
local function has_type(key, wanted, number, max_size)
  if checked[key] then return true end
  if wanted == 'zset' and not deferred and max_size == 0 then
    deferred = {key = key, number = number}
    checked[key] = true
    return true
  end
  local kind = redis.call('type', key)['ok']
  checked[key] = kind == 'none' or kind == wanted
  return checked[key]
end

-- A refusal of the batch, or the refusal the deferred check makes first (that task comes
-- first).
local function refused(reply)
  if deferred and not deferred.checked then
    deferred.checked = true
    local kind = redis.call('type', deferred.key)['ok']
    if kind ~= 'none' and kind ~= 'zset' then return {'wrongtype', deferred.number, deferred.key} end
  end
  return reply
end

-- Whether P:<state> lists a queue (read once per batch: a queue listed needs no SADD; a key
-- of another type is refused before anything is written).
local listed_queues = {}

-- Where a task of this batch is filed (queue, id -> state), for a task after it to look up.
local planned = {}

-- What a task enqueued after the tasks `after` (queue, id, ...) waits for: nil and the
-- pending ones ({id = queue}, or nil if none), or the reason it is cancelled at once.
local function dependencies(after)
  local pending = nil
  for i = 1, #after, 2 do
    local queue, id = after[i], after[i + 1]
    local state = planned[queue .. '\0' .. id]
    if not state then
      for _, found in ipairs({'error', 'queued', 'active', 'scheduled'}) do
        if redis.call('zscore', state_key(found, queue), id) then
          state = found
          break
        end
      end
    end
    if state == 'error' then return 'task ' .. id .. ' had failed when this one was enqueued' end
    if state then
      pending = pending or {}
      pending[id] = queue
    end
  end
  return nil, pending
end

-- First pass: decide every task, write nothing.
local reply, plan, adding, first_of = {'ok'}, {}, {}, {}
local number, at = 0, 4
while at <= #ARGV do
  local queue, due_s, mode = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local max_size, priority = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
  local after = {unpack(ARGV, at + 6, at + 5 + 2 * tonumber(ARGV[at + 5]))}
  at = at + 6 + #after
  local count = tonumber(ARGV[at])
  local due_state, due_score = 'scheduled', due_s
  if tonumber(due_s) <= now then
    due_state, due_score = 'queued', priority == 0 and now_s or queued_score(now, priority)
  end
  for pair = at + 1, at - 1 + 2 * count, 2 do
    number = number + 1
    local id, payload = ARGV[pair], ARGV[pair + 1]
    local state, score, cancelled, pending = due_state, due_score, nil, nil
    if #after > 0 then
      cancelled, pending = dependencies(after)
      if cancelled then
        state, score = 'error', now_s
      elseif pending then
        state, score = 'scheduled', score_text(WAITING)
        for waited in pairs(pending) do
          local problem = type_problem(dependents_key(waited), 'hash')
          if problem then return refused({'wrongtype', number, dependents_key(waited)}) end
        end
        if type_problem(after_key(id), 'hash') then
          return refused({'wrongtype', number, after_key(id)})
        end
      end
    end
    local filed_key = state_key(state, queue)
    local existing, payload_only, rescore = nil, false, nil
    if mode == 'unique' then
      local first = first_of[queue .. '\0' .. id .. '\0' .. state] -- earlier in this batch
      if first then
        existing = {state, first.score, false}
      else
        local filed_score = redis.call('zscore', filed_key, id)
        checked[filed_key] = true
        if filed_score and state == 'queued' then
          -- Its queued time is kept (TaskTiger's rule), scored with the priority written now.
          local was = priority_of(redis.pcall('get', task_key(id)))
          if was ~= priority then
            rescore = queued_score(tonumber(filed_score) + was * PRIORITY_STEP, priority)
            filed_score = rescore
          end
        end
        if filed_score then existing = {state, filed_score, false} end
      end
      payload_only = existing ~= nil
    elseif mode ~= 'plain' then
      local first = first_of[queue .. '\0' .. id] -- an equal task earlier in this batch
      if first then
        existing = {first.state, first.score, first.payload}
      else
        local blocking = {'queued', 'scheduled', mode == 'if_absent' and 'active' or nil}
        for _, found in ipairs(blocking) do
          local key = state_key(found, queue)
          local found_score = redis.call('zscore', key, id)
          checked[key] = true
          if found_score then
            -- (false for a task key of another type, which GET fails on)
            local stored = redis.pcall('get', task_key(id))
            existing = {found, found_score, type(stored) ~= 'table' and stored}
            break
          end
        end
      end
    end
    if payload_only then
      -- (a unique task waiting already waits for these too)
      local joins = pending and tonumber(existing[2]) == WAITING and pending or nil
      plan[#plan + 1] = {id = id, payload = payload, payload_only = true, rescore = rescore,
        queue = queue, pending = joins}
    end
    if existing then
      reply[#reply + 1] = number
      for _, value in ipairs(existing) do reply[#reply + 1] = value end
    else
      if not has_type(filed_key, 'zset', number, max_size) then
        return refused({'wrongtype', number, filed_key})
      end
      local names = names_key(state)
      if listed_queues[names .. '\0' .. queue] == nil then
        local reply = redis.pcall('sismember', names, queue)
        if type(reply) == 'table' then return refused({'wrongtype', number, names}) end
        listed_queues[names .. '\0' .. queue] = reply == 1
      end
      if max_size > 0 then
        local size = adding[queue] or 0
        for _, counted in ipairs({'queued', 'active', 'scheduled'}) do
          size = size + redis.call('zcard', state_key(counted, queue))
        end
        if size >= max_size then return refused({'full', number, size}) end
      end
      adding[queue] = (adding[queue] or 0) + 1
      local task = {id = id, queue = queue, payload = payload, state = state, score = score,
        pending = pending, cancelled = cancelled}
      planned[queue .. '\0' .. id] = state
      if #after > 0 then
        reply[#reply + 1] = number
        reply[#reply + 1] = state
        reply[#reply + 1] = score
        reply[#reply + 1] = false
      end
      if mode == 'unique' then
        first_of[queue .. '\0' .. id .. '\0' .. state] = task
      elseif mode ~= 'plain' then
        first_of[queue .. '\0' .. id] = task
      end
      plan[#plan + 1] = task
      if deferred and deferred.number == number then deferred.task = task end
    end
  end
  at = at + 1 + 2 * count
end

-- Second pass: write. The set of queue names of a state is added to once per queue, if it
-- does not list it already.
local woken = {}
if deferred and not deferred.checked then
  local task = deferred.task
  local added = redis.pcall('zadd', deferred.key, 'NX', task.score, task.id)
  if wrong_type(added) then return {'wrongtype', deferred.number, deferred.key} end
  if type(added) == 'table' then return added end  -- (another error: nothing written)
  task.filed = true
end
for _, task in ipairs(plan) do
  redis.call('set', task_key(task.id), task.payload)
  if task.rescore then redis.call('zadd', state_key('queued', task.queue), task.rescore, task.id) end
  if task.pending then
    for waited, waited_queue in pairs(task.pending) do
      redis.call('hset', after_key(task.id), waited, waited_queue)
      redis.call('hset', dependents_key(waited), task.id, task.queue)
      redis.call('set', awaited_key(waited), '1')
    end
  end
  if task.cancelled then
    repair_bookkeeping(task.id)
    record_execution(task.id, cancel_record(now_s, task.cancelled), 0)
  end
  if not task.payload_only then
    local key = state_key(task.state, task.queue)
    if not task.filed then redis.call('zadd', key, 'NX', task.score, task.id) end
    local names = names_key(task.state)
    if not listed_queues[names .. '\0' .. task.queue] then
      listed_queues[names .. '\0' .. task.queue] = true
      redis.call('sadd', names, task.queue)
    end
    if task.state == 'queued' then woken[task.queue] = true end
  end
end
if publish then
  for queue in pairs(woken) do redis.call('publish', P .. ':activity', queue) end
end
return reply
