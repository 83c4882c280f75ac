-- A slot of a queue's worker semaphore (P:qslock:<queue>, members = holders, scores = expiry).
-- ARGV: prefix, queue, holder, limit, now, timeout, refresh ('1': the holder's claimed tasks
-- are running). Returns 1 if held, 0 if full or paused. A pause (the SYSTEM_LOCK member) stops
-- new claims only: a running holder keeps its slot through it, or after a long pause another
-- worker could take the only slot of a queue whose task still runs.
local key = qslock_key(ARGV[2])
local holder, limit = ARGV[3], tonumber(ARGV[4])
local now, timeout, refresh = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7] == '1'
redis.call('zremrangebyscore', key, '-inf', now)
local paused = redis.call('zscore', key, 'SYSTEM_LOCK') ~= false
if paused and not refresh then return 0 end
local holders = redis.call('zcard', key) - (paused and 1 or 0)
if not redis.call('zscore', key, holder) and holders >= limit then return 0 end
redis.call('zadd', key, now + timeout, holder)
if not paused then redis.call('pexpire', key, backstop_ms(timeout)) end  -- a pause persists it
return 1
