-- Finish successful tasks (see complete_from) and release the tasks waiting for them (see
-- settle_departed). ARGV: prefix, now, queue, n, ids, m, lock pairs.
complete_from(3)
settle_departed(true, nil, ARGV[2])
settle_names()
return 1
