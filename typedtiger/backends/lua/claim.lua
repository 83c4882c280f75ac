-- Claim queued tasks (see claim_from). ARGV: prefix, queue, now, lock_retry, limit.
return claim_from(2)
