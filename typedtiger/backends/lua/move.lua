-- Move a task between states (or re-score it in the same state). ARGV: prefix, queue, from,
-- id, to, score (to queued: the time, scored with the task's priority), publish. Returns 1
-- if the task was in the from state.
local queue, from, id, to = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local score, publish = tonumber(ARGV[6]), ARGV[7] == '1'
if not unfile(from, queue, id) then return 0 end
if to == 'queued' then score = queued_score(score, priority_of(redis.pcall('get', task_key(id)))) end
file(to, queue, id, score, '')
if to == 'queued' and publish then redis.call('publish', P .. ':activity', queue) end
return 1
