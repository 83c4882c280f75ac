-- Take task locks. ARGV: prefix, queue, now, timeout, retry_at, then pairs task id, lock id.
-- A task that cannot take its lock goes back to scheduled at retry_at (the earlier time wins
-- if it is already scheduled). Tasks of one call are one job (a batch): a lock granted to one
-- of them covers the others that name it (TaskTiger takes it once per batch). Returns the ids
-- of the tasks that may run.
local queue, now = ARGV[2], tonumber(ARGV[3])
local timeout, retry_at = tonumber(ARGV[4]), tonumber(ARGV[5])
local granted, taken = {}, {}
for i = 6, #ARGV, 2 do
  local id, key = ARGV[i], lock_key(ARGV[i + 1])
  local value = redis.call('get', key)
  local mine = value and string.sub(value, 1, #id + 1) == id .. '|'
  if taken[key] then
    granted[#granted + 1] = id
  elseif mine or lock_free(key, now, value) then
    redis.call('set', key, id .. '|' .. tostring(now + timeout), 'PX', lock_ttl_ms(timeout))
    taken[key] = true
    granted[#granted + 1] = id
  else
    unfile('active', queue, id)
    file('scheduled', queue, id, retry_at, 'min')
  end
end
return granted
