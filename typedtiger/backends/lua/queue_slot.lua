-- A slot of a queue's worker semaphore (P:qslock:<queue>, members = holders, scores = expiry).
-- ARGV: prefix, queue, holder, limit, now, timeout. Returns 1 if held, 0 if full or paused.
local key = P .. ':qslock:' .. ARGV[2]
local holder, limit = ARGV[3], tonumber(ARGV[4])
local now, timeout = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('zremrangebyscore', key, '-inf', now)
if redis.call('zscore', key, 'SYSTEM_LOCK') then return 0 end
if not redis.call('zscore', key, holder) and redis.call('zcard', key) >= limit then return 0 end
redis.call('zadd', key, now + timeout, holder)
redis.call('pexpire', key, backstop_ms(timeout))  -- only reached while no pause is set
return 1
