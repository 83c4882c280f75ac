-- Finish successful tasks. ARGV: prefix, queue, n, n task ids, then pairs task id, lock id.
local queue, n = ARGV[2], tonumber(ARGV[3])
for i = 4, 3 + n do
  local id = ARGV[i]
  if unfile('active', queue, id) then forget(queue, id) end
end
for i = 4 + n, #ARGV, 2 do release_lock(ARGV[i + 1], ARGV[i]) end
return n
