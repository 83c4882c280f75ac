-- Dependencies (tiger.enqueue(spec, after=task)), prepended to every script after _common.lua.
-- A task B enqueued after tasks that have not succeeded yet waits in its queue's scheduled set
-- at WAITING (9999-12-31: no pass ever finds it due), with
--   P:task:<B>:after       HASH  id -> queue of each task B still waits for
--   P:task:<A>:dependents  HASH  id -> queue of each task waiting for A
--   P:task:<A>:awaited     STRING a marker that A has dependents (see forget, in _common.lua)
-- When A succeeds, B leaves A's wait; once B waits for nothing it is queued (with its priority)
-- or, when its own `when` is still ahead, scheduled then. When A fails for good (or is deleted),
-- B goes to error with a DependencyFailed record, and so do the tasks waiting for B in turn.

local WAITING = 253402300799

local function after_key(id) return task_key(id) .. ':after' end
local function dependents_key(id) return task_key(id) .. ':dependents' end
local function awaited_key(id) return task_key(id) .. ':awaited' end

-- Whether task `id` of `queue` waits for others (filed in scheduled at WAITING).
local function waiting(queue, id)
  local score = redis.call('zscore', state_key('scheduled', queue), id)
  return score ~= false and tonumber(score) == WAITING
end

-- The tasks of a dependents hash (id, queue, ...); none when it holds another type.
local function read_dependents(id)
  local fields = redis.pcall('hgetall', dependents_key(id))
  redis.call('del', dependents_key(id), awaited_key(id))
  return type(fields) == 'table' and not fields.err and fields or {}
end

-- Whether task `id` of `queue` is still waiting for `waited` and may move: its wait given up
-- for `waited`, when the keys it moves through hold their types (a key of another type leaves
-- it waiting, untouched, rather than stopping the script half way).
local function leave_wait(queue, id, waited, to_states)
  if queue_keys_problem(queue, to_states) or type_problem(after_key(id), 'hash') then
    return false
  end
  return redis.call('hdel', after_key(id), waited) == 1 and waiting(queue, id)
end

-- A payload's `scheduled_at` and priority (nil and 0 when it cannot be read).
local function due_and_priority(payload)
  local ok, data = pcall(cjson.decode, type(payload) == 'string' and payload or '')
  if not ok or type(data) ~= 'table' then return nil, 0 end
  local due = tonumber(data.scheduled_at)
  return due, priority_of(payload)
end

-- Record what a cancelled dependent is told: an execution record in JSON.
local function cancel_record(at_s, message)
  return '{"success":false,"time_failed":' .. at_s .. ',"exception_name":'
    .. '"typedtiger.exceptions:DependencyFailed","exception":' .. cjson.encode(message) .. '}'
end

-- Cancel the tasks waiting for `id` (which failed for good or was deleted: `why`), at `at_s`,
-- and those waiting for them in turn. Returns how many were cancelled.
local function cancel_dependents(id, why, at_s)
  local todo, cancelled = {{id, why}}, 0
  while #todo > 0 do
    local gone, reason = todo[#todo][1], todo[#todo][2]
    todo[#todo] = nil
    local dependents = read_dependents(gone)
    for i = 1, #dependents, 2 do
      local dependent, queue = dependents[i], dependents[i + 1]
      found_task(dependent)  -- (learnt from the hash: see _common.lua)
      found_queue(queue)
      -- (a dependent that no longer waits for it, deleted or moved by hand, is left alone)
      if leave_wait(queue, dependent, gone, {'scheduled', 'error'}) then
        redis.call('del', after_key(dependent))
        repair_bookkeeping(dependent)
        unfile('scheduled', queue, dependent)
        file('error', queue, dependent, at_s, '')
        record_execution(dependent, cancel_record(at_s, 'task ' .. gone .. ' ' .. reason), 0)
        cancelled = cancelled + 1
        todo[#todo + 1] = {dependent, 'was cancelled: a task it waited for ' .. reason}
      end
    end
  end
  return cancelled
end

-- Release the tasks waiting for `id`, which succeeded, at `now` (a number): each leaves its
-- wait for `id`, and one that waits for nothing more is queued (or scheduled at its `when`).
-- Returns the queues a task was queued in.
local function release_dependents(id, now)
  local dependents = read_dependents(id)
  local woken = {}
  for i = 1, #dependents, 2 do
    local dependent, queue = dependents[i], dependents[i + 1]
    found_task(dependent)  -- (learnt from the hash: see _common.lua)
    found_queue(queue)
    if leave_wait(queue, dependent, id, {'scheduled', 'queued'})
      and redis.call('exists', after_key(dependent)) == 0 then
      local due, priority = due_and_priority(redis.pcall('get', task_key(dependent)))
      unfile('scheduled', queue, dependent)
      if due and due > now then
        file('scheduled', queue, dependent, score_text(due), '')
      else
        file('queued', queue, dependent, queued_score(now, priority), '')
        woken[queue] = true
      end
    end
  end
  return woken
end

-- Settle the dependents of the tasks forget found more keys of (`departed`): released when
-- `succeeded`, else cancelled because the task `why` (at `now_s`). Activity is published for
-- the queues a released task was queued in.
local function settle_departed(succeeded, why, now_s)
  for _, id in ipairs(departed) do
    if succeeded then
      for queue in pairs(release_dependents(id, tonumber(now_s))) do
        redis.call('publish', P .. ':activity', queue)
      end
    else
      cancel_dependents(id, why, now_s)
    end
  end
  departed = {}
end
