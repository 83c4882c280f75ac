-- Store one task. ARGV: prefix, now, publish (0/1), id, queue, payload, due, mode, max size
-- (0: none). Returns {'stored', state, score}, {'exists', state, score, stored payload} or
-- {'full', size}.
local now, publish = tonumber(ARGV[2]), ARGV[3] == '1'
local id, queue, payload = ARGV[4], ARGV[5], ARGV[6]
local due, mode, max_size = tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9])

if mode ~= 'plain' then
  local queued, scheduled = in_state('queued', queue, id), in_state('scheduled', queue, id)
  local blocking = queued or scheduled
  if mode == 'if_absent' then blocking = blocking or in_state('active', queue, id) end
  if blocking then
    local state = queued and 'queued' or (scheduled and 'scheduled' or 'active')
    local score = redis.call('zscore', state_key(state, queue), id)
    return {'exists', state, score, redis.call('get', task_key(id))}
  end
end

if max_size > 0 then
  local size = 0
  for _, state in ipairs({'queued', 'active', 'scheduled'}) do
    size = size + redis.call('zcard', state_key(state, queue))
  end
  if size >= max_size then return {'full', tostring(size)} end
end

local state = 'scheduled'
if due <= now then state, due = 'queued', now end
redis.call('set', task_key(id), payload)
file(state, queue, id, due, 'nx')
if state == 'queued' and publish then redis.call('publish', P .. ':activity', queue) end
return {'stored', state, tostring(due)}
