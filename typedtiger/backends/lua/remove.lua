-- Delete a task filed in a state. ARGV: prefix, queue, state, id. Returns 1 if it was there.
local queue, state, id = ARGV[2], ARGV[3], ARGV[4]
if not unfile(state, queue, id) then return 0 end
forget(queue, id, state)
return 1
