-- Record a failed execution. ARGV: prefix, queue, to_state ('error', 'scheduled' or '' to
-- remove), when, max stored executions (0: all), execution JSON, result text ('': none), ms
-- to keep it, n, n task ids, then pairs task id, lock id. Tasks no longer active are left
-- alone. A task that fails for good (not rescheduled) keeps the result text (see
-- keep_result). The tasks waiting for a task that goes to error or is removed are cancelled
-- (see cancel_dependents); a retry keeps them waiting. A task whose executions list or count
-- turns out broken gets its record all the same and is quarantined (see quarantine, at
-- `when`).
local queue, to_state, when = ARGV[2], ARGV[3], tonumber(ARGV[4])
local max_stored, execution = tonumber(ARGV[5]), ARGV[6]
local result, result_ms, n = ARGV[7], ARGV[8], tonumber(ARGV[9])
local bad = queue_keys_problem(queue, STATES)
if bad then return wrong_type_reply(bad) end
for i = 10, 9 + n do
  local id = ARGV[i]
  local problem = in_state('active', queue, id) and bookkeeping_problem(id)
  if problem then
    repair_bookkeeping(id)
    record_execution(id, execution, max_stored)
    quarantine(queue, 'active', id, ARGV[4], problem)
    cancel_dependents(id, 'failed for good', ARGV[4])
  elseif unfile('active', queue, id) then
    if redis.call('exists', task_key(id)) == 1 then record_execution(id, execution, max_stored) end
    if to_state == '' then
      forget(queue, id, 'active')
    else
      file(to_state, queue, id, when, '')
      if to_state == 'error' and redis.call('del', awaited_key(id)) == 1 then
        cancel_dependents(id, 'failed for good', ARGV[4])
      end
    end
    if result ~= '' and to_state ~= 'scheduled' then keep_result(id, result, result_ms) end
  end
end
settle_departed(false, 'failed for good', ARGV[4])
for i = 10 + n, #ARGV, 2 do release_lock(ARGV[i + 1], ARGV[i]) end
return n
