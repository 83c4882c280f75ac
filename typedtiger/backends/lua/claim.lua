-- Claim queued tasks (see claim_from). ARGV: prefix, queue, now, lock_retry, limit, and
-- optionally claimant, token, memo ms.
return claim_from(2)
