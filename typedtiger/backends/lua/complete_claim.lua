-- Finish the previous job's tasks (releasing the tasks waiting for them at the claim's now) and
-- claim the next ones, in one round trip.
-- ARGV: prefix, the completion (see complete_from), then the claim (see claim_from).
local at = complete_from(2)
settle_departed(true, nil, ARGV[at + 1])
local reply = claim_from(at)
settle_names()
return reply
