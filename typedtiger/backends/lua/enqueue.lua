-- Store tasks: all of them or, when one is refused, none. ARGV: prefix, now, publish (0/1),
-- then six values per task: id, queue, payload, due, mode, max queue size (0: none).
-- Returns one reply per task: {'stored', state, score} or {'exists', state, score, payload}
-- (an equal unique task is already there; nothing written). When nothing was written at all:
-- {{'full', task number, size}} or {{'wrongtype', task number, key}}.
local now, publish = tonumber(ARGV[2]), ARGV[3] == '1'
local FIELDS = 6

-- SET replaces a value of any type; the sorted set and the set of queue names must be right
-- before anything is written (checked once per key and batch).
local checked = {}
local function has_type(key, wanted)
  if checked[key] then return true end
  local kind = redis.call('type', key)['ok']
  checked[key] = kind == 'none' or kind == wanted
  return checked[key]
end

-- First pass: decide every task, write nothing.
local replies, plan, adding, first_of = {}, {}, {}, {}
for i = 1, (#ARGV - 3) / FIELDS do
  local at = 4 + (i - 1) * FIELDS
  local id, queue, payload = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local due, mode, max_size = tonumber(ARGV[at + 3]), ARGV[at + 4], tonumber(ARGV[at + 5])
  local state = 'scheduled'
  if due <= now then state, due = 'queued', now end
  local existing = nil
  if mode ~= 'plain' then
    local first = first_of[queue .. '\0' .. id]  -- an equal task earlier in this batch
    if first then
      existing = {'exists', first.state, tostring(first.due), first.payload}
    else
      local queued, scheduled = in_state('queued', queue, id), in_state('scheduled', queue, id)
      local blocking = queued or scheduled
      if mode == 'if_absent' then blocking = blocking or in_state('active', queue, id) end
      if blocking then
        local found = queued and 'queued' or (scheduled and 'scheduled' or 'active')
        local score = redis.call('zscore', state_key(found, queue), id)
        existing = {'exists', found, score, redis.call('get', task_key(id))}
      end
    end
  end
  if existing then
    replies[i] = existing
  else
    if not has_type(state_key(state, queue), 'zset') then
      return {{'wrongtype', i, state_key(state, queue)}}
    end
    if not has_type(P .. ':' .. state, 'set') then return {{'wrongtype', i, P .. ':' .. state}} end
    if max_size > 0 then
      local size = adding[queue] or 0
      for _, counted in ipairs({'queued', 'active', 'scheduled'}) do
        size = size + redis.call('zcard', state_key(counted, queue))
      end
      if size >= max_size then return {{'full', i, size}} end
    end
    adding[queue] = (adding[queue] or 0) + 1
    local task = {id = id, queue = queue, payload = payload, state = state, due = due}
    if mode ~= 'plain' then first_of[queue .. '\0' .. id] = task end
    plan[#plan + 1] = task
    replies[i] = {'stored', state, tostring(due)}
  end
end

-- Second pass: write.
local woken = {}
for _, task in ipairs(plan) do
  redis.call('set', task_key(task.id), task.payload)
  file(task.state, task.queue, task.id, task.due, 'nx')
  if task.state == 'queued' then woken[task.queue] = true end
end
if publish then
  for queue in pairs(woken) do redis.call('publish', P .. ':activity', queue) end
end
return replies
