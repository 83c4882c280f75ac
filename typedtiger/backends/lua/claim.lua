-- Claim queued tasks (see claim_from). ARGV: prefix, queue, now, lock_retry, limit, and
-- optionally claimant, token, memo ms.
local reply = claim_from(2)
settle_names()
return reply
