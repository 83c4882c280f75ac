-- Delete a task filed in a state; the tasks waiting for it are cancelled at `now` (see
-- cancel_dependents). ARGV: prefix, queue, state, id, now. Returns 1 if it was there.
local queue, state, id = ARGV[2], ARGV[3], ARGV[4]
if not unfile(state, queue, id) then return 0 end
forget(queue, id, state)
settle_departed(false, 'was deleted', ARGV[5])
return 1
