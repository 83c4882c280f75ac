-- Where a task is, found by its id alone (tiger.status). KEYS: its payload key, its result key.
-- ARGV: prefix, task id. The payload names the task's queue (its "queue" field, typedtiger's:
-- the id index, written with the payload, gone with it); the task's entry in each state of
-- that queue is looked up (the queue's sorted sets admitted by name: found_queue). Returns {the queue or false (no payload, or one without a queue:
-- the caller looks in every queue), then 1 or 0 per state in STATES order, then the result
-- key's value or false}. A key of another type counts as missing.
local id = ARGV[2]
local function read(...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then return false end
  return reply
end
local queue = false
local payload = read('get', KEYS[1])
if payload and string.find(payload, '"queue"', 1, true) then
  local ok, data = pcall(cjson.decode, payload)
  if ok and type(data) == 'table' and type(data.queue) == 'string' then
    queue = data.queue
    found_queue(queue)
  end
end
local reply = {queue}
for i, state in ipairs(STATES) do
  reply[i + 1] = (queue and read('zscore', state_key(state, queue), id)) and 1 or 0
end
local kept = read('get', KEYS[2])
reply[#STATES + 2] = kept ~= RESULT_WAITING and kept
return reply
